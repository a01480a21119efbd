"""The library API behind ``agcframe run`` and ``agcframe fit``.

Data flow: source.plan -> executor.run(processor.process -> histogrammer.fill,
histogrammer.merge) -> histogrammer.write -> inference.fit. Everything a run
writes appears in the output directory together, or not at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist

from agcframe.cache import cache_directory, source_digest
from agcframe.config import DEFAULT_PLUGINS, RunConfig
from agcframe.data import Dataset, FitOptions, FitResult, WorkItem, histogram_name
from agcframe.defaults import DEFAULT_EVENTS_PER_FILE, DEFAULT_SEED
from agcframe.engine.checkpoints import CheckpointStore, checkpoint_directory
from agcframe.engine.coffea_processor import CoffeaAccumulator, CoffeaProcessorRun, import_target, load_processor, processor_digest, processor_schema
from agcframe.engine.outputs import held_output, staged_outputs, write_json
from agcframe.engine.partials import PartialResult, merged_inputs, read_partial, write_partial
from agcframe.engine.processing import ChunkCost, ChunkTask, Processed, executor_session, plan, plan_file
from agcframe.engine.processing import process as process_items
from agcframe.engine.reduce import tree_reduce
from agcframe.errors import AgcframeError, AnalysisError, ConfigError, InputError, PluginError
from agcframe.io import column_cache
from agcframe.io.column_cache import ColumnCache
from agcframe.io.coffea_output import HistogramNaming, cabinetry_histograms, save_output, write_histograms
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.io.histogram_file import load_histograms, load_ml_histograms
from agcframe.plugin.analysis import Analysis, expected_histograms, filled_variations
from agcframe.plugin.manager import PROCESSING_SLOTS, PluginManager, RegisteredSpec, check_option_targets
from agcframe.plugin.specs import DeferredBackend
from agcframe.progress import showing_progress
from agcframe.stats.fitlog import FIT_LOG, at_terminal, fit_log
from agcframe.stats.plot_process import PlotProcess
from agcframe.stats.plots import FIT_FIGURES, PlotLabels, draw_fit_plots

__all__ = [
    "PlannedInputs", "RunResult", "analysis_definition", "analysis_of", "default_fileset", "fit", "merge_partials", "plan_inputs", "plot",
    "process_file", "run", "write_merged",
]  # fmt: skip

log = logging.getLogger(__name__)

HISTOGRAMS_FILE = "histograms.root"
#: a coffea processor's accumulated output (``coffea.util.load`` reads it)
COFFEA_OUTPUT_FILE = "output.coffea"
#: the plugins a coffea processor's run uses: its own processor, coffea's accumulate instead of a histogrammer
COFFEA_PROCESSOR_SLOTS = ("analysis", "source", "executor")
ML_HISTOGRAMS_FILE = "histograms_ml.root"
#: the ML validation model (runs with ml and the fit)
ML_WORKSPACE_FILE = "workspace_ml.json"
PLOTS_DIR = "plots"
#: the fit's figures (:data:`~agcframe.stats.plots.FIT_FIGURES`) the plot process draws while this process computes
#: the ranking; this process draws the others after it. Split so that both end together: the plot process drew
#: the correlations too until the ranking's refits ran in two threads, and then ended 0.9 s after this process
FIGURES_ASIDE = ("data_mc", "pulls")
#: the libraries' messages while ``agcframe plot`` draws
PLOT_LOG = "plot.log"
RANKING_FILE = "ranking.json"
GENERATOR_VERSION = 4
#: the plugins a processing job needs (no inference)
LIBRARIES = ("awkward", "cabinetry", "coffea", "hist", "numpy", "pyhf", "uproot", "vector")


@dataclass(frozen=True)
class RunResult:
    """What ``run`` produced: the output directory, its histograms, yields and the fit.

    ``histograms`` is the AGC notebook's histogram (observable x region x
    process x variation, read from ``histograms.root`` on first use)::

        result = agcframe.run(agcframe.RunConfig(fit=False))
        result.histograms[:, "4j2b", "ttbar", "nominal"].plot()
    """

    output: Path
    histogram_names: list[str]
    yields: dict[str, float]
    empty_regions: list[str]
    metrics: dict[str, Any]
    fit: FitResult | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: the histograms of ``histograms_ml.root`` (runs with ``ml``)
    ml_histogram_names: list[str] = field(default_factory=list)
    #: a coffea processor's accumulated output, after its ``postprocess`` (runs with ``processor``; also in ``output.coffea``)
    processor_output: Any = None

    @functools.cached_property
    def histograms(self) -> hist.Hist:
        """Every histogram of the run as one ``hist.Hist``: observable x region x process x variation."""
        return load_histograms(self.output / HISTOGRAMS_FILE)

    @functools.cached_property
    def ml_histograms(self) -> dict[str, hist.Hist]:
        """The ML stage's histograms (runs with ``ml``), by feature: feature x process x variation."""
        return load_ml_histograms(self.output / ML_HISTOGRAMS_FILE)


