"""River connectivity (issue #14, item 3): habitat.csv, the habitat slope on the logit of egg
survival, and the fourth factor of the recovery attribution."""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import DataError
from carpmodel.inference.build import HABITAT_SLOPE_PRIOR, build_spec
from carpmodel.inference.likelihood import nll_components, predict
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.studies.attribution import ALL_FACTORS, FACTORS, attribution_table

SHARES = [f"share_{f}" for f in FACTORS]


@pytest.fixture(scope="module")
def specs():
    """The default spec (three factors) and the same with habitat_slope estimated (four)."""
    data = load_data(BUNDLED_DATA_DIRECTORY)
    config = default_config()
    with_habitat = config.with_fit(estimate=(*config.fit.estimate, "habitat_slope"))
    return build_spec(data, config), build_spec(data, with_habitat)


def _thetas(spec3, spec4, slopes):
    """Draws of the four-factor spec around its start (small noise on every other parameter, the
    same in both specs) and the three-factor thetas without the slope column."""
    i = list(spec4.parameter_names).index("habitat_slope")
    rng = np.random.default_rng(14)
    base = spec3.initial_theta()
    three = base + 0.05 * rng.standard_normal((len(slopes), base.size))
    four = np.insert(three, i, slopes, axis=1)
    assert list(np.delete(spec4.parameter_names, i)) == list(spec3.parameter_names)
    return three, four


def test_bundled_habitat_file_is_read_and_labelled_assumed():
    data = load_data(BUNDLED_DATA_DIRECTORY)
    h = data.habitat
    index = dict(zip(h.year.tolist(), h.passage_index.tolist(), strict=True))
    assert index[2007] == 0.0 and index[2008] == 0.3 and index[2012] == 0.6 and index[2016] == 1.0
    assert set(h.confidence) == {"assumed"} and set(h.source_id) == {"assumption_habitat_index"}


@pytest.mark.parametrize(("cell", "expected"), [("1.5", "between 0 and 1"), ("", "between 0 and 1"),
                                                ("nope", "between 0 and 1")])
def test_bad_passage_index_names_file_line_and_column(data_dir, cell, expected):
    path = data_dir / "habitat.csv"
    lines = path.read_text().splitlines()
    year, _, *rest = lines[3].split(",")
    lines[3] = ",".join([year, cell, *rest])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"habitat\.csv, line 4.*passage_index.*{expected}"):
        load_data(data_dir)


def test_habitat_slope_zero_leaves_the_likelihood_but_its_prior_unchanged(specs):
    # slope 0: every year's multiplier is exp(0) = 1, so the data components are identical
    # (same arithmetic, hence 1e-12) and only the slope's prior term is added
    spec3, spec4 = specs
    three, four = _thetas(spec3, spec4, [0.0])
    got3, got4 = nll_components(spec3, three[0]), nll_components(spec4, four[0])
    for name in got3:
        extra = -HABITAT_SLOPE_PRIOR.logpdf(0.0) if name == "priors" else 0.0
        assert float(got4[name]) == pytest.approx(float(got3[name]) + extra, rel=1e-12, abs=1e-12), name


def test_habitat_effect_raises_recruitment_after_the_passages_only_relative_to_today(specs):
    # reference = the last model year's index (1.0): with slope 0.5 years at index 0 have the
    # logit of egg survival lowered by 0.5, years at index 1 are unchanged
    spec3, spec4 = specs
    _, four = _thetas(spec3, spec4, [0.5])
    _, u = predict(spec4, four[0])
    log_mult = np.log(np.asarray(u.multipliers.recruitment))
    years = spec4.years
    assert log_mult[years == 2005][0] == pytest.approx(-0.5, abs=1e-12)
    assert log_mult[years == 2009][0] == pytest.approx(-0.35, abs=1e-12)
    assert log_mult[years == 2020][0] == pytest.approx(0.0, abs=1e-12)


def test_four_factor_shapley_shares_sum_to_one_in_every_draw(specs):
    # Shapley values add up to v(all) − v(none) exactly, so the shares sum to 1 up to rounding
    spec3, spec4 = specs
    _, four = _thetas(spec3, spec4, [-0.6, -0.2, 0.3, 0.8])
    table = attribution_table(spec4, four)
    assert table.attrs["factors"] == ",".join(ALL_FACTORS)
    total = sum(table["value"].sel(quantity=f"share_{f}").values for f in ALL_FACTORS)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-9)
    habitat = table["value"].sel(quantity="share_habitat").values
    slope = table["value"].sel(quantity="habitat_slope").values
    # more connectivity helps recruitment when the slope is positive: the share has its sign
    assert np.all(np.sign(habitat) == np.sign(slope))


