"""Every bad input and every fault ends in one clear line, before any long work starts, and
nothing half-written survives (issue #15). One section per class of the issue; the scripted
signal test is tests/test_faults.py.

Most tests run the CLI in-process on the bundled data; those that need a fit share one light
fit of this module (~10 s).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import carpmodel
from carpmodel import cli, pipeline, preflight, study_stages
from carpmodel.errors import ConfigError, DataError, OutputError, Terminated
from carpmodel.io.config import RunConfig, default_config, from_mapping, to_toml
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.io.outputs import (
    prepare_output_dir,
    stale_temporaries,
    write_json_atomic,
    write_netcdf_atomic,
)
from carpmodel.io.results_file import read_fit_directory, read_json, read_netcdf
from carpmodel.io.strategies_file import load_strategies
from carpmodel.terminal import termination_as_interrupt

REPO_ROOT = Path(carpmodel.__file__).resolve().parent.parent

LIGHT = """
seed = 5
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


def run(argv: list, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str, *fragments: str) -> None:
    """The whole of stderr is one ``carpmodel: error:`` line holding every fragment."""
    assert err.startswith("carpmodel: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reliability")
    (root / "light.toml").write_text(LIGHT)
    assert cli.main(["fit", "--config", str(root / "light.toml"), "--out", str(root / "fit"), "--quiet"]) == 0
    return root / "fit"


@pytest.fixture
def damaged(fit_dir, tmp_path) -> Path:
    """A copy of the light fit directory, for a test to damage."""
    copy = tmp_path / "fit"
    shutil.copytree(fit_dir, copy)
    return copy


@pytest.fixture
def no_stage(monkeypatch):
    """Any stage starting fails the test: the refusal must come before the work."""
    def started(*args, **kwargs):
        raise AssertionError("a stage started before the request was checked")

    for name in ("fit_stage", "project_stage", "sensitivity_stage"):
        monkeypatch.setattr(pipeline, name, started)
    for name in ("monitoring_stage", "ensemble_stage", "budget_stage"):
        monkeypatch.setattr(study_stages, name, started)


