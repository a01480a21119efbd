"""Maximum-likelihood fits of a pyhf model: exact derivatives, checked minima, impacts.

``-2 ln L`` is compiled with JAX once per model structure with its gradient
(``jax.value_and_grad``) and, separately, its Hessian: in its dense form
(:mod:`agcframe.stats.dense`) for the modifiers cabinetry writes, else as
pyhf's JAX backend evaluates it. The templates and the data are arguments, so
a model with new templates and Asimov data reuse the compiled functions; the
compiled code is kept on disk between runs, and the model itself may be built
with pyhf's numpy backend (as agcframe's fits build it: ten times faster than
under JAX).

* The global fit: MIGRAD with the exact gradient (a few hundred evaluations
  where numerical derivatives need thousands), then Newton steps with the
  exact Hessian to the minimum itself. The covariance is twice the inverse
  Hessian there. MINUIT's HESSE differentiates twice numerically and, on the
  AGC model, moves the POI's error by percents with its parameter-limit
  transformation (0.0931 with the limits, 0.0893 without, 0.0919 exact, on the
  real 5-file histograms).
* Every minimum is checked: MIGRAD's validity, then the EDM recomputed with
  the exact gradient and Hessian (MIGRAD's own EDM comes from its approximate
  Hessian and has called a point converged whose impact was off by half).
  A failed minimisation is retried with other strategies and starts.
* An impact refit starts where the global covariance predicts its minimum and
  takes Newton steps (a few milliseconds); damped Newton steps, then MIGRAD,
  take over where they do not converge. The conditional likelihood can have
  a second, lower minimum far from the predicted one (a shoulder of one
  parameter's profile that holding another one fixed deepens into a well), so
  a refit whose ``-2 ln L`` rose more than :data:`SECOND_START_RISE` above
  the global minimum starts again from the model's initial values with damped
  (Levenberg-Marquardt) Newton steps, and from the best fit where the two end
  in different minima; the
  lowest minimum is the impact, and the shift is marked ``multimodal``. A refit
  below the global minimum means the global fit was not the minimum: it is
  redone from there.

The significance is the q0 test with four fits of the compiled likelihood;
the limits run pyhf's own hypothesis tests with :func:`gradient_optimizer`, a
pyhf optimizer that minimises with the exact gradient.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agcframe.cache import cache_directory, write_atomically
from agcframe.data import FitOptions, FitParameter, FitResult, FitStatus, Impact, Significance, UpperLimit
from agcframe.errors import InputError
from agcframe.progress import advance_current, progress_bar

if TYPE_CHECKING:
    from agcframe.stats.dense import DenseModel

__all__ = [
    "Likelihood", "Minimum", "configure_jax", "fit_model", "gradient_fits", "gradient_optimizer", "impacts", "jax_backend", "minimize", "significance",
    "upper_limit",
]  # fmt: skip

log = logging.getLogger(__name__)
#: retries of the minimiser: fit.log only (see agcframe.stats.fitlog)
attempts_log = logging.getLogger(f"{__name__}.attempts")

#: MINUIT's tolerance: a minimum is converged when its EDM is below EDM_GOAL
TOLERANCE = 0.1
#: MINUIT's EDM goal for -2 ln L (errordef 1) at TOLERANCE
EDM_GOAL = 0.002 * TOLERANCE
#: Newton steps at most, and the EDM (relative to EDM_GOAL) below which they stop
NEWTON_STEPS = 20
NEWTON_EDM = 1e-6
#: step fractions a Newton step tries in turn until -2 ln L decreases
NEWTON_BACKTRACKING = (1.0, 0.5, 0.25, 0.125)
#: damped Newton steps (Levenberg-Marquardt) at most, the first damping (relative to the Hessian's
#: diagonal), the factor it changes by after a step that fails or succeeds, and the most it may reach
DAMPED_STEPS = 100
DAMPING_START = 1e-3
DAMPING_FACTOR = 10.0
DAMPING_MOST = 1e10
#: a refit whose -2 ln L lies more than this above the global minimum also starts from the initial values: a
#: post-fit shift raises it by about 1 (quadratic rise); on three generated datasets every refit with a lower
#: second minimum had risen by 2.6 or more, and 40 % of the refits rise by more than this
SECOND_START_RISE = 1.5
#: the shifts of an impact, in the order of :class:`~agcframe.data.Impact`'s fields
IMPACT_SHIFTS = ("prefit_up", "prefit_down", "postfit_up", "postfit_down")
#: two refits of one impact whose -2 ln L differ by more than this ended in different minima
MULTIMODAL_TOLERANCE = 1e-2
#: MINUIT strategies of a fit, tried in turn until a minimum is valid and Newton steps confirm it
FIT_STRATEGIES = (0, 1, 2)
#: strategies of an impact refit where Newton steps fail, started near its minimum
REFIT_STRATEGIES = (0, 1, 2)
#: MIGRAD's call limit for a fit, and for one attempt of an impact refit (converged ones need a few hundred)
FIT_CALLS = 100_000
REFIT_CALLS = 5_000
#: a refit's -2 ln L may lie this far below the global minimum's (the global EDM goal is 2e-4)
TWICE_NLL_TOLERANCE = 1e-3
#: threads that run the impact refits, at most (two on two cores take 0.8 of the time of one: the GIL is held between calls)
REFIT_THREADS = 2
#: times the global fit is redone when a refit finds a lower minimum
GLOBAL_REFITS = 2
#: CLs level of upper limits: 95% confidence
LIMIT_LEVEL = 0.05
#: the low end of the limit scan: the expected limits on the AGC model are far below 1 (about 1e-3)
LIMIT_LOWEST_POI = 1e-6


def configure_jax() -> None:
    """CPU only (no accelerator probing: the fit is small), float64; compiled code cached on disk between runs.

    pyhf's JAX backend compiles ~100 small kernels when a model is first used
    (about 2 s); from the cache a later run loads them in a fraction of that.
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)  # as pyhf's JAX backend at 64b: the compiled likelihoods take float64
    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(cache_directory() / "jax"))
    # every program kept, also in a cache the environment names (JAX keeps only those that took a second to compile:
    # a run would compile the likelihood's gradient again each time), unless the environment says otherwise
    for option in ("jax_persistent_cache_min_compile_time_secs", "jax_persistent_cache_min_entry_size_bytes"):
        if option.upper() not in os.environ:
            jax.config.update(option, 0)


