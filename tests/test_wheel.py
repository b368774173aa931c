"""The built wheel works on its own: bundled data and default strategies ship inside it.

Builds the wheel of this checkout, installs it WITHOUT ``-e`` into a fresh virtual environment
and runs ``carpmodel check-data`` and a reduced ``carpmodel run`` from an empty temporary
directory, so nothing of the checkout can be found by accident. The fresh environment takes
its third-party dependencies (numpy, scipy, ...) from the running environment through a path
file, which adds that directory to ``sys.path`` without running its ``.pth`` hooks: the
editable install of the checkout is not visible there, only the wheel's copy of carpmodel is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

REDUCED = """
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
interval_draws = 50
[projection]
draws = 4
last_year = 2030
scenarios = ["baseline"]
[sensitivity]
draws = 0
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (no -e); returns its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    # build from a copy of the checkout, so setuptools' build/ never lands in (or comes from) it
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "results", "out", ".pytest_cache",
        ".ruff_cache"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"),
                  str(source)], cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    wheels = list((root / "dist").glob("carpmodel-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root).stdout.strip())
    installed = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                      str(wheels[0])], cwd=root)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # third-party dependencies from the running environment (a plain path: its .pth hooks, and
    # with them the editable install of this checkout, are not run)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    launcher = venv / "bin" / "carpmodel"   # what the console script of the wheel does
    launcher.write_text(f"#!{python}\nfrom carpmodel.cli import main\nraise SystemExit(main())\n")
    launcher.chmod(0o755)
    return venv / "bin"


def test_the_wheel_contains_the_bundled_data_and_default_strategies(wheel_env: Path) -> None:
    wheel = next((wheel_env.parent.parent / "dist").glob("carpmodel-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("biomass_observations.csv", "catch.csv", "releases_historical.csv", "temperature.csv",
                 "life_history.toml", "climate_scenarios.toml", "SOURCES.md", "auxiliary_observations.csv"):
        assert f"carpmodel/data/{name}" in names, name
    assert "carpmodel/management/default_strategies.toml" in names
    assert not any(n.startswith(("tests/", "experiments/")) for n in names)


def test_an_installed_wheel_runs_from_any_directory(wheel_env: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": "", "PATH": f"{wheel_env}{os.pathsep}{os.environ['PATH']}"}
    python = str(wheel_env / "python")
    where = _run([python, "-c", "import carpmodel, carpmodel.io.inputs as i; "
                  "print(carpmodel.__file__); print(i.BUNDLED_DATA_DIRECTORY)"], cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    package_file, data_dir = where.stdout.split()
    assert str(ROOT) not in package_file and str(ROOT) not in data_dir, where.stdout
    checked = _run([str(wheel_env / "carpmodel"), "check-data", data_dir], cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "reduced.toml").write_text(REDUCED)
    ran = _run([str(wheel_env / "carpmodel"), "run", "reduced.toml", "--out", "r", "--quiet"],
               cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    for name in ("fit.json", "fit.nc", "projection.nc", "metrics.csv", "report.html", "run.json"):
        assert (tmp_path / "r" / name).is_file(), name
