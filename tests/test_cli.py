"""Tests of the command line (carpmodel.cli.main, in-process; one subprocess smoke test)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import carpmodel
from carpmodel import cli
from carpmodel.errors import DataError
from carpmodel.io.config import RunConfig, default_config, from_mapping
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY

REPO_ROOT = Path(carpmodel.__file__).resolve().parent.parent


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("carpmodel: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_python_m_carpmodel_help(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "carpmodel", "--help"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("check-data", "config", "simulate"):
        assert command in result.stdout


def test_usage_errors_exit_2(capsys) -> None:
    assert run([], capsys)[0] == 2
    code, _, err = run(["simulate"], capsys)  # --out is required
    assert code == 2 and "--out" in err


# --------------------------------------------------------------------------- check-data


def test_check_data_on_valid_directory(data_dir: Path, capsys) -> None:
    code, out, err = run(["check-data", data_dir], capsys)
    assert code == 0 and err == ""
    assert "biomass_observations.csv: 5 observations in 2002-2024" in out
    assert "Life history (33 values" in out


def test_check_data_on_invalid_directory_prints_one_line(data_dir: Path, capsys) -> None:
    path = data_dir / "biomass_observations.csv"
    lines = path.read_text().splitlines()
    lines[2] = "2012,-5,0.3,survey_report,reported,,,,"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(["check-data", data_dir], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err, "biomass_observations.csv", "line 3", "column biomass_t", "'-5'")


def test_check_data_validates_the_climate_scenarios_as_project_does(data_dir: Path, capsys) -> None:
    path = data_dir / "climate_scenarios.toml"
    path.write_text(path.read_text().replace("air_warming_c = { 2050 = 1.72, 2090 = 2.7 }",
                                             'air_warming_c = "hot"'), encoding="utf-8")
    code, out, err = run(["check-data", data_dir], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err, str(path), "key scenarios.ssp245.air_warming_c", "'hot'")


def test_check_data_on_missing_directory(tmp_path: Path, capsys) -> None:
    code, _, err = run(["check-data", tmp_path / "absent"], capsys)
    assert code == 2
    assert_one_line_error(err, "absent", "does not exist")


# --------------------------------------------------------------------------- config


def test_config_show_defaults_prints_loadable_toml(capsys) -> None:
    code, out, _ = run(["config", "--show-defaults"], capsys)
    assert code == 0
    assert from_mapping(RunConfig, tomllib.loads(out), "stdout") == default_config()


def test_config_file_with_unknown_key(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[simulate]\nfirst_yr = 2001\n")
    code, out, err = run(["config", path], capsys)
    assert code == 2
    assert_one_line_error(err, "run.toml", "key simulate.first_yr",
                          "valid keys in [simulate]: first_year, last_year")


def test_config_file_is_validated_and_printed_with_defaults(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[model]\nrecruitment = "ricker"\n')
    code, out, _ = run(["config", path], capsys)
    assert code == 0
    config = from_mapping(RunConfig, tomllib.loads(out), "stdout")
    assert config.model.recruitment == "ricker" and config.seed == default_config().seed


# --------------------------------------------------------------------------- simulate


def test_default_data_directory_is_local_data_else_bundled(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli._data_directory(None, default_config()) == cli.BUNDLED_DATA_DIRECTORY
    (tmp_path / "data").mkdir()
    assert cli._data_directory(None, default_config()) == Path("data")
    assert cli._data_directory("elsewhere", default_config()) == Path("elsewhere")


def test_simulate_unknown_config_key_exits_2_and_writes_nothing(data_dir, tmp_path,
                                                                capsys) -> None:
    config = tmp_path / "run.toml"
    config.write_text('seed = 1\n[model]\nrecruitmnet = "ricker"\n')
    out = tmp_path / "out"
    code, _, err = run(["simulate", "--data", data_dir, "--config", config, "--out", out],
                       capsys)
    assert code == 2 and not out.exists()
    assert_one_line_error(err, str(config), "key model.recruitmnet", "unknown key",
                          "valid keys in [model]: recruitment, first_year, last_year")


def test_simulate_bad_toml_names_file_and_line(data_dir, tmp_path, capsys) -> None:
    config = tmp_path / "run.toml"
    config.write_text("seed = 1\nseed = 2\n")
    code, _, err = run(["simulate", "--data", data_dir, "--config", config, "--out",
                        tmp_path / "out"], capsys)
    assert code == 2
    assert_one_line_error(err, "run.toml", "invalid TOML", "line 2")


def test_simulate_refuses_existing_out_dir_and_leaves_it_untouched(data_dir, tmp_path,
                                                                   capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "simulation.nc").write_bytes(b"previous run")
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, stdout, err = run(["simulate", "--data", data_dir, "--out", out], capsys)
    assert code == 2 and stdout == ""
    assert_one_line_error(err, str(out), "exists; pass --force to overwrite")
    assert snapshot(out) == before


def test_simulate_refuses_out_dir_inside_data_dir(data_dir, capsys) -> None:
    code, _, err = run(["simulate", "--data", data_dir, "--out", data_dir / "run"], capsys)
    assert code == 2 and not (data_dir / "run").exists()
    assert_one_line_error(err, "input directory")


def test_simulate_bad_year_options(data_dir, tmp_path, capsys) -> None:
    code, _, err = run(["simulate", "--data", data_dir, "--first-year", "2030",
                        "--last-year", "2020", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert_one_line_error(err, "--first-year/--last-year", "first_year <= last_year")


def _fake_simulation_module(calls: list[dict]) -> types.ModuleType:
    def simulate_default(data, *, first_year, last_year, recruitment):
        calls.append({"data": data, "first_year": first_year, "last_year": last_year,
                      "recruitment": recruitment})
        years = np.arange(first_year, last_year + 1)
        biomass_t = np.linspace(1000.0, 2000.0, years.size)
        return xr.Dataset({"biomass_t": ("year", biomass_t, {"units": "t"})},
                          coords={"year": years})

    module = types.ModuleType("carpmodel.model.simulation")
    module.simulate_default = simulate_default  # type: ignore[attr-defined]
    return module


def test_simulate_passes_options_and_writes_provenance(data_dir, tmp_path, capsys,
                                                       monkeypatch) -> None:
    # A stand-in engine isolates the CLI's own job: options in, simulation.nc + summary out.
    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "carpmodel.model.simulation", _fake_simulation_module(calls))
    config = tmp_path / "run.toml"
    config.write_text('seed = 5\n[model]\nrecruitment = "ricker"\n[simulate]\nfirst_year = 2005\n')
    out = tmp_path / "out"
    code, stdout, err = run(["simulate", "--data", data_dir, "--config", config,
                             "--last-year", "2010", "--out", out], capsys)
    assert code == 0, err
    assert len(calls) == 1 and calls[0]["data"].directory == data_dir
    assert (calls[0]["first_year"], calls[0]["last_year"], calls[0]["recruitment"]) == (
        2005, 2010, "ricker")
    assert stdout.splitlines() == [f"wrote {out / 'simulation.nc'}",
                                   "biomass_t 2005: 1,000 t; 2010: 2,000 t"]
    assert [p.name for p in out.iterdir()] == ["simulation.nc"]
    with xr.open_dataset(out / "simulation.nc", engine="h5netcdf") as ds:
        assert ds.attrs["seed"] == 5
        assert ds.attrs["data_sha256"] == calls[0]["data"].sha256
        assert 'recruitment = "ricker"' in ds.attrs["config_toml"]
        assert len(ds.attrs["config_sha256"]) == 64


def test_simulate_force_overwrites_existing_out_dir(data_dir, tmp_path, capsys,
                                                    monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "carpmodel.model.simulation", _fake_simulation_module([]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "simulation.nc").write_bytes(b"previous run")
    code, _, err = run(["simulate", "--data", data_dir, "--out", out, "--force"], capsys)
    assert code == 0, err
    with xr.open_dataset(out / "simulation.nc", engine="h5netcdf") as ds:
        assert ds.sizes["year"] == 25  # default [simulate] years 2000..2024


def test_simulate_with_the_engine_writes_the_documented_variables(data_dir, tmp_path,
                                                                  capsys) -> None:
    # Uses the real carpmodel.model.simulation.simulate_default (the lead's engine).
    out = tmp_path / "out"
    code, stdout, err = run(["simulate", "--data", data_dir, "--out", out], capsys)
    assert code == 0, err
    assert f"wrote {out / 'simulation.nc'}" in stdout and "biomass_t 2000:" in stdout
    with xr.open_dataset(out / "simulation.nc", engine="h5netcdf") as ds:
        for name in ("biomass_t", "ssb_t", "recruits", "catch_t", "hatchery_fraction_biomass"):
            assert ds[name].dims == ("year",), name
        assert ds["year"].values.tolist() == list(range(2000, 2025))
        assert np.all(ds["biomass_t"].values > 0)


def test_unexpected_exception_exits_1_with_traceback(data_dir, capsys, monkeypatch) -> None:
    def broken(directory):
        raise RuntimeError("bug in the loader")

    monkeypatch.setattr(cli, "load_data", broken)
    code, _, err = run(["check-data", data_dir], capsys)
    assert code == 1 and "Traceback" in err and "bug in the loader" in err


def test_carpmodel_errors_exit_2_even_from_deep_inside(data_dir, capsys, monkeypatch) -> None:
    def refuse(directory):
        raise DataError("x.csv, line 9, column y: expected 1,\ngot 2")

    monkeypatch.setattr(cli, "load_data", refuse)
    code, _, err = run(["check-data", data_dir], capsys)
    assert code == 2
    assert_one_line_error(err, "x.csv, line 9, column y: expected 1, got 2")


# --------------------------------------------------------------------------- project --ensemble / --budget

LIGHT_CONFIG = """
[fit]
n_starts = 1
survey_sd = "fixed"
[diagnostics]
retrospective_peels = 0
hindcast_peels = 0
self_test_replicates = 0
profile_points = 0
posterior_samples = 100
posterior_proposals = 1000
[sensitivity]
draws = 0
"""

SMALL_STRATEGIES = """
[strategies.no_releases]