@contextmanager
def jax_backend() -> Iterator[None]:
    """pyhf's JAX backend (float64) and :func:`gradient_optimizer` inside the block; pyhf's global state is restored after.

    pyhf converts every model to a new backend (about 0.5 s for the AGC's):
    the fits need it only to trace a likelihood the first time.
    """
    configure_jax()
    with gradient_fits("jax", precision="64b"):
        yield


@contextmanager
def gradient_fits(backend: str | None = None, **options: Any) -> Iterator[None]:
    """:func:`gradient_optimizer` for pyhf's own fits inside the block, on ``backend`` with ``options`` (by default pyhf's
    current backend: no model is converted); pyhf's global state is restored after."""
    import pyhf

    current, previous = pyhf.get_backend()
    pyhf.set_backend(backend or current, gradient_optimizer(), **options)
    try:
        yield
    finally:
        pyhf.set_backend(current, previous)


#: a path from a model to one of its arrays: attribute names, dictionary keys and list indices, in turn
ArrayPath = tuple[Any, ...]


@dataclass
class _Compiled:
    """``-2 ln L`` with its gradient, and its Hessian, compiled for every model of one structure.

    The functions take the model's templates as an argument: for pyhf's graph
    the arrays at :attr:`paths` (the floating-point arrays pyhf's JAX backend
    derives from the templates), for the dense form (no paths) those of
    :class:`agcframe.stats.dense.DenseModel`; they have the shapes and dtypes
    :attr:`signature`. A model with new templates and the same structure (a
    rerun with another cut) runs the same compiled code, whichever backend it
    was built with.
    """

    structure: str
    paths: tuple[ArrayPath, ...]
    signature: tuple[tuple[tuple[int, ...], str], ...]
    value_and_gradient: Callable[..., Any]
    hessian: Callable[..., Any]


@dataclass(frozen=True)
class _Bound:
    """The compiled functions of a structure bound to one model's arrays: functions of ``(pars, data)``."""

    compiled: _Compiled
    arrays: tuple[Any, ...]

    def value_and_gradient(self, pars: Any, data: Any) -> Any:
        return self.compiled.value_and_gradient(pars, data, self.arrays)

    def hessian(self, pars: Any, data: Any) -> Any:
        return self.compiled.hessian(pars, data, self.arrays)


#: compiled likelihoods by model structure, the most recent last
_COMPILED: dict[str, _Compiled] = {}
#: structures kept compiled (a notebook alternates between few)
COMPILED_STRUCTURES = 4
#: where compiled likelihoods are kept between processes, in agcframe's cache directory
COMPILED_DIRECTORY = "likelihoods"
#: a kept likelihood starts with the XXH3 checksum (16 hex digits) of the rest
CHECKSUM_LENGTH = 16


def _twice_nll(model: Any, pars: Any, data: Any) -> Any:
    """``-2 ln L``: pyhf's Poisson terms and constraint terms, with finite derivatives in empty bins.

    pyhf's Poisson term ``xlogy(n, lambda)`` has the derivative ``n / lambda``,
    which JAX evaluates as 0/0 = NaN in a bin where both the data and the
    expectation are zero (empty bins of a template): one such bin makes the
    whole gradient NaN. Here the ``n log(lambda)`` term is only formed where
    ``n > 0``, the same value with finite derivatives.

    The expectation is clipped at zero (pyhf's ``clip_bin_data=0``): templates
    with negative weights can make a bin's expectation negative, and where
    that bin has no data ``-lambda`` would grow without bound; with exact
    gradients the minimiser finds that direction (-2 ln L of -10⁶ on a
    1,500-event dataset). Where the expectation is positive nothing changes.
    """
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    observed, auxiliary = data[: model.config.nmaindata], data[model.config.nmaindata :]
    expected = jnp.maximum(model.main_model.expected_data(pars), 0.0)
    counts = jnp.where(observed > 0, observed * jnp.log(jnp.where(observed > 0, expected, 1.0)), 0.0)
    main = jnp.sum(counts - expected - gammaln(observed + 1.0))
    return -2.0 * (main + model.constraint_model.logpdf(auxiliary, pars))


def _model_arrays(model: Any) -> list[tuple[ArrayPath, Any, bool]]:
    """Every numpy or JAX array of ``model``, with its path and whether it is a template, in a fixed order.

    Walks pyhf's objects (attributes, dicts, lists). Floating-point arrays are
    templates (or what pyhf derived from them), except under pyhf's parameter
    viewers, whose arrays are indices: those, and integer arrays, are part of
    the structure.
    """
    import jax

    found: list[tuple[ArrayPath, Any, bool]] = []
    seen: set[int] = set()

    def visit(path: ArrayPath, value: Any, in_viewer: bool) -> None:
        if isinstance(value, (np.ndarray, jax.Array)):
            found.append((path, value, not in_viewer and np.issubdtype(value.dtype, np.floating)))
            return
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, dict):
            for name, item in value.items():
                visit((*path, name), item, in_viewer)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit((*path, index), item, in_viewer)
        elif type(value).__module__.startswith("pyhf.") and hasattr(value, "__dict__"):
            viewer = in_viewer or "viewer" in type(value).__name__.lower()
            for name, item in vars(value).items():
                visit((*path, name), item, viewer)

    visit((), model, False)
    return found


@functools.cache
def _versions() -> str:
    """What compiled code depends on besides the model: the source of this module, :mod:`~agcframe.stats.dense` and
    :mod:`~agcframe.stats.interpolation`, and the versions of pyhf, JAX and jaxlib."""
    from importlib.metadata import version

    from agcframe.stats import dense, interpolation

    source = hashlib.sha256(b"".join(Path(module).read_bytes() for module in (__file__, dense.__file__, interpolation.__file__))).hexdigest()
    return f"{source} pyhf {version('pyhf')} jax {version('jax')} jaxlib {version('jaxlib')}"


