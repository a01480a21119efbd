"""Plugin specs (what hooks return) and the contracts their backends fulfil.

A hook returns one or more specs; each names a backend class. The core picks
one spec per slot by name and instantiates its backend with the values of the
options the spec declares (keyword arguments; unset options are not passed).
This is conda's ``CondaSolver`` pattern: plugins declare, the core chooses.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from agcframe.data import Dataset, Fill, FitOptions, FitResult, WorkItem
from agcframe.errors import ConfigError, missing_extra
from agcframe.plugin.analysis import Analysis

__all__ = [
    "Accumulator",
    "Analysis",
    "AnalysisParameter",
    "AnalysisSpec",
    "DeferredBackend",
    "Executor",
    "ExecutorSpec",
    "Histogrammer",
    "HistogrammerSpec",
    "Inference",
    "InferenceSpec",
    "PluginOption",
    "PluginSpec",
    "Processor",
    "ProcessorSpec",
    "Source",
    "SourceSpec",
]

Partial = TypeVar("Partial")
Output = TypeVar("Output", contravariant=True)
Item = TypeVar("Item")
Result = TypeVar("Result")
Backend = TypeVar("Backend")


@runtime_checkable
class Source(Protocol):
    """Turns datasets into work items the processor can open.

    A source that moves data (ServiceX) may also define ``delivery_metrics()
    -> dict``; the run writes what it returns into ``metrics.json`` as ``source``.
    A source whose ``plans_files_apart`` attribute is true plans each file on its
    own (``plan`` of one dataset with one file gives that file's items) and is
    picklable: the core then plans the files on the executor's workers.
    """

    def plan(self, datasets: Sequence[Dataset], chunksize: int) -> list[WorkItem]:
        """Split every file of ``datasets`` into entry ranges of at most ``chunksize``.

        Items come out in a deterministic order: dataset order, then file order,
        then entry order. Raises :class:`agcframe.errors.InputError` naming the
        file when a file cannot be opened or has no ``Events`` tree.
        """
        ...


@runtime_checkable
class Processor(Protocol):
    """Runs an analysis on one work item, in two phases the core times apart.

    Its spec lists the analyses it implements (:attr:`PluginSpec.analyses`); the
    core starts it with ``parameters=``, the run's values of that analysis'
    parameters (all of them, defaults filled in).
    """

    def read(self, item: WorkItem) -> Any:
        """Read the columns the analysis of ``item`` needs and return them for :meth:`compute`.

        All of the processor's I/O happens here: opening, reading, decompressing
        and interpreting, and nothing else. Files opened through
        :func:`agcframe.io.inputs.open_tree` have their bytes counted in
        ``metrics.json``. Raises :class:`agcframe.errors.InputError` naming the
        file for a missing branch or an unreadable file.
        """
        ...

    def compute(self, item: WorkItem, data: Any, seed: int) -> list[Fill]:
        """Select objects and events of ``item`` from ``data`` (what :meth:`read` returned) and return the fills.

        Returns one :class:`Fill` per (region, variation) that the item's
        sample contributes, with empty arrays when no event passes; a backend
        started with ``ml=True`` adds the ML features' fills (a region per feature). ``seed``
        keys the per-jet resolution smearing; the result must not depend on
        how a file is chunked.
        """
        ...


@runtime_checkable
class Accumulator(Protocol[Output, Partial]):
    """Turns what a processor returns for one work item into a partial result, and merges partial results.

    The core pairs a processor with an accumulator in its chunk task: a
    :class:`Processor`'s fills go to the run's :class:`Histogrammer`; the output
    of a coffea ``ProcessorABC`` (``agcframe run --processor``) goes to coffea's
    ``accumulate``. Partial results are merged in item order, whatever the executor.
    """

    def fill(self, output: Output) -> Partial:
        """The partial result of one work item's ``output``."""
        ...

    def merge(self, left: Partial, right: Partial) -> Partial:
        """Combine two partial results of consecutive items (``left`` first)."""
        ...


@runtime_checkable
class Histogrammer(Accumulator[Iterable[Fill], Partial], Protocol[Partial]):
    """Accumulates fills into histograms and writes them."""

    def fill(self, fills: Iterable[Fill]) -> Partial:
        """Accumulate ``fills`` of one work item into a new partial result."""
        ...

    def merge(self, left: Partial, right: Partial) -> Partial:
        """Combine two partial results; must be exact and order-independent."""
        ...

    def yields(self, result: Partial) -> dict[str, float]:
        """Sum of weights (with flow) per histogram name of a merged result."""
        ...

    def write(self, result: Partial, path: Path, regions: Sequence[str]) -> list[str]:
        """Write the histograms of ``regions`` to the ROOT file ``path``; return the names written.

        ``regions`` are the analysis' :attr:`~Analysis.regions` (``histograms.root``)
        or :attr:`~Analysis.ml_regions` (``histograms_ml.root``); each region's
        binning, title and bin offset is the analysis' :meth:`~Analysis.binning`
        (the core starts a histogrammer with ``analysis=``, the run's :class:`Analysis`).
        """
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs ``task`` on every item, where and how it likes.

    The items are work items (processing) or ``(dataset, file index)`` pairs
    (planning). An executor may also define ``session(*, workers)``, a context
    manager inside which its ``run`` calls share one set of workers: the core
    plans and processes a run inside one session. An executor that knows which
    items one process runs next may tell a task with a ``prefetch`` method
    about its next ``task.read_ahead`` items before running the current one,
    and call ``prefetch(None)`` when it stops (``iterative`` does; the chunk
    task then reads chunks of remote files ahead).
    """

    def run(self, task: Callable[[Item], Result], items: Sequence[Item], *, workers: int) -> Iterator[tuple[int, Result]]:
        """Apply ``task`` to each of ``items``; yield ``(position in items, result)`` as each finishes.

        Results may come in any order; the core merges them in item order, so
        the outcome does not depend on scheduling. ``task`` and its results
        are picklable. An exception of ``task`` propagates out of the
        iterator (the core has already retried it). Closing the iterator
        early must release the workers.
        """
        ...


@runtime_checkable
class Inference(Protocol):
    """Builds the statistical model from ``histograms.root`` and fits it.

    An inference plugin may also define ``ml_workspace(histograms, workdir)
    -> dict``: the pyhf workspace of the ML validation model (channels
    ``Feature0``, 1, 2, 4, 5, 6, 7 of ``histograms_ml.root``, the main model's
    samples and systematics); ``agcframe run --ml`` then draws those
    observables with the main fit's parameters.
    """

    def fit(self, histograms: Path, workdir: Path, options: FitOptions) -> FitResult:
        """Fit the pseudodata in ``histograms`` (Asimov data of the model if ``options.asimov``).

        Returns the fit result with the fitted pyhf workspace, and the discovery
        significance if ``options.significance``; may write extra files into
        ``workdir``, which become outputs of the run. A plugin that computes more
        than the fit (ranking, significance, limits) calls ``options.on_fit``, if
        given, with the fit as soon as it is known: the core then prints it and
        draws its figures while the plugin goes on.
        """
        ...


@dataclass(frozen=True)
class PluginOption:
    """An option of a plugin: a keyword argument of its backend.

    The CLI offers it as ``--<plugin>-<name>`` (underscores become dashes),
    a run configuration as ``plugin_options: {<plugin>: {<name>: value}}``.
    """

    name: str
    help: str
    type: type = str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"plugin option name {self.name!r} must be an identifier")
        if self.type not in (str, int, float, bool, Path):
            raise ValueError(f"plugin option {self.name!r} has type {self.type!r}; use str, int, float, bool or Path")

    def flag(self, plugin: str) -> str:
        """The command-line flag of this option for ``plugin``."""
        return f"--{plugin}-{self.name}".replace("_", "-")


@dataclass(frozen=True)
class AnalysisParameter:
    """A named parameter of an analysis (a cut), with its default and valid range.

    Its type is the default's: ``bool``, ``int`` or ``float``. A run sets it with
    ``--set name=value``, ``parameters: {name: value}`` in a run configuration
    or ``RunConfig(parameters=...)``; ``low``/``high`` bound it (inclusive).
    """

    name: str
    default: bool | int | float
    help: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be an identifier")
        if type(self.default) not in (bool, int, float):
            raise ValueError(f"parameter {self.name!r} has a default of type {type(self.default).__name__}; use bool, int or float")

    @property
    def type(self) -> type:
        return type(self.default)

    def convert(self, value: Any, analysis: str) -> bool | int | float:
        """``value`` (a YAML scalar, or the text of ``--set``) as the parameter's type; :class:`ConfigError` naming it otherwise."""
        where = f"parameter {self.name!r} of analysis '{analysis}'"
        converted = _scalar(value, self.type)
        if converted is None:
            raise ConfigError(f"{where} must be {_TYPE_WORDS[self.type]}, not {value!r}")
        if (self.low is not None and converted < self.low) or (self.high is not None and converted > self.high):
            raise ConfigError(f"{where} must be {self.range_text()}, not {value!r}")
        return converted

    def range_text(self) -> str:
        """The valid range in words: ``in [0, 1]``, ``at least 0``, ``at most 5``; empty where any value goes."""
        if self.low is not None and self.high is not None:
            return f"in [{self.low:g}, {self.high:g}]"
        return f"at least {self.low:g}" if self.low is not None else f"at most {self.high:g}" if self.high is not None else ""


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number"}


def _scalar(value: Any, kind: type) -> bool | int | float | None:
    """``value`` as ``kind`` if it is one (text from ``--set`` is parsed), else ``None``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if kind is bool:
            return {"true": True, "false": False}.get(text)
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            return None
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind is int:
        return value if isinstance(value, int) else None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class DeferredBackend:
    """A backend named ``"module:attribute"``, imported when the core first starts it.

    A spec's ``backend`` may be one of these instead of the class itself, so that
    declaring a plugin costs no import of its libraries: ``agcframe plugins``,
    ``--help`` and runs that use other plugins never import servicex, coffea or
    cabinetry. Every built-in plugin declares its backend this way.
    """

    target: str
    #: the agcframe extra that installs the backend's libraries (``pip install 'agcframe[extra]'``):
    #: without it, starting the backend is one line saying what to install
    extra: str = ""

    def __post_init__(self) -> None:
        module, _, attribute = self.target.partition(":")
        if not module or not attribute.isidentifier():
            raise ValueError(f"backend {self.target!r} must be 'package.module:Attribute'")

    def __call__(self, **options: Any) -> Any:
        module, _, attribute = self.target.partition(":")
        try:
            backend_module = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not self.extra or not exc.name:
                raise
            raise missing_extra(exc.name.partition(".")[0], self.extra, f"backend {self.target}") from None
        return getattr(backend_module, attribute)(**options)


@dataclass(frozen=True)
class PluginSpec(Generic[Backend]):
    """A named backend for one slot, as returned by an ``agcframe_*`` hook."""

    slot: ClassVar[str]
    name: str
    backend: Callable[..., Backend]
    description: str = ""
    options: tuple[PluginOption, ...] = ()
    #: the analyses an analysis-specific plugin (a processor) implements; the core
    #: refuses another and starts its backend with ``parameters=``
    analyses: tuple[str, ...] = ()
    #: a generic plugin that reads the run's analysis: the core starts its backend with
    #: ``analysis=`` (the :class:`~agcframe.plugin.analysis.Analysis`) and ``parameters=``
    takes_analysis: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "_").isidentifier():
            raise ValueError(f"plugin name {self.name!r} must be a non-empty identifier")


@dataclass(frozen=True)
class AnalysisSpec(PluginSpec[Analysis]):
    """An analysis (``--analysis NAME``): its backend is the :class:`Analysis` definition, started without arguments."""

    slot: ClassVar[str] = "analysis"
    parameters: tuple[AnalysisParameter, ...] = ()

    def resolve(self, values: Mapping[str, Any]) -> dict[str, bool | int | float]:
        """Every parameter's value: ``values`` converted and checked, defaults for the rest.

        Raises :class:`ConfigError` for an unknown name (listing the valid
        ones) or a value of the wrong type or out of range (naming the parameter).
        """
        declared = {parameter.name: parameter for parameter in self.parameters}
        for name in values:
            if name not in declared:
                hint = difflib.get_close_matches(name, declared, n=1)
                suggestion = f"did you mean {hint[0]!r}? " if hint else ""
                raise ConfigError(
                    f"analysis '{self.name}' has no parameter {name!r}; {suggestion}valid: {', '.join(declared) or 'none'}"
                )
        return {
            name: parameter.convert(values[name], self.name) if name in values else parameter.default
            for name, parameter in declared.items()
        }


@dataclass(frozen=True)
class SourceSpec(PluginSpec[Source]):
    slot: ClassVar[str] = "source"


@dataclass(frozen=True)
class ProcessorSpec(PluginSpec[Processor]):
    slot: ClassVar[str] = "processor"
    #: the backend takes ``ml=True`` and then also returns the ML stage's fills (``agcframe run --ml``)
    ml: bool = False


@dataclass(frozen=True)
class HistogrammerSpec(PluginSpec[Histogrammer[Any]]):
    slot: ClassVar[str] = "histogrammer"


@dataclass(frozen=True)
class ExecutorSpec(PluginSpec[Executor]):
    slot: ClassVar[str] = "executor"


@dataclass(frozen=True)
class InferenceSpec(PluginSpec[Inference]):
    slot: ClassVar[str] = "inference"

