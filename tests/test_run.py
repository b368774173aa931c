"""The main job end to end on a reduced configuration (`carpmodel run`, `fit`, `project`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from carpmodel import cli

REDUCED = """
seed = 11
[fit]
n_starts = 1
[diagnostics]
retrospective_peels = 1
hindcast_peels = 1
self_test_replicates = 2
profile_points = 3
posterior_samples = 200
posterior_proposals = 1000
interval_draws = 100
[projection]
draws = 6
last_year = 2040
scenarios = ["baseline", "ssp245"]
[sensitivity]
draws = 4
warming_levels_c = [0.0, 2.0, 4.0]
"""

EXPECTED = ("fit.json", "fit.nc", "projection.nc", "metrics.csv", "sensitivity.nc", "run.json",
            "report.html")


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = root / "reduced.toml"
    config.write_text(REDUCED)
    out = root / "out"
    assert cli.main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    return root, config, out


def test_run_writes_every_output(reduced_run):
    _, _, out = reduced_run
    for name in EXPECTED:
        assert (out / name).is_file(), name
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"fit", "residuals", "retrospective", "recruitment", "prior_posterior", "attribution",
            "strategy_comparison", "projection_scenarios"} <= figures
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["seed"] == 11
    assert set(record["timings_s"]) >= {"fit", "posterior", "diagnostics", "projection"}
    fit = json.loads((out / "fit.json").read_text())
    for key in ("converged", "max_abs_gradient", "hessian_positive_definite", "nll", "aic",
                "n_parameters", "runtime_s", "parameters"):
        assert key in fit, key
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 8 and "<figcaption>" in html
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 8 * 2            # one row per strategy × scenario


def test_fit_nc_follows_the_contract(reduced_run):
    _, _, out = reduced_run
    with xr.open_dataset(out / "fit.nc", engine="h5netcdf") as ds:
        for name in ("biomass_t", "biomass_t_lower", "biomass_t_upper", "biomass_obs_t", "ssb_t",
                     "recruits", "numbers", "theta", "covariance"):
            assert name in ds, name
        assert ds["numbers"].dims == ("year", "origin", "age")
        assert ds["covariance"].dims == ("parameter", "parameter_2")
        assert "config_toml" in ds.attrs and "data_sha256" in ds.attrs
        assert np.all(ds.biomass_t_lower <= ds.biomass_t_upper)


def test_same_seed_gives_identical_projection(reduced_run, tmp_path):
    _, _, out = reduced_run
    a, b = tmp_path / "a", tmp_path / "b"
    for target in (a, b):
        assert cli.main(["project", "--fit", str(out), "--out", str(target), "--quiet"]) == 0
    with xr.open_dataset(a / "projection.nc", engine="h5netcdf") as x, \
            xr.open_dataset(b / "projection.nc", engine="h5netcdf") as y:
        xr.testing.assert_identical(x.load(), y.load())
        # and the run's own projection, made with the same config and seed, is the same
        with xr.open_dataset(out / "projection.nc", engine="h5netcdf") as z:
            for name in ("biomass_t", "ssb_t", "cost"):
                np.testing.assert_array_equal(x[name].values, z[name].values, err_msg=name)


def test_unknown_config_key_exits_2_naming_it(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[projection]\ndraw = 5\n")
    assert cli.main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "projection.draw" in err and "draws" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_existing_output_directory_is_refused_and_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["run", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