def _structure(model: Any, found: Sequence[tuple[ArrayPath, Any, bool]]) -> str:
    """What must agree for two models to share compiled code: the spec without its numbers, every array's place, kind and shape, the indices' values."""
    import json

    from agcframe.stats.model import schema_skeleton

    config = model.config
    digest = hashlib.sha256(
        json.dumps([schema_skeleton(model.spec), config.par_order, config.poi_name, config.modifier_settings, _versions()]).encode()
    )
    for path, array, template in found:
        value = np.asarray(array)
        digest.update(repr((path, type(array).__name__, value.shape, value.dtype.str, template)).encode())
        if not template:
            digest.update(value.tobytes())
    return digest.hexdigest()


def _at(model: Any, path: ArrayPath) -> tuple[Any, Any]:
    """The object holding the array at ``path``, and its key there."""
    holder = model
    for key in path[:-1]:
        holder = _get(holder, key)
    return holder, path[-1]


def _get(holder: Any, key: Any) -> Any:
    return holder[key] if isinstance(holder, (dict, list)) else getattr(holder, key)


def _set(holder: Any, key: Any, value: Any) -> None:
    if isinstance(holder, (dict, list)):
        holder[key] = value
    else:
        setattr(holder, key, value)


def _compiled(model: Any) -> _Bound:
    """``-2 ln L`` of ``model`` with its gradient, and its Hessian, as functions of ``(pars, data)``.

    The dense form (:mod:`agcframe.stats.dense`) where the model has one and it
    agrees with pyhf's, else pyhf's own graph (:func:`_compiled_pyhf`).
    """
    return _compiled_dense(model) or _compiled_pyhf(model)


def _kept(compiled: _Compiled) -> _Compiled:
    """``compiled``, kept in this process as the most recently used (:data:`COMPILED_STRUCTURES` of them)."""
    _COMPILED[compiled.structure] = compiled
    while len(_COMPILED) > COMPILED_STRUCTURES:
        del _COMPILED[next(iter(_COMPILED))]
    return compiled


def _compiled_dense(model: Any) -> _Bound | None:
    """The dense likelihood of ``model``; ``None`` where it has none or it differs from pyhf's.

    Compiled once per dense structure, kept as pyhf's graph is (:func:`_compiled_pyhf`).
    """
    import jax.numpy as jnp

    from agcframe.stats import dense

    form = dense.dense_model(model)
    if form is None:
        return None
    configure_jax()
    structure = hashlib.sha256(f"{form.structure} {_versions()}".encode()).hexdigest()
    compiled = _COMPILED.pop(structure, None) or _load(structure) or _compile_dense(form, structure)
    bound = _Bound(compiled, tuple(jnp.asarray(array) for array in form.arrays))
    if not dense.agrees(model, lambda pars, data: bound.value_and_gradient(pars, data)[0]):
        return None
    _kept(compiled)
    return bound


def _compiled_pyhf(model: Any) -> _Bound:
    """``-2 ln L`` of ``model`` as pyhf computes it, with its gradient and Hessian, as functions of ``(pars, data)``.

    Compiled once per model structure (:class:`_Compiled`), kept in this
    process and, exported with ``jax.export``, in agcframe's cache directory,
    from which JAX's compilation cache compiles it in a tenth of a second: a
    model of a known structure is not traced, and may be built with pyhf's
    numpy backend (fifty milliseconds, where its JAX backend takes half a
    second of eagerly dispatched operations).
    """
    import jax.numpy as jnp

    found = _model_arrays(model)
    structure = _structure(model, found)
    compiled = _kept(_COMPILED.pop(structure, None) or _load(structure) or _compile(model, structure))
    arrays = tuple(np.asarray(_get(*_at(model, path))) for path in compiled.paths)
    if tuple((array.shape, array.dtype.str) for array in arrays) != compiled.signature:
        raise AssertionError(f"a model of structure {structure[:12]} has arrays of other shapes than its compiled likelihood")
    return _Bound(compiled, tuple(jnp.asarray(array) for array in arrays))


def _compile(model: Any, structure: str) -> _Compiled:
    """Trace ``-2 ln L`` of ``model`` under pyhf's JAX backend (the model converted inside it) and compile it and its derivatives.

    The code is shared by the structure, and kept on disk, if the traced
    function depends on the model's numbers only through the JAX arrays
    found: a traced constant that is not an index array would be a template
    pyhf keeps elsewhere, and such a model gets code of its own (kept in this
    process only).
    """
    import gc

    import jax

    gc.collect()  # pyhf models in reference cycles would be converted to JAX and back with this one
    with jax_backend():
        converted = _model_arrays(model)
        paths = tuple(path for path, array, template in converted if template and isinstance(array, jax.Array))
        places = [_at(model, path) for path in paths]
        arrays = tuple(_get(*place) for place in places)
        indices = [array for _, array, template in converted if not template]

        def twice_nll(pars: Any, data: Any, values: tuple[Any, ...]) -> Any:
            held = [_get(*place) for place in places]
            for place, value in zip(places, values):
                _set(*place, value)
            try:
                return _twice_nll(model, pars, data)
            finally:
                for place, value in zip(places, held):
                    _set(*place, value)

        pars = np.asarray(model.config.suggested_init(), dtype=np.float64)
        data = np.zeros(model.config.nmaindata + model.config.nauxdata)  # its shape only: nothing evaluated eagerly
        shared = _only_index_constants(jax.make_jaxpr(twice_nll)(pars, data, arrays).consts, indices)
        if not shared:
            log.debug("pyhf keeps numbers of this model outside the arrays found: its likelihood is compiled for it alone")
            structure = f"{structure}:{id(model)}"
        # exported for these shapes, which every model of the structure has: nothing keeps the model alive
        return _exported(twice_nll, pars, data, arrays, structure, paths, keep=shared)


def _compile_dense(form: DenseModel, structure: str) -> _Compiled:
    """Trace the dense ``-2 ln L`` of ``form`` (:class:`agcframe.stats.dense.DenseModel`) and compile it and its derivatives."""
    from agcframe.stats import dense

    pars = np.zeros(form.parameters)
    data = np.zeros(form.data_size)
    twice_nll = functools.partial(dense.twice_nll, indices=form.indices)
    return _exported(twice_nll, pars, data, form.arrays, structure, (), keep=True, hessian=dense.hessian(twice_nll, form.support))