[strategies.status_quo]
[[strategies.status_quo.releases]]
type = "constant"
fish_per_year = 2e7

[budget]
budget_per_year = 2e7
options = [{ age_yr = 1, weight_g = 10.0 }, { age_yr = 2, weight_g = 50.0 }]
year = 2035
scenario = "baseline"
"""

TWO_MEMBERS = """
[ensemble]
dd_windows = [1]
release_survival_priors = ["informative"]
initial_states = ["depletion"]
mortality = [{ name = "c1", lorenzen_c = 1.0 }, { name = "c0", lorenzen_c = 0.0 }]
"""


@pytest.fixture(scope="module")
def light_fit(tmp_path_factory) -> Path:
    """A light fit (~5 s) in ``root/fit``, with the progress it printed off a terminal (not --quiet)
    in ``root/fit_stderr.txt``."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("light")
    (root / "light.toml").write_text(LIGHT_CONFIG)
    (root / "strategies.toml").write_text(SMALL_STRATEGIES)
    (root / "ensemble.toml").write_text(TWO_MEMBERS)
    stderr = io.StringIO()        # not a terminal: progress is whole lines
    with contextlib.redirect_stderr(stderr):
        assert cli.main(["fit", "--config", str(root / "light.toml"), "--out", str(root / "fit")]) == 0
    (root / "fit_stderr.txt").write_text(stderr.getvalue())
    return root


