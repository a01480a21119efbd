"""The ``agcframe`` command line: a thin click layer over the library API."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from agcframe import __version__
from agcframe.config import DEFAULT_PLUGINS, RunConfig, parse_parameter_settings, parse_plugin_choices, parse_processor_options
from agcframe.tools.container import DEFAULT_TAG
from agcframe.defaults import DEFAULT_COMPRESSION, DEFAULT_EVENTS_PER_FILE, DEFAULT_PROCESSOR_SCHEMA, DEFAULT_SEED, EVENTS_FACTOR, OPTIMIZE_OBJECTIVES
from agcframe.errors import AgcframeError, ConfigError
from agcframe.plugin.manager import PROCESSING_SLOTS, SLOTS, PluginManager
from agcframe.progress import showing_progress

# Each command imports the modules it runs when it runs: ``agcframe --help``,
# ``agcframe plugins`` and a run that does not fit never import what they do not use.

__all__ = ["command", "main"]

F = TypeVar("F", bound=Callable[..., Any])
console = Console(stderr=True)
log = logging.getLogger("agcframe")


def _reports_errors(command: F) -> F:
    """Turn an AgcframeError into one line on stderr and its exit code (traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo(
                "agcframe: interrupted; the finished chunks are checkpointed: run the same command with --resume to continue",
                err=True,
            )
            sys.exit(130)
        except AgcframeError as exc:
            if click.get_current_context().find_root().params.get("debug"):
                raise
            message = " ".join(str(exc).split())  # one line, whatever a library put in it
            click.echo(f"agcframe: error: {message}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


class PluginOptionsCommand(click.Command):
    """A command that also offers the options of the installed plugins of ``slots``.

    Each option a plugin declares becomes ``--<plugin>-<option>`` (as snakemake's
    executor plugins do); values the user sets reach the command as
    ``plugin_options``: ``{plugin: {option: value}}``.
    """

    def __init__(self, *args: Any, slots: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots
        self._plugin_params: dict[str, tuple[str, str]] | None = None
        self._extra: list[click.Parameter] = []

    def _declared(self) -> list[click.Parameter]:
        if self._plugin_params is None:
            self._plugin_params = {}
            manager = PluginManager()
            for slot in self.slots:
                for name, registered in manager.specs(slot).items():
                    for option in registered.spec.options:
                        param_name = f"{name}_{option.name}".replace("-", "_")
                        help_text = f"[{slot} plugin '{name}'] {option.help}"
                        if option.type is bool:  # a switch: --servicex-ignore-cache, no value
                            flag = click.Option([option.flag(name), param_name], is_flag=True, default=None, help=help_text)
                        else:
                            click_type = click.Path(path_type=Path) if option.type is Path else option.type
                            flag = click.Option([option.flag(name), param_name], type=click_type, help=help_text)
                        self._extra.append(flag)
                        self._plugin_params[param_name] = (name, option.name)
        return self._extra

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        own = len(self.params)
        return [*params[:own], *self._declared(), *params[own:]]

    def invoke(self, ctx: click.Context) -> Any:
        self._declared()
        assert self._plugin_params is not None
        plugin_options: dict[str, dict[str, Any]] = {}
        for param_name, (plugin, option) in self._plugin_params.items():
            value = ctx.params.pop(param_name, None)
            if value is not None:
                plugin_options.setdefault(plugin, {})[option] = value
        ctx.params["plugin_options"] = plugin_options
        return super().invoke(ctx)


def _plugin_choices(plugins: tuple[str, ...], analysis: str | None) -> dict[str, str]:
    """The plugins ``--plugin SLOT=NAME`` chooses, and the analysis ``--analysis NAME`` does (it wins)."""
    return {**parse_plugin_choices(plugins), **({"analysis": analysis} if analysis else {})}


def _column_cache(directory: Path | None, off: bool) -> bool | str:
    """The ``column_cache`` setting of ``--column-cache DIR`` and ``--no-column-cache``."""
    if directory is not None and off:
        raise ConfigError("--column-cache and --no-column-cache contradict each other; pass one of them")
    return False if off else str(directory) if directory is not None else True


def _flag(param: str) -> str:
    """The command-line flag of a click parameter: ``n_files_max`` -> ``--n-files-max``."""
    return "--" + param.replace("_", "-")


def _ours_or_warnings(record: logging.LogRecord) -> bool:
    """The terminal's filter: agcframe's (and its plugins') information, other libraries' warnings and errors only.

    matplotlib, for one, says ``generated new fontManager`` at INFO on its first import.
    """
    return record.levelno >= logging.WARNING or record.name.split(".")[0].startswith("agcframe")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agcframe")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """agcframe: the AGC CMS ttbar analysis, from NanoAOD files to a fitted result."""
    terminal = RichHandler(console=console, show_path=False, show_time=False)
    if not debug:
        terminal.addFilter(_ours_or_warnings)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s", handlers=[terminal], force=True)
    for noisy in ("pyhf", "cabinetry", "numba", "fsspec", "asyncio", "distributed"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:  # distributed sets its loggers' levels from dask's configuration when it is imported, later
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def _fit_options(command: F) -> F:
    """The options that shape the fit, shared by ``run`` and ``fit``."""
    for decorator in reversed(
        (
            click.option("--significance", is_flag=True, help="Also compute the discovery significance of the POI."),
            click.option("--limit", is_flag=True, help="Also compute the 95% CL CLs upper limits on the POI."),
            click.option("--no-plots", is_flag=True, help="Do not draw the fit plots."),
            click.option("--no-ranking", is_flag=True, help="Skip the impact ranking (ranking.json and its plot)."),
        )
    ):
        command = decorator(command)
    return command


def _processing_options(command: F) -> F:
    """The options that shape processing, shared by ``run`` and ``process-file``."""
    for decorator in reversed(
        (
            click.option("--analysis", metavar="NAME", help="The analysis to run (default: agc_ttbar; 'agcframe analyses' lists them)."),
            click.option(
                "--set", "settings", multiple=True, metavar="NAME=VALUE",
                help="Set a parameter (cut) of the analysis, e.g. btag_threshold=0.6; repeatable.",
            ),  # fmt: skip
            click.option("--fileset", type=click.Path(path_type=Path), help="AGC-format fileset JSON (default: embedded dataset)."),
            click.option("--n-files-max", type=int, default=-1, show_default=True, help="Files per sample; -1 for all."),
            click.option("--plugin", "plugins", multiple=True, metavar="SLOT=NAME", help="Choose a plugin, e.g. executor=iterative."),
            click.option("--chunksize", type=int, default=100_000, show_default=True, help="Entries per work item."),
            click.option("--workers", type=int, default=1, show_default=True, help="Parallel workers for executors that use them."),
            click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the jet resolution smearing."),
            click.option("--retries", type=int, default=3, show_default=True, help="Tries after the first for a chunk that raises."),
            click.option("--ml", is_flag=True, help="Also run the ML stage (BDT jet-parton assignment in 4j2b): histograms_ml.root."),
            click.option(
                "--column-cache", type=click.Path(path_type=Path, file_okay=False),
                help="Keep the decoded input columns here for later runs (default: the user cache directory).",
            ),  # fmt: skip
            click.option("--no-column-cache", is_flag=True, help="Neither read nor fill the column cache."),
            click.option(
                "--column-cache-size", default="20GiB", show_default=True, metavar="SIZE",
                help="The column cache's size limit, e.g. 500MB; least recently used columns are evicted.",
            ),  # fmt: skip
        )
    ):
        command = decorator(command)
    return command


@main.command(cls=PluginOptionsCommand, slots=tuple(SLOTS))
@_processing_options
@click.option(
    "--output", type=click.Path(path_type=Path), default=Path("agc-output"), show_default=True,
    help="Output directory: histograms, fit results, plots; replaced only when the run succeeds.",
)  # fmt: skip
@click.option("--no-fit", is_flag=True, help="Stop after writing histograms.root.")
@click.option("--skip-bad-files", is_flag=True, help="Finish without inputs that fail; histograms are then partial.")
@click.option("--resume", is_flag=True, help="Reuse the checkpoints of an interrupted run with the same configuration.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML/JSON run configuration; flags given override it.")
@click.option(
    "--processor", metavar="MODULE:CLASS",
    help="Run your coffea ProcessorABC instead of the processor plugin (module, or file.py, from the working directory).",
)  # fmt: skip
@click.option("--processor-option", multiple=True, metavar="KEY=VALUE", help="A keyword argument of its constructor.")
@click.option("--processor-schema", metavar="NAME", default=DEFAULT_PROCESSOR_SCHEMA, show_default=True, help="coffea NanoEvents schema of its events.")
@click.option("--histogram-naming", metavar="MODULE:FUNCTION", help="Names its histograms in histograms.root: naming(keys, categories).")
@_fit_options
@_reports_errors
def run(
    analysis: str | None,
    settings: tuple[str, ...],
    fileset: Path | None,
    n_files_max: int,
    plugins: tuple[str, ...],
    chunksize: int,
    workers: int,
    seed: int,
    retries: int,
    ml: bool,
    column_cache: Path | None,
    no_column_cache: bool,
    column_cache_size: str,
    output: Path,
    no_fit: bool,
    skip_bad_files: bool,
    resume: bool,
    config_file: Path | None,
    significance: bool,
    limit: bool,
    no_plots: bool,
    no_ranking: bool,
    processor: str | None,
    processor_option: tuple[str, ...],
    processor_schema: str,
    histogram_naming: str | None,
    plugin_options: dict[str, dict[str, Any]],
) -> None:
    """Run the analysis: files -> histograms.root -> fit and plots.

    With --processor, your coffea processor runs instead of agcframe's: its
    output is written to output.coffea and its histograms to histograms.root.
    """
    from agcframe.engine.pipeline import run as run_analysis

    flags = {
        "fileset": ("fileset", str(fileset) if fileset else None),
        "n_files_max": ("n_files_max", n_files_max),
        "plugins": ("plugins", _plugin_choices(plugins, analysis)),
        "parameters": ("settings", parse_parameter_settings(settings)),
        "chunksize": ("chunksize", chunksize),
        "workers": ("workers", workers),
        "seed": ("seed", seed),
        "output": ("output", str(output)),
        "fit": ("no_fit", not no_fit),
        "ml": ("ml", ml),
        "retries": ("retries", retries),
        "skip_bad_files": ("skip_bad_files", skip_bad_files),
        "resume": ("resume", resume),
        "significance": ("significance", significance),
        "limit": ("limit", limit),
        "plots": ("no_plots", not no_plots),
        "ranking": ("no_ranking", not no_ranking),
        "processor": ("processor", processor),
        "processor_options": ("processor_option", parse_processor_options(processor_option)),
        "processor_schema": ("processor_schema", processor_schema),
        "histogram_naming": ("histogram_naming", histogram_naming),
        "column_cache": ("no_column_cache" if no_column_cache else "column_cache", _column_cache(column_cache, no_column_cache)),
        "column_cache_size": ("column_cache_size", column_cache_size),
    }
    flag_names = {key: _flag(param) for key, (param, _) in flags.items()}
    if config_file is None:
        values = {key: value for key, (_, value) in flags.items()}
        config = RunConfig.from_mapping({**values, "plugin_options": plugin_options}, flags=flag_names)
    else:
        context = click.get_current_context()
        given = {
            key: value
            for key, (param, value) in flags.items()
            if context.get_parameter_source(param) is not click.core.ParameterSource.DEFAULT or (key in ("plugins", "processor_options") and value)
        }
        config = RunConfig.from_file(
            config_file, {**given, "plugin_options": plugin_options}, flags={key: flag_names[key] for key in given}
        )
    run_analysis(config, show_progress=console.is_terminal, report=click.echo)  # it prints the summary as it goes


@main.command(name="process-file", cls=PluginOptionsCommand, slots=PROCESSING_SLOTS)
@_processing_options
@click.option("--process", required=True, help="Process of the sample, e.g. ttbar.")
@click.option("--variation", default="nominal", show_default=True, help="Variation of the sample, e.g. ME_var.")
@click.option("--file-index", type=int, required=True, help="Position of the file among the sample's selected files.")
@click.option("--output", type=click.Path(path_type=Path), required=True, help="Partial result file to write.")
@_reports_errors
def process_file_command(
    analysis: str | None,
    settings: tuple[str, ...],
    fileset: Path | None,
    n_files_max: int,
    plugins: tuple[str, ...],
    chunksize: int,
    workers: int,
    seed: int,
    retries: int,
    ml: bool,
    column_cache: Path | None,
    no_column_cache: bool,
    column_cache_size: str,
    process: str,
    variation: str,
    file_index: int,
    output: Path,
    plugin_options: dict[str, dict[str, Any]],
) -> None:
    """Process one file of a sample into a partial result (a workflow's fan-out job)."""
    from agcframe.engine.pipeline import process_file

    config = RunConfig.from_mapping(
        {
            "fileset": str(fileset) if fileset else None,
            "n_files_max": n_files_max,
            "plugins": _plugin_choices(plugins, analysis),
            "parameters": parse_parameter_settings(settings),
            "chunksize": chunksize,
            "workers": workers,
            "seed": seed,
            "retries": retries,
            "ml": ml,
            "column_cache": _column_cache(column_cache, no_column_cache),
            "column_cache_size": column_cache_size,
            "plugin_options": plugin_options,
        },
        flags={key: _flag(key) for key in ("n_files_max", "chunksize", "workers", "seed", "retries", "column_cache_size")},
    )
    partial = process_file(config, process, variation, file_index, output, show_progress=console.is_terminal)
    click.echo(f"processed {partial.events:,} events of {process}/{variation} file {file_index}; wrote {output}")


@main.command()
@click.argument("partials", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), help="Write the merged partial result here.")
@click.option("--histograms", type=click.Path(path_type=Path), help="Write histograms.root here, with metrics.json and provenance.json beside it.")
@_reports_errors
def merge(partials: tuple[Path, ...], output: Path | None, histograms: Path | None) -> None:
    """Merge partial results exactly: into one partial result (--output) or into histograms (--histograms)."""
    from agcframe.engine.partials import write_partial
    from agcframe.engine.pipeline import merge_partials, write_merged

    if (output is None) == (histograms is None):
        raise ConfigError("merge needs exactly one of --output (a partial result) and --histograms (histograms.root)")
    if output is not None:
        merged = merge_partials(partials)
        write_partial(merged, output)
        click.echo(f"merged {len(partials)} partial results ({merged.events:,} events) into {output}")
        return
    assert histograms is not None
    names = write_merged(partials, histograms)
    click.echo(f"merged {len(partials)} partial results; wrote {len(names)} histograms to {histograms}")


@main.command(cls=PluginOptionsCommand, slots=("inference",))
@click.argument("histograms", type=click.Path(path_type=Path))
@click.option(
    "--output", type=click.Path(path_type=Path), default=Path("agc-output"), show_default=True,
    help="Output directory: fit results, ranking, workspace, plots, fit.log; replaced only when the fit succeeds.",
)  # fmt: skip
@click.option("--plugin", "plugins", multiple=True, metavar="inference=NAME", help="Choose the inference plugin.")
@click.option("--asimov", is_flag=True, help="Fit the model's expectation at nominal parameters instead of the pseudodata.")
@click.option("--ml", is_flag=True, help="Also draw the ML validation model of histograms_ml.root (beside HISTOGRAMS) with this fit.")
@click.option("--analysis", metavar="NAME", help="The analysis whose model is fitted (default: the run's that wrote HISTOGRAMS).")
@_fit_options
@_reports_errors
def fit(
    histograms: Path,
    output: Path,
    plugins: tuple[str, ...],
    asimov: bool,
    ml: bool,
    analysis: str | None,
    significance: bool,
    limit: bool,
    no_plots: bool,
    no_ranking: bool,
    plugin_options: dict[str, dict[str, Any]],
) -> None:
    """Fit the statistical model to an existing histograms.root and draw its plots."""
    from agcframe.data import FitOptions
    from agcframe.engine.pipeline import fit as fit_histograms

    choices = parse_plugin_choices(plugins)
    other = sorted(set(choices) - {"inference"})
    if other:
        raise AgcframeError(f"agcframe fit takes only --plugin inference=NAME, not {other[0]}")
    fit_histograms(
        histograms,
        output,
        inference=choices.get("inference", "cabinetry"),
        options=FitOptions(asimov=asimov, significance=significance, limit=limit, ranking=not no_ranking),
        plots=not no_plots,
        plugin_options=plugin_options,
        show_progress=console.is_terminal,
        ml=ml,
        analysis=analysis,
        report=click.echo,
    )


@main.command()
@click.option("--analysis", metavar="NAME", help="The analysis to optimise (default: agc_ttbar).")
@click.option(
    "--parameter", "parameters", multiple=True, metavar="NAME",
    help="A parameter to optimise; repeatable (default: every one the analysis' soft form offers).",
)  # fmt: skip
@click.option("--range", "ranges", multiple=True, metavar="NAME=LOW:HIGH", help="Narrow a parameter's range, e.g. jet_pt_min=25:45.")
@click.option(
    "--set", "settings", multiple=True, metavar="NAME=VALUE",
    help="A parameter's value: the start of an optimised one, the fixed value of the others; repeatable.",
)  # fmt: skip
@click.option("--objective", type=click.Choice(list(OPTIMIZE_OBJECTIVES)), default="poi_uncertainty", show_default=True,
              help="Minimise the expected POI uncertainty (Asimov Hessian) or the expected 95% CL upper limit.")  # fmt: skip
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Softness of the cuts and histograms (the sigmoids' and kernels' widths scale with it).")
@click.option("--steps", type=int, default=60, show_default=True, help="Optimiser steps at most.")
@click.option("--learning-rate", type=float, default=0.05, show_default=True, help="Adam's step size, in units of each parameter's range.")
@click.option("--tolerance", type=float, default=1e-4, show_default=True, help="Stop when the objective changes by less than this (relative) for 5 steps.")
@click.option("--fileset", type=click.Path(path_type=Path), help="AGC-format fileset JSON (default: embedded dataset).")
@click.option("--n-files-max", type=int, default=-1, show_default=True, help="Files per sample; -1 for all.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the jet resolution smearing.")
@click.option(
    "--output", type=click.Path(path_type=Path), default=Path("optimize-output"), show_default=True,
    help="Output directory: optimize.json and its plots; replaced only when the optimisation succeeds.",
)  # fmt: skip
@_reports_errors
def optimize(
    analysis: str | None,
    parameters: tuple[str, ...],
    ranges: tuple[str, ...],
    settings: tuple[str, ...],
    objective: str,
    temperature: float,
    steps: int,
    learning_rate: float,
    tolerance: float,
    fileset: Path | None,
    n_files_max: int,
    seed: int,
    output: Path,
) -> None:
    """Optimise an analysis' cuts by gradient, through its statistical model, with soft cuts and smooth histograms."""
    from agcframe.optimize.optimizer import OptimizeSettings
    from agcframe.optimize.optimizer import optimize as run_optimization

    run = RunConfig.from_mapping(
        {
            "fileset": str(fileset) if fileset else None,
            "n_files_max": n_files_max,
            "plugins": _plugin_choices((), analysis),
            "parameters": parse_parameter_settings(settings),
            "seed": seed,
            "output": str(output),
            "fit": False,
        },
        flags={"fileset": "--fileset", "n_files_max": "--n-files-max", "plugins": "--analysis", "parameters": "--set", "seed": "--seed", "output": "--output"},
    )
    optimize_settings = OptimizeSettings(
        run=run, parameters=parameters, ranges=_parse_ranges(ranges), objective=objective, temperature=temperature,
        learning_rate=learning_rate, steps=steps, tolerance=tolerance,
    )  # fmt: skip
    run_optimization(optimize_settings, show_progress=console.is_terminal, report=click.echo)


def _parse_ranges(ranges: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``("jet_pt_min=25:45",)`` -> ``{"jet_pt_min": (25.0, 45.0)}``; one line naming a malformed one."""
    parsed = {}
    for text in ranges:
        name, _, bounds = text.partition("=")
        low, _, high = bounds.partition(":")
        try:
            parsed[name.strip()] = (float(low), float(high))
        except ValueError:
            raise ConfigError(f"--range {text!r} must be NAME=LOW:HIGH, e.g. jet_pt_min=25:45") from None
    return parsed


@main.command()
@click.argument("output", type=click.Path(path_type=Path), default=Path("agc-output"))
@click.option("--asimov", is_flag=True, help="The fit was to Asimov data (agcframe fit --asimov): show that data.")
@click.option("--analysis", metavar="NAME", help="The analysis whose labels the plots carry (default: the run's in OUTPUT).")
@_reports_errors
def plot(output: Path, asimov: bool, analysis: str | None) -> None:
    """Draw the fit's plots into OUTPUT/plots, for a run or fit made with --no-plots."""
    from agcframe.engine.pipeline import plot as draw

    written = draw(output, asimov=asimov, analysis=analysis)
    click.echo(f"drew {len(written)} plots into {output / 'plots'}")


@main.command()
@click.option("--output", type=click.Path(path_type=Path), required=True, help="Directory for the files and fileset.json.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option(
    "--events-per-file",
    type=click.IntRange(min=1),
    default=DEFAULT_EVENTS_PER_FILE,
    show_default=True,
    help="Events in each file; "
    + ", ".join(f"{process} files hold {factor}x as many" for process, factor in EVENTS_FACTOR.items())
    + " (their templates' tails need the statistics).",
)
@click.option("--files-per-sample", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--compression", default=DEFAULT_COMPRESSION, show_default=True, help="ALGORITHM:LEVEL (zlib, lzma, lz4, zstd) or none.")
@click.option("--all-branches", is_flag=True, help="Also write the other branches of real NanoAOD (947 in all).")
@_reports_errors
def generate(output: Path, seed: int, events_per_file: int, files_per_sample: int, compression: str, all_branches: bool) -> None:
    """Generate NanoAOD files for every AGC sample and their fileset.json."""
    from agcframe.tools.generate import GenerationSettings, generate_dataset

    settings = GenerationSettings(
        seed=seed,
        events_per_file=events_per_file,
        files_per_sample=files_per_sample,
        compression=compression,
        all_branches=all_branches,
    )
    with showing_progress(console.is_terminal):
        path = generate_dataset(output, settings)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("fileset_path", metavar="FILESET", type=click.Path(path_type=Path))
@click.option("--n-files-max", type=int, default=-1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--write", "write_to", type=click.Path(path_type=Path), help="Also write the selection as a fileset (absolute paths).")
@click.option("--analysis", metavar="NAME", help="The analysis whose samples the fileset lists (default: agc_ttbar).")
@_reports_errors
def fileset(fileset_path: Path, n_files_max: int, as_json: bool, write_to: Path | None, analysis: str | None) -> None:
    """Count files and events of a fileset, per sample and in total."""
    from agcframe.engine.pipeline import analysis_definition
    from agcframe.io.fileset import load_fileset, select_datasets, summarize, write_fileset

    definition = analysis_definition(analysis)
    datasets = select_datasets(load_fileset(fileset_path, definition), definition, n_files_max)
    if write_to is not None:
        write_fileset(datasets, write_to)
    summary = summarize(datasets)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    table = Table(title=f"{fileset_path} (first {n_files_max if n_files_max != -1 else 'all'} files per sample)")
    for column in ("sample", "files", "events"):
        table.add_column(column, justify="left" if column == "sample" else "right")
    for sample, counts in summary.samples.items():
        table.add_row(sample, f"{counts['files']:,}", f"{counts['events']:,}")
    table.add_row("total", f"{summary.files:,}", f"{summary.events:,}", style="bold")
    Console().print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_reports_errors
def plugins(as_json: bool) -> None:
    """List the installed plugins of every slot."""
    described = PluginManager().describe()
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    table = Table(title="agcframe plugins (* the default of its slot)")
    for column in ("slot", "name", "distribution", "version", "description", "options"):
        table.add_column(column)
    for slot, entries in described.items():
        for entry in entries:
            name = f"{entry['name']} *" if DEFAULT_PLUGINS.get(slot) == entry["name"] else entry["name"]
            table.add_row(slot, name, entry["distribution"], entry["version"], entry["description"], " ".join(entry["options"]))
    Console(width=200).print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_reports_errors
def analyses(as_json: bool) -> None:
    """List the installed analyses with their parameters and defaults (set one with --set NAME=VALUE)."""
    described = {
        name: {
            "distribution": registered.distribution,
            "description": registered.spec.description,
            "parameters": [
                {"name": p.name, "default": p.default, "type": p.type.__name__, "low": p.low, "high": p.high, "range": p.range_text(), "help": p.help}
                for p in registered.spec.parameters
            ],
        }
        for name, registered in PluginManager().specs("analysis").items()
    }
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    console_out = Console(width=200)
    for name, entry in described.items():
        default = " (default)" if DEFAULT_PLUGINS["analysis"] == name else ""
        table = Table(title=f"analysis {name}{default}: {entry['description']} [{entry['distribution']}]", title_justify="left")
        for column in ("parameter", "default", "type", "range", "meaning"):
            table.add_column(column)
        for p in entry["parameters"]:
            default = str(p["default"]).lower() if p["type"] == "bool" else str(p["default"])
            table.add_row(p["name"], default, p["type"], p["range"], p["help"])
        console_out.print(table)


@main.command(name="export-json")
@click.argument("histograms", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@_reports_errors
def export_json(histograms: Path, output: Path) -> None:
    """Write the histograms of HISTOGRAMS.root in the AGC reference JSON format."""
    from agcframe.io.histogram_file import read_histograms
    from agcframe.io.histogram_json import to_json
    from agcframe.engine.outputs import write_json

    document = to_json(read_histograms(histograms))
    write_json(output, document)
    click.echo(f"wrote {len(document)} histograms to {output}")


@main.command()
@click.argument("histograms", type=click.Path(path_type=Path))
@click.option(
    "--reference", type=click.Path(path_type=Path), required=True,
    help="Real AGC histograms in the AGC JSON format, e.g. tests/data/agc/reference/histos_1_file_per_process.json.",
)  # fmt: skip
@click.option("--analysis", metavar="NAME", help="The analysis of the histograms (default: the run's that wrote HISTOGRAMS).")
@_reports_errors
def realism(histograms: Path, reference: Path, analysis: str | None) -> None:
    """Compare the nominal yields and shapes of HISTOGRAMS.root (generated data) with real AGC histograms."""
    from agcframe.engine.pipeline import analysis_definition, analysis_of
    from agcframe.io.histogram_file import read_histograms
    from agcframe.io.histogram_json import read_json, to_json
    from agcframe.tools.realism import realism_table

    definition = analysis_definition(analysis or analysis_of(histograms))
    rows = realism_table(to_json(read_histograms(histograms)), read_json(reference), definition)
    table = Table(title=f"{histograms} against {reference}")
    for column in ("region", "process", "real yield", "generated yield", "ratio", "shape distance"):
        table.add_column(column, justify="left" if column in ("region", "process") else "right")
    for row in rows:
        table.add_row(
            row.region, row.process, f"{row.real:,.1f}", f"{row.generated:,.1f}", f"{row.ratio:.2f}", f"{row.shape_distance:.3f}"
        )
    Console().print(table)


@main.command()
@click.argument("histograms", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), required=True, help="AGC reference histogram JSON.")
@click.option("--verbose", is_flag=True, help="List every disagreeing bin, not only each histogram's worst.")
@_reports_errors
def validate(histograms: Path, reference: Path, verbose: bool) -> None:
    """Compare HISTOGRAMS.root with a reference by the AGC validation rule (exit 1 on failure).

    One line per histogram that disagrees, with its worst bin, then a summary line.
    """
    from agcframe.io.histogram_file import read_histograms
    from agcframe.io.histogram_json import read_json, to_json, validate as validate_histograms

    report = validate_histograms(to_json(read_histograms(histograms)), read_json(reference))
    for failure in report.failures:
        click.echo(f"FAIL {failure.summary()}")
        if verbose:
            click.echo("\n".join(failure.details()))
    if not report.ok:
        click.echo(f"{len(report.failures)} of {report.checked} histograms disagree with {reference}")
        sys.exit(1)
    click.echo(f"all {report.checked} histograms agree with {reference}")


@main.group()
def cache() -> None:
    """agcframe's cache: the embedded dataset, compiled kernels, ServiceX deliveries, the column cache."""


_COLUMN_CACHE_OPTION = click.option(
    "--column-cache", type=click.Path(path_type=Path, file_okay=False), help="The column cache (default: the cache directory's 'columns')."
)


@cache.command()
@_COLUMN_CACHE_OPTION
def info(column_cache: Path | None) -> None:
    """Where the cache is, the size of each of its folders, and the column cache's content and last hit rate."""
    from agcframe.cache import CACHE_ENV, cache_directory
    from agcframe.io.column_cache import ColumnCache

    directory = cache_directory()
    source = f"from ${CACHE_ENV}" if os.environ.get(CACHE_ENV) else f"the user's cache directory; set {CACHE_ENV} to move it"
    click.echo(f"cache: {directory} ({source})")
    entries = sorted(directory.iterdir()) if directory.is_dir() else []
    for entry in entries:
        files = [entry] if entry.is_file() else [path for path in entry.rglob("*") if path.is_file()]
        click.echo(f"  {entry.name}: {sum(path.stat().st_size for path in files) / 1e6:,.1f} MB")
    if not entries:
        click.echo("  (empty)")
    columns = ColumnCache(column_cache) if column_cache else ColumnCache.default()
    batches = columns.batches()
    chunks, inputs = len({batch.parent for batch in batches}), len({batch.parent.parent for batch in batches})
    held = f"{columns.size_bytes() / 1e6:,.1f} MB in {len(batches)} batches of {chunks} chunks of {inputs} input files" if batches else "empty"
    click.echo(f"column cache: {columns.directory}: {held}")
    last = columns.last_run()
    if last is not None and last["hit_rate"] is not None:
        click.echo(
            f"  last run: {last['hit_rate']:.0%} of its columns' bytes from the cache "
            f"({last['served_bytes'] / 1e6:,.1f} MB mapped, {last['decoded_bytes'] / 1e6:,.1f} MB decoded from its inputs)"
        )


@cache.command()
@_COLUMN_CACHE_OPTION
def clear(column_cache: Path | None) -> None:
    """Delete the column cache's content (the embedded dataset and compiled kernels stay)."""
    from agcframe.io.column_cache import ColumnCache

    columns = ColumnCache(column_cache) if column_cache else ColumnCache.default()
    click.echo(f"cleared the column cache {columns.directory}: {columns.clear() / 1e6:,.1f} MB")


@main.group()
def container() -> None:
    """The runtime container image (containers/Dockerfile)."""


@container.command()
@click.option("--tag", default=DEFAULT_TAG, show_default=True, help="Name of the image.")
@click.option("--base-image", help="BASE_IMAGE of the Dockerfile (default: python:3.11-slim-bookworm).")
@click.option("--context", type=click.Path(path_type=Path, file_okay=False), help="The agcframe checkout (default: this one).")
@click.option("--docker-host", help="Docker engine URL (default: DOCKER_HOST or the local socket).")
@_reports_errors
def build(tag: str, base_image: str | None, context: Path | None, docker_host: str | None) -> None:
    """Build the runtime image through the docker SDK."""
    from agcframe.tools.container import build_image

    image_id = build_image(context, tag=tag, base_image=base_image, docker_host=docker_host)
    click.echo(f"built {tag} ({image_id})")



def command() -> None:
    """The ``agcframe`` command (and ``python -m agcframe``): :func:`main`, then an exit that frees nothing one by one.

    The trees a run opened are ~10^5 Python objects per file in reference
    cycles; at exit, Python's last collection would free them one by one (0.6 s
    on nine NanoAOD files) just before the operating system reclaims the whole
    process. Frozen, they are left to the operating system. Outputs are written
    and closed before, and the log handlers are flushed after (``atexit``).
    """
    try:
        main(prog_name="agcframe")
    finally:
        gc.freeze()