def _exported(
    twice_nll: Callable[..., Any],
    pars: Any,
    data: Any,
    arrays: Sequence[Any],
    structure: str,
    paths: tuple[ArrayPath, ...],
    *,
    keep: bool,
    hessian: Callable[..., Any] | None = None,
) -> _Compiled:
    """``twice_nll(pars, data, arrays)`` with its gradient, and its Hessian (``hessian``, by default :func:`jax.hessian`),
    exported for these shapes and compiled; kept on disk if ``keep``."""
    import jax

    arrays = tuple(arrays)
    functions = (jax.value_and_grad(twice_nll), hessian or jax.hessian(twice_nll))
    exported = tuple(jax.export.export(jax.jit(function))(pars, data, arrays) for function in functions)
    signature = tuple((tuple(array.shape), np.dtype(array.dtype).str) for array in arrays)
    if keep:
        _store(structure, paths, signature, exported)
    return _from_exported(structure, paths, signature, exported)


def _from_exported(structure: str, paths: tuple[ArrayPath, ...], signature: Any, exported: Sequence[Any]) -> _Compiled:
    """The compiled functions of ``exported`` (``jax.export``): JAX's compilation cache has them after the first time."""
    import jax

    functions = []
    for function in exported:
        args, kwargs = function.in_tree.unflatten([jax.ShapeDtypeStruct(aval.shape, aval.dtype) for aval in function.in_avals])
        functions.append(jax.jit(function.call).lower(*args, **kwargs).compile())
    return _Compiled(structure, paths, signature, *functions)


def _stored(structure: str) -> Path:
    return cache_directory() / COMPILED_DIRECTORY / f"{structure[:32]}.pickle"


def _store(structure: str, paths: tuple[ArrayPath, ...], signature: Any, exported: Sequence[Any]) -> None:
    """Keep the likelihood of ``structure`` in the cache directory (written whole; where it cannot be, the next process traces it again)."""
    import pickle

    import xxhash

    try:
        document = pickle.dumps((structure, paths, signature, [bytes(function.serialize()) for function in exported]))
        write_atomically(_stored(structure), xxhash.xxh3_64_hexdigest(document).encode() + document)
    except Exception as exc:  # a read-only cache
        log.debug("the compiled likelihood is not kept on disk: %s", exc)


def _load(structure: str) -> _Compiled | None:
    """The likelihood of ``structure`` from the cache directory; ``None`` where there is none, or it is damaged or cannot be loaded (then it is deleted)."""
    import pickle

    path = _stored(structure)
    try:
        content = path.read_bytes()
    except OSError:
        return None
    try:
        import jax
        import xxhash

        checksum, document = content[:CHECKSUM_LENGTH], content[CHECKSUM_LENGTH:]
        if xxhash.xxh3_64_hexdigest(document).encode() != checksum:
            raise ValueError("its checksum does not match")
        stored, paths, signature, serialized = pickle.loads(document)
        if stored != structure:
            raise ValueError("it was made for another structure")
        return _from_exported(structure, paths, signature, [jax.export.deserialize(bytearray(data)) for data in serialized])
    except Exception as exc:
        log.warning("the compiled likelihood %s is damaged (%s); deleted, it is compiled again", path, exc)
        path.unlink(missing_ok=True)
        return None


def _only_index_constants(constants: Sequence[Any], indices: Sequence[Any]) -> bool:
    """Every constant of a traced likelihood is a scalar, an integer or boolean array, or one of the model's index arrays."""
    known = {np.asarray(index).tobytes() for index in indices}
    for constant in constants:
        value = np.asarray(constant)
        if value.size > 1 and np.issubdtype(value.dtype, np.floating) and value.tobytes() not in known:
            return False
    return True


class Likelihood:
    """``-2 ln L`` of a pyhf model (of any backend) for one dataset, its exact gradient and Hessian.

    MINUIT asks for the value and the gradient at the same point in two calls;
    one evaluation serves both. :attr:`evaluations` counts the evaluations.
    """

    def __init__(self, model: Any, data: Any) -> None:
        import jax.numpy as jnp

        self.model = model
        self.data = jnp.asarray(data, dtype=jnp.float64)
        self._functions = _compiled(model)
        self._point: bytes | None = None
        self._value = 0.0
        self._gradient = np.zeros(0)
        self.evaluations = 0

    def another(self) -> Likelihood:
        """The same likelihood with its own evaluation state (for another thread): no compilation."""
        other = copy.copy(self)
        other._point, other.evaluations = None, 0
        return other

    def _evaluate(self, pars: np.ndarray) -> None:
        point = np.asarray(pars, dtype=np.float64)
        key = point.tobytes()
        if key != self._point:
            value, gradient = self._functions.value_and_gradient(point, self.data)
            self._value, self._gradient, self._point = float(value), np.asarray(gradient, dtype=np.float64), key
            self.evaluations += 1

    def value(self, pars: np.ndarray) -> float:
        self._evaluate(pars)
        return self._value

    def gradient(self, pars: np.ndarray) -> np.ndarray:
        self._evaluate(pars)
        return self._gradient

    def hessian(self, pars: np.ndarray, free: np.ndarray) -> np.ndarray:
        """The Hessian in the parameters ``free`` (indices)."""
        full = np.asarray(self._functions.hessian(np.asarray(pars, dtype=np.float64), self.data), dtype=np.float64)
        return full[np.ix_(free, free)]


@dataclass(frozen=True)
class Minimum:
    """A minimum: parameter values, ``-2 ln L``, its EDM, and how it was found."""

    values: np.ndarray
    twice_nll: float
    valid: bool
    edm: float
    #: MINUIT's strategy; ``None`` for Newton steps alone (:func:`_newton`)
    strategy: int | None
    evaluations: int
    minuit: Any = None

    @property
    def converged(self) -> bool:
        return self.valid and bool(np.isfinite(self.twice_nll)) and self.edm < EDM_GOAL


