"""Strategies files: TOML loading into the typed strategies, costs and budget question, and
errors naming the file and the dotted key.

Tolerances: exact equality where the code only copies values; rel 1e-12 / 1e-14 where a value
passes through a few float operations (power, log/exp interpolation): a few ulps, so any
formula error fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.io.strategies_file import DEFAULT_STRATEGIES_FILE, load_budget, load_strategies
from carpmodel.management.budget import BudgetProblem
from carpmodel.management.policy import build_plan
from carpmodel.management.strategies import (
    BudgetReleases,
    ClosureContinued,
    ConstantF,
    ConstantReleases,
    CostModel,
    PulseReleases,
    RampHCR,
    ScheduledReleases,
    Strategy,
    StrategySet,
)

YEARS = np.arange(2025, 2041)
N_AGE = 8
#: (W/10 g)^0.7 on two points: log-log interpolation between them is exactly that power law
COSTS = CostModel({10.0: 1.0, 100.0: 10.0 ** 0.7}, currency="units", assumed=True, source="test")


VALID_TOML = """
[strategies.no_releases]
description = "reference"

[strategies.mixed]
description = "one of each component"
biomass_trigger_t = 5000.0
start_year = 2026
stop_after_year = 2035

[[strategies.mixed.releases]]
type = "constant"
fish_per_year = 1000.0

[[strategies.mixed.releases]]
type = "schedule"
fish_by_year = { 2027 = 500.0, 2030 = 700 }
age_yr = 2
weight_g = 20.0

[[strategies.mixed.releases]]
type = "pulse"
fish_per_pulse = 3000.0
every_years = 4
first_year = 2025

[[strategies.mixed.releases]]
type = "budget"
budget_per_year = 100.0
shares = [{ age_yr = 1, weight_g = 10.0, share = 0.25 }, { age_yr = 3, weight_g = 100.0, share = 0.75 }]

[strategies.mixed.harvest]
type = "ramp_hcr"
f_target_per_yr = 0.1
b_trigger_t = 60000.0
b_limit_t = 30000.0

[strategies.fished]
[strategies.fished.harvest]
type = "constant_f"
f_per_yr = 0.2
from_year = 2035