def test_slope_zero_gives_habitat_share_zero_and_the_three_factor_split(specs):
    # with slope 0 the "habitat held" runs are the fitted ones bit for bit, so v(S ∪ {habitat}) =
    # v(S) and φ_habitat = 0 exactly; the other Shapley values reduce to the three-factor ones
    # (the weights sum differently, so rounding only: 1e-9 relative)
    spec3, spec4 = specs
    three, four = _thetas(spec3, spec4, [0.0, 0.0, 0.0])
    t3, t4 = attribution_table(spec3, three), attribution_table(spec4, four)
    assert t3.attrs["factors"] == ",".join(FACTORS) and "not in the model" in t3.attrs["habitat"]
    assert "share_habitat" not in t3["quantity"].values
    assert np.all(t4["value"].sel(quantity="share_habitat").values == 0.0)
    assert np.all(t4["value"].sel(quantity="shapley_habitat_t").values == 0.0)
    for name in [*SHARES, "increase_t", "gain_from_releases_t", "interaction_ban_releases_t"]:
        np.testing.assert_allclose(t4["value"].sel(quantity=name).values,
                                   t3["value"].sel(quantity=name).values, rtol=1e-9, atol=1e-9,
                                   err_msg=name)


# --------------------------------------------------------------------------- the prior's part


def test_one_member_pool_is_the_member_and_nothing_lies_between(two_fits):
    # one member with weight 1: pooled statistics equal the member's (weighted quantiles with
    # equal weights are numpy's, hence 1e-12) and the between-member variance is 0
    from carpmodel.management.ensemble import single_member
    from carpmodel.studies.attribution_prior import attribution_across_members

    fits = single_member(two_fits.included[0].result)
    ds = attribution_across_members(fits, n_draws=20, seed=3)
    member, pooled = ds.isel(structure=0), ds.sel(structure="pooled")
    for key in ("median", "lower_90", "upper_95"):
        np.testing.assert_allclose(pooled[key].values, member[key].values, rtol=1e-12, equal_nan=True)
    assert np.nanmax(np.abs(ds["between_member_fraction"].values)) < 1e-12


def test_members_pool_and_headline_state_a_range_with_the_prior_part(two_fits):
    # two members (c = 1 and c = 0): the pooled interval spans the member medians, the variance
    # fractions are fractions, and the headline's range holds the posterior interval and the
    # member medians
    from carpmodel.studies.attribution_prior import (
        attribution_across_members,
        format_members,
        hatchery_headline,
        members_rows,
    )

    ds = attribution_across_members(two_fits, n_draws=30, seed=5)
    share = ds.sel(quantity="share_releases")
    assert list(ds["structure"].values)[-1] == "pooled" and ds.sizes["structure"] == 3
    lo, hi = float(share["member_median_min"]), float(share["member_median_max"])
    pooled = share.sel(structure="pooled")
    assert float(pooled["lower_95"]) <= lo <= hi <= float(pooled["upper_95"])
    for key in ("between_member_fraction", "within_following_release_survival", "prior_part"):
        value = float(share[key])
        assert 0.0 <= value <= 1.0, key
    assert len(members_rows(ds)) == 3 * ds.sizes["quantity"]
    assert "pooled" in format_members(ds)
    member = two_fits.included[0]
    own = attribution_table(member.result.spec, np.repeat(member.result.theta[None], 4, axis=0))
    headline = hatchery_headline(own, prior_rows=[{"parameter": "release_survival", "sd_ratio": 0.95}],
                                 members=ds)
    low, high = headline["range"]
    assert low <= min(lo, float(own["lower_90"].sel(quantity="share_releases")))
    assert high >= max(hi, float(own["upper_90"].sel(quantity="share_releases")))
    assert headline["prior_part"] == pytest.approx(float(share["prior_part"]))
    assert "not identified" in headline["statement"].lower() and "prior" in headline["statement"]


def test_check_data_refuses_a_bad_habitat_file_in_one_line(data_dir, capsys):
    from carpmodel import cli

    path = data_dir / "habitat.csv"
    path.write_text(path.read_text().replace("2010,1.0,", "2010,-0.2,", 1))
    assert cli.main(["check-data", str(data_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "habitat.csv, line 56" in err and "passage_index" in err