def write_config(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(LIGHT + text if not text.lstrip().startswith("seed") else text)
    return path


def with_sections(text: str) -> str:
    """LIGHT with some keys changed: ``text`` holds ``[section]`` blocks merged into LIGHT."""
    import tomllib

    base = tomllib.loads(LIGHT)
    for section, values in tomllib.loads(text).items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return to_toml(base)        # sections as inline tables


# =========================================================================== 1. damaged fit directory


@pytest.mark.parametrize("command", ["project", "sensitivity", "monitoring"])
def test_truncated_fit_nc_is_one_line_and_exit_2_for_every_command_that_reads_a_fit(damaged, tmp_path, capsys,
                                                                                    command):
    path = damaged / "fit.nc"
    path.write_bytes(path.read_bytes()[:4000])
    code, _, err = run([command, "--fit", damaged, "--out", tmp_path / "out", "--quiet"], capsys)
    assert code == 2
    one_line_error(err, str(path), "not a readable NetCDF file", "truncated")
    assert not (tmp_path / "out").exists()


def test_a_fit_nc_that_is_not_hdf5_names_the_file(damaged, tmp_path, capsys):
    (damaged / "fit.nc").write_text("this is not NetCDF\n")
    code, _, err = run(["project", "--fit", damaged, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "fit.nc", "not a readable NetCDF file", "carpmodel fit")


def test_a_fit_nc_without_theta_names_the_missing_variable(damaged, tmp_path, capsys):
    ds = xr.open_dataset(damaged / "fit.nc", engine="h5netcdf").load()
    write_netcdf_atomic(ds.drop_vars("theta"), damaged / "fit.nc")
    code, _, err = run(["project", "--fit", damaged, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "fit.nc", "variable 'theta' is missing")


def test_a_fit_nc_with_a_covariance_of_the_wrong_shape_or_nan_estimates_is_refused(damaged):
    ds = xr.open_dataset(damaged / "fit.nc", engine="h5netcdf").load()
    n = ds.sizes["parameter"]
    bad = ds.drop_vars("covariance").assign(covariance=(("parameter", "x"), np.zeros((n, 2))))
    write_netcdf_atomic(bad, damaged / "fit.nc")
    with pytest.raises(DataError, match=rf"covariance' must be {n} x {n}"):
        read_fit_directory(damaged)
    theta = ds["theta"].values.copy()
    theta[0] = np.nan
    write_netcdf_atomic(ds.assign(theta=("parameter", theta)), damaged / "fit.nc")
    with pytest.raises(DataError, match="'theta' holds non-finite estimates"):
        read_fit_directory(damaged)


def test_a_fit_nc_whose_config_is_not_toml_or_lacks_attributes_is_refused(damaged):
    ds = xr.open_dataset(damaged / "fit.nc", engine="h5netcdf").load()
    write_netcdf_atomic(ds.assign_attrs(config_toml="[fit\nbroken"), damaged / "fit.nc")
    with pytest.raises(DataError, match="attribute 'config_toml' is not valid TOML"):
        read_fit_directory(damaged)
    del ds.attrs["data_sha256"]
    write_netcdf_atomic(ds, damaged / "fit.nc")
    with pytest.raises(DataError, match="attribute 'data_sha256' is missing"):
        read_fit_directory(damaged)


def test_a_damaged_fit_json_names_file_and_line(damaged, tmp_path, capsys):
    (damaged / "fit.json").write_text('{\n  "converged": tru\n}\n')
    code, _, err = run(["sensitivity", "--fit", damaged, "--draws", 2, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "fit.json, line 2", "not valid JSON")


def test_a_fit_directory_that_is_missing_or_a_file_or_whose_data_is_gone(damaged, tmp_path, capsys):
    code, _, err = run(["project", "--fit", tmp_path / "nowhere", "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "nowhere: fit directory does not exist")
    (tmp_path / "file").write_text("x")
    code, _, err = run(["monitoring", "--fit", tmp_path / "file", "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "file: fit directory is not a directory")
    ds = xr.open_dataset(damaged / "fit.nc", engine="h5netcdf").load()
    write_netcdf_atomic(ds.assign_attrs(data_directory=str(tmp_path / "moved")), damaged / "fit.nc")
    code, _, err = run(["project", "--fit", damaged, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "moved is gone", "--data DIR")


def test_results_written_by_carpmodel_read_back_with_one_line_errors(tmp_path):
    projection = tmp_path / "projection.nc"
    write_netcdf_atomic(xr.Dataset({"biomass_t": ("year", np.ones(3))}), projection)
    assert read_netcdf(projection, variables=["biomass_t"])["biomass_t"].size == 3
    projection.write_bytes(projection.read_bytes()[:100])
    with pytest.raises(DataError, match="projection.nc: not a readable NetCDF file"):
        read_netcdf(projection)
    with pytest.raises(DataError, match="run.json: file not found"):
        read_json(tmp_path / "run.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object, got list"):
        read_json(tmp_path / "list.json")


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe binary", "expected UTF-8 text"),
    (b"[strategies.no_releases\n", "invalid TOML"),
    (b"", "key strategies: missing"),
])
def test_damaged_strategies_and_ensemble_files_are_one_line(fit_dir, tmp_path, capsys, content, fragment):
    strategies = tmp_path / "strategies.toml"
    strategies.write_bytes(content)
    code, _, err = run(["project", "--fit", fit_dir, "--strategies", strategies, "--out", tmp_path / "a"],
                       capsys)
    assert code == 2
    one_line_error(err, str(strategies), fragment)
    ensemble = tmp_path / "ensemble.toml"
    ensemble.write_bytes(content if content else b"[ensemble]\nmembers = 3\n")
    code, _, err = run(["project", "--fit", fit_dir, "--ensemble", ensemble, "--out", tmp_path / "b"], capsys)
    assert code == 2
    one_line_error(err, str(ensemble))


# =========================================================================== 2. full disk


def _disk_full_after(monkeypatch, nbytes: int = 100) -> None:
    """Every Path.write_bytes/write_text writes ``nbytes`` and then fails as a full disk does."""
    def full(self, data, *args, **kwargs):
        raw = data.encode() if isinstance(data, str) else bytes(data)
        with open(self, "wb") as file:
            file.write(raw[:nbytes])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    monkeypatch.setattr(Path, "write_text", full)


def test_full_disk_while_writing_a_netcdf_is_an_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "fit.nc"
    target.write_bytes(b"the old file")
    _disk_full_after(monkeypatch)
    with pytest.raises(OutputError, match=r"fit.nc: cannot write: No space left on device"):
        write_netcdf_atomic(xr.Dataset({"a": ("x", np.arange(1000.0))}), target)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]
    assert target.read_bytes() == b"the old file"


def test_full_disk_while_writing_json_or_a_figure_leaves_no_temporary(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from carpmodel.io.outputs import write_figure_atomic

    fig, ax = plt.subplots()
    ax.plot([1, 2])

    def full_savefig(fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fig, "savefig", full_savefig)
    with pytest.raises(OutputError, match="fit.png: cannot write: No space left on device"):
        write_figure_atomic(fig, tmp_path / "fit.png")
    plt.close(fig)
    _disk_full_after(monkeypatch)
    with pytest.raises(OutputError, match="run.json: cannot write: No space left on device"):
        write_json_atomic(tmp_path / "run.json", {"status": "running"})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_chunked_dataset_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    pytest.importorskip("dask")
    ds = xr.Dataset({"a": (("draw", "year"), np.ones((100, 50)))}).chunk({"draw": 10})
    usage = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    with pytest.raises(OutputError, match=r"big.nc: cannot write: needs up to .* MB \(uncompressed\)"):
        write_netcdf_atomic(ds, tmp_path / "big.nc")
    assert list(tmp_path.iterdir()) == []


def test_simulate_on_a_full_disk_exits_2_in_one_line_without_a_temporary(tmp_path, capsys, monkeypatch):
    _disk_full_after(monkeypatch, 10)
    out = tmp_path / "sim"
    code, _, err = run(["simulate", "--out", out], capsys)
    monkeypatch.undo()
    assert code == 2
    one_line_error(err, "simulation.nc: cannot write: No space left on device")
    assert list(out.iterdir()) == []


TINY_DISK_SCRIPT = """
import sys
import numpy as np, xarray as xr
from carpmodel.errors import OutputError
from carpmodel.io.outputs import write_netcdf_atomic
ds = xr.Dataset({"a": (("x",), np.random.default_rng(0).random(200_000))})
try:
    write_netcdf_atomic(ds, sys.argv[1] + "/big.nc")
except OutputError as exc:
    print(exc)
    sys.exit(2)
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"),
                    reason="mounting a small tmpfs needs root")
def test_a_really_full_disk_does_not_crash_the_interpreter(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run([sys.executable, "-c", TINY_DISK_SCRIPT, str(disk)], capture_output=True,
                                text=True, env=env, timeout=120)
        # before: HDF5 crashed the interpreter cleaning up (exit -11) with ~20 lines of noise
        assert result.returncode == 2, (result.returncode, result.stderr)
        assert "No space left on device" in result.stdout and result.stderr == ""
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# =========================================================================== 3. values validated when read


def test_an_unknown_name_in_fit_estimate_is_refused_with_the_valid_names_before_the_fit(tmp_path, capsys,
                                                                                          no_stage):
    config = write_config(tmp_path, with_sections('[fit]\nestimate = ["max_egg_survival", "nonsense"]'))
    code, _, err = run(["fit", "--config", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "fit.estimate", "'nonsense'", "valid:", "max_egg_survival", "unfished_biomass_t")


def test_a_parameter_estimated_twice_is_refused(bundled_data):
    from carpmodel.inference.build import build_spec

    with pytest.raises(ConfigError, match="fit.estimate: expected each parameter once, got 'survey_q'"):
        build_spec(bundled_data,
                   default_config().with_fit(estimate=("survey_q", "max_egg_survival", "survey_q")))


@pytest.mark.parametrize("section, fragment", [
    ("[diagnostics]\nposterior_samples = -5", "diagnostics.posterior_samples: expected an integer >= 1"),
    ("[diagnostics]\nretrospective_peels = -1",
     "retrospective_peels: expected an integer >= 0 (0 switches it off)"),
    ("[diagnostics]\nprofile_points = 1", "profile_points: expected 0 (no profile) or at least 2"),
    ("[sensitivity]\ndraws = -3", "sensitivity.draws: expected an integer >= 0"),
    ("[sensitivity]\nwarming_levels_c = [0.0, 3.0, 2.0]", "warming_levels_c: expected strictly increasing"),
    ("[projection]\nlimit_fraction = 1.5", "limit_fraction: expected a fraction of SSB0 in (0, 1)"),
    ("[projection]\nscenarios = [\"baseline\", \"baseline\"]", "scenarios: expected each scenario once"),
    ("[fit]\nn_starts = 1000", "n_starts: expected at most 100"),
    ("seed = 99999999999999999999", "seed: expected at most 9223372036854775807"),
])
def test_config_values_are_refused_when_read_with_their_valid_range(tmp_path, capsys, section, fragment):
    config = write_config(tmp_path, with_sections(section))
    code, _, err = run(["config", config], capsys)
    assert code == 2
    one_line_error(err, str(config), fragment)


@pytest.mark.parametrize("year", [2030, 1990, 2024])
def test_last_data_year_outside_the_data_names_the_option_and_the_range(tmp_path, capsys, no_stage, year):
    code, _, err = run(["fit", "--last-data-year", year, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "--last-data-year: expected a year in 2012..2023", f"got {year}")


def test_last_data_year_in_a_run_config_names_the_key(tmp_path, capsys, no_stage):
    config = write_config(tmp_path, with_sections("[fit]\nlast_data_year = 1995"))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "fit.last_data_year: expected a year in 2012..2024")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["project", "--fit", "F", "--draws", "0"], "argument --draws: expected an integer >= 1, got '0'"),
    (["project", "--fit", "F", "--chunk-draws", "-2"], "argument --chunk-draws: expected an integer >= 1"),
    (["run", "--seed", "-1"], "argument --seed: expected an integer in 0..9223372036854775807"),
    (["simulate", "--first-year", "1066"], "argument --first-year: expected a year in 1900..2100"),
    (["monitoring", "--fit", "F", "--replicates", "1"], "argument --replicates: expected an integer >= 2"),
])
def test_command_line_values_are_refused_in_one_line_naming_the_option(tmp_path, capsys, argv, fragment):
    code, _, err = run([*argv, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, fragment, "--help")


def test_too_many_retrospective_peels_for_the_data_are_refused_before_the_fit(tmp_path, capsys, no_stage):
    config = write_config(tmp_path, with_sections("[diagnostics]\nretrospective_peels = 20"))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "diagnostics.retrospective_peels: expected at most", "got 20")


# =========================================================================== 4. upper bound on work


def test_absurd_draws_are_refused_before_the_fit_naming_the_chunking_option(tmp_path, capsys, no_stage):
    config = write_config(tmp_path, with_sections("[projection]\ndraws = 1000000000000"))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "projection.draws (--draws) = 1,000,000,000,000", "of memory", "are available",
                   "use at most", "projection.chunk_draws (--chunk-draws)")
    assert not (tmp_path / "out").exists()


def test_draws_that_fit_only_in_chunks_suggest_the_largest_chunk():
    config = default_config()
    work = preflight.projection_workload(config, n_strategies=8, n_scenarios=5)
    cells = 8 * 5 * 76
    available = int(300 * cells * preflight.PROJECTION_BYTES_PER_CELL / preflight.MEMORY_SHARE)
    assert preflight.check_work([work], available=available) == []     # 200 draws fit
    # 400 draws: too many at once; in chunks of at most 50 the engine fits beside the 400 draws kept
    big = preflight.projection_workload(from_mapping(RunConfig, {"projection": {"draws": 400}}, "t"), 8, 5)
    with pytest.raises(ConfigError, match=r"set projection.chunk_draws \(--chunk-draws\) to at most 5\d "):
        preflight.check_work([big], available=available)
    with pytest.raises(ConfigError, match=r"chunking needs dask"):
        preflight.check_work([big], available=available, chunking=False)


def test_absurd_sensitivity_draws_and_posterior_proposals_are_refused(fit_dir, tmp_path, capsys, no_stage):
    code, _, err = run(["sensitivity", "--fit", fit_dir, "--draws", 10**12, "--out", tmp_path / "out"],
                       capsys)
    assert code == 2
    one_line_error(err, "sensitivity.draws (--draws) = 1,000,000,000,000", "sensitivity.chunk_draws")
    config = write_config(tmp_path, with_sections("[diagnostics]\nposterior_proposals = 1000000000000"))
    code, _, err = run(["fit", "--config", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "diagnostics.posterior_proposals = 1,000,000,000,000", "use at most")


def test_project_refuses_draws_beyond_memory_even_in_chunks(fit_dir, tmp_path, capsys, no_stage):
    code, _, err = run(["project", "--fit", fit_dir, "--draws", 10**10, "--chunk-draws", 100,
                        "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "projection.draws (--draws) = 10,000,000,000", "with projection.chunk_draws")


def test_monitoring_replicates_beyond_a_week_of_refits_are_refused(fit_dir, tmp_path, capsys, no_stage):
    code, _, err = run(["monitoring", "--fit", fit_dir, "--replicates", 10**9, "--out", tmp_path / "out"],
                       capsys)
    assert code == 2
    one_line_error(err, "--replicates = 1,000,000,000", "(limit 168 h); use at most")
    assert not (tmp_path / "out").exists()


def test_refits_beyond_a_week_are_refused_naming_the_option(fit_dir, tmp_path, capsys, no_stage):
    code, _, err = run(["sensitivity", "--fit", fit_dir, "--draws", 4, "--power-replicates", 10**6,
                        "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "sensitivity.power_replicates (--power-replicates) = 1,000,000", "use at most")
    config = write_config(tmp_path, with_sections("[diagnostics]\nself_test_replicates = 100000000"))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "diagnostics.self_test_replicates = 100,000,000", "(limit 168 h)")


def test_long_work_is_announced_with_its_estimate():
    config = from_mapping(RunConfig, {"projection": {"draws": 20000}}, "t")
    notes = preflight.check_work([preflight.projection_workload(config, 8, 5)], available=2**50)
    assert len(notes) == 1 and notes[0].startswith("the projection (8 strategies x 5 scenarios x 76 years x "
                                                   "20,000 draws) will take about ")
    with pytest.raises(ConfigError, match=r"would take about .* days \(limit 168 h\)"):
        preflight.check_work([preflight.projection_workload(
            from_mapping(RunConfig, {"projection": {"draws": 10**9}}, "t"), 8, 5)], available=2**70)


# =========================================================================== 5. checked in the first second


@pytest.mark.parametrize("section, fragment", [
    ('[projection]\nscenarios = ["baseline", "ssp999"]', "projection.scenarios: unknown scenario(s) ssp999"),
    ('[projection]\nstrategies = "no_such_file.toml"', "no_such_file.toml: strategies file does not exist"),
    ("[projection]\nfirst_year = 2030", "projection.first_year: expected 2025"),
    ("[diagnostics]\nprofile_points = 3\n[fit]\nestimate = [\"max_egg_survival\", \"survey_q\"]",
     "diagnostics.profile_points: the likelihood profile is of unfished_biomass_t"),
])
def test_run_refuses_what_would_fail_later_before_any_stage(tmp_path, capsys, no_stage, section, fragment):
    config = write_config(tmp_path, with_sections(section))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, fragment)
    assert not (tmp_path / "out").exists()


def test_run_with_chunking_but_without_dask_is_refused_before_the_fit(tmp_path, capsys, no_stage,
                                                                       monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "dask" else find_spec(name, *a))
    config = write_config(tmp_path, with_sections("[projection]\nchunk_draws = 2"))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "projection.chunk_draws (--chunk-draws) needs dask", "pip install")


def test_project_with_a_scheduler_but_without_distributed_is_refused_first(fit_dir, tmp_path, capsys,
                                                                           no_stage, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else find_spec(name, *a))
    code, _, err = run(["project", "--fit", fit_dir, "--scheduler", "local", "--out", tmp_path / "out"],
                       capsys)
    assert code == 2
    one_line_error(err, "--scheduler needs distributed")


def test_fit_refuses_an_output_location_it_cannot_create_before_fitting(tmp_path, capsys, no_stage):
    (tmp_path / "a_file").write_text("x")
    code, _, err = run(["fit", "--out", tmp_path / "a_file" / "out"], capsys)
    assert code == 2
    one_line_error(err, "cannot create output directory", "a_file is not a directory")


def test_an_unwritable_output_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="output directory is not writable"):
        prepare_output_dir(tmp_path, force=True)
    with pytest.raises(OutputError, match=r"cannot create output directory: .* is not writable"):
        prepare_output_dir(tmp_path / "new", force=False)


def test_strategies_releasing_fish_heavier_than_the_asymptotic_weight_are_refused(tmp_path, capsys, no_stage):
    strategies = tmp_path / "s.toml"
    strategies.write_text('[strategies.no_releases]\n[strategies.giant]\n[[strategies.giant.releases]]\n'
                          'type = "constant"\nfish_per_year = 1e6\nweight_g = 5000.0\n')
    config = write_config(tmp_path, with_sections(f'[projection]\nstrategies = "{strategies}"'))
    code, _, err = run(["run", config, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "strategies.giant.releases[0]", "asymptotic weight", "5000 g")


def test_the_checks_of_a_run_take_well_under_a_second(bundled_data):
    import time

    start = time.perf_counter()
    preflight.check_run_request(bundled_data, default_config())
    assert time.perf_counter() - start < 2.0      # ~0.15 s measured; 2 s leaves room for a busy machine


# =========================================================================== 6. faults other than Ctrl-C


def test_sigterm_is_raised_as_terminated_and_a_second_one_is_ignored():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated, match="SIGTERM"), termination_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
    assert signal.getsignal(signal.SIGTERM) == previous
    with termination_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))
        except Terminated:
            os.kill(os.getpid(), signal.SIGTERM)    # during the clean-up: ignored
            sum(range(1000))


def test_a_terminated_command_exits_143_in_one_line(capsys, monkeypatch):
    def killed(directory):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))

    monkeypatch.setattr(cli, "load_data", killed)
    code, _, err = run(["check-data", "anything"], capsys)
    assert code == 143 and err == "carpmodel: terminated (SIGTERM)\n"


def test_run_json_is_written_before_the_first_stage_and_updated_when_it_fails(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    seen = {}

    def fit_fails(data, config, log, progress):
        seen.update(json.loads((out / "run.json").read_text()))
        raise RuntimeError("the fit broke")

    monkeypatch.setattr(pipeline, "fit_stage", fit_fails)
    config = write_config(tmp_path, LIGHT)
    code, _, err = run(["run", config, "--out", out], capsys)
    assert code == 1 and "this is a bug in carpmodel" in err
    assert seen["status"] == "running" and seen["stages_completed"] == [] and seen["pid"] == os.getpid()
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: the fit broke"


def test_the_run_log_reports_every_stage_and_file_as_it_happens():
    calls = []
    log = pipeline.RunLog(on_change=lambda: calls.append((list(log.stages), list(log.outputs))))
    with log.stage("fit", pipeline.Progress(False)):
        pass
    log.wrote(Path("fit.json"))
    assert calls == [(["fit"], []), (["fit"], ["fit.json"])]


def test_force_removes_the_temporaries_of_a_killed_run_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    stale = [out / ".fit.nc.k2j4h_x9.tmp", out / "figures" / ".fit.png.abcdefgh.tmp"]
    keep = [out / "notes.tmp", out / ".hidden", out / "fit.json", out / ".fit.nc.short.tmp"]
    for path in stale + keep:
        path.write_text("x")
    assert stale_temporaries(out) == [stale[0], stale[1]]
    prepare_output_dir(out, force=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    (out / ".fit.nc.k2j4h_x9.tmp").write_text("x")
    with pytest.raises(OutputError):
        prepare_output_dir(out, force=False)        # without --force nothing is touched
    assert (out / ".fit.nc.k2j4h_x9.tmp").exists()


# =========================================================================== 7. absurd but parseable values


def _replace_line(path: Path, index: int, line: str) -> None:
    lines = path.read_text().splitlines()
    lines[index] = line
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("file, line, fragment", [
    ("catch.csv", "1960,1e308,catch_record,derived,",
     "column catch_t: expected a non-negative number of tonnes, at most 1e+06 t (a million tonnes a year"),
    ("biomass_observations.csv", "2012,33569,50,survey_report,reported,hydroacoustic,assumption_cv,assumed,",
     "column cv: expected a coefficient of variation cv > 0, at most 3 (a lognormal SD above 3"),
    ("biomass_observations.csv", "2012,3e9,0.3,survey_report,reported,hydroacoustic,assumption_cv,assumed,",
     "column biomass_t: expected a positive number of tonnes, at most 1e+07 t (ten million tonnes"),
    ("releases_historical.csv", "2002,1,5.0,1e11,survey_report,reported",
     "column fish_released: expected a non-negative number of fish, at most 1e+10 fish"),
    ("auxiliary_observations.csv", "2022,numbers_fish,1e15,fish,survey_report,reported,",
     "column value: expected numbers_fish at most 1e+12 fish"),
])
def test_absurd_data_values_are_refused_with_the_bound_and_its_reason(data_dir, capsys, file, line, fragment):
    index = {"catch.csv": 5, "biomass_observations.csv": 2, "releases_historical.csv": 1,
             "auxiliary_observations.csv": 2}[file]
    _replace_line(data_dir / file, index, line)
    code, _, err = run(["check-data", data_dir], capsys)
    assert code == 2
    one_line_error(err, f"{file}, line {index + 1}", fragment)


def test_release_weight_above_the_asymptotic_weight_is_refused(data_dir):
    _replace_line(data_dir / "releases_historical.csv", 1, "2002,1,4000.0,5000000,survey_report,reported")
    with pytest.raises(DataError, match=r"year 2002, age 1, column weight_at_release_g: expected at most the "
                                        r"asymptotic weight 1,996 g"):
        load_data(data_dir)


def test_a_life_history_value_outside_its_prior_support_is_refused(data_dir):
    path = data_dir / "life_history.toml"
    text = path.read_text()
    path.write_text(text.replace('prior = {distribution = "beta", mean = 0.7, sd = 0.15}',
                                 'prior = {distribution = "uniform", lower = 0.8, upper = 0.95}'))
    with pytest.raises(DataError, match=r"key relative_reproductive_success.value: expected a value inside "
                                        r"the support of its prior "
                                        r"\(uniform lower 0.8, upper 0.95\)"):
        load_data(data_dir)
    path.write_text(text.replace('prior = {distribution = "beta", mean = 0.7, sd = 0.15}',
                                 'prior = {distribution = "uniform", lower = -0.5, upper = 0.95}'))
    with pytest.raises(DataError, match=r"relative_reproductive_success.prior: expected a uniform prior "
                                        r"inside the plausible range"):
        load_data(data_dir)


def test_legal_but_suspicious_values_give_notes(data_dir, capsys):
    _replace_line(data_dir / "biomass_observations.csv", 2,
                  "2012,33569,1.5,survey_report,reported,hydroacoustic,assumption_cv,assumed,")
    _replace_line(data_dir / "releases_historical.csv", 1, "2002,1,5.0,3e9,survey_report,reported")
    path = data_dir / "life_history.toml"
    path.write_text(path.read_text().replace('prior = {distribution = "beta", mean = 0.7, sd = 0.15}',
                                             'prior = {distribution = "beta", mean = 0.3, sd = 0.05}'))
    notes = load_data(data_dir).notes
    assert any("year 2012: cv 1.5 > 1: a CV above 1 gives the survey almost no weight" in n for n in notes)
    assert any("year 2002, age 1: 3e+09 fish released > 1e+09" in n for n in notes)
    assert any("key relative_reproductive_success.value: 0.7 is above the 0.0001 tail of its prior" in n
               for n in notes)


@pytest.mark.parametrize("component, fragment", [
    ('type = "constant"\nfish_per_year = 1e300', "releases[0].fish_per_year: expected at most 1e+10 fish"),
    ('type = "constant"\nfish_per_year = 1e6\nweight_g = 50000.0', "releases[0].weight_g: expected at most "
                                                                   "10000 g"),
    ('type = "schedule"\nfish_by_year = { 2030 = 5e10 }', "releases[0].fish_by_year.2030: expected at most"),
    ('type = "budget"\nbudget_per_year = 1e15\nshares = [{ age_yr = 1, weight_g = 10.0, share = 1.0 }]',
     "releases[0].shares[0] (budget_per_year x share / cost per fish): expected at most 1e+10 fish"),
])
def test_absurd_strategies_are_refused_with_the_bound(tmp_path, component, fragment):
    path = tmp_path / "s.toml"
    path.write_text(f"[strategies.no_releases]\n[strategies.x]\n[[strategies.x.releases]]\n{component}\n")
    with pytest.raises(ConfigError, match=f"key strategies.x.{_escape(fragment)}"):
        load_strategies(path)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_absurd_harvest_and_config_values_are_refused_with_the_bound(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[strategies.no_releases]\n[strategies.x.harvest]\n'
                    'type = "constant_f"\nf_per_yr = 50.0\n')
    with pytest.raises(ConfigError, match=r"strategies.x.harvest.f_per_yr: expected at most 10 1/yr "
                                          r"\(F = 10/yr"):
        load_strategies(path)
    for section, fragment in (("fit", {"catch_sd_log": 50.0}),
                              ("sensitivity", {"warming_levels_c": [0.0, 30.0]}),
                              ("projection", {"survey_cv": 50.0})):
        with pytest.raises(ConfigError, match=r"expected (at most|levels within|a CV in)"):
            from_mapping(RunConfig, {section: fragment}, "t")


def test_a_budget_that_buys_absurd_numbers_of_fish_is_refused():
    from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE
    from carpmodel.management.budget import BudgetProblem

    costs = load_strategies(DEFAULT_STRATEGIES_FILE).costs
    preflight.check_budget(BudgetProblem(budget_per_year=2e7), costs, "--budget")
    with pytest.raises(ConfigError, match=r"--budget: a budget of 1e\+300 a year buys .* fish of age 0, 1 g; "
                                          r"expected at most 1e\+10 fish"):
        preflight.check_budget(BudgetProblem(budget_per_year=1e300), costs, "--budget")


def test_monitoring_fish_examined_beyond_the_bound_is_refused(fit_dir, tmp_path, capsys, no_stage):
    code, _, err = run(["monitoring", "--fit", fit_dir, "--fish-per-year", "0,99999999999999999999",
                        "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line_error(err, "monitoring fish_per_year: expected values in 0..1e+07 (ten million fish a year")


def test_the_readme_lists_every_plausibility_bound():
    from carpmodel.io.plausibility import BOUNDS

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for quantity, limit in BOUNDS.items():
        assert f"`{quantity}`" in readme and f"{limit.upper:g}" in readme, quantity


def test_non_finite_projection_values_are_refused_naming_variable_and_draw():
    from carpmodel.errors import NumericalError

    biomass = np.ones((2, 1, 3, 4))
    biomass[1, 0, 2, 3] = np.inf
    ds = xr.Dataset({"biomass_t": (("strategy", "scenario", "draw", "year"), biomass)},
                    coords={"strategy": ["no_releases", "big"], "scenario": ["baseline"], "draw": [0, 1, 2],
                            "year": [2025, 2026, 2027, 2028]})
    with pytest.raises(NumericalError, match=r"projection: biomass_t is not finite in 1 of 24 values "
                                             r"\(first at "
                                             r"strategy big, scenario baseline, draw 2, year 2028\)"):
        pipeline.check_finite(ds, "projection")


def test_every_nan_in_the_fit_outputs_has_a_recorded_cause(fit_dir):
    with xr.open_dataset(fit_dir / "fit.nc", engine="h5netcdf") as ds:
        for name, variable in ds.data_vars.items():
            if variable.dtype.kind == "f" and bool(variable.isnull().any()):
                assert "missing_values" in variable.attrs, name


# ======================================================================= 8. check-data as deep as commands


def test_check_data_refuses_missing_anomalies_that_the_projection_needs(data_dir, capsys):
    path = data_dir / "climate_scenarios.toml"
    path.write_text(path.read_text().split("[anomalies]")[0])
    code, _, err = run(["check-data", data_dir], capsys)
    assert code == 2
    one_line_error(err, "climate_scenarios.toml, key anomalies")


def test_check_data_refuses_a_catch_series_that_does_not_cover_the_model_years(data_dir, capsys):
    path = data_dir / "catch.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:-5]) + "\n")
    code, _, err = run(["check-data", data_dir], capsys)
    assert code == 2
    one_line_error(err, "model.first_year/last_year", "expected years within 1956..2019, got 2000-2024",
                   "catch.csv covers 1956-2019")


def test_check_data_with_a_config_runs_the_config_checks_too(data_dir, tmp_path, capsys):
    config = write_config(tmp_path, with_sections('[projection]\nscenarios = ["baseline", "ssp585"]'))
    code, _, err = run(["check-data", data_dir, "--config", config], capsys)
    assert code == 2
    one_line_error(err, "projection.scenarios: unknown scenario(s) ssp585; valid: baseline, ssp245")
    config = write_config(tmp_path, with_sections('[fit]\nestimate = ["steepnes"]'), "typo.toml")
    code, _, err = run(["check-data", data_dir, "--config", config], capsys)
    assert code == 2
    one_line_error(err, "fit.estimate: unknown parameter 'steepnes'")


def test_check_data_notes_what_the_default_config_would_trip_on(data_dir, capsys):
    code, out, err = run(["check-data", data_dir], capsys)
    assert code == 0 and err == ""
    assert "the default projection scenarios ssp126, ssp370, ssp585 are not in" in out
    assert "with the default run config: diagnostics.profile_points" in out


def test_check_data_refuses_a_bad_scenario_trend_that_only_projections_read(data_dir, capsys):
    path = data_dir / "climate_scenarios.toml"
    path.write_text(path.read_text().replace("trend_c_per_decade = 0.29", 'trend_c_per_decade = "fast"'))
    code, _, err = run(["check-data", data_dir], capsys)
    assert code == 2
    one_line_error(err, "scenarios.ssp245.trend_c_per_decade", "'fast'")


# =========================================================================== 9. warnings and tracebacks


def test_data_changed_since_the_fit_is_one_note_line(fit_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(BUNDLED_DATA_DIRECTORY, data)
    with (data / "SOURCES.md").open("a") as file:
        file.write("\n")
    code, _, err = run(["project", "--fit", fit_dir, "--data", data, "--draws", 2, "--out", tmp_path / "out",
                        "--quiet"], capsys)
    assert code == 0, err
    assert err == (f"carpmodel: note: {fit_dir / 'fit.nc'}: the data directory changed since the fit "
                   f"(sha256 differs)\n")


def _warn_twice(directory):
    with np.errstate(over="warn"):
        np.exp(np.array([1000.0]))
    warnings.warn("something odd", RuntimeWarning, stacklevel=1)
    warnings.warn("something odd", RuntimeWarning, stacklevel=1)
    raise DataError("stop here")


def test_library_warnings_are_one_note_each_and_raw_only_with_verbose(capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_data", _warn_twice)
    code, _, err = run(["check-data", "x"], capsys)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 3, err
    assert lines[0].startswith("carpmodel: note: overflow encountered in exp (RuntimeWarning in ")
    assert lines[1].startswith("carpmodel: note: something odd (RuntimeWarning")
    assert lines[2] == "carpmodel: error: stop here"
    with warnings.catch_warnings(record=True) as shown:   # Python shows them as usual
        warnings.simplefilter("always")
        code, _, err = run(["check-data", "x", "--verbose"], capsys)
    assert [str(w.message) for w in shown] == ["overflow encountered in exp", "something odd",
                                               "something odd"]
    assert "Traceback" in err and "carpmodel: note:" not in err


def test_a_genuine_bug_prints_its_traceback_and_how_to_report_it(capsys, monkeypatch):
    def broken(directory):
        return {}["missing"]

    monkeypatch.setattr(cli, "load_data", broken)
    code, _, err = run(["check-data", "x"], capsys)
    assert code == 1 and "Traceback" in err and "KeyError" in err
    assert err.rstrip().splitlines()[-1].startswith("carpmodel: internal error (KeyError): this is a bug in "
                                                    "carpmodel")
    assert "please report it" in err


@pytest.mark.parametrize("exception, fragment", [
    (MemoryError(), "carpmodel: error: out of memory; use fewer draws"),
    (OSError(errno.ENOSPC, "No space left on device", "x.png"),
     "carpmodel: error: x.png: cannot write: No space"),
])
def test_resource_exhaustion_is_one_line_and_exit_1(capsys, monkeypatch, exception, fragment):
    def exhausted(directory):
        raise exception

    monkeypatch.setattr(cli, "load_data", exhausted)
    code, _, err = run(["check-data", "x"], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith(fragment), err


def test_input_errors_show_a_traceback_only_with_verbose(tmp_path, capsys):
    code, _, err = run(["check-data", tmp_path / "none"], capsys)
    assert code == 2 and "Traceback" not in err
    code, _, err = run(["--verbose", "check-data", tmp_path / "none"], capsys)
    assert code == 2 and "Traceback" in err and err.rstrip().endswith("data directory does not exist")
