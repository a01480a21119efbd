"""Every extension point of agcframe, in one place.

Each hook takes no arguments and returns an iterable of named specs for one
slot. The plugin manager collects the specs of all registered plugins and the
core selects one per slot by name (``--plugin slot=name``). Hooks are called
once per plugin manager, before a run is planned, and must be cheap: the
module an entry point names should import nothing heavy, and name its backend
with :class:`~agcframe.plugin.specs.DeferredBackend` so that the backend's module (and
its libraries) is imported only when a run uses it.

A plugin module implements any subset of the hooks::

    from agcframe import hookimpl
    from agcframe.plugin.specs import DeferredBackend, ExecutorSpec

    @hookimpl
    def agcframe_executors():
        yield ExecutorSpec(name="mine", backend=DeferredBackend("my_plugin.executor:MyExecutor"), description="...")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from agcframe.plugin.specs import AnalysisSpec, ExecutorSpec, HistogrammerSpec, InferenceSpec, ProcessorSpec, SourceSpec

__all__ = [
    "agcframe_analyses",
    "agcframe_executors",
    "agcframe_histogrammers",
    "agcframe_inferences",
    "agcframe_processors",
    "agcframe_sources",
    "hookspec",
]

hookspec = pluggy.HookspecMarker("agcframe")


@hookspec
def agcframe_analyses() -> Iterable[AnalysisSpec]:
    """Declare analyses (slot ``analysis``, chosen with ``--analysis NAME``).

    :returns: :class:`~agcframe.plugin.specs.AnalysisSpec` objects: the
        analysis' named parameters (cuts, with defaults and ranges), and a
        backend that returns its :class:`~agcframe.plugin.analysis.Analysis`
        definition (samples, luminosity, regions and binning, variations,
        pseudodata, statistical model).

    Called by the plugin manager when it collects the ``analysis`` slot. The
    core resolves the run's parameters against the spec before anything
    starts, reads the fileset with the definition's samples, gives the
    definition to the histogrammer and the inference plugin, and the parameter values
    to every plugin whose spec lists the analysis (``analyses=``), which it
    requires of the processor.
    """


@hookspec
def agcframe_sources() -> Iterable[SourceSpec]:
    """Declare data sources (slot ``source``).

    :returns: :class:`~agcframe.plugin.specs.SourceSpec` objects whose backend
        implements :class:`~agcframe.plugin.specs.Source`: ``plan(datasets, chunksize)``
        returns the work items of the run.

    Called by the plugin manager when it collects the ``source`` slot. The core
    calls ``plan`` once per run, in the main process, before any processing.
    """


@hookspec
def agcframe_processors() -> Iterable[ProcessorSpec]:
    """Declare processors (slot ``processor``).

    :returns: :class:`~agcframe.plugin.specs.ProcessorSpec` objects whose backend
        implements :class:`~agcframe.plugin.specs.Processor`: ``read(item)`` reads the
        columns of one work item and ``compute(item, data, seed)`` returns its
        histogram fills.

    Called by the plugin manager when it collects the ``processor`` slot. The
    backend is pickled; ``read`` then ``compute`` are called on executor
    workers, once per work item, in any order, and timed apart for ``metrics.json``.
    A spec with ``ml=True`` declares the ML stage: for ``agcframe run --ml`` the
    core starts its backend with ``ml=True``, and ``compute`` also returns the
    fills of the ML features (one region per feature of the analysis' :attr:`~agcframe.plugin.analysis.Analysis.ml_regions`).
    """


@hookspec
def agcframe_histogrammers() -> Iterable[HistogrammerSpec]:
    """Declare histogrammers (slot ``histogrammer``).

    :returns: :class:`~agcframe.plugin.specs.HistogrammerSpec` objects whose backend
        implements :class:`~agcframe.plugin.specs.Histogrammer`: ``fill`` (on workers,
        after the processor), ``merge`` (in the main process, in item order), ``yields`` and
        ``write`` (once, in the main process, after all items are merged).

    Called by the plugin manager when it collects the ``histogrammer`` slot.
    """


@hookspec
def agcframe_executors() -> Iterable[ExecutorSpec]:
    """Declare executors (slot ``executor``).

    :returns: :class:`~agcframe.plugin.specs.ExecutorSpec` objects whose backend
        implements :class:`~agcframe.plugin.specs.Executor`: ``run(task, items,
        workers=...)`` yields ``(index, result)`` for every item as it finishes.

    Called by the plugin manager when it collects the ``executor`` slot. The
    core calls ``run`` once per run, in the main process.
    """


@hookspec
def agcframe_inferences() -> Iterable[InferenceSpec]:
    """Declare inference backends (slot ``inference``).

    :returns: :class:`~agcframe.plugin.specs.InferenceSpec` objects whose backend
        implements :class:`~agcframe.plugin.specs.Inference`: ``fit(histograms,
        workdir, options)`` builds the statistical model and returns a
        :class:`~agcframe.data.FitResult`.

    Called by the plugin manager when it collects the ``inference`` slot. The
    core calls ``fit`` once, after ``histograms.root`` is written (``agcframe
    run`` without ``--no-fit``, or ``agcframe fit``).
    """
