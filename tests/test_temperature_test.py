"""Temperature-effect test (carpmodel.studies.temperature_test).

The bundled default fit (session fixture ``bundled_fit``) is the no-effect model; the effect
model is fitted once from it (nested start, one refit, ~5 s).
"""

from __future__ import annotations

import numpy as np

from carpmodel.io.config import default_config
from carpmodel.studies.temperature_test import NOT_TESTABLE_ASSUMED, temperature_effect_test

CONFIG = default_config()


def test_temperature_effect_is_not_testable_on_the_bundled_assumed_series(bundled_data, bundled_fit):
    out = temperature_effect_test(bundled_data, CONFIG.with_fit(n_starts=1), baseline=bundled_fit,
                                  hindcast_peels=0, cold_start=False)
    assert out["testable"] is False
    assert out["statement"] == NOT_TESTABLE_ASSUMED
    slope = out["slopes"]["recruitment"]
    assert np.isfinite(slope["estimate_per_c"]) and slope["std_error_per_c"] > 0
    # nested fits (the slope model starts from the no-effect optimum): the likelihood-ratio
    # statistic cannot be negative; 1e-9 allows the rounding of objectives of ~14
    assert out["lr_statistic"] >= -1e-9
    # one more parameter with n = 12 costs 22 AICc units in the small-sample term alone
    assert out["delta_aicc"] > 0
    assert out["models"]["no_effect"]["k"] + 1 == out["models"]["effect"]["k"]