def default_fileset() -> Path:
    """The embedded dataset's fileset, generated once into the cache directory."""
    directory = cache_directory() / f"default-v{GENERATOR_VERSION}-seed{DEFAULT_SEED}-n{DEFAULT_EVENTS_PER_FILE}"
    fileset = directory / "fileset.json"
    if not fileset.exists():
        from agcframe.tools.generate import GenerationSettings, generate_dataset  # the generator's libraries, only when it runs

        log.info("generating the embedded default dataset in %s (once)", directory)
        generate_dataset(directory, GenerationSettings())
    return fileset


def _select(manager: PluginManager, plugins: Mapping[str, str], plugin_options: Mapping[str, Any]) -> dict[str, RegisteredSpec]:
    selected = {slot: manager.get(slot, name) for slot, name in plugins.items()}
    check_option_targets(selected, plugin_options)
    return selected


def _instantiate(registered: RegisteredSpec, plugin_options: Mapping[str, Mapping[str, Any]], **core_options: Any) -> Any:
    """Start the backend of ``registered`` with its plugin options and the core's (``ml`` for a processor)."""
    options = registered.bind(plugin_options.get(registered.spec.name, {}))
    try:
        return registered.spec.backend(**options, **core_options)
    except AgcframeError:
        raise
    except Exception as exc:
        raise PluginError(
            f"{registered.spec.slot} plugin '{registered.spec.name}' ({registered.distribution}) "
            f"failed to start: {type(exc).__name__}: {exc}"
        ) from exc


