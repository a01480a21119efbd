"""The keyed normal deviates of :mod:`agcframe.rng`, compiled with numba.

:func:`keyed_normal_one` is what a numba kernel inlines to draw a jet's
deviate; :func:`keyed_normals` is the loop behind
:func:`agcframe.rng.keyed_normal`. Both give the same bits.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from agcframe.cache import key_numba_caches, source_digest
from agcframe.rng import _GOLDEN, _MIX1, _MIX2, _SECOND_DRAW, _SHIFT1, _SHIFT2, _SHIFT3, _TO_53_BITS, _TO_UNIT

__all__ = ["keyed_normal_one", "keyed_normals"]


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    z = x + _GOLDEN
    z = (z ^ (z >> _SHIFT1)) * _MIX1
    z = (z ^ (z >> _SHIFT2)) * _MIX2
    return z ^ (z >> _SHIFT3)


@numba.njit(cache=True, nogil=True, inline="always")
def _unit_open(bits: np.uint64) -> float:
    """Uniform float64 in (0, 1) from the top 53 bits."""
    return (np.float64(bits >> _TO_53_BITS) + 0.5) * _TO_UNIT


@numba.njit(cache=True, nogil=True)
def keyed_normal_one(seed: int, run: int, luminosity_block: int, event: int, index: int) -> float:
    """The standard normal deviate of one key (Box-Muller on two keyed uniforms)."""
    state = _mix(np.uint64(seed))
    state = _mix(state ^ np.uint64(run))
    state = _mix(state ^ np.uint64(luminosity_block))
    state = _mix(state ^ np.uint64(event))
    state = _mix(state ^ np.uint64(index))
    u1 = _unit_open(state)
    u2 = _unit_open(_mix(state ^ _SECOND_DRAW))
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@numba.njit(cache=True, nogil=True)
def keyed_normals(seed: int, run: np.ndarray, luminosity_block: np.ndarray, event: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = np.empty(len(event))
    for i in range(len(event)):
        out[i] = keyed_normal_one(seed, run[i], luminosity_block[i], event[i], index[i])
    return out


key_numba_caches(globals(), source_digest(__name__))  # the compiled code folds in constants of other modules
