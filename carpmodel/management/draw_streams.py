"""Random numbers for many draws at once, each draw with its own streams (counter-based).

A projection needs a few random series per draw (parameter deviates, recruitment, survey
errors, temperature anomalies), and a draw's series must not depend on which other draws run
beside it (chunks, workers). Giving each draw its own seeded generator does that, but costs a
``SeedSequence`` and a generator per draw and series: 5,000 constructions per 1,000 draws.

Here every number is a pure function of ``(seed, draw, stream, position)``: the Philox4x64-10
generator (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3", SC '11; numpy's
:class:`numpy.random.Philox`) encrypts the counter ``(block, draw, stream, 0)`` under a key
derived once from the seed, and each 256-bit block gives four 64-bit words. One vectorised
call serves every draw of a chunk. Streams of different draws, or of different names, never
overlap (Philox is a bijection of the counter for a given key), and the first ``k`` numbers of
a stream do not depend on how many are drawn. Uniforms take a word's top 53 bits plus half a
step, at most ``1 − 2⁻⁵³``, so they lie strictly in (0, 1) and their normals are finite (|z| <
8.3); standard normals are their inverse normal CDF (:func:`scipy.special.ndtri`).

A draw's stream is the output of ``numpy.random.Philox(key=np.array(seed_key(seed),
dtype=np.uint64), counter=np.array([0, draw, stream, 0], dtype=np.uint64))`` (numpy advances the
counter before each block: blocks 1, 2, …; give it uint64 arrays, as it converts Python integers
of 2⁶³ and more through float64), so it can be reproduced with numpy alone;
tests/test_draw_streams.py checks this bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from carpmodel.errors import ConfigError

__all__ = ["MAX_DRAW", "DrawStream", "draw_indices", "philox4x64", "seed_key"]

_M0, _M1 = np.uint64(0xD2E7470EE14C6C93), np.uint64(0xCA5A826395121157)   # round multipliers
_W0, _W1 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBB67AE8584CAA73B)   # key increments
_LOW32, _SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(32)
ROUNDS = 10
#: draw indices run from 0 to this (they are stored as 64-bit integers in every output)
MAX_DRAW = 2**63 - 1
#: the largest uniform (the top 53-bit value plus half a step rounds to 1.0)
_BELOW_ONE = 1.0 - 2.0**-53


def draw_indices(draws: Any, name: str = "draws") -> NDArray:
    """``draws`` as a 1-D int64 array of indices 0..:data:`MAX_DRAW`; a :class:`ConfigError`
    naming ``name`` otherwise."""
    values = np.asarray(draws)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if values.ndim != 1 or values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise ConfigError(f"{name}: expected a 1-D array of integer draw indices, got {values.dtype} "
                          f"of shape {values.shape}")
    if values.min() < 0 or values.max() > MAX_DRAW:
        raise ConfigError(f"{name}: expected draw indices from 0 to {MAX_DRAW}, got "
                          f"{int(values.min())}..{int(values.max())}")
    return values.astype(np.int64)


def seed_key(seed: int) -> tuple[int, int]:
    """The Philox key (two 64-bit words) of a seed: ``SeedSequence(seed)``'s first two words."""
    words = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    return int(words[0]), int(words[1])


def _mulhilo(a: np.uint64, b: NDArray) -> tuple[NDArray, NDArray]:
    """The high and low 64 bits of the 128-bit products ``a·b`` (uint64), from 32-bit halves."""
    a_lo, a_hi = a & _LOW32, a >> _SHIFT32
    b_lo, b_hi = b & _LOW32, b >> _SHIFT32
    lo_lo, hi_lo, lo_hi = a_lo * b_lo, a_hi * b_lo, a_lo * b_hi
    cross = (lo_lo >> _SHIFT32) + (hi_lo & _LOW32) + lo_hi      # < 2^64: no carry lost
    high = a_hi * b_hi + (hi_lo >> _SHIFT32) + (cross >> _SHIFT32)
    return high, a * b


def philox4x64(counter: NDArray, key: tuple[int, int]) -> NDArray:
    """Philox4x64-10 of each counter: ``counter (..., 4)`` uint64 → the blocks ``(..., 4)`` uint64."""
    c = np.asarray(counter, dtype=np.uint64)
    x0, x1, x2, x3 = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    with np.errstate(over="ignore"):
        for i in range(ROUNDS):
            if i:
                k0, k1 = k0 + _W0, k1 + _W1
            hi0, lo0 = _mulhilo(_M0, x0)
            hi1, lo1 = _mulhilo(_M1, x2)
            x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return np.stack([x0, x1, x2, x3], axis=-1)


@dataclass(frozen=True, eq=False)
class DrawStream:
    """One named stream of every draw in ``draws``: ``standard_normal(n)`` and ``uniform(n)``
    give ``(draw, n)`` arrays, row ``i`` a function of ``(key, draws[i], stream)`` only."""

    key: tuple[int, int]
    draws: NDArray
    stream: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "draws", draw_indices(self.draws, "DrawStream.draws"))
        if isinstance(self.stream, bool) or not isinstance(self.stream, int | np.integer) \
                or not 0 <= self.stream < 2**64:
            raise ConfigError(f"DrawStream.stream: expected an integer from 0 to 2**64 - 1, "
                              f"got {self.stream!r}")

    def __len__(self) -> int:
        return int(self.draws.size)

    def words(self, n: int) -> NDArray:
        """The stream's first ``n`` 64-bit words of each draw, ``(draw, n)`` uint64."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"DrawStream: expected a non-negative integer count of numbers, got {n!r}")
        draws = self.draws.astype(np.uint64)
        n_blocks = -(-int(n) // 4)
        counter = np.zeros((draws.size, n_blocks, 4), dtype=np.uint64)
        counter[..., 0] = np.arange(n_blocks, dtype=np.uint64) + np.uint64(1)
        counter[..., 1] = draws[:, None]
        counter[..., 2] = np.uint64(self.stream)
        return philox4x64(counter, self.key).reshape(draws.size, 4 * n_blocks)[:, :n]

    def uniform(self, n: int) -> NDArray:
        """Uniforms strictly inside (0, 1), ``(draw, n)``: the top 53 bits of each word, plus half
        a step (the top value, which rounds to 1, is the largest double below 1)."""
        u = ((self.words(n) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
        return np.minimum(u, _BELOW_ONE)

    def standard_normal(self, n: int) -> NDArray:
        """Standard normals, ``(draw, n)``: the inverse normal CDF of :meth:`uniform`."""
        return ndtri(self.uniform(n))
