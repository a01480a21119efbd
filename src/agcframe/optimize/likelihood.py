"""An analysis' statistical model as a JAX function of its templates, and the objectives ``agcframe optimize`` minimises.

It is the HistFactory model that :func:`agcframe.stats.model.build_workspace`
gives pyhf, written so that the templates are inputs: every number of the
model (the NormPlusShape split with cabinetry's symmetrisation, the
``staterror`` widths) is computed from them under JAX, so the objectives
differentiate through it. The interpolations are pyhf's (``code4`` for
``normsys``, ``code4p`` for ``histosys``), the constraints its Gaussians;
``tests/optimize/test_likelihood.py`` checks the objectives against pyhf and
the fit engine on the same templates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from statistics import NormalDist
from typing import Any

from agcframe.data import histogram_name
from agcframe.defaults import OPTIMIZE_OBJECTIVES
from agcframe.errors import ConfigError, InputError
from agcframe.plugin.analysis import StatisticalModel
from agcframe.stats.interpolation import code4, code4p

__all__ = ["OBJECTIVES", "objective_function"]

#: a bin whose expected events, summed over the samples, are at most this is empty
EMPTY_BIN = 1e-9
#: the CLs level of the expected upper limit
LIMIT_LEVEL = 0.05

#: the objectives ``agcframe optimize`` can minimise, with what they are
OBJECTIVES = OPTIMIZE_OBJECTIVES


def _template(templates: Mapping[str, tuple[Any, Any]], region: str, process: str, variation: str) -> tuple[Any, Any]:
    name = histogram_name(region, process, variation)
    if name not in templates:
        raise InputError(f"the soft fills give no histogram '{name}', which the statistical model reads; the analysis' soft form must fill it")
    return templates[name]


def _modifiers(model: StatisticalModel, sample: str, region: str, process: str, nominal: Any, templates: Mapping[str, tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    """Per systematic, the ``normsys`` (hi, lo) and ``histosys`` (up, down) of one sample in one channel, as
    :func:`agcframe.stats.model.build_workspace` derives them; a systematic that does not apply is (1, 1) and (nominal, nominal)."""
    normsys, histosys = [], []
    for syst in model.systematics:
        if syst.samples is not None and sample not in syst.samples:
            normsys.append((1.0, 1.0))
            histosys.append((nominal, nominal))
        elif syst.normalization is not None:
            normsys.append((1.0 + syst.normalization, 1.0 - syst.normalization))
            histosys.append((nominal, nominal))
        else:
            up = _template(templates, region, process, syst.up or "")[0]
            norm_up = up.sum() / nominal.sum()
            if syst.down is None:  # cabinetry: normalise, then symmetrise
                shape_up = up / norm_up
                shape_down, norm_down = 2 * nominal - shape_up, 2 - norm_up
            else:
                down = _template(templates, region, process, syst.down)[0]
                norm_down = down.sum() / nominal.sum()
                shape_up, shape_down = up / norm_up, down / norm_down
            normsys.append((norm_up, norm_down))
            histosys.append((shape_up, shape_down))
    return normsys, histosys


def _channel_arrays(
    model: StatisticalModel, sample: str, region: str, process: str, templates: Mapping[str, tuple[Any, Any]]
) -> tuple[Any, ...]:
    """One sample in one channel: nominal, variances (bins), and the normsys factors and histosys templates (systematics × bins).

    A normsys factor applies to the channel as a whole; it is repeated over the channel's bins.
    """
    import jax.numpy as jnp

    nominal, variances = _template(templates, region, process, "nominal")
    normsys, histosys = _modifiers(model, sample, region, process, nominal, templates)
    ones = jnp.ones_like(nominal)
    hi = jnp.stack([factor * ones for factor, _ in normsys])
    lo = jnp.stack([factor * ones for _, factor in normsys])
    return nominal, variances, hi, lo, jnp.stack([up for up, _ in histosys]), jnp.stack([down for _, down in histosys])


class _Model:
    """The model of ``templates``: its expected events as a function of the parameters, and the POI uncertainty of its Asimov data.

    The channels' bins are concatenated; parameters, in order: the POI, one
    per systematic, then the ``staterror`` parameter of every bin.
    """

    def __init__(self, model: StatisticalModel, templates: Mapping[str, tuple[Any, Any]]) -> None:
        import jax.numpy as jnp

        per_sample = []
        for sample, process in model.samples.items():
            channels = [_channel_arrays(model, sample, region, process, templates) for region in model.channels.values()]
            per_sample.append([jnp.concatenate(parts, axis=-1) for parts in zip(*channels)])  # the channels' bins in a row
        nominal, sumw2, hi, lo, up, down = (jnp.stack(arrays, axis=-2) for arrays in zip(*per_sample))
        self.nominal_rates = nominal  # samples × bins
        self.hi, self.lo, self.up, self.down = hi, lo, up, down  # systematics × samples × bins
        self.poi_mask = jnp.asarray([sample == model.poi_sample for sample in model.samples], dtype=float)[:, None]
        total = self.nominal_rates.sum(axis=0)
        # a bin that no sample fills is left out (pyhf fixes its staterror): no Poisson term, a free-standing constraint
        self.filled = total > EMPTY_BIN
        variance = sumw2.sum(axis=0)
        self.relative = jnp.where(self.filled, jnp.sqrt(jnp.where(self.filled, variance, 1.0)) / jnp.where(self.filled, total, 1.0), 1.0)
        self.systematics = len(model.systematics)
        self.size = 1 + self.systematics + self.nominal_rates.shape[1]

    def nominal(self, poi: float) -> Any:
        import jax.numpy as jnp

        return jnp.ones(self.size).at[1 : 1 + self.systematics].set(0.0).at[0].set(poi)

    def expected(self, pars: Any) -> Any:
        import jax.numpy as jnp

        alpha, gamma = pars[1 : 1 + self.systematics], pars[1 + self.systematics :]
        rates = self.nominal_rates + jnp.sum(code4p(alpha, self.up - self.nominal_rates, self.nominal_rates - self.down), axis=0)
        factors = jnp.prod(code4(alpha, self.hi, self.lo), axis=0) * (1.0 + self.poi_mask * (pars[0] - 1.0))
        return jnp.sum(rates * factors, axis=0) * gamma

    def poi_uncertainty(self, poi: float) -> Any:
        """The POI's uncertainty from the Hessian of ``-ln L`` on the Asimov data of the nominal point at ``poi``.

        On Asimov data that Hessian is the Fisher information: ``Jᵀ diag(1/ν) J`` over the filled bins
        (``J``: the expected events' derivatives by the parameters) plus the Gaussian constraints' (1 per
        systematic, ``1/σ²`` per ``staterror`` bin). Built so, it needs one derivative less than the Hessian
        of ``-ln L``, which the optimiser's gradient then differentiates once more.
        """
        import jax
        import jax.numpy as jnp

        pars = self.nominal(poi)
        expected = jnp.where(self.filled, self.expected(pars), 1.0)
        jacobian = jnp.where(self.filled[:, None], jax.jacfwd(self.expected)(pars), 0.0)
        constraints = jnp.concatenate([jnp.zeros(1), jnp.ones(self.systematics), 1.0 / self.relative**2])
        fisher = jacobian.T @ (jacobian / expected[:, None]) + jnp.diag(constraints)
        return jnp.sqrt(jnp.linalg.inv(fisher)[0, 0])

    def upper_limit(self) -> Any:
        """The median expected CLs upper limit without signal, asymptotically: sigma(POI at 0) times the normal quantile of 1 - level/2."""
        return self.poi_uncertainty(0.0) * NormalDist().inv_cdf(1.0 - LIMIT_LEVEL / 2)


def objective_function(model: StatisticalModel, objective: str) -> Callable[[Mapping[str, tuple[Any, Any]]], Any]:
    """``objective`` (a name of :data:`OBJECTIVES`) of ``model`` as a function of its templates (name -> (sums of weights, of squared weights))."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{objective}'; choose one of {', '.join(OBJECTIVES)}")

    def evaluate(templates: Mapping[str, tuple[Any, Any]]) -> Any:
        built = _Model(model, templates)
        if objective == "poi_uncertainty":
            return built.poi_uncertainty(1.0)
        return getattr(built, objective)()

    return evaluate
