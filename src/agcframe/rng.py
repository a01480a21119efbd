"""Counter-based random numbers keyed by event and object identity.

The value drawn for a jet depends only on ``(seed, run, luminosityBlock,
event, jet index)``, never on how events are chunked, ordered or distributed,
so a systematic built from it is reproducible across executors.

The mixing function is SplitMix64's finaliser (Steele, Lea & Flood 2014),
applied once per key component. numpy's bit generators are stream-based and
have no vectorised keyed interface, which is why this small function exists.
It is compiled with numba (:mod:`agcframe.rng_numba`) so that a numba kernel
can draw inline (:func:`agcframe.rng_numba.keyed_normal_one`) the very bits
the array form (:func:`keyed_normal`) gives every other caller; numba is
imported when the array form is first called, not with this module.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_ABS_DEVIATE", "keyed_normal"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SECOND_DRAW = np.uint64(0xD1B54A32D192ED03)
_SHIFT1, _SHIFT2, _SHIFT3, _TO_53_BITS = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0**-53
#: the largest |deviate| keyed_normal can return: Box-Muller at the smallest uniform, 2**-54
MAX_ABS_DEVIATE = float(np.sqrt(-2.0 * np.log(0.5 * _TO_UNIT)))


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
        Integer arrays (one element per jet, broadcast against each other):
        the event identity and the object's index within its event.

    Returns
    -------
    numpy.ndarray
        float64 deviates from Box-Muller on two keyed uniforms.
    """
    from agcframe.rng_numba import keyed_normals

    keys = np.broadcast_arrays(*(np.asarray(key).astype(np.uint64) for key in (run, luminosity_block, event, index)))
    shape = keys[0].shape
    return keyed_normals(seed, *(np.ascontiguousarray(key).ravel() for key in keys)).reshape(shape)
