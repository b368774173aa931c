"""Declared strategies: validation of strategies, harvest rules and costs, and the cost of a fish.

Tolerances: rel 1e-14 / 1e-15 where a value passes through log/exp interpolation (a few ulps).
"""

from __future__ import annotations

import numpy as np
import pytest

from carpmodel.errors import ConfigError
from carpmodel.management.strategies import (
    BudgetReleases,
    BudgetShare,
    ConstantF,
    CostModel,
    RampHCR,
    Strategy,
    StrategySet,
)

#: (W/10 g)^0.7 on two points: log-log interpolation between them is exactly that power law
COSTS = CostModel({10.0: 1.0, 100.0: 10.0 ** 0.7}, currency="units", assumed=True, source="test")


REFERENCE = Strategy("no_releases")


def test_strategy_validation_names_the_field():
    with pytest.raises(ConfigError, match="^biomass_trigger_t"):
        Strategy("x", biomass_trigger_t=0.0)
    with pytest.raises(ConfigError, match="^name"):
        Strategy("two words")
    with pytest.raises(ConfigError, match="^shares"):
        BudgetReleases(1.0, (BudgetShare(1, 10.0, 0.5),))
    with pytest.raises(ConfigError, match="unique names"):
        StrategySet((REFERENCE, REFERENCE), COSTS)


def test_harvest_rules_cannot_start_during_the_closure():
    with pytest.raises(ConfigError, match="from_year: expected an integer in 2031"):
        ConstantF(0.1, from_year=2030)
    with pytest.raises(ConfigError, match="from_year"):
        RampHCR(0.1, 2.0, 1.0, from_year=2025)


def test_cost_per_fish_is_log_log_linear_between_points_and_flat_beyond():
    costs = CostModel({10.0: 1.0, 40.0: 4.0, 100.0: 5.0}, currency="u", assumed=True, source="t")
    # geometric midpoint of 10 and 40 g → geometric mean of their costs; flat outside the table
    assert costs.cost_per_fish(20.0) == pytest.approx(2.0, rel=1e-14)
    assert costs.cost_per_fish(np.sqrt(40.0 * 100.0)) == pytest.approx(np.sqrt(20.0), rel=1e-14)
    # (rtol 1e-15: the interpolation runs on log cost, and exp(log 5) is 5 within one ulp)
    np.testing.assert_allclose(costs.cost_per_fish([1.0, 10.0, 100.0, 1e4]), [1.0, 1.0, 5.0, 5.0], rtol=1e-15)
    with pytest.raises(ConfigError, match="cost_per_fish_by_weight.0"):
        CostModel({0.0: 1.0}, currency="u", assumed=True, source="t")
