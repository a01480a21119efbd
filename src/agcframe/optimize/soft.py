"""The building blocks of a soft analysis, under JAX: sigmoid cuts, object multiplicities, smooth histograms.

An analysis' :class:`~agcframe.plugin.analysis.Differentiable` form builds its
fills from these. Each one tends to its hard counterpart as the temperature
goes to zero: a cut to a step, a multiplicity distribution to the count, a
histogram to the binned one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agcframe.plugin.analysis import SoftCut

__all__ = ["SoftCuts", "kde_histogram", "multiplicity", "nth_selected"]

#: the smooth histograms' kernel width at temperature 1, relative to the narrowest bin
KDE_BANDWIDTH = 0.5


@dataclass(frozen=True)
class SoftCuts:
    """Cuts at the parameters' current ``values``: soft (a sigmoid) for those in ``soft``, hard for the others.

    ``values`` may hold JAX tracers (the optimised parameters) and numbers.
    """

    values: Mapping[str, Any]
    soft: Mapping[str, SoftCut]
    temperature: Any

    def above(self, name: str, x: Any) -> Any:
        """The weight of passing ``x > value``: a sigmoid of the distance in units of the cut's width."""
        import jax
        import jax.numpy as jnp

        cut = self.soft.get(name)
        if cut is None:
            return (x > self.values[name]).astype(jnp.float64)
        return jax.nn.sigmoid((x - self.values[name]) / (cut.width * self.temperature))

    def below(self, name: str, x: Any) -> Any:
        """The weight of passing ``x < value``."""
        return 1.0 - self.above(name, x)


def multiplicity(selected: Any, tagged: Any, most_selected: int, most_tagged: int) -> Any:
    """The distribution of how many objects are selected and how many of those are tagged, per event.

    ``selected`` and ``tagged`` (events × objects) are each object's
    probability to be selected, and to be tagged if selected; objects are
    independent. Returns events × (most_selected + 1) × (most_tagged + 1)
    probabilities; the last row and column hold "that many or more".
    """
    import jax
    import jax.numpy as jnp

    # counts first, events last: each update is a few operations on whole rows of events
    start = jnp.zeros((most_selected + 1, most_tagged + 1, selected.shape[0])).at[0, 0].set(1.0)

    def add_object(distribution: Any, probabilities: tuple[Any, Any]) -> tuple[Any, None]:
        s, b = probabilities
        one_more = _raised(distribution)
        one_more_tagged = jnp.moveaxis(_raised(jnp.moveaxis(one_more, 1, 0)), 0, 1)
        return distribution * (1.0 - s) + one_more * (s * (1.0 - b)) + one_more_tagged * (s * b), None

    distribution, _ = jax.lax.scan(add_object, start, (selected.T, tagged.T))
    return jnp.moveaxis(distribution, -1, 0)


def _raised(counts: Any) -> Any:
    """A distribution over counts (first axis) with each count raised by one; the last count holds "that many or more"."""
    import jax.numpy as jnp

    return jnp.concatenate([jnp.zeros_like(counts[:1]), counts[:-2], counts[-2:-1] + counts[-1:]])


def nth_selected(selected: Any, n: int) -> Any:
    """Each object's probability to be the i-th selected one of its event (i < ``n``): events × objects × n.

    ``selected`` (events × objects, in the events' object order) are independent
    selection probabilities.
    """
    import jax
    import jax.numpy as jnp

    start = jnp.zeros((n + 1, selected.shape[0])).at[0].set(1.0)  # how many of the objects so far are selected

    def add_object(before: Any, s: Any) -> tuple[Any, Any]:
        return before * (1.0 - s) + _raised(before) * s, s * before[:n]

    _, places = jax.lax.scan(add_object, start, selected.T)  # objects × n × events
    return jnp.transpose(places, (2, 0, 1))


def kde_histogram(values: Any, weights: Any, edges: np.ndarray, bandwidth: Any) -> tuple[Any, Any]:
    """A smooth histogram: each event spreads its weight over the bins with a kernel of standard deviation ``bandwidth``.

    The kernel is the logistic distribution (a sigmoid's derivative): its
    cumulative is one ``exp``, where the normal's needs ``erfc`` at several
    times the cost, and the kernels are most of a step's work. ``weights`` is
    events × K (K histograms of the same values at once) or events. Returns
    the sums of weights and of squared weights per bin, bins × K (or bins).
    With ``bandwidth`` → 0 they become the binned sums; weight that spreads
    outside ``edges`` is lost, as the hard histogram's overflow is.
    """
    import jax
    import jax.numpy as jnp

    scale = bandwidth * (np.sqrt(3.0) / np.pi)  # the logistic distribution of this standard deviation
    cdf = jax.nn.sigmoid((jnp.asarray(edges)[None, :] - values[:, None]) / scale)
    fractions = cdf[:, 1:] - cdf[:, :-1]
    return fractions.T @ weights, (fractions**2).T @ (weights**2)
