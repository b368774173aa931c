"""Ensemble files: the [ensemble] table into the typed definition; errors name the file and key."""

from __future__ import annotations

import pytest

from carpmodel.errors import ConfigError
from carpmodel.io.ensemble_file import load_ensemble
from carpmodel.management.ensemble import MortalityStructure


def test_ensemble_file_loads_into_the_typed_definition(tmp_path):
    path = tmp_path / "ensemble.toml"
    path.write_text('[ensemble]\ndd_windows = [1, 2]\nrelease_survival_priors = ["informative"]\n'
                    'initial_states = ["depletion", "unfished_1956"]\ndesign = "one_at_a_time"\n'
                    '[[ensemble.mortality]]\nname = "c1"\nlorenzen_c = 1.0\n'
                    '[[ensemble.mortality]]\nname = "m_high"\nm_ref_prior_median_per_yr = 0.3\n')
    definition = load_ensemble(path)
    assert [m.name for m in definition.members()] == [
        "w1_informative_c1_depletion", "w2_informative_c1_depletion",
        "w1_informative_m_high_depletion", "w1_informative_c1_unfished_1956"]
    assert definition.mortality[1] == MortalityStructure("m_high", m_ref_prior_median_per_yr=0.3)


@pytest.mark.parametrize("body, key", [
    ('design = "random"', "ensemble.design"),
    ("dd_windows = [\"one\"]", r"ensemble.dd_windows\[0\]"),
    ("n_chains = 3", "ensemble.n_chains: unknown key"),
    ('initial_states = ["cold"]', "initial_states"),
    ('weights = { x = 1.0 }', "weights.x"),
])
def test_bad_ensemble_file_is_refused_naming_the_file_and_key(tmp_path, body, key):
    path = tmp_path / "ensemble.toml"
    path.write_text(f"[ensemble]\n{body}\n")
    with pytest.raises(ConfigError, match=key) as info:
        load_ensemble(path)
    assert str(path) in str(info.value)
