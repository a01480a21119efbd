"""Counter-based random numbers keyed by event and object identity.

The value drawn for a jet depends only on ``(seed, run, luminosityBlock,
event, jet index)``, never on how events are chunked, ordered or distributed,
so a systematic built from it is reproducible across executors.

The mixing function is SplitMix64's finaliser (Steele, Lea & Flood 2014),
applied once per key component. numpy's bit generators are stream-based and
have no vectorised keyed interface, which is why this small function exists.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keyed_normal"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SECOND_DRAW = np.uint64(0xD1B54A32D192ED03)
_TO_UNIT = 2.0**-53
#: the largest |deviate| keyed_normal can return: Box-Muller at the smallest uniform, 2**-54
MAX_ABS_DEVIATE = float(np.sqrt(-2.0 * np.log(0.5 * _TO_UNIT)))


def _mix(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _unit_open(bits: np.ndarray) -> np.ndarray:
    """Uniform float64 in (0, 1) from the top 53 bits."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * _TO_UNIT


def keyed_normal(
    seed: int,
    run: np.ndarray,
    luminosity_block: np.ndarray,
    event: np.ndarray,
    index: np.ndarray,
) -> np.ndarray:
    """Standard normal deviates, one per element of the broadcast keys.

    Parameters
    ----------
    seed
        Non-negative integer seed of the run.
    run, luminosity_block, event, index
        Integer arrays of equal length (one element per jet): the event
        identity and the object's index within its event.

    Returns
    -------
    numpy.ndarray
        float64 deviates from Box-Muller on two keyed uniforms.
    """
    with np.errstate(over="ignore"):
        state = _mix(np.full(np.shape(event), np.uint64(seed), dtype=np.uint64))
        for component in (run, luminosity_block, event, index):
            state = _mix(state ^ np.asarray(component).astype(np.uint64))
        u1 = _unit_open(state)
        u2 = _unit_open(_mix(state ^ _SECOND_DRAW))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