def test_project_with_an_ensemble_and_a_budget_writes_the_tables(light_fit, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(["project", "--fit", light_fit / "fit",
                             "--strategies", light_fit / "strategies.toml",
                             "--ensemble", light_fit / "ensemble.toml", "--budget", "1e7", "--draws", 6,
                             "--scenarios", "baseline", "--last-year", 2040, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    for name in ("projection.nc", "metrics.csv", "ensemble_projection.nc", "ensemble_metrics.csv",
                 "ensemble_members.csv", "budget.nc", "budget.csv", "figures/ensemble_gains.png",
                 "figures/budget_shares.png"):
        assert (out / name).is_file(), name
    import csv

    members = list(csv.DictReader((out / "ensemble_members.csv").open()))
    names = ["w1_informative_c1_depletion", "w1_informative_c0_depletion"]
    assert [m["structure"] for m in members] == names
    metrics = list(csv.DictReader((out / "ensemble_metrics.csv").open()))
    assert len(metrics) == 2 * 1 * 3 and {m["structure"] for m in metrics} == {*names, "pooled"}
    budget = list(csv.DictReader((out / "budget.csv").open()))
    assert [b["structure"] for b in budget][-1] == "pooled" and len(budget) == 3
    for row in budget:
        assert float(row["budget_per_year"]) == 1e7       # --budget replaced the file's amount
        assert float(row["share_age1_10g"]) + float(row["share_age2_50g"]) == pytest.approx(1.0, abs=1e-12)
    with xr.open_dataset(out / "ensemble_projection.nc", engine="h5netcdf") as ds:
        assert ds.sizes["structure"] == 2 and float(ds["structure_weight"].sum()) == pytest.approx(1.0)
    # issue #14: P(beats status quo) per member and pooled, robustness across the members, the
    # budget's best split with the same, and the attribution per member with the prior's part
    assert {"p_beats_status_quo_2035", "member_win_fraction_2035", "robust_across_structures_2035"} <= set(
        metrics[0])
    assert {m["robust_across_structures_2035"] for m in metrics} <= {"True", "False"}
    assert {"p_beats_status_quo", "dominant_option", "member_agreement",
            "robust_across_structures"} <= set(budget[0])
    plain = list(csv.DictReader((out / "metrics.csv").open()))
    assert all(r["robust_across_structures_2035"] == "" for r in plain)     # one structure: not assessed
    attribution = list(csv.DictReader((out / "attribution_members.csv").open()))
    assert {a["structure"] for a in attribution} == {*names, "pooled"}
    headline = json.loads((out / "hatchery_contribution.json").read_text())
    assert headline["members"]["n_members"] == 2 and len(headline["range"]) == 2
    fit_json = json.loads((light_fit / "fit" / "fit.json").read_text())
    assert fit_json["hatchery_contribution"]["range"][0] <= fit_json["hatchery_contribution"]["range"][1]
    assert_run_json(out, "project", ["projection", "metrics", "ensemble_fits", "ensemble_projection",
                                     "ensemble_metrics", "ensemble_attribution", "budget"], stdout)


def test_project_refuses_a_bad_budget_or_ensemble_file_naming_the_option_or_key(light_fit, tmp_path,
                                                                               capsys) -> None:
    base = ["project", "--fit", light_fit / "fit", "--strategies", light_fit / "strategies.toml", "--quiet"]
    code, _, err = run([*base, "--budget", "lots", "--out", tmp_path / "a"], capsys)
    assert code == 2
    assert_one_line_error(err, "--budget: expected an annual budget")
    bad = tmp_path / "bad.toml"
    bad.write_text('[ensemble]\ndesign = "everything"\n')
    code, _, err = run([*base, "--ensemble", bad, "--out", tmp_path / "b"], capsys)
    assert code == 2
    assert_one_line_error(err, str(bad), "ensemble.design")
    code, _, err = run([*base, "--budget", "--scenarios", "ssp245", "--out", tmp_path / "c"], capsys)
    assert code == 2
    assert_one_line_error(err, "budget.scenario")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- sensitivity and monitoring


def test_sensitivity_writes_the_sweep_and_its_figures(light_fit, tmp_path, capsys) -> None:
    # the fit's config switches the sweep off (draws = 0); --draws runs it: 4 draws, ~2 s. Without
    # --quiet and off a terminal (capsys), its progress is one line for its one stage
    out = tmp_path / "sens"
    code, stdout, err = run(["sensitivity", "--fit", light_fit / "fit", "--draws", 4, "--out", out], capsys)
    assert code == 0, err
    assert {"sensitivity.nc", "sensitivity_lines.png", "sensitivity_heatmap.png"} <= {
        Path(line.split()[-1]).name for line in stdout.splitlines()}
    with xr.open_dataset(out / "sensitivity.nc", engine="h5netcdf") as ds:
        assert ds.sizes["draw"] == 4
    assert_stage_lines(err, ["sensitivity"])
    assert_run_json(out, "sensitivity", ["sensitivity"], stdout)


def test_monitoring_runs_a_small_grid_and_writes_its_outputs(light_fit, tmp_path, capsys) -> None:
    # 2 designs × 2 replicates without the juvenile comparison (~10 s); the options set the grid
    out = tmp_path / "mon"
    code, stdout, err = run(["monitoring", "--fit", light_fit / "fit", "--replicates", 2, "--true-survivals",
                             "0.3", "--fish-per-year", "0,200", "--years-sampled", "5",
                             "--no-juvenile-option", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    assert err == ""                    # --quiet: no progress at all
    names = {Path(line.split()[-1]).name for line in stdout.splitlines()}
    assert {"monitoring.nc", "monitoring.json", "monitoring_coverage.png", "origin_design.nc",
            "origin_design.json", "origin_design_power.png"} <= names
    record = assert_run_json(out, "monitoring", ["monitoring_design", "origin_design"], stdout)
    assert record["design"] == {"n_replicates": 2, "true_survivals": [0.3], "fish_per_year": [0, 200],
                                "years_of_sampling": [5], "juvenile_option": False,
                                "origin_design_only": False}
    assert "monitoring_options.nc" not in names
    # the analytic origin-sample design alone (seconds): no simulation study
    code, stdout, err = run(["monitoring", "--fit", light_fit / "fit", "--origin-design-only",
                             "--out", tmp_path / "origin", "--quiet"], capsys)
    assert code == 0, err
    names = {Path(line.split()[-1]).name for line in stdout.splitlines()}
    assert "origin_design.json" in names and "monitoring.nc" not in names
    with xr.open_dataset(out / "monitoring.nc", engine="h5netcdf") as ds:
        assert ds["fish_per_year"].values.tolist() == [0, 200] and ds.sizes["replicate"] == 2
    code, _, err = run(["monitoring", "--fit", light_fit / "fit", "--fish-per-year", "0,lots",
                        "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "--fish-per-year" in err and not (tmp_path / "bad").exists()
    # a design that cannot run is refused in one line before any refit (12 surveys in the record)
    code, _, err = run(["monitoring", "--fit", light_fit / "fit", "--years-sampled", "5,40",
                        "--out", tmp_path / "bad", "--quiet"], capsys)
    assert code == 2 and not (tmp_path / "bad").exists()
    assert_one_line_error(err, "monitoring years_of_sampling", "[5, 40]")


@pytest.mark.parametrize("command", ["project", "run"])
def test_help_says_every_requested_scenario_is_drawn(command, capsys):
    """Issue #16: the projection figures cover every scenario, and --help says what is drawn."""
    code, out, _ = run([command, "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    assert "cover every requested scenario" in text
    for figure in ("projection_fan", "strategy_comparison", "hatchery_fraction", "projection_scenarios"):
        assert figure in text
    assert "fishing options" in text and "%%" not in text


# --------------------------------------------------------------------------- progress, run.json, --help


def assert_stage_lines(err: str, stages: list[str]) -> None:
    """Off a terminal: exactly one whole line per stage, in order, and no bar (no carriage return)."""
    import re

    assert "\r" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert [re.fullmatch(r"\[(\w+)\] done in \d+\.\d s", line).group(1) for line in lines] == stages, err


def assert_run_json(out: Path, command: str, stages: list[str], stdout: str) -> dict:
    """run.json in ``out``: complete, the command line, versions, every stage timed, and exactly the
    files the command wrote (every one on disk, every file on disk listed) — printed as written."""
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["command"] == command
    assert record["command_line"].startswith(f"carpmodel {command} --fit " if command != "fit" else
                                             "carpmodel fit ")
    assert record["carpmodel_version"] == carpmodel.__version__ and record["dependencies"]["numpy"]
    assert record["stages_completed"] == stages and set(record["timings_s"]) == set(stages)
    assert record["total_s"] >= sum(record["timings_s"].values()) and len(record["config_sha256"]) == 64
    listed = {Path(p).resolve() for p in record["outputs"]}
    on_disk = {p.resolve() for p in out.rglob("*") if p.is_file()} - {(out / "run.json").resolve()}
    assert listed == on_disk
    assert f"wrote {out / 'run.json'}" in stdout.splitlines()
    return record


def test_fit_prints_one_progress_line_per_stage_off_a_terminal_and_writes_run_json(light_fit) -> None:
    # the fixture's fit ran without --quiet with stderr not a terminal
    assert_stage_lines((light_fit / "fit_stderr.txt").read_text(),
                       ["fit", "posterior", "diagnostics", "attribution"])
    out = light_fit / "fit"
    record = assert_run_json(out, "fit", ["fit", "posterior", "diagnostics", "attribution"],
                             f"wrote {out / 'run.json'}")
    assert record["config_file"] == str(light_fit / "light.toml") and record["seed"] == default_config().seed
    assert "n_starts = 1" in record["config_toml"]


def _ticks(progress, clock: list[float], total: int, seconds_each: float) -> None:
    with progress.stage("monitoring"):
        for done in range(total + 1):
            progress.tick("refits", done, total)
            clock[0] += seconds_each


def test_progress_off_a_terminal_is_whole_lines_with_the_time_left_at_each_quarter(capsys) -> None:
    from carpmodel.runlog import Progress

    clock = [0.0]
    _ticks(Progress(terminal=False, clock=lambda: clock[0]), clock, 100, 2.0)   # 100 items, 2 s each
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "[monitoring] refits: 25/100, 50 s elapsed, about 2 min 30 s left",
        "[monitoring] refits: 50/100, 1 min 40 s elapsed, about 1 min 40 s left",
        "[monitoring] refits: 75/100, 2 min 30 s elapsed, about 50 s left",
        "[monitoring] done in 202.0 s"]
    # a slow counter also says something at least every 5 minutes (here every 15 items of 20 s, and
    # at each quarter); a quick one only its stage line
    clock = [0.0]
    _ticks(Progress(terminal=False, clock=lambda: clock[0]), clock, 100, 20.0)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1].split(",")[0] for line in lines[:-1]] == [
        "15/100", "25/100", "40/100", "50/100", "65/100", "75/100", "90/100"]
    assert lines[0] == "[monitoring] refits: 15/100, 5 min 00 s elapsed, about 28 min 20 s left"
    clock = [0.0]
    _ticks(Progress(terminal=False, clock=lambda: clock[0]), clock, 100, 0.01)
    assert capsys.readouterr().err == "[monitoring] done in 1.0 s\n"
    # on a terminal: the bar, redrawn in place; --quiet: nothing
    clock = [0.0]
    _ticks(Progress(terminal=True, clock=lambda: clock[0]), clock, 4, 1.0)
    err = capsys.readouterr().err
    assert err.startswith("[monitoring] ...\n\r  refits [") and err.count("\r") == 5
    clock = [0.0]
    _ticks(Progress(False, terminal=False, clock=lambda: clock[0]), clock, 100, 2.0)
    assert capsys.readouterr().err == ""


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"carpmodel": parser, **commands.choices}


@pytest.mark.parametrize("command", list(_subcommands()))
def test_help_shows_every_options_default(command) -> None:
    """Issue #16: every option's help says its default (or that it is required), as printed."""
    parser = _subcommands()[command]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
            continue
        help_text = " ".join(action.help.split()).replace("%%", "%")
        assert "(default: " in help_text or "(required" in help_text, (command, action.dest, help_text)
        assert help_text in text, (command, action.dest)


@pytest.mark.parametrize("command, option, unit", [
    ("simulate", "--first-year", "calendar year"), ("fit", "--last-data-year", "calendar year"),
    ("project", "--draws", "draws"), ("project", "--last-year", "calendar year"),
    ("project", "--chunk-draws", "draws"), ("project", "--budget", "cost units a year"),
    ("sensitivity", "--draws", "draws"), ("sensitivity", "--power-replicates", "replicates) per slope"),
    ("monitoring", "--replicates", "per design"), ("monitoring", "--true-survivals", "fractions in (0, 1)"),
    ("monitoring", "--fish-per-year", "fish a year"), ("monitoring", "--years-sampled", "in years"),
])
def test_help_names_the_unit_of_each_value(command, option, unit) -> None:
    parser = _subcommands()[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    assert unit in action.help, (command, option, action.help)


def test_monitoring_help_defaults_are_the_quick_design() -> None:
    from carpmodel.studies.monitoring_design import QUICK_DESIGN

    help_text = " ".join(_subcommands()["monitoring"].format_help().split())
    assert f"(default: {QUICK_DESIGN['n_replicates']}; --full: 20)" in help_text


def test_run_record_says_how_a_command_ended_and_keeps_its_error(tmp_path, monkeypatch) -> None:
    from carpmodel.io import outputs
    from carpmodel.pipeline import RunLog
    from carpmodel.runlog import run_record

    log = RunLog()
    with pytest.raises(KeyboardInterrupt):
        with run_record(tmp_path / "run.json", default_config(), log, command="fit") as record:
            assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"
            log.wrote(outputs.write_text_atomic(tmp_path / "a.txt", "a"))
            raise KeyboardInterrupt
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["status"] == "interrupted" and written["outputs"] == [str(tmp_path / "a.txt")]
    assert record["status"] == "interrupted" and log.on_change is None

    # a full disk stops the block and the last run.json alike: the block's error is the one raised
    def full(path, text):
        raise OSError(28, "No space left on device", str(path))

    with pytest.raises(RuntimeError, match="the block's"):
        with run_record(tmp_path / "run.json", default_config(), RunLog(), command="fit"):
            monkeypatch.setattr(outputs, "write_text_atomic", full)
            raise RuntimeError("the block's")
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"   # the last one written


def test_commands_run_numpy_on_small_pages_unless_the_environment_sets_it(monkeypatch):
    setter = cli._hugepage_setter()
    if setter is None:
        pytest.skip("this numpy has no huge-page switch")

    def hugepages() -> bool:
        current = setter(False)
        setter(current)
        return bool(current)

    seen = []

    def handler(args: argparse.Namespace) -> int:
        seen.append(hugepages())
        return 0

    monkeypatch.setattr(cli, "_check_data", handler)
    monkeypatch.delenv(cli.HUGEPAGE_VARIABLE, raising=False)
    previous = setter(True)
    try:
        assert cli.main(["check-data", str(BUNDLED_DATA_DIRECTORY)]) == 0
        assert seen[-1] is False
        assert hugepages() is True                # restored when the command ends
        monkeypatch.setenv(cli.HUGEPAGE_VARIABLE, "1")
        assert cli.main(["check-data", str(BUNDLED_DATA_DIRECTORY)]) == 0
        assert seen[-1] is True                   # the environment's choice is kept
        monkeypatch.setenv(cli.HUGEPAGE_VARIABLE, "0")   # e.g. left by dask's local workers
        assert cli.main(["check-data", str(BUNDLED_DATA_DIRECTORY)]) == 0
        assert seen[-1] is False
    finally:
        setter(previous)


def test_commands_run_blas_on_one_thread_unless_the_environment_sets_it(monkeypatch):
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}

    seen = []

    def handler(args: argparse.Namespace) -> int:
        seen.append(blas_threads())
        return 0

    monkeypatch.setattr(cli, "_check_data", handler)
    for name in cli.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    outside = blas_threads()
    if outside <= {1}:
        pytest.skip("BLAS already runs on one thread here")
    assert cli.main(["check-data", str(BUNDLED_DATA_DIRECTORY)]) == 0
    assert seen[-1] == {1}
    assert blas_threads() == outside          # restored when the command ends
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert cli.main(["check-data", str(BUNDLED_DATA_DIRECTORY)]) == 0
    assert seen[-1] == outside                # the environment's choice is kept