def minimize(
    likelihood: Likelihood,
    init: Sequence[float],
    fixed: Sequence[bool],
    bounds: Sequence[tuple[float, float]],
    strategy: int,
    steps: np.ndarray | None = None,
    calls: int = FIT_CALLS,
) -> Minimum:
    """One MIGRAD minimisation with the exact gradient, first steps ``steps`` if given, at most ``calls`` calls.

    MINUIT's warnings go to standard output (see :mod:`agcframe.stats.fitlog`).
    """
    import iminuit

    before = likelihood.evaluations
    minuit = iminuit.Minuit(likelihood.value, np.asarray(init, dtype=np.float64), grad=likelihood.gradient)
    if steps is not None:
        minuit.errors = np.where(steps > 0, steps, minuit.errors)
    minuit.errordef = iminuit.Minuit.LEAST_SQUARES  # -2 ln L: one unit is one standard deviation
    minuit.fixed = list(fixed)
    minuit.limits = [tuple(bound) for bound in bounds]
    minuit.strategy = strategy
    minuit.tol = TOLERANCE
    minuit.print_level = 1
    minuit.migrad(ncall=calls)
    return Minimum(
        values=np.asarray(minuit.values, dtype=np.float64),
        twice_nll=float(minuit.fval),
        valid=bool(minuit.valid),
        edm=float(minuit.fmin.edm),
        strategy=strategy,
        evaluations=likelihood.evaluations - before,
        minuit=minuit,
    )