[costs]
currency = "units"
assumed = true
source = "test"
cost_per_fish_by_weight = { 10 = 1.0, "100" = 5.0 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strategies.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- strategies


def test_valid_file_loads_into_the_typed_strategies(tmp_path):
    # every component and harvest type in one file: the parsed objects are exactly the ones
    # built in Python (equality of frozen dataclasses), in file order
    s = load_strategies(write(tmp_path, VALID_TOML))
    assert s.names == ("no_releases", "mixed", "fished")
    mixed = s["mixed"]
    assert mixed.releases == (
        ConstantReleases(1000.0),
        ScheduledReleases({2027: 500.0, 2030: 700.0}, age_yr=2, weight_g=20.0),
        PulseReleases(3000.0, every_years=4, first_year=2025),
        BudgetReleases(100.0, ((1, 10.0, 0.25), (3, 100.0, 0.75))),
    )
    assert mixed.harvest == RampHCR(0.1, 60000.0, 30000.0, from_year=2031)
    assert (mixed.biomass_trigger_t, mixed.start_year, mixed.stop_after_year) == (5000.0, 2026, 2035)
    assert s["fished"].harvest == ConstantF(0.2, from_year=2035)
    assert s["no_releases"].harvest == ClosureContinued()
    assert dict(s.costs.cost_per_fish_by_weight) == {10.0: 1.0, 100.0: 5.0}
    assert s.notes == ()


def test_bundled_strategies_file_loads_with_the_required_strategies():
    s = load_strategies(DEFAULT_STRATEGIES_FILE)
    assert {"no_releases", "status_quo", "double_releases", "larger_fish", "triggered_stop",
            "reopen_fishing"} <= set(s.names)
    assert all(st.description for st in s.strategies)
    assert s["status_quo"].releases == (ConstantReleases(20e6, age_yr=1, weight_g=10.0),)
    assert s["status_quo"].harvest == ClosureContinued()
    assert s.costs.assumed is True and s.costs.cost_per_fish(10.0) == pytest.approx(1.0, rel=1e-12)
    # "a similar budget": larger_fish spends what the status quo costs (rel 1e-12: float arithmetic only)
    plan = build_plan(s, None, YEARS, 26)
    cost = dict(zip(s.names, plan.planned_cost[:, 0], strict=True))
    assert cost["larger_fish"] == pytest.approx(cost["status_quo"], rel=1e-12)
    assert plan.planned_total[s.names.index("larger_fish"), 0] == pytest.approx(20e6 / 5 ** 0.7, rel=1e-4)


BAD = [
    # (replace this, with this, the dotted key the message must name)
    ('description = "reference"', 'descripton = "reference"', "strategies.no_releases.descripton"),
    ('type = "pulse"', 'type = "pulses"', "strategies.mixed.releases[2].type"),
    ('type = "ramp_hcr"', 'type = "ramp"', "strategies.mixed.harvest.type"),
    ("fish_per_year = 1000.0", "fish_per_yer = 1000.0", "strategies.mixed.releases[0].fish_per_yer"),
    ("fish_per_year = 1000.0", "fish_per_year = -1.0", "strategies.mixed.releases[0].fish_per_year"),
    ("every_years = 4", "every_years = 0", "strategies.mixed.releases[2].every_years"),
    ("share = 0.75", "share = 0.7", "strategies.mixed.releases[3].shares"),
    ("share = 0.75", "shar = 0.75", "strategies.mixed.releases[3].shares[1].shar"),
    ("2027 = 500.0", "20x7 = 500.0", "strategies.mixed.releases[1].fish_by_year.20x7"),
    ("b_limit_t = 30000.0", "b_limit_t = 70000.0", "strategies.mixed.harvest.b_trigger_t"),
    ("from_year = 2035", "from_year = 2029", "strategies.fished.harvest.from_year"),
    ("biomass_trigger_t = 5000.0", 'biomass_trigger_t = "low"', "strategies.mixed.biomass_trigger_t"),
    ("stop_after_year = 2035", "stop_after_year = 2020", "strategies.mixed.start_year"),
    ("[strategies.no_releases]", "[strategies.nothing]", "strategies.no_releases"),
    ('description = "reference"',
     'description = "reference"\n[[strategies.no_releases.releases]]\ntype = "constant"\nfish_per_year = 1.0',
     "strategies.no_releases.releases"),
    ("[costs]", "[cost]", "cost"),
    ('"100" = 5.0', '"big" = 5.0', "costs.cost_per_fish_by_weight.big"),
    ("assumed = true", 'assumed = "yes"', "costs.assumed"),
]


@pytest.mark.parametrize(("old", "new", "key"), BAD, ids=[b[2] for b in BAD])
def test_bad_file_is_refused_naming_the_file_and_the_dotted_key(tmp_path, old, new, key):
    assert old in VALID_TOML
    path = write(tmp_path, VALID_TOML.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_strategies(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert f"key {key}" in message, message


def test_unknown_key_message_lists_the_valid_keys(tmp_path):
    path = write(tmp_path, VALID_TOML.replace('type = "constant"', 'type = "constant"\nfish = 3', 1))
    with pytest.raises(ConfigError, match=r"valid keys in \[strategies\.mixed\.releases\[0\]\]: type, "
                                          r"fish_per_year, age_yr, weight_g"):
        load_strategies(path)


def test_file_without_costs_takes_the_bundled_costs_and_says_so(tmp_path):
    s = load_strategies(write(tmp_path, VALID_TOML.split("[costs]")[0]))
    assert s.costs == load_strategies(DEFAULT_STRATEGIES_FILE).costs
    assert len(s.notes) == 1 and "bundled illustrative costs" in s.notes[0]


# --------------------------------------------------------------------------- [budget]


BUDGET_TOML = """
[strategies.no_releases]

[budget]
budget_per_year = 1e6
options = [{ age_yr = 1, weight_g = 10.0 }, { age_yr = 2, weight_g = 50.0 }]
objective = "lower_gain"
year = 2040
scenario = "baseline"
"""


def test_budget_table_loads_into_the_budget_problem(tmp_path):
    path = write(tmp_path, BUDGET_TOML)
    expected = BudgetProblem(1e6, options=((1, 10.0), (2, 50.0)), objective="lower_gain", year=2040,
                             scenario="baseline")
    assert load_strategies(path).budget == expected == load_budget(path)
    assert load_strategies(DEFAULT_STRATEGIES_FILE).budget.options == ((0, 1.0), (1, 10.0), (2, 50.0))
    strategy = expected.strategy([0.25, 0.75])
    plan = build_plan(StrategySet((Strategy("no_releases"), strategy), COSTS), None, YEARS, N_AGE)
    np.testing.assert_allclose(plan.planned_cost[1], 1e6, rtol=1e-14)


@pytest.mark.parametrize(("old", "new", "key"), [
    ('objective = "lower_gain"', 'objective = "best"', "budget.objective"),
    ("year = 2040", 'year = "2040"', "budget.year"),
    ("budget_per_year = 1e6", "budget_per_year = -1.0", "budget.budget_per_year"),
    ("budget_per_year = 1e6", "", "budget.budget_per_year: missing"),
    ("{ age_yr = 2, weight_g = 50.0 }", "{ age_yr = 2, weight_g = 0.0 }", r"budget.options\[1\].weight_g"),
    ("{ age_yr = 2, weight_g = 50.0 }", "{ age_yr = 2, size = 50.0 }", r"budget.options\[1\]"),
    ('scenario = "baseline"', 'scenario = "baseline"\nstrategy = "x"', "budget.strategy: unknown key"),
])
def test_bad_budget_table_is_refused_naming_the_file_and_key(tmp_path, old, new, key):
    path = write(tmp_path, BUDGET_TOML.replace(old, new))
    with pytest.raises(ConfigError, match=key) as info:
        load_strategies(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- the README's section (#16)

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Strategies file")
    return text[start:text.index("\n## ", start + 1)]


def test_the_readme_example_strategies_file_parses_with_every_kind_of_table(tmp_path):
    """The README's one complete example, loaded as a user would: it must stay valid."""
    section = _readme_section()
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my_strategies.toml"
    path.write_text(example, encoding="utf-8")
    s = load_strategies(path)
    assert s.names[0] == "no_releases" and not s.notes          # its own [costs]: no note
    fry = s.strategies[1]
    assert (fry.start_year, fry.stop_after_year, fry.biomass_trigger_t) == (2025, 2034, 150_000.0)
    kinds = {type(c) for strategy in s.strategies for c in strategy.releases}
    assert kinds == {ConstantReleases, PulseReleases, ScheduledReleases, BudgetReleases}
    assert {type(strategy.harvest) for strategy in s.strategies} == {ClosureContinued, RampHCR, ConstantF}
    budget = load_budget(path)
    assert budget is not None and budget.year == 2050 and len(budget.options) == 3


def test_the_readme_documents_every_key_of_the_strategies_file():
    """Every field a strategies file accepts appears as `key` in the README's section."""
    import dataclasses

    from carpmodel.io.strategies_file import _STRATEGY_KEYS
    from carpmodel.management.strategies import HARVEST_TYPES, RELEASE_TYPES, BudgetShare

    section = _readme_section()
    keys = set(_STRATEGY_KEYS) | {"type"}
    for cls in (*RELEASE_TYPES.values(), *HARVEST_TYPES.values(), BudgetShare, CostModel, BudgetProblem):
        keys |= {f.name for f in dataclasses.fields(cls)}
    missing = sorted(k for k in keys if f"`{k}`" not in section and f"{k} = " not in section)
    assert not missing, f"README 'Strategies file' section lacks {missing}"
    for kind in (*RELEASE_TYPES, *HARVEST_TYPES):
        assert f'`"{kind}"`' in section


@pytest.mark.parametrize("written, meant", [("stop_after_year", "stop_after_year"),
                                            ("start_year", "start_year"), ("last_year", "stop_after_year"),
                                            ("biomass_trigger_t", "biomass_trigger_t")])
def test_a_strategy_key_inside_a_release_table_names_the_strategy_level_key(tmp_path, written, meant):
    """Old behaviour: only 'unknown key; valid keys in [...releases[0]]', with no word that the
    year window belongs to the strategy."""
    path = write(tmp_path, VALID_TOML.replace('type = "constant"', f'type = "constant"\n{written} = 2030', 1))
    with pytest.raises(ConfigError) as info:
        load_strategies(path)
    message = str(info.value)
    assert f"key strategies.mixed.releases[0].{written}: unknown key" in message
    assert f"did you mean the strategy-level key {meant}? It belongs in [strategies.mixed]" in message
    assert "start_year" in message and "stop_after_year" in message

