"""Argument checks of the forcing and climate types: each raises a ConfigError naming the field."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carpmodel.errors import ConfigError

__all__ = ["finite_float", "positive_float", "read_only_array", "year_array", "year_list"]


def finite_float(value: Any, where: str, expected: str = "a finite number") -> float:
    """``value`` as a float; a ConfigError ``"{where}: expected {expected}, got …"`` if not a finite real."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    return value


def positive_float(value: Any, where: str, expected: str) -> float:
    """Like :func:`finite_float`, and > 0."""
    value = finite_float(value, where, expected)
    if value <= 0:
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")
    return value


def read_only_array(values: ArrayLike, dtype: type = np.float64) -> NDArray:
    """A read-only copy of ``values`` with ``dtype``."""
    array = np.array(values, dtype=dtype)
    array.flags.writeable = False
    return array


def year_array(years: ArrayLike, where: str) -> NDArray:
    """Validate a 1-D ascending contiguous integer year vector; returns it as int64."""
    array = np.asarray(years)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"{where}: expected a non-empty 1-D sequence of years, got shape {array.shape}")
    if not np.all(np.equal(np.mod(array, 1), 0)):
        raise ConfigError(f"{where}: expected integer years, got {array!r}")
    array = array.astype(np.int64)
    if array.size > 1 and not np.all(np.diff(array) == 1):
        raise ConfigError(f"{where}: expected contiguous ascending years, got {array[0]}..{array[-1]} "
                          f"with gaps or disorder")
    return array


def year_list(years: Sequence[int]) -> str:
    """The first ten years, comma-separated, for a message (``…`` when there are more)."""
    return ", ".join(str(y) for y in years[:10]) + (" …" if len(years) > 10 else "")
