"""The library API behind ``agcframe run`` and ``agcframe fit``.

Data flow: source.plan -> executor.run(processor.process -> histogrammer.fill,
histogrammer.merge) -> histogrammer.write -> inference.fit. Everything a run
writes appears in the output directory together, or not at all.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import analysis
from .config import RunConfig
from .data import FitOptions, FitResult, WorkItem
from .errors import AgcframeError, InputError, PluginError
from .fileset import load_fileset, select_datasets
from .generate import GenerationSettings, generate_dataset
from .outputs import staged_outputs, write_json
from .plots import draw_fit_plots
from .plugin_manager import PluginManager, RegisteredSpec, check_option_targets
from .specs import Histogrammer, Processor

__all__ = ["ChunkTask", "RunResult", "default_fileset", "fit", "run"]

log = logging.getLogger(__name__)

HISTOGRAMS_FILE = "histograms.root"
PLOTS_DIR = "plots"
GENERATOR_VERSION = 1
LIBRARIES = ("awkward", "cabinetry", "coffea", "hist", "numpy", "pyhf", "uproot", "vector")


@dataclass(frozen=True)
class ChunkTask:
    """Processor then histogrammer on one work item; picklable, so it runs on any worker."""

    processor: Processor
    histogrammer: Histogrammer[Any]
    seed: int

    def __call__(self, item: WorkItem) -> Any:
        try:
            fills = self.processor.process(item, self.seed)
            return self.histogrammer.fill(fills)
        except AgcframeError:
            raise
        except Exception as exc:
            raise PluginError(
                f"processing {item.describe()} failed: {type(exc).__name__}: {exc}"
            ) from exc


@dataclass(frozen=True)
class RunResult:
    """What ``run`` produced: the output directory, histogram names, yields and the fit."""

    output: Path
    histograms: list[str]
    yields: dict[str, float]
    empty_regions: list[str]
    metrics: dict[str, Any]
    fit: FitResult | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def default_fileset() -> Path:
    """The embedded dataset's fileset, generated once into the cache directory."""
    cache = Path(os.environ.get("AGCFRAME_CACHE_DIR", Path.home() / ".cache" / "agcframe"))
    settings = GenerationSettings()
    directory = cache / f"default-v{GENERATOR_VERSION}-seed{settings.seed}-n{settings.events_per_file}"
    fileset = directory / "fileset.json"
    if not fileset.exists():
        log.info("generating the embedded default dataset in %s (once)", directory)
        generate_dataset(directory, settings)
    return fileset


def _select(manager: PluginManager, plugins: Mapping[str, str], plugin_options: Mapping[str, Any]) -> dict[str, RegisteredSpec]:
    selected = {slot: manager.get(slot, name) for slot, name in plugins.items()}
    check_option_targets(selected, plugin_options)
    return selected


def _instantiate(registered: RegisteredSpec, plugin_options: Mapping[str, Mapping[str, Any]]) -> Any:
    options = registered.bind(plugin_options.get(registered.spec.name, {}))
    try:
        return registered.spec.backend(**options)
    except AgcframeError:
        raise
    except Exception as exc:
        raise PluginError(
            f"{registered.spec.slot} plugin '{registered.spec.name}' ({registered.distribution}) "
            f"failed to start: {type(exc).__name__}: {exc}"
        ) from exc


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]processing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks  {task.fields[rate]}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )


def run(
    config: RunConfig | None = None,
    *,
    manager: PluginManager | None = None,
    show_progress: bool = False,
) -> RunResult:
    """Run the AGC analysis from files to (optionally) the fit.

    Parameters
    ----------
    config
        The run configuration; defaults run the embedded dataset end to end.
    manager
        Plugin manager to select plugins from; by default all installed plugins.
    show_progress
        Draw a progress bar on the terminal.
    """
    config = config or RunConfig()
    manager = manager or PluginManager()
    selected = _select(manager, config.plugins, config.plugin_options)
    backends = {slot: _instantiate(registered, config.plugin_options) for slot, registered in selected.items()}
    fileset_path = Path(config.fileset) if config.fileset else default_fileset()
    datasets = select_datasets(load_fileset(fileset_path), config.n_files_max)

    started = time.perf_counter()
    items = backends["source"].plan(datasets, config.chunksize)
    planned = time.perf_counter()
    task = ChunkTask(backends["processor"], backends["histogrammer"], config.seed)
    events_done = 0

    with _progress(show_progress) as progress:
        bar = progress.add_task("processing", total=len(items), rate="")

        def on_done(item: WorkItem) -> None:
            nonlocal events_done
            events_done += item.num_entries
            rate = events_done / max(time.perf_counter() - planned, 1e-9)
            progress.update(bar, advance=1, rate=f"{rate / 1000:.1f} k events/s")

        result = backends["executor"].run(
            items, task, backends["histogrammer"].merge, workers=config.workers, on_done=on_done
        )
    processed = time.perf_counter()
    if result is None:
        raise InputError(f"fileset {fileset_path} selects no events to process")

    histogrammer = backends["histogrammer"]
    yields = histogrammer.yields(result)
    empty_regions = [
        region
        for region in analysis.REGIONS
        if not any(value > 0 for name, value in yields.items() if name.startswith(f"{region}_"))
    ]
    for region in empty_regions:
        log.warning("region %s is empty: no event passed its selection", region)
    if config.fit and empty_regions:
        raise InputError(
            f"regions {', '.join(empty_regions)} are empty, so there is nothing to fit; "
            "run over more events or pass --no-fit"
        )

    with staged_outputs(config.output) as staging:
        names = histogrammer.write(result, staging / HISTOGRAMS_FILE)
        written = time.perf_counter()
        fit_result = None
        if config.fit:
            fit_result = _fit(
                backends["inference"],
                selected["inference"],
                staging / HISTOGRAMS_FILE,
                staging,
                FitOptions(significance=config.significance),
                plots=config.plots,
                ranking=config.ranking,
            )
        finished = time.perf_counter()
        n_events = sum(item.num_entries for item in items)
        metrics = {
            "events": n_events,
            "chunks": len(items),
            "wall_time_s": finished - started,
            "processing_time_s": processed - planned,
            "events_per_s": n_events / max(processed - planned, 1e-9),
            "planning_time_s": planned - started,
            "writing_time_s": written - processed,
            "fit_time_s": finished - written,
            "histograms": len(names),
        }
        provenance = _provenance(config, selected, fileset_path, items)
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "provenance.json", provenance)
    return RunResult(Path(config.output), names, yields, empty_regions, metrics, fit_result, provenance)


def _fit(
    inference: Any,
    registered: RegisteredSpec,
    histograms: Path,
    workdir: Path,
    options: FitOptions,
    *,
    plots: bool,
    ranking: bool,
) -> FitResult:
    try:
        result: FitResult = inference.fit(histograms, workdir, options)
    except AgcframeError:
        raise
    except Exception as exc:
        raise PluginError(
            f"inference plugin '{registered.spec.name}' failed on {histograms.name}: {type(exc).__name__}: {exc}"
        ) from exc
    write_json(workdir / "fit_results.json", result.to_json())
    if result.workspace is not None:
        write_json(workdir / "workspace.json", result.workspace)
        if plots:
            draw_fit_plots(result, workdir / PLOTS_DIR, asimov=options.asimov, ranking=ranking)
    return result


def fit(
    histograms: str | Path,
    output: str | Path = "agc-output",
    *,
    inference: str = "cabinetry",
    options: FitOptions | None = None,
    plots: bool = True,
    ranking: bool = True,
    plugin_options: Mapping[str, Mapping[str, Any]] | None = None,
    manager: PluginManager | None = None,
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
        Asimov data instead of pseudodata, discovery significance.
    plots, ranking
        Draw the plots into ``output/plots``; include the (slow) impact ranking.
    plugin_options
        Options of the inference plugin, ``{plugin: {option: value}}``.
    """
    histograms = Path(histograms).resolve()
    if not histograms.is_file():
        raise InputError(f"histograms file {histograms} does not exist; run 'agcframe run --no-fit' first")
    manager = manager or PluginManager()
    plugin_options = plugin_options or {}
    selected = _select(manager, {"inference": inference}, plugin_options)
    backend = _instantiate(selected["inference"], plugin_options)
    with staged_outputs(output) as staging:
        return _fit(
            backend, selected["inference"], histograms, staging, options or FitOptions(), plots=plots, ranking=ranking
        )


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _provenance(
    config: RunConfig,
    selected: Mapping[str, RegisteredSpec],
    fileset_path: Path,
    items: list[WorkItem],
) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {}
    for item in items:
        entry = inputs.setdefault(
            item.path,
            {"path": item.path, "process": item.process, "variation": item.variation, "size_bytes": item.size_bytes, "entries": 0},
        )
        entry["entries"] += item.num_entries
    return {
        "agcframe_version": _version("agcframe"),
        "python": platform.python_version(),
        "plugins": {
            slot: {"name": r.spec.name, "distribution": r.distribution, "version": r.version}
            for slot, r in selected.items()
        },
        "config": config.to_json(),
        "seed": config.seed,
        "fileset": str(fileset_path),
        "inputs": list(inputs.values()),
        "libraries": {name: _version(name) for name in LIBRARIES},
    }

