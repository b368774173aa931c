"""Scripted faults: SIGINT, SIGTERM and SIGKILL at several points of a reduced `carpmodel run`
(in a subprocess), then `carpmodel run --force` into the same directory.

After each stop: the exit status is the documented one (130 Ctrl-C, 143 SIGTERM; SIGKILL cannot
be caught), run.json is truthful (status, the stages completed, only complete files listed), no
temporary or half-written file is left (SIGKILL mid-write leaves its temporary file, which the
next --force run removes), and the rerun succeeds. The signal is sent by the process to itself
at a chosen point (a patched function), so the points are exact: seven stops and their reruns,
two at a time, take one to two minutes on two cores (the reruns dominate).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import carpmodel
from carpmodel.io.outputs import stale_temporaries
from carpmodel.io.results_file import read_netcdf
from carpmodel.pipeline import RUN_STAGES

REPO_ROOT = Path(carpmodel.__file__).resolve().parent.parent

#: smaller than test_run.REDUCED: no refitting diagnostics, one scenario, 6 projection years
FAULT_CONFIG = """
seed = 11
[fit]
n_starts = 1
survey_sd = "fixed"
[diagnostics]
retrospective_peels = 0
hindcast_peels = 0
self_test_replicates = 0
profile_points = 0
posterior_samples = 100
posterior_proposals = 500
[projection]
draws = 4
last_year = 2030
scenarios = ["baseline"]
[sensitivity]
draws = 0
"""

#: the process signals itself at POINT: inside the fit, halfway through writing fit.nc (half the
#: bytes in the temporary file), or while the report is made (every other file written)
DRIVER = """
import os, signal, sys
from carpmodel import cli, pipeline
from carpmodel.io import outputs

# Ctrl-C at a terminal: a process started in the background of a non-interactive shell inherits
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler; restore the foreground one
signal.signal(signal.SIGINT, signal.default_int_handler)

name, point = sys.argv[1], sys.argv[2]
number = getattr(signal, name)

def hit():
    os.kill(os.getpid(), number)

if point == "fit":
    fit_model = pipeline.fit_model
    def fit_then_signal(*args, **kwargs):
        hit()
        return fit_model(*args, **kwargs)
    pipeline.fit_model = fit_then_signal
elif point == "write_fit_nc":
    write_atomic = outputs._write_atomic
    def half_then_signal(path, write):
        def half(tmp):
            write(tmp)
            if os.path.basename(path) == "fit.nc":
                with open(tmp, "r+b") as file:
                    file.truncate(os.path.getsize(tmp) // 2)
                hit()
        return write_atomic(path, half)
    outputs._write_atomic = half_then_signal
elif point == "report":
    import carpmodel.report.html as html
    report_html = html.report_html
    def report_then_signal(*args, **kwargs):
        hit()
        return report_html(*args, **kwargs)
    html.report_html = report_then_signal
sys.exit(cli.main(sys.argv[3:]))
"""

#: exit status of each signal: cli.main's for the two it handles; -9 (killed) for SIGKILL
EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -signal.SIGKILL}
#: stages completed when the signal arrives at each point
DONE = {"fit": [], "write_fit_nc": ["fit", "posterior", "diagnostics", "attribution"],
        "report": ["fit", "posterior", "diagnostics", "attribution", "projection", "metrics"]}


#: left out to keep the test near a minute: every signal still hits at least two points (SIGKILL
#: all three), every point at least two signals, and SIGTERM the write (its clean-up is SIGINT's)
SKIPPED = {("SIGINT", "fit"), ("SIGTERM", "report")}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _check_complete(path: Path) -> None:
    """A listed output must be a whole file: NetCDF readable, JSON parseable, others non-empty."""
    assert path.is_file(), path
    if path.suffix == ".nc":
        read_netcdf(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    else:
        assert path.stat().st_size > 0, path


def _fault_then_rerun(root: Path, name: str, point: str) -> None:
    out = root / f"{name}_{point}"
    result = _run([name, point, "run", "fault.toml", "--out", str(out), "--quiet"], root)
    assert result.returncode == EXIT[name], (name, point, result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["stages_completed"] == DONE[point], (name, point, record["stages_completed"])
    for listed in record["outputs"]:
        _check_complete(Path(listed) if Path(listed).is_absolute() else root / listed)
    leftovers = stale_temporaries(out)
    if name == "SIGKILL":
        assert record["status"] == "running"           # the last record before the kill
        # killed mid-write: the half file is a temporary, never fit.nc itself
        assert [p.name.split(".")[1] for p in leftovers] == (["fit"] if point == "write_fit_nc" else [])
    else:
        assert record["status"] == "interrupted" and record["error"].startswith(
            "Terminated: SIGTERM" if name == "SIGTERM" else "KeyboardInterrupt")
        assert leftovers == [], leftovers
        assert "run stopped; stages completed" in result.stderr
    assert not (out / "fit.nc").exists() or str(out / "fit.nc") in record["outputs"]

    rerun = _run(["SIGINT", "none", "run", "fault.toml", "--out", str(out), "--force", "--quiet"], root)
    assert rerun.returncode == 0, (name, point, rerun.stderr)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["stages_completed"] == list(RUN_STAGES[:-2]) + ["report"]
    assert stale_temporaries(out) == []
    for listed in record["outputs"]:
        _check_complete(Path(listed) if Path(listed).is_absolute() else root / listed)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_signals_at_several_points_leave_a_truthful_record_and_a_clean_rerun(tmp_path: Path) -> None:
    (tmp_path / "fault.toml").write_text(FAULT_CONFIG)
    cases = [(name, point) for point in DONE for name in EXIT if (name, point) not in SKIPPED]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(_fault_then_rerun, tmp_path, name, point) for name, point in cases]:
            future.result()
