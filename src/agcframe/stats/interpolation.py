"""pyhf's interpolations in JAX: ``code4`` (normsys factors) and ``code4p`` (histosys shifts), by modifier along the first axis.

Shared by the dense likelihood of the fits (:mod:`agcframe.stats.dense`) and
the differentiable model of ``agcframe optimize``
(:mod:`agcframe.optimize.likelihood`); both are checked against pyhf.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["code4", "code4p"]

#: pyhf's code4 polynomial (alpha0 = 1): its coefficients are this matrix times
#: (hi - 1, lo - 1, hi ln hi, -lo ln lo, hi ln² hi, lo ln² lo)
CODE4 = np.array(
    [
        [15 / 16, -15 / 16, -7 / 16, -7 / 16, 1 / 16, -1 / 16],
        [3 / 2, 3 / 2, -9 / 16, 9 / 16, 1 / 16, 1 / 16],
        [-5 / 8, 5 / 8, 5 / 8, 5 / 8, -1 / 8, 1 / 8],
        [-3 / 2, -3 / 2, 7 / 8, -7 / 8, -1 / 8, -1 / 8],
        [3 / 16, -3 / 16, -3 / 16, -3 / 16, 1 / 16, -1 / 16],
        [1 / 2, 1 / 2, -5 / 16, 5 / 16, 1 / 16, 1 / 16],
    ]
)


def code4(alpha: Any, hi: Any, lo: Any) -> Any:
    """``code4`` normsys factors (modifiers × ...): a polynomial for |alpha| < 1, exponential beyond."""
    import jax.numpy as jnp

    b = jnp.stack([hi - 1, lo - 1, hi * jnp.log(hi), -lo * jnp.log(lo), hi * jnp.log(hi) ** 2, lo * jnp.log(lo) ** 2])
    coefficients = jnp.einsum("rc,c...->r...", jnp.asarray(CODE4), b)
    a = jnp.reshape(alpha, (-1,) + (1,) * (jnp.ndim(hi) - 1))
    powers = jnp.stack([a ** (r + 1) for r in range(6)])
    inside = 1.0 + jnp.sum(coefficients * powers, axis=0)
    magnitude = jnp.maximum(jnp.abs(a), 1.0)
    return jnp.where(a >= 1.0, hi**magnitude, jnp.where(a > -1.0, inside, lo**magnitude))


def code4p(alpha: Any, delta_up: Any, delta_down: Any) -> Any:
    """``code4p`` histosys shifts (modifiers × ...) from ``up - nominal`` and ``nominal - down``: a polynomial for |alpha| <= 1, linear beyond."""
    import jax.numpy as jnp

    a = jnp.reshape(alpha, (-1,) + (1,) * (jnp.ndim(delta_up) - 1))
    s, c = 0.5 * (delta_up + delta_down), 0.0625 * (delta_up - delta_down)
    inside = a * s + c * a**2 * (15.0 + a**2 * (3.0 * a**2 - 10.0))
    return jnp.where(a > 1.0, a * delta_up, jnp.where(a < -1.0, a * delta_down, inside))
