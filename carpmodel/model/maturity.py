"""Maturity: a logistic ogive in length.

``mat(L) = 1 / (1 + exp(−(L − L50·g_y) / s))`` where ``L50`` is the length at 50 % maturity
(cm), ``s`` its logistic scale (cm; ``L95 − L50 = s·ln 19``) and ``g_y`` a per-year multiplier
of L50 (temperature effects on maturity; 1 at reference).

The engine's year step (:mod:`carpmodel.model.kernel`) computes these formulas in compiled code;
``tests/test_kernel.py`` checks it against the functions here, which stay the model's definition
(and serve the equilibrium, the observation models and the tests).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def maturity_at_length(
    length_cm: ArrayLike, l50_cm: ArrayLike, slope_cm: ArrayLike, l50_multiplier: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """Proportion mature at length (0–1)."""
    z = (np.asarray(length_cm) - np.asarray(l50_cm) * l50_multiplier) / np.asarray(slope_cm)
    return 1.0 / (1.0 + np.exp(-z))
