"""``-2 ln L`` of a pyhf model as dense arrays: for the models cabinetry writes, its value and gradient 3.5 times faster than pyhf's graph.

pyhf evaluates every modifier on padded ``(modifier, sample, 1, bin)``
tensors gathered from the parameters, and its normsys interpolation raises
each bin to a power although a normsys is one number per sample and channel. Here the
same likelihood is a few array expressions over ``(modifier, sample, bin)``:

* normsys (interpolation code 4) and histosys (code 4p), pyhf's formulas
  (:mod:`agcframe.stats.interpolation`);
* normfactor, staterror, shapefactor and lumi: a parameter per bin multiplies
  the samples it applies to;
* Gaussian constraints (pyhf's ``normal`` auxiliary terms);
* the Poisson terms of :func:`agcframe.stats.fitting._twice_nll` (finite
  derivatives in empty bins, the expectation clipped at zero).

A model with anything else (shapesys and its Poisson constraints, other
interpolation codes) has no dense form: :func:`dense_model` returns ``None``
and the fit uses pyhf's graph. The dense ``-2 ln L`` is checked against
pyhf's at two points (:func:`agrees`) before it is used.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agcframe.stats.interpolation import code4, code4p

__all__ = ["DenseModel", "agrees", "dense_model", "hessian", "twice_nll"]

log = logging.getLogger(__name__)

#: the interpolation codes with a dense form, by modifier type
INTERPOLATION_CODES = {"normsys": "code4", "histosys": "code4p"}
#: modifiers that multiply their samples by one parameter per bin
FACTOR_MODIFIERS = frozenset({"normfactor", "staterror", "shapefactor", "lumi"})
#: relative agreement with pyhf's ``-2 ln L`` that :func:`dense_model` requires
AGREEMENT = 1e-9


@dataclass(frozen=True)
class DenseModel:
    """A pyhf model's ``-2 ln L`` as arrays: :attr:`arrays` hold its numbers, :attr:`indices` its structure.

    Two models with equal :attr:`structure` (a rerun with other templates)
    share compiled code: only :attr:`arrays` differ.
    """

    #: nominal (sample, bin); normsys up and down factors (modifier, sample, channel); histosys up and down deltas
    #: (modifier, sample, bin); the constraints' widths
    arrays: tuple[np.ndarray, ...]
    #: normsys and histosys parameter indices; each bin's channel; per-bin factors' parameter indices (factor, bin) and
    #: where they apply (factor, sample, bin); the constrained parameters in auxiliary-data order
    indices: tuple[np.ndarray, ...]
    #: (parameter, bin): the bins whose expectation each parameter changes
    support: np.ndarray
    structure: str
    #: the model's number of parameters, and of main and auxiliary data
    parameters: int
    data_size: int


def dense_model(model: Any) -> DenseModel | None:
    """The dense form of ``model`` (any pyhf backend), or ``None`` where it has a modifier or constraint without one.

    Check it with :func:`agrees` before it is used.
    """
    config = model.config
    kinds = {kind for _, kind in config.modifiers}
    if not kinds <= FACTOR_MODIFIERS | set(INTERPOLATION_CODES):
        return None
    settings = config.modifier_settings
    if any(settings.get(kind, {}).get("interpcode") != code for kind, code in INTERPOLATION_CODES.items() if kind in kinds):
        return None
    widths, constrained = [], []
    for name in config.auxdata_order:
        parameters = config.param_set(name)
        if parameters.pdf_type != "normal":
            return None
        widths.extend(getattr(parameters, "sigmas", [1.0] * parameters.n_parameters))
        constrained.extend(range(config.par_slice(name).start, config.par_slice(name).stop))
    return _arrays(model, np.asarray(widths, dtype=np.float64), np.asarray(constrained, dtype=np.int64))


def _arrays(model: Any, widths: np.ndarray, constrained: np.ndarray) -> DenseModel:
    config = model.config
    samples = {name: index for index, name in enumerate(config.samples)}
    channel_bins, start = {}, 0
    for channel in config.channels:
        channel_bins[channel] = slice(start, start + config.channel_nbins[channel])
        start += config.channel_nbins[channel]
    shape = (len(samples), start)
    interpolated: dict[str, dict[str, int]] = {"normsys": {}, "histosys": {}}
    factors: dict[str, int] = {}
    for name, kind in config.modifiers:
        group = factors if kind in FACTOR_MODIFIERS else interpolated[kind]
        group.setdefault(name, len(group))
    nominal = np.zeros(shape)
    normsys = np.ones((2, len(interpolated["normsys"]), len(samples), len(channel_bins)))  # one number per channel
    histosys = np.zeros((2, len(interpolated["histosys"]), *shape))
    factor_parameters = np.zeros((len(factors), start), dtype=np.int64)
    factor_applies = np.zeros((len(factors), *shape), dtype=bool)
    support = np.zeros((config.npars, start), dtype=bool)
    columns = {channel: column for column, channel in enumerate(channel_bins)}
    for channel in model.spec["channels"]:
        bins, column = channel_bins[channel["name"]], columns[channel["name"]]
        for sample in channel["samples"]:
            row = samples[sample["name"]]
            values = np.asarray(sample["data"], dtype=np.float64)
            nominal[row, bins] = values
            for modifier in sample["modifiers"]:
                name, kind, content = modifier["name"], modifier["type"], modifier["data"]
                parameters = config.par_slice(name)
                if parameters.stop - parameters.start == 1:
                    support[parameters.start, bins] = True
                else:  # one parameter per bin
                    support[np.arange(parameters.start, parameters.stop), np.arange(start)[bins]] = True
                if kind == "normsys":
                    normsys[:, interpolated["normsys"][name], row, column] = content["hi"], content["lo"]
                elif kind == "histosys":
                    index = interpolated["histosys"][name]
                    histosys[0, index, row, bins] = np.asarray(content["hi_data"], dtype=np.float64) - values
                    histosys[1, index, row, bins] = values - np.asarray(content["lo_data"], dtype=np.float64)
                else:
                    factor_parameters[factors[name], bins] = np.arange(parameters.start, parameters.stop)
                    factor_applies[factors[name], row, bins] = True
    index_of = [np.array([config.par_slice(name).start for name in interpolated[kind]], dtype=np.int64) for kind in ("normsys", "histosys")]
    channel_of_bin = np.repeat(np.arange(len(channel_bins)), [config.channel_nbins[channel] for channel in channel_bins])
    indices = (*index_of, channel_of_bin, factor_parameters, factor_applies, constrained)
    digest = hashlib.sha256(b"dense 1")
    for array in (*indices, support, np.array([config.npars, config.nmaindata, config.nauxdata]), *(np.asarray(array.shape) for array in (nominal, normsys, histosys, widths))):
        digest.update(repr((array.shape, array.dtype.str)).encode() + array.tobytes())
    arrays = (nominal, normsys[0], normsys[1], histosys[0], histosys[1], widths)
    return DenseModel(arrays, indices, support, digest.hexdigest(), config.npars, config.nmaindata + config.nauxdata)


def twice_nll(pars: Any, data: Any, arrays: tuple[Any, ...], indices: tuple[np.ndarray, ...]) -> Any:
    """``-2 ln L`` at ``pars`` for ``data`` (main then auxiliary) of the dense model ``arrays``, ``indices`` (:class:`DenseModel`)."""
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    nominal, normsys_up, normsys_down, histosys_up, histosys_down, widths = arrays
    normsys_of, histosys_of, channel_of_bin, factor_parameters, factor_applies, constrained = indices
    normsys = jnp.prod(code4(pars[normsys_of], normsys_up, normsys_down), axis=0)[:, channel_of_bin]
    histosys = code4p(pars[histosys_of], histosys_up, histosys_down)
    factors = jnp.where(factor_applies, pars[factor_parameters][:, None, :], 1.0)
    by_sample = (nominal + jnp.sum(histosys, axis=0)) * normsys * jnp.prod(factors, axis=0)
    expected = jnp.maximum(jnp.sum(by_sample, axis=0), 0.0)
    observed, auxiliary = data[: channel_of_bin.size], data[channel_of_bin.size :]
    counts = jnp.where(observed > 0, observed * jnp.log(jnp.where(observed > 0, expected, 1.0)), 0.0)
    main = jnp.sum(counts - expected - gammaln(observed + 1.0))
    pulls = (auxiliary - pars[constrained]) / widths
    constraints = jnp.sum(-0.5 * pulls * pulls - jnp.log(widths)) - 0.5 * math.log(2 * math.pi) * len(constrained)
    return -2.0 * (main + constraints)


def hessian(twice_nll: Callable[..., Any], support: np.ndarray) -> Callable[..., Any]:
    """The exact Hessian of ``twice_nll(pars, data, arrays)`` from fewer Hessian-vector products than parameters.

    ``-2 ln L`` is a sum over bins plus one constraint term per parameter, so
    two parameters that change disjoint sets of bins have no cross term. A
    parameter that changes one bin (a staterror or shapefactor) shares its
    Hessian-vector product with the others of its colour (at most one per
    bin): the product's entry in a parameter of that bin is the cross term
    with the one member there. Every other parameter has a product of its own
    (as :func:`jax.hessian` gives each). The AGC model needs 13 products for
    its 34 parameters (22 staterrors in one colour).
    """
    import jax
    import jax.numpy as jnp

    tangents, product_of, from_column, from_row = _hessian_layout(support)

    def function(pars: Any, data: Any, arrays: Any) -> Any:
        gradient = jax.grad(twice_nll)
        products = jax.vmap(lambda tangent: jax.jvp(lambda at: gradient(at, data, arrays), (pars,), (tangent,))[1])(tangents)
        columns = products[product_of]  # row j: the product whose entries in j's column are H[:, j] where from_column
        return jnp.where(from_column, columns.T, jnp.where(from_row, columns, 0.0))

    return function


def _hessian_layout(support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tangents of :func:`hessian`, each parameter's tangent, and where ``H[i, j]`` is entry ``i`` of ``j``'s product
    (``from_column``) or entry ``j`` of ``i``'s (``from_row``); elsewhere it is zero."""
    parameters = support.shape[0]
    bins = support.sum(axis=1)
    narrow = bins <= 1
    bin_of = np.where(bins == 1, support.argmax(axis=1), -1 - np.arange(parameters))  # a parameter of no bin: a bin of its own
    colours: list[set[int]] = []
    tangent_of = np.zeros(parameters, dtype=np.int64)
    wide = int(np.count_nonzero(~narrow))
    tangent_of[~narrow] = np.arange(wide)
    for parameter in np.flatnonzero(narrow):
        colour = next((index for index, used in enumerate(colours) if bin_of[parameter] not in used), len(colours))
        if colour == len(colours):
            colours.append(set())
        colours[colour].add(int(bin_of[parameter]))
        tangent_of[parameter] = wide + colour
    tangents = np.zeros((wide + len(colours), parameters))
    tangents[tangent_of, np.arange(parameters)] = 1.0
    same_bin = bin_of[:, None] == bin_of[None, :]
    from_column = ~narrow[None, :] | (narrow[:, None] & narrow[None, :] & same_bin)
    from_row = ~narrow[:, None] & narrow[None, :]
    return tangents, tangent_of, from_column, from_row


def agrees(model: Any, value: Callable[[np.ndarray, np.ndarray], float]) -> bool:
    """Whether ``value(pars, data)``, a dense ``-2 ln L`` of ``model``, equals pyhf's at the initial values and at a point
    past every interpolation's +-1, for the model's expected data at the initial values."""
    init = np.asarray(model.config.suggested_init(), dtype=np.float64)
    low, high = (np.asarray(side, dtype=np.float64) for side in zip(*model.config.suggested_bounds()))
    moved = np.clip(init + np.where(np.arange(init.size) % 2, 1.37, -1.21) * np.minimum(1.0, (high - low) / 4), low, high)
    data = np.asarray(model.expected_data(init), dtype=np.float64)
    for point in (init, moved):
        expected = -2.0 * float(np.asarray(model.logpdf(point, data)).item())
        ours = float(value(point, data))
        if not (np.isfinite(expected) and abs(ours - expected) <= AGREEMENT * max(1.0, abs(expected))):
            log.debug("the dense likelihood differs from pyhf's (%r against %r): pyhf's graph is used", ours, expected)
            return False
    return True
