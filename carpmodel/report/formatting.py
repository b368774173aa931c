"""Numbers and names as the report prints them: three significant figures, percentages,
intervals, the binomial interval of a coverage count, the labels of the predictive checks.

Plain text only (no HTML): the template escapes whatever these return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from statsmodels.stats.proportion import proportion_confint

#: what the posterior-predictive checks compare (fit.json ``posterior_predictive`` quantities)
PREDICTIVE_LABELS = {"numbers_fish": "number of survey-age fish",
                     "mean_length_cm": "mean length of survey-age fish",
                     "mean_weight_g": "mean weight of survey-age fish"}


def sig(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, thousands separated, minus as '−'; '–' for
    missing or non-finite values."""
    if value is None:
        return "–"
    x = float(value)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > math.floor(math.log10(abs(x))):
        decimals -= 1                   # 0.99996 rounds to 1.00, not 1.000
        rounded = round(x, decimals)
    text = f"{rounded:,.{max(decimals, 0)}f}"
    return text.replace("-", "−")


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage: two significant figures, at most one decimal, '%' sign."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    x = 100.0 * float(value)
    text = f"{x:.1f}" if abs(x) < 10 else sig(x, digits)
    if text.replace("−", "-") in ("-0.0", "0.0"):
        text = "0"
    return text.replace("-", "−") + " %"


def interval(lower: Any, upper: Any, scale: float = 1.0, digits: int = 3) -> str:
    """'lower to upper' after dividing by ``scale``."""
    if lower is None or upper is None:
        return "–"
    return f"{sig(float(lower) / scale, digits)} to {sig(float(upper) / scale, digits)}"


def pct_interval(lower: Any, upper: Any) -> str:
    """'lower % to upper %' of two fractions; '–' when either is missing."""
    if lower is None or upper is None:
        return "–"
    return f"{pct(lower)} to {pct(upper)}"


def binomial_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson interval of a proportion (exact; [0, 1] bounds at 0 and n; NaN for n = 0).

    ``statsmodels.stats.proportion.proportion_confint(method="beta")``.
    """
    if n <= 0:
        return float("nan"), float("nan")
    lower, upper = proportion_confint(successes, n, alpha=1.0 - level, method="beta")
    return float(lower), float(upper)


def predictive_label(key: str, check: Mapping[str, Any]) -> str:
    """What a posterior-predictive check compares, in words: its quantity's label (``key`` is the
    quantity, or ``<quantity>_<year>`` for a quantity reported in several years)."""
    quantity = key.removesuffix(f"_{check.get('year')}")
    return PREDICTIVE_LABELS.get(quantity, quantity.replace("_", " "))


def predictive_scale(check: Mapping[str, Any]) -> tuple[float, str]:
    """(divisor, unit) a check's values are printed in: millions of fish, else its own unit."""
    return (1e6, "million fish") if check["unit"] == "fish" else (1.0, check["unit"])
