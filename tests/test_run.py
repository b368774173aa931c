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


# --------------------------------------------------------------------------- the report a researcher reads


def _report(out):
    return (out / "report.html").read_text()


def test_report_embeds_every_figure_with_a_one_line_caption(reduced_run):
    import re

    _, _, out = reduced_run
    html = _report(out)
    written = {p.stem for p in (out / "figures").glob("*.png")}
    figures = re.findall(r"<figure id='fig-([a-z_]+)'>.*?<figcaption>(.*?)</figcaption></figure>", html,
                         flags=re.S)
    # every figure on disk is in the report, once, with a caption that is a sentence, not its name
    assert sorted(name for name, _ in figures) == sorted(written)
    for name, caption in figures:
        assert "\n" not in caption and caption.endswith(".") and len(caption) > 40, (name, caption)
    # the captions follow the run's settings (1 peel, last projection year 2040 so gains in 2040)
    captions = dict(figures)
    assert "with the last year of data removed" in captions["retrospective"]
    assert "in 2040" in captions["strategy_comparison"]


def test_report_tables_carry_units_and_the_data_limits(reduced_run):
    _, _, out = reduced_run
    html = _report(out)
    fit = json.loads((out / "fit.json").read_text())
    # attribution in thousand t and %, with intervals
    assert "Share of the explained increase: releases" in html and "90 % interval" in html
    share = next(r for r in fit["attribution"] if r["quantity"] == "share_ban")
    from carpmodel.report.formatting import pct

    assert pct(share["median"]) in html
    # every estimated parameter has a verdict row, with its unit from life_history.toml
    for row in fit["posterior"]["prior_posterior"]:
        assert f"<code>{row['parameter']}</code>" in html
        assert row["unit"]
    assert "What the data cannot tell apart" in html
    # run section: the timings of the stages before the report
    record = json.loads((out / "run.json").read_text())
    for stage in ("fit", "posterior", "diagnostics", "projection"):
        assert f"<td class='text'>{stage}</td><td>{record['timings_s'][stage]:.1f}</td>" in html


def test_prior_posterior_panel_in_thousand_tonnes_without_an_offset_label():
    import matplotlib.pyplot as plt

    from carpmodel.priors import Prior
    from carpmodel.report.figures import plot_prior_posterior

    prior = Prior("lognormal", {"median": 200000.0, "sd_log": 0.5})
    draws = np.random.default_rng(1).lognormal(np.log(210000.0), 0.35, 1000)
    fig = plot_prior_posterior([{"parameter": "unfished_biomass_t", "sd_ratio": 0.7}],
                               {"unfished_biomass_t": draws}, {"unfished_biomass_t": prior},
                               {"unfished_biomass_t": "t"})
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Unfished biomass B0 (thousand t)"
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    # histogram and prior on the same (thousand t) axis: the prior's density integrates to ~1 there
    line = ax.get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x))) == pytest.approx(1.0, abs=0.02)
    plt.close(fig)


# --------------------------------------------------------------------------- model comparison reuses the fit


def test_model_comparison_reuses_the_main_fit_for_the_base_variant(reduced_run, monkeypatch):

    from carpmodel import diagnostics
    from carpmodel.diagnostics import comparison as comparison_module
    from carpmodel.pipeline import load_fit

    _, _, out = reduced_run
    loaded = load_fit(out)
    options = loaded.config

    def no_refit(*args, **kwargs):
        raise AssertionError(f"refit called ({kwargs.get('label')}): the base variant was fitted again")

    monkeypatch.setattr(comparison_module, "refit", no_refit)   # compare_models' refit
    comparison = diagnostics.compare_models(loaded.data, {"beverton_holt": options},
                                            base_result=loaded.result)
    assert comparison.fits["beverton_holt"] is loaded.result
    components = loaded.result.nll_components          # the data: the surveys and the net sample
    assert float(comparison.table["nll_data"].sel(variant="beverton_holt")) == pytest.approx(
        components["biomass"] + components["net_sample"], rel=1e-12)
    # a fit of another model is refused: the Ricker objective at the Beverton-Holt estimates differs
    with pytest.raises(ValueError, match="not a fit of variant 'ricker'"):
        diagnostics.compare_models(loaded.data, {"ricker": options.with_fit(recruitment="ricker")},
                                   base_result=loaded.result)


def test_run_passes_its_fit_to_the_model_comparison(reduced_run, monkeypatch):
    """fit_stage with model_comparison on hands the main fit to compare_models as the base."""
    import tomllib

    from carpmodel import diagnostics, pipeline
    from carpmodel.io.config import RunConfig, from_mapping
    from carpmodel.report.tables import comparison_table

    _, config_path, out = reduced_run
    raw = tomllib.loads(config_path.read_text())
    raw["diagnostics"].update(model_comparison=True, retrospective_peels=0, hindcast_peels=0,
                              self_test_replicates=0, profile_points=0)
    config = from_mapping(RunConfig, raw, "test config")
    loaded = pipeline.load_fit(out)
    seen = {}

    def spy(data, variants, *, base_result=None, **kwargs):
        seen["variants"], seen["base"] = list(variants), base_result
        return diagnostics.compare_fits({name: base_result for name in list(variants)[:1]})

    monkeypatch.setattr(diagnostics, "compare_models", spy)
    artifacts = pipeline.fit_stage(loaded.data, config, pipeline.RunLog(), pipeline.Progress(False))
    assert seen["variants"][0] == "beverton_holt" and seen["base"] is artifacts.result
    assert artifacts.summary["diagnostics"]["model_comparison"]["best"] == "beverton_holt"
    html_table = comparison_table(artifacts.summary["diagnostics"]["model_comparison"])
    assert "<code>beverton_holt</code>" in html_table and "100 %" in html_table
    pipeline.close_figures(artifacts.figures)
