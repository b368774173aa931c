"""The analytic origin-sample design (carpmodel.studies.origin_design): its power formulas by
hand, the CV's scaling with fish, the design effect, the answers, outputs and figure."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from carpmodel.io.outputs import write_json_atomic, write_netcdf_atomic
from carpmodel.report.study_figures import plot_origin_design
from carpmodel.studies.origin_design import (
    OriginDesignGrid,
    binomial_power,
    lr_power,
    marked_information,
    noncentrality_for_power,
    origin_design,
    origin_design_record,
    release_survival_cv,
    smallest_designs,
)


@pytest.fixture(scope="module")
def design(bundled_fit, bundled_data):
    return origin_design(bundled_fit, bundled_data)


def test_binomial_power_by_hand():
    # n = 100, H0 p = 0.01: P(X >= 3) = 0.0794 > 0.05, P(X >= 4) = 0.0184 <= 0.05, so reject at
    # X >= 4; power at p = 0.10 is 1 - P(X <= 3). Exact sums; 1e-12 is rounding only.
    def pmf(k, n, p):
        return comb(n, k) * p**k * (1 - p) ** (n - k)

    assert 1 - sum(pmf(k, 100, 0.01) for k in range(3)) > 0.05 >= 1 - sum(pmf(k, 100, 0.01) for k in range(4))
    hand = 1 - sum(pmf(k, 100, 0.10) for k in range(4))
    assert float(binomial_power(100, 0.01, 0.10)) == pytest.approx(hand, abs=1e-12)
    assert hand == pytest.approx(0.9922, abs=1e-4)


def test_power_increases_with_fish():
    # The exact test's power is not monotone step by step (discreteness) but rises over a decade;
    # the LR power is monotone in the non-centrality, which grows linearly with fish.
    assert binomial_power(20, 0.01, 0.1) < binomial_power(200, 0.01, 0.1)
    lam = np.array([0.5, 1.0, 2.0, 8.0, 20.0])
    assert np.all(np.diff(lr_power(lam)) > 0)
    assert float(lr_power(1e-12)) == pytest.approx(0.05, abs=1e-6)   # no signal: the test's level
    # 7.849 is the textbook non-centrality for 80 % power at 5 %, 1 df ((1.960 + 0.8416)^2)
    assert noncentrality_for_power(0.8) == pytest.approx(7.849, abs=2e-3)


def test_cv_scales_as_one_over_root_n():
    # Synthetic: prior information 1e-6, information per fish full rank; at large n the variance
    # is ~ (n·I)⁻¹, so four times the fish halve the CV (to 1e-5 relative).
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    info = a @ a.T + 4 * np.eye(4)
    cv = release_survival_cv(1e-6 * np.eye(4), info, np.array([1e4, 4e4]), 1, 0.3, (0.0, 1.0))
    assert cv[0] / cv[1] == pytest.approx(2.0, rel=1e-5)


def test_cv_scales_as_one_over_root_n_on_the_model(bundled_fit, bundled_data):
    # On the model, with every parameter but release survival held known (no confounding left),
    # the information on logit s is H_ss + n·I_ss: CV(1e6)/CV(4e6) -> 2 (within 1 %: H_ss ~ 1 is
    # small against n·I_ss at a million fish). The information matches origin_design's CV.
    spec = bundled_fit.spec
    i = [f.field for f in spec.estimated].index("release_survival")
    survival = float(spec.estimated[i].from_theta(bundled_fit.theta[i]))
    years = tuple(int(y) for y in spec.years[-5:])
    info = marked_information(bundled_fit, bundled_data, "spawning_run", years)
    hessian = bundled_fit.hessian
    others = tuple(j for j in range(bundled_fit.theta.size) if j != i)
    cv = release_survival_cv(hessian, info, np.array([1e6, 4e6]), i, survival, (0.0, 1.0), known=others)
    assert cv[0] / cv[1] == pytest.approx(2.0, rel=0.01)
    grid = OriginDesignGrid(gears=("spawning_run",), years_sampled=(5,), fish_per_year=(500,))
    ds = origin_design(bundled_fit, bundled_data, grid)
    direct = release_survival_cv(0.5 * (hessian + hessian.T), info, 500.0, i, survival, (0.0, 1.0))
    assert float(ds["release_survival_cv"].sel(held_known="none").squeeze()) == pytest.approx(float(direct),
                                                                                           rel=1e-6)


def test_design_effect_halves_the_fish(bundled_fit, bundled_data):
    # Clustered sampling counts n/deff fish: deff 2 with 200 fish a year is deff 1 with 100, in
    # every question (exactly: the same effective sample in every formula).
    one = origin_design(bundled_fit, bundled_data, OriginDesignGrid(design_effect=1.0, fish_per_year=(100,)))
    two = origin_design(bundled_fit, bundled_data, OriginDesignGrid(design_effect=2.0, fish_per_year=(200,)))
    for name in ("power_share", "release_survival_cv", "power_lorenzen"):
        np.testing.assert_allclose(one[name].values, two[name].values, rtol=1e-9)


def test_the_answers(design):
    # (i) is easy (tens to hundreds of fish); (iii) is out of the grid (the marks' composition
    # hardly tells c once M_ref adapts: tens of thousands of fish a year); power and CV move the
    # right way with fish and years.
    best = smallest_designs(design)
    assert all(isinstance(d, dict) and d["total_fish"] <= 200 for d in best["share_1_vs_10_percent"].values())
    assert all(d == "not reached in the grid" for d in best["lorenzen_c0_vs_c1"].values())
    assert float(design["fish_per_year_for_power_lorenzen"].min()) > 5000
    power = design["power_lorenzen"]
    assert bool((power.diff("fish_per_year") >= -1e-12).all())
    assert bool((power.isel(years_sampled=-1) >= power.isel(years_sampled=0) - 1e-12).all())
    m_grid_edge = design.attrs["m_ref_fit_per_yr"] * np.array([1 / 8, 8])
    m = design["m_ref_c0_per_yr"]
    assert bool(((m > m_grid_edge[0] * 1.01) & (m < m_grid_edge[1] / 1.01)).all())   # inside the search


def test_outputs_and_figure(design, tmp_path):
    for name, var in design.data_vars.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name
    path = write_netcdf_atomic(design, tmp_path / "origin_design.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        np.testing.assert_allclose(back["power_share"].values, design["power_share"].values)
    record = origin_design_record(design)
    write_json_atomic(tmp_path / "origin_design.json", record)
    loaded = json.loads((tmp_path / "origin_design.json").read_text())
    assert set(loaded["smallest_designs"]) == {"share_1_vs_10_percent", "release_survival_cv_m_estimated",
                                               "release_survival_cv_m_known",
                                               "release_survival_cv_m_and_q_known", "lorenzen_c0_vs_c1"}
    fig = plot_origin_design(design)
    assert isinstance(fig, Figure) and len(fig.axes) == 9
    assert "(fish/yr)" in fig.axes[-1].get_xlabel() and "(probability)" in fig.axes[0].get_ylabel()
    assert "(proportion)" in fig.axes[1].get_ylabel()


def test_bad_grids_are_refused(bundled_fit, bundled_data):
    with pytest.raises(ValueError, match="gears"):
        OriginDesignGrid(gears=("trawl",))
    with pytest.raises(ValueError, match="years_sampled"):
        origin_design(bundled_fit, bundled_data, OriginDesignGrid(years_sampled=(40,)))