def run(
    config: RunConfig | None = None,
    *,
    manager: PluginManager | None = None,
    show_progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the analysis (by default the AGC's ttbar) from files to (optionally) the fit.

    Parameters
    ----------
    config
        The run configuration; defaults run the embedded dataset end to end.
    manager
        Plugin manager to select plugins from; by default all installed plugins.
    show_progress
        Draw a progress bar on the terminal.
    report
        Called with each line of the run's summary as soon as it is known: what was
        processed once the histograms are written, the fit's result once it is
        written, before any plot is drawn (the command line prints them).
    """
    config = config or RunConfig()
    # held: fails at once if another run writes there, or it is a file
    with held_output(config.output), showing_progress(show_progress):
        return _run(config, manager or PluginManager(), show_progress, report or _silent)


def _silent(line: str) -> None:
    """A report that goes nowhere (the API's default: the result is returned)."""


def _run(config: RunConfig, manager: PluginManager, show_progress: bool, report: Callable[[str], None]) -> RunResult:
    coffea_run = config.processor is not None
    slots = COFFEA_PROCESSOR_SLOTS if coffea_run else PROCESSING_SLOTS
    slots = (*slots, "inference") if config.fit else slots  # the inference plugin starts before processing, to fail early
    selected, backends, fileset_path, datasets = _backends_and_datasets(config, manager, slots, any_samples=coffea_run)
    analysis = backends["analysis"]

    started = time.perf_counter()
    executor = backends["executor"]
    if coffea_run:
        processor, accumulator, code = _coffea_processor(config, datasets)
    else:
        processor, accumulator, code = backends["processor"], backends["histogrammer"], None
    cache = config.cache()
    task = ChunkTask(processor, accumulator, config.seed, config.retries, config.skip_bad_files, cache)
    store = CheckpointStore(checkpoint_directory(config.output), _checkpoint_key(config, selected, code))
    # one pool of workers plans and processes
    with column_cache.using(cache), executor_session(executor, config.workers):
        planned_items = plan(
            backends["source"], datasets, config.chunksize,
            skip_bad_files=config.skip_bad_files, executor=executor, workers=config.workers, cache=cache,
        )  # fmt: skip
        planned = time.perf_counter()
        items = planned_items.items
        processed = process_items(
            executor,
            task,
            items,
            workers=config.workers,
            store=store,
            resume=config.resume,
            show_progress=show_progress,
        )
    processed.skipped[:0] = planned_items.skipped
    _tend(cache, processed)
    done = time.perf_counter()
    if processed.result is None:
        raise InputError(f"fileset {fileset_path} selects no events to process")
    if processed.skipped:
        log.error(
            "HISTOGRAMS ARE PARTIAL: %d input files were skipped (listed in metrics.json and provenance.json)",
            len(processed.skipped),
        )

    if coffea_run:
        output = _postprocessed(processor.processor, processed.result)
        histograms = cabinetry_histograms(output, _histogram_naming(config.histogram_naming))
        yields = {name: float(h.sum(flow=True).value) for name, h in histograms.items()}
        empty_regions: list[str] = []
        fitting = config.fit and _fits_coffea_histograms(config, selected, analysis, histograms, datasets)
    else:
        output = None
        yields = accumulator.yields(processed.result)
        _warn_unfilled(analysis, yields, datasets, (*analysis.regions, *(analysis.ml_regions if config.ml else ())))
        empty_regions = [
            region
            for region in analysis.regions
            if not any(value > 0 for name, value in yields.items() if name.startswith(f"{region}_"))
        ]
        for region in empty_regions:
            log.warning("region %s is empty: no event passed its selection", region)
        if config.fit and empty_regions:
            raise InputError(
                f"regions {', '.join(empty_regions)} are empty, so there is nothing to fit; "
                "run over more events or pass --no-fit"
            )
        fitting = config.fit

    with staged_outputs(config.output, "run") as staging:
        if coffea_run:
            save_output(output, staging / COFFEA_OUTPUT_FILE)
            names = write_histograms(histograms, staging / HISTOGRAMS_FILE, analysis.pseudodata)
            ml_names = []
        else:
            names = accumulator.write(processed.result, staging / HISTOGRAMS_FILE, analysis.regions)
            ml_names = accumulator.write(processed.result, staging / ML_HISTOGRAMS_FILE, analysis.ml_regions) if config.ml else []
        written = time.perf_counter()
        output_directory = Path(config.output)
        report(
            f"processed {processed.events:,} events in {len(items)} chunks "
            f"at {processed.events_computed / max(processed.seconds, 1e-9) / 1000:.1f} k events/s; "
            f"wrote {len(names)} histograms to {output_directory / HISTOGRAMS_FILE}"
            + (f" and {len(ml_names)} to {output_directory / ML_HISTOGRAMS_FILE}" if config.ml else "")
        )
        if empty_regions:
            report(f"regions {', '.join(empty_regions)} are empty: no event passed the selection")
        fit_result = None
        if fitting:
            fit_result = _fit_stage(
                backends["inference"],
                selected["inference"],
                staging / HISTOGRAMS_FILE,
                staging,
                FitOptions(significance=config.significance, limit=config.limit, ranking=config.ranking),
                analysis,
                ml_histograms=staging / ML_HISTOGRAMS_FILE if config.ml else None,
                plots=config.plots,
                report=report,
                output=output_directory,
            )
        finished = time.perf_counter()
        inputs = _inputs(processed)
        metrics = {
            "events": processed.events,
            "chunks": len(items),
            "chunks_computed": processed.computed,
            "chunks_resumed": processed.resumed,
            "chunks_failed": len(processed.failures),
            "partial": bool(processed.skipped),
            "skipped_inputs": [skipped.to_json() for skipped in processed.skipped],
            "wall_time_s": finished - started,
            "processing_time_s": processed.seconds,
            "events_per_s": processed.events_computed / max(processed.seconds, 1e-9),
            **_cost_metrics(processed.cost),
            "peak_memory_bytes": processed.peak_memory_bytes,
            "input_bytes": sum(entry["size_bytes"] or 0 for entry in inputs),
            "planning_time_s": planned - started,
            "planning_workers": planned_items.workers,
            "writing_time_s": written - done,
            "fit_time_s": finished - written,
            "histograms": len(names),
            "ml_histograms": len(ml_names),
        }
        delivery_metrics = getattr(backends["source"], "delivery_metrics", None)
        if callable(delivery_metrics):
            metrics["source"] = delivery_metrics()
        provenance = _provenance(config, selected, fileset_path, processed, inputs)
        if code is not None:
            provenance["processor"] = code
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "provenance.json", provenance)
    store.clear()
    return RunResult(Path(config.output), names, yields, empty_regions, metrics, fit_result, provenance, ml_names, output)


def process_file(
    config: RunConfig,
    process: str,
    variation: str,
    file_index: int,
    output: str | Path,
    *,
    manager: PluginManager | None = None,
    show_progress: bool = False,
) -> PartialResult:
    """Process file ``file_index`` of sample ``process/variation`` into the partial result file ``output``.

    The fan-out job of a workflow: the sample's normalisation is that of the
    whole selection (``config.n_files_max``), and merging the partial files of
    all files (:func:`write_merged`) gives the histograms of :func:`run`, bit for bit.
    """
    with held_output(output, directory=False), showing_progress(show_progress):  # held for the job's life, as run holds its directory
        return _process_file(config, process, variation, file_index, Path(output), manager or PluginManager(), show_progress)


def _process_file(
    config: RunConfig, process: str, variation: str, file_index: int, output: Path, manager: PluginManager, show_progress: bool
) -> PartialResult:
    selected, backends, fileset_path, datasets = _backends_and_datasets(config, manager, PROCESSING_SLOTS)
    dataset = next((d for d in datasets if (d.process, d.variation) == (process, variation)), None)
    if dataset is None:
        known = ", ".join(f"{d.process}/{d.variation}" for d in datasets)
        raise InputError(f"fileset {fileset_path} has no sample {process}/{variation}; it has {known}")
    if not 0 <= file_index < len(dataset.files):
        raise InputError(
            f"sample {process}/{variation} of {fileset_path} has {len(dataset.files)} selected files; "
            f"--file-index must be 0 to {len(dataset.files) - 1}, not {file_index}"
        )
    cache = config.cache()
    task = ChunkTask(backends["processor"], backends["histogrammer"], config.seed, config.retries, column_cache=cache)
    store = CheckpointStore(checkpoint_directory(output), _checkpoint_key(config, selected))
    with column_cache.using(cache):
        items = plan_file(backends["source"], dataset, file_index, config.chunksize)
        processed = process_items(
            backends["executor"], task, items, workers=config.workers, store=store, resume=config.resume,
            show_progress=show_progress,
        )  # fmt: skip
    _tend(cache, processed)
    partial = PartialResult(selected["analysis"].spec.name, selected["histogrammer"].spec.name, processed.result, _inputs(processed))
    write_partial(partial, output)
    store.clear()
    return partial


def merge_partials(paths: Sequence[str | Path], *, manager: PluginManager | None = None) -> PartialResult:
    """Merge partial result files (of files, of samples, in any grouping and order) into one."""
    return _merge(paths, manager or PluginManager())[1]


def _merge(paths: Sequence[str | Path], manager: PluginManager) -> tuple[RegisteredSpec, PartialResult, Any, Analysis]:
    """The histogrammer the partial results were made with, their merge, that histogrammer started and the analysis' definition."""
    partials = [read_partial(path) for path in paths]
    if not partials:
        raise InputError("no partial results to merge; pass the files 'agcframe process-file' wrote")
    made_with = {}
    for slot in ("analysis", "histogrammer"):
        names = sorted({getattr(partial, slot) for partial in partials})
        if len(names) > 1:
            raise InputError(f"the partial results come from different {slot} plugins ({', '.join(names)}); merge each on its own")
        made_with[slot] = names[0]
    analysis = analysis_definition(made_with["analysis"], manager=manager)
    registered = manager.get("histogrammer", made_with["histogrammer"])
    histogrammer = _instantiate(registered, {}, analysis=analysis)
    results = [partial.result for partial in partials if partial.result is not None]
    merged = tree_reduce(results, histogrammer.merge) if results else None
    return registered, PartialResult(made_with["analysis"], made_with["histogrammer"], merged, merged_inputs(partials)), histogrammer, analysis


def write_merged(
    paths: Sequence[str | Path], histograms: str | Path, *, manager: PluginManager | None = None
) -> list[str]:
    """Merge partial result files and write ``histograms`` with ``metrics.json`` and ``provenance.json`` beside it.

    Partial results of the ML stage (``process_file`` with ``ml``) also give
    ``histograms_ml.root`` beside it. Each file is written under a temporary
    name and renamed into place.
    """
    registered, merged, histogrammer, analysis = _merge(paths, manager or PluginManager())
    if merged.result is None:
        raise InputError("the partial results hold no events; nothing to write")
    histograms = Path(histograms)
    with held_output(histograms, directory=False):
        return _write_merged(registered, merged, histogrammer, analysis, paths, histograms)


def _write_merged(
    registered: RegisteredSpec, merged: Any, histogrammer: Any, analysis: Analysis, paths: Sequence[str | Path], histograms: Path
) -> list[str]:
    names = _write_atomically(histogrammer, merged.result, histograms, analysis.regions)
    ml_names = []
    if any(name.startswith(f"{region}_") for name in histogrammer.yields(merged.result) for region in analysis.ml_regions):
        ml_names = _write_atomically(histogrammer, merged.result, histograms.with_name(ML_HISTOGRAMS_FILE), analysis.ml_regions)
    write_json(
        histograms.with_name("metrics.json"),
        {"events": merged.events, "partials": len(paths), "histograms": len(names), "ml_histograms": len(ml_names),
         "input_bytes": sum(entry["size_bytes"] or 0 for entry in merged.inputs)},
    )  # fmt: skip
    write_json(
        histograms.with_name("provenance.json"),
        {
            **_software(),
            "histogrammer": _plugin_json(registered),
            "partials": [str(path) for path in paths],
            "inputs": merged.inputs,
        },
    )
    return names


def _write_atomically(histogrammer: Any, result: Any, path: Path, regions: Sequence[str]) -> list[str]:
    """The histograms of ``regions`` written under a temporary name and renamed to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    names: list[str] = histogrammer.write(result, tmp, regions)
    os.replace(tmp, path)
    return names


def _cost_metrics(cost: ChunkCost) -> dict[str, float | None]:
    """Worker seconds reading, computing and filling, their shares, the bytes read, and the column cache's share."""
    total = max(cost.seconds, 1e-9)
    phases = {"reading": cost.reading_s, "computing": cost.computing_s, "filling": cost.filling_s}
    return {
        **{f"{phase}_time_s": seconds for phase, seconds in phases.items()},
        **{f"{phase}_share": seconds / total for phase, seconds in phases.items()},
        "bytes_read": cost.bytes_read,
        "column_cache_served_bytes": cost.columns.served_bytes,
        "column_cache_decoded_bytes": cost.columns.decoded_bytes,
        "column_cache_hit_rate": cost.columns.hit_rate,
    }


def _tend(cache: ColumnCache | None, processed: Processed) -> None:
    """Keep the column cache under its size limit, and the run's hit rate for ``agcframe cache info``."""
    if cache is None:
        return
    try:
        cache.enforce_limit()
        cache.record_run(processed.cost.columns)
    except OSError as exc:
        log.warning("column cache %s: %s; the run's results are not affected", cache.directory, exc)


def _datasets(config: RunConfig, analysis: Analysis, *, any_samples: bool = False) -> tuple[Path, list[Dataset]]:
    """The configuration's fileset (the embedded dataset by default) and the datasets it selects, of ``analysis``' samples (any with ``any_samples``: a coffea processor's run).

    Each dataset's normalisation and cross section (``metadata['xsec']``) are the run's analysis' where it declares the process.
    """
    fileset_path = Path(config.fileset) if config.fileset else default_fileset()
    fileset = load_fileset(fileset_path, None if any_samples else analysis)
    return fileset_path, select_datasets(fileset, analysis, config.n_files_max)


@dataclass(frozen=True)
class PlannedInputs:
    """What a run of ``config`` would read: its analysis, the parameter values, the datasets and their work items."""

    analysis: Analysis
    parameters: dict[str, Any]
    fileset: Path
    datasets: list[Dataset]
    items: list[WorkItem]


def plan_inputs(config: RunConfig, *, manager: PluginManager | None = None) -> PlannedInputs:
    """The analysis, parameters and planned work items of ``config``, through its source plugin (``agcframe optimize`` reads them)."""
    manager = manager or PluginManager()
    selected, backends, fileset_path, datasets = _backends_and_datasets(config, manager, ("analysis", "source"))
    cache = config.cache()
    with column_cache.using(cache):
        planned = plan(backends["source"], datasets, config.chunksize, skip_bad_files=False, cache=cache)
    parameters = selected["analysis"].spec.resolve(config.parameters)
    return PlannedInputs(backends["analysis"], parameters, fileset_path, datasets, planned.items)


def analysis_definition(name: str | None = None, *, manager: PluginManager | None = None) -> Analysis:
    """The definition of the analysis ``name`` (by default agcframe's default analysis, the AGC's ttbar)."""
    manager = manager or PluginManager()
    return _instantiate(manager.get("analysis", name or DEFAULT_PLUGINS["analysis"]), {})


def _backends_and_datasets(
    config: RunConfig, manager: PluginManager, slots: Sequence[str], *, any_samples: bool = False
) -> tuple[dict[str, RegisteredSpec], dict[str, Any], Path, list[Dataset]]:
    """The registered plugins of ``slots`` the configuration chooses, their started backends, the fileset and its datasets (:func:`_datasets`).

    The analysis starts first and the fileset is read with it, before any other plugin starts (a
    missing fileset is reported before the numba kernels are built): the histogrammer, the inference
    plugin and every plugin whose spec ``takes_analysis`` (the ``servicex`` source) are given its
    definition (``analysis=``), and those and each plugin that lists the analysis its parameter values
    (``parameters=``).
    """
    selected = _select(manager, _chosen_plugins(config, manager, slots), config.plugin_options)
    analysis = selected["analysis"].spec
    parameters = analysis.resolve(config.parameters)
    _check_implements(selected, manager)
    core_options: dict[str, dict[str, Any]] = {slot: {} for slot in selected}
    definition = _instantiate(selected["analysis"], config.plugin_options)
    fileset_path, datasets = _datasets(config, definition, any_samples=any_samples)
    for slot, registered in selected.items():
        if analysis.name in registered.spec.analyses or registered.spec.takes_analysis:
            core_options[slot]["parameters"] = parameters
        if slot in ("histogrammer", "inference") or registered.spec.takes_analysis:
            core_options[slot]["analysis"] = definition
    if config.ml and config.processor is not None:
        raise ConfigError("--ml (config key 'ml') is the ML stage of agcframe's own processors; a --processor run computes what its processor does")
    if config.ml:
        processor = selected["processor"].spec
        if not getattr(processor, "ml", False):
            with_ml = sorted(name for name, registered in manager.specs("processor").items() if getattr(registered.spec, "ml", False))
            raise ConfigError(
                f"processor plugin '{processor.name}' has no ML stage, so --ml (config key 'ml') cannot run with it; "
                f"use --plugin processor={' or '.join(with_ml) or '...'}"
            )
        core_options["processor"]["ml"] = True
    backends = {"analysis": definition}
    for slot, registered in selected.items():
        if slot != "analysis":
            backends[slot] = _instantiate(registered, config.plugin_options, **core_options[slot])
    return selected, backends, fileset_path, datasets


def _coffea_processor(config: RunConfig, datasets: Sequence[Dataset]) -> tuple[CoffeaProcessorRun, CoffeaAccumulator, dict[str, str]]:
    """The configuration's coffea processor, started, as the run's processor; coffea's accumulate; what keys its checkpoints."""
    processor = load_processor(config.processor, config.processor_options)
    metadata = {(d.process, d.variation): d.metadata for d in datasets}
    code = processor_digest(processor, config.processor_options if isinstance(config.processor, str) else None)
    return CoffeaProcessorRun(processor, processor_schema(config.processor_schema), metadata), CoffeaAccumulator(), code


def _postprocessed(processor: Any, output: Any) -> Any:
    """The processor's ``postprocess`` of the accumulated ``output`` (its return value, or ``output`` if it returns ``None``)."""
    try:
        result = processor.postprocess(output)
    except Exception as exc:
        raise AnalysisError(f"processor {type(processor).__name__} raised in postprocess: {type(exc).__name__}: {exc}") from exc
    return output if result is None else result


def _histogram_naming(naming: Any) -> HistogramNaming | None:
    """The configuration's naming function: the function itself, or the one ``MODULE:FUNCTION`` names."""
    if naming is None or callable(naming):
        return naming
    function = import_target(naming, "function", "--histogram-naming")
    if not callable(function):
        raise ConfigError(f"--histogram-naming {naming!r} is not a function")
    return function


def _fits_coffea_histograms(
    config: RunConfig, selected: Mapping[str, RegisteredSpec], analysis: Analysis, histograms: Mapping[str, Any], datasets: Sequence[Dataset]
) -> bool:
    """Whether a coffea processor's histograms can be fitted: with the inference plugin's own model (``--cabinetry-config``), or they hold the analysis' model.

    They hold it when every region has its data (the pseudodata, which is summed from its
    parts, or the real data), and every variation of the analysis that applies to a
    sample of the run has a histogram.
    """
    if config.plugin_options.get(selected["inference"].spec.name, {}).get("config") is not None:
        return True
    samples = {(d.process, d.variation) for d in datasets if d.process in analysis.samples}
    parts = [(part.process, part.variation) for part in analysis.pseudodata]
    data = parts or [(process, "nominal") for process, sample in analysis.samples.items() if sample.is_data]
    needed = [
        [histogram_name(region, process, variation) for region in analysis.regions]
        for process, variation in {*data, *filled_variations(analysis, samples)}
    ]
    missing = sorted(names[0] for names in needed if not any(name in histograms for name in names))
    if data and not missing:
        return True
    log.warning(
        "not fitting: the processor's histograms do not hold analysis '%s''s model (no %s); "
        "give your model as a cabinetry configuration (--cabinetry-config) to fit them",
        analysis.name, ", ".join(missing[:3]) or "data",
    )  # fmt: skip
    return False


def _warn_unfilled(analysis: Analysis, yields: Mapping[str, float], datasets: Sequence[Dataset], regions: Sequence[str]) -> None:
    """Warn of the histograms the analysis declares for the run's samples that the processor never filled."""
    unfilled = [name for name in expected_histograms(analysis, ((d.process, d.variation) for d in datasets), regions) if name not in yields]
    if unfilled:
        shown = ", ".join(unfilled[:5]) + (f" and {len(unfilled) - 5} more" if len(unfilled) > 5 else "")
        log.warning(
            "analysis '%s' declares %d histograms that the processor never filled: %s; fill them (empty where no event passes) or fix the definition",
            analysis.name, len(unfilled), shown,
        )  # fmt: skip


def _chosen_plugins(config: RunConfig, manager: PluginManager, slots: Sequence[str]) -> dict[str, str]:
    """The configuration's plugin per slot; with another analysis than the default, the default processor gives way to one that implements it."""
    plugins = {slot: config.plugins[slot] for slot in slots}
    analysis, processor = plugins["analysis"], plugins.get("processor")
    if processor == DEFAULT_PLUGINS["processor"] and analysis != DEFAULT_PLUGINS["analysis"]:
        if analysis not in manager.get("processor", processor).spec.analyses:
            implementing = sorted(name for name, registered in manager.specs("processor").items() if analysis in registered.spec.analyses)
            if implementing:
                plugins["processor"] = implementing[0]
                log.info("processor: %s, which implements analysis '%s'", implementing[0], analysis)
    return plugins


def _check_implements(selected: Mapping[str, RegisteredSpec], manager: PluginManager) -> None:
    """The processor, and any other plugin that is specific to analyses, must implement the run's analysis."""
    analysis = selected["analysis"].spec.name
    for slot, registered in selected.items():
        spec = registered.spec
        if analysis in spec.analyses or not (spec.analyses or slot == "processor"):
            continue
        implemented = f"implements {', '.join(spec.analyses)}" if spec.analyses else "declares no analysis"
        choices = sorted(name for name, other in manager.specs(slot).items() if analysis in other.spec.analyses)
        remedy = f"use --plugin {slot}={' or '.join(choices)}" if choices else f"no installed {slot} plugin implements it"
        raise ConfigError(f"{slot} plugin '{spec.name}' {implemented}, not analysis '{analysis}'; {remedy}, or choose another --analysis")


def _checkpoint_key(config: RunConfig, selected: Mapping[str, RegisteredSpec], processor: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What besides the work item decides a chunk's partial result: settings, parameters, plugins, and the code of the analysis and both plugins.

    A coffea processor's run is keyed by its ``processor`` (class, code and state) and schema instead.
    """
    analysis = selected["analysis"].spec
    if processor is not None:
        return {"agcframe": _version("agcframe"), "processor": dict(processor), "schema": str(config.to_json()["processor_schema"])}
    return {
        "agcframe": _version("agcframe"),
        "code": {slot: source_digest(_backend_module(selected[slot].spec.backend)) for slot in ("analysis", "processor", "histogrammer")},
        "analysis": analysis.name,
        "parameters": analysis.resolve(config.parameters),
        "seed": config.seed,
        "ml": config.ml,
        "plugins": {
            slot: [selected[slot].spec.name, selected[slot].distribution, selected[slot].version]
            for slot in ("processor", "histogrammer")
        },
        "options": {
            name: {key: str(value) for key, value in options.items()}
            for name, options in config.plugin_options.items()
            if name in (selected["processor"].spec.name, selected["histogrammer"].spec.name)
        },
    }


def _backend_module(backend: Any) -> str:
    """The module that defines a spec's backend (a class, or a :class:`DeferredBackend` naming it)."""
    return backend.target.partition(":")[0] if isinstance(backend, DeferredBackend) else backend.__module__


def _fit_stage(
    inference: Any,
    registered: RegisteredSpec,
    histograms: Path,
    workdir: Path,
    options: FitOptions,
    analysis: Analysis,
    *,
    ml_histograms: Path | None,
    plots: bool,
    report: Callable[[str], None],
    output: Path,
) -> FitResult:
    """The fit (:func:`_fit`) and, given ``ml_histograms``, the ML validation model; their plots drawn by a plot process."""
    with contextlib.ExitStack() as stack:
        plotter = stack.enter_context(PlotProcess(workdir / FIT_LOG)) if plots else None
        result = _fit(inference, registered, histograms, workdir, options, analysis, plotter=plotter, report=report, output=output)
        if ml_histograms is not None:
            _validate_ml(inference, registered, ml_histograms, workdir, result, analysis, plotter=plotter)
        if plotter is not None:
            plotter.close()
    return result


def _fit(
    inference: Any,
    registered: RegisteredSpec,
    histograms: Path,
    workdir: Path,
    options: FitOptions,
    analysis: Analysis,
    *,
    plotter: PlotProcess | None,
    report: Callable[[str], None],
    output: Path,
) -> FitResult:
    """Fit; write fit_results.json, ranking.json and workspace.json into ``workdir``; ``report`` the result; send ``plotter`` its figures.

    The numbers come before the pictures and the ranking: where the inference
    plugin calls ``options.on_fit``, the fit is written, reported and its
    figures :data:`FIGURES_ASIDE` started in the plot process as soon as it is
    known, and the ranking's refits run while they are drawn; this process
    draws the others after them. MINUIT's output and the libraries' messages go
    to ``workdir/fit.log``.
    """
    labels = PlotLabels.of_fit(analysis, asimov=options.asimov)
    directory = workdir / PLOTS_DIR
    reported: list[FitResult] = []

    def fitted(result: FitResult) -> None:
        write_json(workdir / "fit_results.json", result.to_json())
        shown = reported[-1].describe(output / "fit_results.json") if reported else []
        with at_terminal():
            for line in result.describe(output / "fit_results.json"):
                if line not in shown:
                    report(line)
        moved = not reported or result.parameters != reported[-1].parameters
        if plotter is not None and result.workspace is not None and moved:
            plotter.draw("fit", result, labels, directory, asimov=options.asimov, figures=FIGURES_ASIDE)
        reported.append(result)

    with fit_log(workdir):
        with _failures_of(registered, histograms):
            beside_plots = max(1, (os.cpu_count() or 1) - 1) if plotter is not None else None  # the plot process draws during the refits
            result: FitResult = inference.fit(histograms, workdir, dataclasses.replace(options, on_fit=fitted, cores=beside_plots))
        if result.status is not None and not result.status.valid:
            log.warning("the fit is NOT VALID: %s (see fit_results.json and fit.log)", result.status.describe())
        fitted(result)  # its significance, limits and ranking (all of it from a plugin that does not call on_fit)
        if result.ranking is not None:
            write_json(workdir / RANKING_FILE, [impact.to_json() for impact in result.ranking])
        if result.workspace is not None:
            write_json(workdir / "workspace.json", result.workspace)
            if plotter is not None:
                draw_fit_plots(result, labels, directory, asimov=options.asimov, figures=set(FIT_FIGURES) - set(FIGURES_ASIDE))
    return result


@contextlib.contextmanager
def _failures_of(registered: RegisteredSpec, histograms: Path) -> Iterator[None]:
    """An exception of the inference plugin (other than agcframe's own errors) as one line naming it and the file."""
    try:
        yield
    except AgcframeError:
        raise
    except Exception as exc:
        raise PluginError(
            f"inference plugin '{registered.spec.name}' failed on {histograms.name}: {type(exc).__name__}: {exc}"
        ) from exc


def _validate_ml(
    inference: Any, registered: RegisteredSpec, histograms: Path, workdir: Path, result: FitResult, analysis: Analysis, *, plotter: PlotProcess | None
) -> None:
    """The ML validation model of ``histograms`` (``workspace_ml.json``) and its observables with the main fit's parameters (``plots/ml``)."""
    build = getattr(inference, "ml_workspace", None)
    if build is None:
        log.warning(
            "inference plugin '%s' cannot build the ML validation model (it has no ml_workspace); %s is written without it",
            registered.spec.name, histograms.name,
        )  # fmt: skip
        return
    with fit_log(workdir):
        with _failures_of(registered, histograms):
            workspace = build(histograms, workdir)
        write_json(workdir / ML_WORKSPACE_FILE, workspace)
    if plotter is not None:
        labels = PlotLabels.of_ml_validation(analysis)
        plotter.draw("ml_validation", workspace, dataclasses.replace(result, workspace=None), labels, workdir / PLOTS_DIR / "ml")


def fit(
    histograms: str | Path,
    output: str | Path = "agc-output",
    *,
    inference: str = "cabinetry",
    options: FitOptions | None = None,
    plots: bool = True,
    plugin_options: Mapping[str, Mapping[str, Any]] | None = None,
    manager: PluginManager | None = None,
    show_progress: bool = False,
    ml: bool = False,
    analysis: str | None = None,
    report: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit an existing ``histograms.root``; write ``fit_results.json``, ``workspace.json`` and plots into ``output``.

    Parameters
    ----------
    histograms
        A ``histograms.root`` in cabinetry's naming (``agcframe run`` writes one).
    output
        Output directory; its files are replaced only when everything succeeded.
    inference
        Name of the inference plugin.
    options
        Asimov data instead of pseudodata, discovery significance, upper limits,
        the impact ranking (``ranking.json``); by default the fit and its ranking.
    plots
        Draw the plots into ``output/plots``.
    plugin_options
        Options of the inference plugin, ``{plugin: {option: value}}``.
    show_progress
        Draw progress bars (ranking refits, limit scan) on the terminal.
    ml
        Also build the ML validation model of the ``histograms_ml.root`` beside
        ``histograms`` (``workspace_ml.json``) and draw it with this fit's parameters.
    analysis
        The analysis whose model is fitted; by default the one of the run that
        wrote ``histograms`` (its ``provenance.json``), else the default analysis.
    report
        Called with each line of the fit's result once it is written, before any plot is drawn.
    """
    histograms = Path(histograms).resolve()
    if not histograms.is_file():
        raise InputError(f"histograms file {histograms} does not exist; run 'agcframe run --no-fit' first")
    ml_histograms = histograms.with_name(ML_HISTOGRAMS_FILE)
    if ml and not ml_histograms.is_file():
        raise InputError(f"{ml_histograms} does not exist; the ML validation needs the output of 'agcframe run --ml'")
    manager = manager or PluginManager()
    plugin_options = plugin_options or {}
    selected = _select(manager, {"analysis": analysis or analysis_of(histograms), "inference": inference}, plugin_options)
    definition = _instantiate(selected["analysis"], {})
    backend = _instantiate(selected["inference"], plugin_options, analysis=definition)
    options = options or FitOptions(ranking=True)
    with held_output(output), staged_outputs(output, "fit") as staging, showing_progress(show_progress):
        return _fit_stage(
            backend, selected["inference"], histograms, staging, options, definition,
            ml_histograms=ml_histograms if ml else None, plots=plots, report=report or _silent, output=Path(output),
        )  # fmt: skip


def plot(
    output: str | Path = "agc-output", *, asimov: bool = False, analysis: str | None = None, manager: PluginManager | None = None
) -> list[Path]:
    """Draw the plots of the fit in ``output`` into ``output/plots``: for a run or fit made without them (``--no-plots``).

    Reads ``fit_results.json``, ``workspace.json`` and ``ranking.json`` (if there is one);
    the libraries' messages go to ``output/plot.log``. Returns the figures written.

    Parameters
    ----------
    asimov
        The fit was to Asimov data (``agcframe fit --asimov``): show that data.
    analysis
        The analysis whose labels the plots carry; by default the one of the run in ``output``.
    """
    output = Path(output)
    documents: dict[str, Any] = {}
    for name in ("fit_results.json", "workspace.json", RANKING_FILE):
        try:
            documents[name] = json.loads((output / name).read_text())
        except FileNotFoundError:
            if name != RANKING_FILE:
                raise InputError(f"{output / name} does not exist; plot the output of 'agcframe run' or 'agcframe fit'") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{output / name} cannot be read: {exc}; fit again to write it") from None
    try:
        result = FitResult.from_json(documents["fit_results.json"], workspace=documents["workspace.json"], ranking=documents.get(RANKING_FILE))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{output / 'fit_results.json'} is not a fit result agcframe wrote ({type(exc).__name__}: {exc}); fit again") from None
    definition = analysis_definition(analysis or analysis_of(output / HISTOGRAMS_FILE), manager=manager)
    with held_output(output), staged_outputs(output, "plot") as staging, fit_log(staging, PLOT_LOG):
        written = draw_fit_plots(result, PlotLabels.of_fit(definition, asimov=asimov), staging / PLOTS_DIR, asimov=asimov)
        return [output / path.relative_to(staging) for path in written]


def analysis_of(histograms: Path) -> str:
    """The analysis of the run that wrote ``histograms`` (its ``provenance.json``), else the default analysis."""
    try:
        provenance = json.loads(histograms.with_name("provenance.json").read_text())
        return str(provenance["plugins"]["analysis"]["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_PLUGINS["analysis"]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _inputs(processed: Processed) -> list[dict[str, Any]]:
    """Every input file the histograms contain, with its size and the entries read."""
    inputs: dict[str, dict[str, Any]] = {}
    for item in processed.items:
        entry = inputs.setdefault(
            item.path,
            {"path": item.path, "process": item.process, "variation": item.variation, "size_bytes": item.size_bytes, "entries": 0},
        )
        entry["entries"] += item.num_entries
    return list(inputs.values())


def _provenance(
    config: RunConfig,
    selected: Mapping[str, RegisteredSpec],
    fileset_path: Path,
    processed: Processed,
    inputs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        **_software(),
        "plugins": {slot: _plugin_json(registered) for slot, registered in selected.items()},
        "parameters": selected["analysis"].spec.resolve(config.parameters),
        "config": config.to_json(),
        "seed": config.seed,
        "fileset": str(fileset_path),
        "inputs": inputs,
        "skipped_inputs": [skipped.to_json() for skipped in processed.skipped],
    }


def _software() -> dict[str, Any]:
    """Versions of agcframe, Python and the scientific libraries, for provenance.json."""
    return {
        "agcframe_version": _version("agcframe"),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def _plugin_json(registered: RegisteredSpec) -> dict[str, Any]:
    return {"name": registered.spec.name, "distribution": registered.distribution, "version": registered.version}