def _bound_arrays(bounds: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper parameter bounds as two arrays."""
    return tuple(np.array([bound[side] for bound in bounds], dtype=np.float64) for side in (0, 1))  # type: ignore[return-value]


def _newton(
    likelihood: Likelihood, start: np.ndarray, free: np.ndarray, bounds: Sequence[tuple[float, float]]
) -> tuple[Minimum, np.ndarray] | None:
    """The minimum near ``start`` by Newton steps with the exact Hessian, and the Hessian there.

    Each step solves with the Hessian at the current point and is shortened
    until ``-2 ln L`` decreases; the steps end when the EDM (computed with the
    exact gradient and Hessian) is far below :data:`EDM_GOAL` or no shorter
    step decreases ``-2 ln L``. ``None`` where the Hessian is not
    positive-definite on the way or the EDM stays above the goal.
    """
    low, high = _bound_arrays(bounds)
    before = likelihood.evaluations
    values, value = np.asarray(start, dtype=np.float64).copy(), likelihood.value(start)
    for _ in range(NEWTON_STEPS):
        hessian = likelihood.hessian(values, free)
        gradient = likelihood.gradient(values)[free]
        try:
            np.linalg.cholesky(hessian)
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return None
        edm = float(gradient @ step) / 2
        if not np.isfinite(edm):
            return None
        if edm < EDM_GOAL * NEWTON_EDM:
            break
        for fraction in NEWTON_BACKTRACKING:
            candidate = values.copy()
            candidate[free] = np.clip(values[free] - fraction * step, low[free], high[free])
            candidate_value = likelihood.value(candidate)
            if candidate_value < value:
                values, value = candidate, candidate_value
                break
        else:
            break  # at the floor of rounding: no step decreases -2 ln L
    else:
        hessian = likelihood.hessian(values, free)
        gradient = likelihood.gradient(values)[free]
        edm = float(gradient @ np.linalg.solve(hessian, gradient)) / 2
    if not edm < EDM_GOAL:
        return None
    return Minimum(values, value, True, edm, None, likelihood.evaluations - before), hessian


def _damped_newton(likelihood: Likelihood, start: np.ndarray, free: np.ndarray, bounds: Sequence[tuple[float, float]]) -> Minimum | None:
    """The minimum reached from a far ``start`` by Levenberg-Marquardt steps with the exact Hessian.

    Each step solves with the Hessian plus a damping times its diagonal (a
    short gradient step where the damping is large, a Newton step where it is
    small); a step that lowers ``-2 ln L`` is taken and the damping falls, one
    that does not is tried again with more. The steps end where the EDM
    (exact gradient and Hessian) is far below :data:`EDM_GOAL`; ``None`` where
    it stays above the goal.
    """
    low, high = _bound_arrays(bounds)
    before = likelihood.evaluations
    values, value = np.asarray(start, dtype=np.float64).copy(), likelihood.value(start)
    damping = DAMPING_START
    edm = np.inf
    for _ in range(DAMPED_STEPS):
        hessian = likelihood.hessian(values, free)
        gradient = likelihood.gradient(values)[free]
        edm = _edm(hessian, gradient)
        if edm < EDM_GOAL * NEWTON_EDM:
            break
        scale = np.diag(np.maximum(np.abs(np.diag(hessian)), np.finfo(np.float64).tiny))
        while damping < DAMPING_MOST:
            try:
                np.linalg.cholesky(hessian + damping * scale)
                step = np.linalg.solve(hessian + damping * scale, gradient)
            except np.linalg.LinAlgError:
                damping *= DAMPING_FACTOR
                continue
            candidate = values.copy()
            candidate[free] = np.clip(values[free] - step, low[free], high[free])
            candidate_value = likelihood.value(candidate)
            if candidate_value < value:
                values, value = candidate, candidate_value
                damping /= DAMPING_FACTOR
                break
            damping *= DAMPING_FACTOR
        else:
            edm = _edm(likelihood.hessian(values, free), likelihood.gradient(values)[free])
            break  # at the floor of rounding: no step decreases -2 ln L
    if not edm < EDM_GOAL:
        return None
    return Minimum(values, value, True, edm, None, likelihood.evaluations - before)


def _edm(hessian: np.ndarray, gradient: np.ndarray) -> float:
    """The estimated distance to the minimum, ``g^T H^-1 g / 2``; infinite where the Hessian is not positive-definite."""
    try:
        np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return np.inf
    edm = float(gradient @ np.linalg.solve(hessian, gradient)) / 2
    return edm if np.isfinite(edm) else np.inf


def _checked(
    likelihood: Likelihood,
    starts: Sequence[Sequence[float]],
    fixed: Sequence[bool],
    bounds: Sequence[tuple[float, float]],
    strategies: Sequence[int],
    steps: np.ndarray | None = None,
    calls: int = FIT_CALLS,
    *,
    confirmed: bool = True,
) -> tuple[Minimum, np.ndarray | None]:
    """The first minimum over starts x strategies that MIGRAD finds valid and Newton steps confirm.

    Returns the minimum with the Hessian of the free parameters there. With
    ``confirmed``, a valid MIGRAD minimum that Newton steps cannot confirm
    (the Hessian is not positive-definite, or the EDM stays above the goal) is
    no minimum: on the embedded dataset strategy 0 stops at such a point, 0.16
    above the global minimum, and the next strategy is tried; if none is
    confirmed, the first valid unconfirmed MIGRAD minimum is returned. Without
    ``confirmed`` (impact refits, where Newton steps have already failed from
    the predicted start) MIGRAD's valid minimum is taken as it is. Otherwise
    the last attempt (not converged), with ``None``.
    """
    free = np.flatnonzero(~np.asarray(fixed, dtype=bool))
    attempt: Minimum | None = None
    unconfirmed: Minimum | None = None
    for start in starts:
        for strategy in strategies:
            attempt = minimize(likelihood, start, fixed, bounds, strategy, steps, calls)
            if attempt.converged:
                polished = _newton(likelihood, attempt.values, free, bounds)
                if polished is not None:
                    minimum, hessian = polished
                    return replace(attempt, values=minimum.values, twice_nll=minimum.twice_nll, edm=minimum.edm), hessian
                if not confirmed:
                    return attempt, None
                attempts_log.info("MINUIT strategy %d: valid, but Newton steps do not confirm a minimum there", strategy)
                unconfirmed = unconfirmed or attempt
                continue
            attempts_log.info("MINUIT strategy %d did not converge (valid %s, EDM %.3g)", strategy, attempt.valid, attempt.edm)
    assert attempt is not None
    return unconfirmed or attempt, None


def _bounded(likelihood: Likelihood, start: np.ndarray, fixed: Sequence[bool], bounds: Sequence[tuple[float, float]]) -> Minimum:
    """SLSQP with the exact gradient: the fits of pyhf's hypothesis tests.

    At small POI values of the AGC model nuisance parameters run to their
    bounds, where MIGRAD's variable metric stalls for thousands of calls and
    SLSQP, which treats bounds as constraints, converges (pyhf's default
    optimizer). Converged means SLSQP's own success (an EDM is meaningless at
    a bound).
    """
    from scipy.optimize import minimize as scipy_minimize

    free = np.flatnonzero(~np.asarray(fixed, dtype=bool))
    before = likelihood.evaluations
    values = np.asarray(start, dtype=np.float64).copy()

    def on_free(x: np.ndarray) -> np.ndarray:
        values[free] = x
        return values

    result = scipy_minimize(
        lambda x: likelihood.value(on_free(x)),
        values[free],
        jac=lambda x: likelihood.gradient(on_free(x))[free],
        method="SLSQP",
        bounds=[bounds[index] for index in free],
        options={"maxiter": 100_000, "ftol": 1e-10},
    )
    values[free] = result.x
    edm = 0.0 if result.success else np.inf
    return Minimum(values.copy(), likelihood.value(values), bool(result.success), edm, None, likelihood.evaluations - before)


def _profiled(likelihood: Likelihood, start: np.ndarray, fixed: Sequence[bool], bounds: Sequence[tuple[float, float]]) -> Minimum:
    """A hypothesis-test fit: SLSQP (:func:`_bounded`), then MIGRAD (:func:`_checked`) where it fails."""
    minimum = _bounded(likelihood, start, fixed, bounds)
    if not minimum.converged:
        minimum, _ = _checked(likelihood, [start], fixed, bounds, FIT_STRATEGIES)
    return minimum


@dataclass(frozen=True)
class _Fit:
    minimum: Minimum
    errors: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    status: FitStatus


def _global_fit(likelihood: Likelihood, starts: Sequence[Sequence[float]]) -> _Fit:
    """The unconditional fit (:func:`_checked`) and the covariance: twice the inverse Hessian.

    Where the Hessian is not positive-definite, MINUIT's HESSE gives the
    covariance and says how good it is.
    """
    model = likelihood.model
    fixed = model.config.suggested_fixed()
    free = np.flatnonzero(~np.asarray(fixed, dtype=bool))
    minimum, hessian = _checked(likelihood, starts, fixed, model.config.suggested_bounds(), FIT_STRATEGIES)
    n = len(minimum.values)
    covariance = np.zeros((n, n))
    if hessian is not None:
        covariance[np.ix_(free, free)] = np.linalg.inv(hessian / 2)  # -2 ln L: covariance = 2 H^-1
        quality = "accurate"
    else:
        minuit = minimum.minuit
        minuit.hesse()
        if minuit.covariance is None:
            quality = "not computed"
        else:
            covariance = np.asarray(minuit.covariance, dtype=np.float64)
            accurate = "accurate" if minuit.fmin.has_accurate_covar else "approximate"
            quality = "forced positive-definite" if minuit.fmin.has_made_posdef_covar else accurate
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.nan_to_num(covariance / np.outer(errors, errors))
    np.fill_diagonal(correlation, 1.0)
    status = FitStatus(
        valid=minimum.converged,
        edm=minimum.edm,
        covariance=quality,
        calls=likelihood.evaluations,
        strategy=minimum.strategy or 0,
    )
    return _Fit(minimum, errors, covariance, correlation, status)


def fit_model(model: Any, data: Any, options: FitOptions, *, workspace: dict[str, Any] | None = None) -> FitResult:
    """The maximum-likelihood fit of ``model`` to ``data`` and what ``options`` ask for besides.

    ``model`` may be built with any pyhf backend; its likelihood runs compiled
    with JAX (:func:`_compiled`). With ``options.ranking`` the impacts of every
    free nuisance parameter on the POI; a refit that finds a lower minimum than
    the global fit makes the global fit restart from there (at most
    :data:`GLOBAL_REFITS` times).
    """
    configure_jax()
    likelihood = Likelihood(model, data)
    fit = _global_fit(likelihood, [model.config.suggested_init()])
    if options.on_fit is not None:
        options.on_fit(_result(model, fit, workspace))
    ranking: tuple[Impact, ...] | None = None
    if options.ranking:
        for _ in range(GLOBAL_REFITS + 1):
            found = impacts(likelihood, fit, threads=min(REFIT_THREADS, options.cores or REFIT_THREADS))
            if isinstance(found, tuple):
                ranking = found
                break
            log.warning("an impact refit found a lower minimum than the global fit; refitting the global fit from there")
            fit = _global_fit(likelihood, [found, model.config.suggested_init()])
        else:
            raise InputError("the global fit keeps landing above minima its impact refits find; the likelihood has several minima")
    poi_index = model.config.poi_index
    found_significance = significance(likelihood, fit.minimum) if options.significance else None
    limit = upper_limit(model, data, float(fit.minimum.values[poi_index]), float(fit.errors[poi_index])) if options.limit else None
    return _result(model, fit, workspace, significance=found_significance, limit=limit, ranking=ranking)


def _result(model: Any, fit: _Fit, workspace: dict[str, Any] | None, **found: Any) -> FitResult:
    """The :class:`FitResult` of ``fit``, with what else was ``found`` (significance, limit, ranking)."""
    return FitResult(
        poi=model.config.par_names[model.config.poi_index],
        parameters=tuple(
            FitParameter(name, float(value), float(error))
            for name, value, error in zip(model.config.par_names, fit.minimum.values, fit.errors)
        ),
        correlation=tuple(tuple(float(c) for c in row) for row in fit.correlation),
        minimum_nll=fit.minimum.twice_nll / 2,
        workspace=workspace,
        status=fit.status,
        **found,
    )


def impacts(likelihood: Likelihood, fit: _Fit, *, threads: int = REFIT_THREADS) -> tuple[Impact, ...] | np.ndarray:
    """Impacts on the POI of every free nuisance parameter, pre-fit and post-fit, up and down.

    Each refit holds one parameter at its best-fit value shifted by its pre-fit
    (constraint width; none for unconstrained parameters) or post-fit
    uncertainty and keeps the lowest minimum of its starts (:func:`_refit`); a
    refit none of whose starts converges has the impact ``None`` and makes the
    parameter invalid. Shifts whose starts ended in different minima are
    listed in the impact's ``multimodal``.

    Returns the impacts, or the parameter values of a refit whose ``-2 ln L``
    lies below the global minimum by more than :data:`TWICE_NLL_TOLERANCE`
    (the first such refit in the parameters' order).

    The refits are independent: ``threads`` threads run them, each
    with its own :class:`Likelihood` on the same compiled code (which, like
    numpy's linear algebra, releases the GIL), and their results are taken in
    order, so the impacts are those of one thread.
    """
    import cabinetry

    model = likelihood.model
    best = fit.minimum.values
    poi_index = model.config.poi_index
    fixed = np.asarray(model.config.suggested_fixed(), dtype=bool)
    bounds = model.config.suggested_bounds()
    prefit = cabinetry.model_utils.prefit_uncertainties(model)
    ranked = [index for index in range(len(best)) if index != poi_index and not fixed[index]]
    shifts = {
        index: dict(zip(IMPACT_SHIFTS, (prefit[index] or None, -prefit[index] or None, fit.errors[index], -fit.errors[index])))
        for index in ranked
    }
    own = threading.local()

    def refitted(index: int, shift: float | None) -> tuple[Minimum | None, bool]:
        if shift is None:
            return None, False
        if not hasattr(own, "likelihood"):
            own.likelihood = likelihood.another()
        return _refit(own.likelihood, fit, index, float(np.clip(best[index] + shift, *bounds[index])))

    found: list[Impact] = []
    with progress_bar("impacts", total=4 * len(ranked), unit="refits") as advance, ThreadPoolExecutor(threads) as pool:
        refits = iter([pool.submit(refitted, index, shift) for index in ranked for shift in shifts[index].values()])
        for index in ranked:
            deltas: list[float | None] = []
            multimodal: list[str] = []
            for key, shift in shifts[index].items():
                refit, several = next(refits).result()
                advance()
                if refit is not None and refit.twice_nll < fit.minimum.twice_nll - TWICE_NLL_TOLERANCE:
                    pool.shutdown(cancel_futures=True)
                    return refit.values
                if shift is not None and refit is None:
                    log.warning("impact refit of %s at %+.3g did not converge: left out", model.config.par_names[index], shift)
                deltas.append(None if refit is None else float(refit.values[poi_index] - best[poi_index]))
                if several:
                    multimodal.append(key)
            valid = all(delta is not None or shift is None for delta, shift in zip(deltas, shifts[index].values()))
            found.append(Impact(model.config.par_names[index], *deltas, valid=valid, multimodal=tuple(multimodal)))
    return tuple(found)


def _refit(likelihood: Likelihood, fit: _Fit, index: int, value: float) -> tuple[Minimum | None, bool]:
    """The lowest conditional minimum with parameter ``index`` held at ``value``, and whether its starts found several.

    The first start is where the global covariance predicts the minimum
    (Newton steps; damped Newton steps where they do not converge, and MIGRAD
    from there and from the initial values where these do not), the second,
    where the first rose more than :data:`SECOND_START_RISE` or failed, the
    model's initial values (damped Newton steps). Where the two end more than :data:`MULTIMODAL_TOLERANCE`
    apart in ``-2 ln L``, the best fit is a third start. ``None`` where no
    start converges.
    """
    model = likelihood.model
    best = fit.minimum.values
    fixed = np.asarray(model.config.suggested_fixed(), dtype=bool)
    fixed[index] = True
    free = np.flatnonzero(~fixed)
    bounds = model.config.suggested_bounds()
    low, high = _bound_arrays(bounds)

    def held(start: np.ndarray) -> np.ndarray:
        start = np.clip(start, low, high)
        start[index] = value
        return start

    predicted = held(best + fit.covariance[index] / fit.covariance[index, index] * (value - best[index]))
    initial = held(np.asarray(model.config.suggested_init(), dtype=np.float64))
    newton = _newton(likelihood, predicted, free, bounds)
    first: Minimum | None = newton[0] if newton is not None else _damped_newton(likelihood, predicted, free, bounds)
    if first is None:
        first, _ = _checked(likelihood, [predicted, initial], fixed, bounds, REFIT_STRATEGIES, fit.errors, REFIT_CALLS, confirmed=False)
    needs_second = first is None or not first.converged or first.twice_nll > fit.minimum.twice_nll + SECOND_START_RISE
    second = _damped_newton(likelihood, initial, free, bounds) if needs_second else None
    minima = [minimum for minimum in (first, second) if minimum is not None and minimum.converged]
    several = len(minima) == 2 and abs(minima[0].twice_nll - minima[1].twice_nll) > MULTIMODAL_TOLERANCE
    if several:
        from_best = _damped_newton(likelihood, held(best), free, bounds)
        if from_best is not None:
            minima.append(from_best)
    return min(minima, key=lambda minimum: minimum.twice_nll, default=None), several


_GRADIENT_OPTIMIZER: type | None = None


def gradient_optimizer() -> Any:
    """A pyhf optimizer minimising ``twice_nll`` with :class:`Likelihood`: SLSQP (:func:`_bounded`), then MIGRAD.

    pyhf's hypothesis tests (``hypotest``) call it for every fit; it counts them
    on the current progress bar. (A class made at first use, since pyhf is
    imported only when a fit runs.)
    """
    global _GRADIENT_OPTIMIZER
    if _GRADIENT_OPTIMIZER is None:
        import pyhf
        from scipy.optimize import OptimizeResult

        class GradientOptimizer(pyhf.optimize.scipy_optimizer):  # type: ignore[misc, name-defined]
            def minimize(
                self,
                objective: Any,
                data: Any,
                pdf: Any,
                init_pars: Any,
                par_bounds: Any,
                fixed_vals: Any = None,
                return_fitted_val: bool = False,
                **kwargs: Any,
            ) -> Any:
                tensorlib, _ = pyhf.get_backend()
                likelihood = Likelihood(pdf, data)
                fixed = [False] * len(init_pars)
                start = np.asarray(init_pars, dtype=np.float64)
                for index, value in fixed_vals or []:
                    fixed[index], start[index] = True, value
                minimum = _profiled(likelihood, start, fixed, par_bounds)
                advance_current()
                if not minimum.converged:
                    raise pyhf.exceptions.FailedMinimization(
                        OptimizeResult(success=False, message=f"MINUIT did not converge (EDM {minimum.edm:.3g})", x=minimum.values)
                    )
                values = tensorlib.astensor(minimum.values)
                return (values, tensorlib.astensor(minimum.twice_nll)) if return_fitted_val else values

        _GRADIENT_OPTIMIZER = GradientOptimizer
    return _GRADIENT_OPTIMIZER()


def significance(likelihood: Likelihood, best: Minimum) -> Significance:
    """Discovery significance of the POI: the asymptotic ``q0`` test, as pyhf's ``hypotest(0, test_stat="q0")``.

    ``q0`` is ``-2 ln L`` at POI = 0 (nuisance parameters profiled) minus at
    the best fit ``best``, zero where the fitted POI is negative; the observed
    p-value is ``1 - Phi(sqrt(q0))``. The expected one comes from Asimov data
    at POI = 1 with the nuisance parameters profiled on the data (pyhf's
    choice). Four fits with the compiled likelihood; pyhf's ``hypotest``
    under JAX spends most of its time in eagerly dispatched array operations.
    """
    from scipy.stats import norm

    model = likelihood.model
    poi = model.config.poi_index
    fixed = np.asarray(model.config.suggested_fixed(), dtype=bool)
    bounds = model.config.suggested_bounds()
    with progress_bar("significance", total=4, unit="fits") as advance:

        def profiled(target: Likelihood, value: float) -> Minimum:
            conditional = fixed.copy()
            conditional[poi] = True
            initial = np.asarray(model.config.suggested_init(), dtype=np.float64)  # pyhf's start
            initial[poi] = value
            found = _profiled(target, initial, conditional, bounds)
            advance()
            if not found.converged:
                raise InputError(f"the fit with {model.config.par_names[poi]} = {value:g} did not converge; no significance")
            return found

        def q0(target: Likelihood, unconditional: Minimum) -> float:
            if unconditional.values[poi] < 0:
                return 0.0
            return max(profiled(target, 0.0).twice_nll - unconditional.twice_nll, 0.0)

        observed = q0(likelihood, best)
        at_one = profiled(likelihood, 1.0)
        asimov = Likelihood(model, np.asarray(model.expected_data(at_one.values), dtype=np.float64))
        asimov_best, _ = _checked(asimov, [at_one.values], fixed, bounds, FIT_STRATEGIES)
        advance()
        expected = q0(asimov, asimov_best)
    observed_p, expected_p = float(norm.sf(np.sqrt(observed))), float(norm.sf(np.sqrt(expected)))
    return Significance(observed_p, float(np.sqrt(observed)), expected_p, float(np.sqrt(expected)))


def upper_limit(model: Any, data: Any, poi_value: float, poi_error: float, level: float = LIMIT_LEVEL) -> UpperLimit:
    """Observed and expected CLs upper limits on the POI (asymptotic ``qtilde``), by TOMS 748 root finding.

    pyhf's ``toms748_scan`` written with float POI values: under pyhf's JAX
    backend its hypothesis tests return JAX arrays, which scipy's root finder
    turns into POI values that cannot key pyhf's cache. The roots are bracketed
    between :data:`LIMIT_LOWEST_POI` and the fitted POI plus five standard
    deviations, then between the closest tested values on either side, as pyhf
    does. The hypothesis tests' fits run with :func:`gradient_optimizer`.
    """
    import pyhf
    from scipy.optimize import toms748

    cache: dict[float, np.ndarray] = {}

    def cls_minus_level(poi: float, band: int) -> float:
        """CLs - level at ``poi``: observed (band 0) or expected band 1..5 (-2 sigma .. +2 sigma)."""
        poi = float(poi)
        if poi not in cache:
            observed, expected = pyhf.infer.hypotest(poi, data, model, test_stat="qtilde", return_expected_set=True)
            cache[poi] = np.array([float(observed), *(float(value) for value in expected)])
            advance_current()
        return float(cache[poi][band] - level)

    def bracket(band: int) -> tuple[float, float]:
        tested = np.array(sorted(cache))
        values = np.array([cache[poi][band] - level for poi in tested])
        above, below = values >= 0, values < 0
        return float(tested[above][np.argmin(values[above])]), float(tested[below][np.argmax(values[below])])

    lowest, highest = LIMIT_LOWEST_POI, max(poi_value, 0.0) + 5 * poi_error
    with gradient_fits(), progress_bar("limit scan", total=None, unit="hypothesis tests"):
        cls_minus_level(lowest, 0)
        cls_minus_level(highest, 0)
        if np.any(cache[lowest] < level) or np.any(cache[highest] > level):
            raise InputError(
                f"no {1 - level:.0%} CL upper limit on {model.config.poi_name} between {lowest:g} and {highest:.3g} "
                "(the CLs curves do not cross the level there); the fit may not have converged"
            )
        limits = [toms748(cls_minus_level, *bracket(band), args=(band,), k=2, xtol=1e-6, rtol=1e-3) for band in range(6)]
    return UpperLimit(level, float(limits[0]), tuple(float(limit) for limit in limits[1:]))  # type: ignore[arg-type]
