"""``agcframe optimize``: an analysis' cuts moved by gradient descent on an objective of its statistical model.

The events' columns are read once through the run's source plugin (and the
column cache) and kept in memory as JAX arrays. Each step evaluates the
analysis' soft form (:class:`~agcframe.plugin.analysis.Differentiable`) at the
current cut values, fills smooth histograms in the model's binning
(:func:`~agcframe.optimize.soft.kde_histogram`), evaluates the objective of
the model of those templates (:mod:`agcframe.optimize.likelihood`), and takes
its gradient with JAX: one compiled function for the value and the gradient.
optax's Adam moves the parameters, each in units of its range and kept inside
it; the search stops when the objective has changed by less than the
tolerance (relative) for :data:`PATIENCE` steps, or after the step limit.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agcframe.config import DEFAULT_PLUGINS, RunConfig
from agcframe.data import Dataset, Fill, histogram_name
from agcframe.engine.outputs import held_output, staged_outputs, write_json
from agcframe.engine.pipeline import plan_inputs
from agcframe.errors import ConfigError
from agcframe.io import column_cache
from agcframe.optimize.likelihood import OBJECTIVES, objective_function
from agcframe.optimize.soft import KDE_BANDWIDTH, SoftCuts
from agcframe.plugin.analysis import Analysis, Differentiable, SoftCut
from agcframe.progress import progress_bar, showing_progress

__all__ = ["OPTIMIZE_FILE", "OptimizeResult", "OptimizeSettings", "SoftObjective", "optimize", "run_command", "soft_form", "soft_objective"]

log = logging.getLogger(__name__)

OPTIMIZE_FILE = "optimize.json"
#: steps in a row whose objective changed by less than the tolerance before the search stops
PATIENCE = 5


@dataclass(frozen=True)
class OptimizeSettings:
    """What ``agcframe optimize`` does: which of the analysis' parameters it moves, towards what, and how.

    ``run`` gives the analysis, the inputs, the starting values of the
    parameters (``run.parameters``, the analysis' defaults for the others) and
    the output directory. ``parameters`` are the ones moved (default: every one
    the soft form offers); ``ranges`` narrow their ranges.
    """

    run: RunConfig = field(default_factory=lambda: RunConfig(output="optimize-output"))
    parameters: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    objective: str = "poi_uncertainty"
    temperature: float = 1.0
    #: Adam's step size, in units of each parameter's range
    learning_rate: float = 0.05
    steps: int = 100
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective '{self.objective}'; choose one of {', '.join(OBJECTIVES)}")
        if not self.temperature > 0:
            raise ConfigError(f"the temperature must be positive, not {self.temperature!r}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, not {self.steps!r}")


@dataclass(frozen=True)
class OptimizeResult:
    """The search: the objective and the parameters at each step, the best step, and the command that runs the analysis there."""

    objective: str
    trajectory: list[dict[str, Any]]
    best: dict[str, Any]
    command: str
    converged: bool
    timing: dict[str, float]
    output: Path


class SoftObjective:
    """The soft objective of an analysis on columns held in memory, as a function of the optimised parameters.

    :meth:`value_and_gradient` takes the parameters in units of their ranges
    (0 at ``low``, 1 at ``high``) and returns the objective, its gradient and
    the templates; it is compiled on its first call.
    """

    def __init__(
        self,
        analysis: Analysis,
        form: Differentiable,
        columns: Mapping[Dataset, Mapping[str, Any]],
        fixed: Mapping[str, Any],
        cuts: Sequence[SoftCut],
        objective: str,
        temperature: float,
    ) -> None:
        import jax
        import jax.numpy as jnp

        self.analysis, self.form, self.fixed, self.cuts, self.temperature = analysis, form, dict(fixed), tuple(cuts), temperature
        self.datasets = list(columns)
        self._columns = [{name: jnp.asarray(array) for name, array in columns[dataset].items()} for dataset in self.datasets]
        self.low = np.array([cut.low for cut in self.cuts])
        self.span = np.array([cut.high - cut.low for cut in self.cuts])
        self._objective = objective_function(analysis.model, objective)
        # forward mode: a few parameters and many events, so one pass pushes all directions along (reverse
        # mode through the multiplicity scans is several times slower)
        self._compiled = jax.jit(jax.jacfwd(self._evaluate, has_aux=True))

    def values(self, scaled: Any) -> Any:
        """The parameters' values at ``scaled`` (units of their ranges)."""
        return self.low + scaled * self.span

    def scaled(self, values: Mapping[str, float]) -> np.ndarray:
        """``values`` (by name) in units of the parameters' ranges."""
        return (np.array([values[cut.parameter] for cut in self.cuts]) - self.low) / self.span

    def templates(self, scaled: Any, columns: Sequence[Mapping[str, Any]], temperature: Any) -> dict[str, tuple[Any, Any]]:
        """The smooth histograms of every region the model reads, by histogram name: sums of weights and of squared weights."""
        values = self.values(scaled)
        cuts = SoftCuts(
            {**self.fixed, **{cut.parameter: values[i] for i, cut in enumerate(self.cuts)}},
            {cut.parameter: cut for cut in self.cuts},
            temperature,
        )
        regions = set(self.analysis.model.channels.values())
        fills = [fill for dataset, data in zip(self.datasets, columns) for fill in self.form.fills(dataset, data, cuts) if fill.region in regions]
        return _histograms(fills, self._edges, temperature)

    def _edges(self, region: str) -> np.ndarray:
        edges = self.analysis.model.edges(region)
        return self.analysis.binning(region).edges if edges is None else edges

    def _evaluate(self, scaled: Any, columns: Sequence[Mapping[str, Any]], temperature: Any) -> tuple[Any, tuple[Any, Any]]:
        templates = self.templates(scaled, columns, temperature)
        value = self._objective(templates)
        return value, (value, templates)

    def value_and_gradient(
        self, scaled: np.ndarray, temperature: float | None = None
    ) -> tuple[float, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The objective, its gradient (in range units) and the templates at ``scaled``, at ``temperature`` (default: the objective's).

        The temperature is an argument of the compiled function: changing it compiles nothing.
        """
        temperature = self.temperature if temperature is None else temperature
        gradient, (value, templates) = self._compiled(np.asarray(scaled, dtype=np.float64), self._columns, np.float64(temperature))
        return float(value), np.asarray(gradient), {name: (np.asarray(v), np.asarray(w)) for name, (v, w) in templates.items()}


def _histograms(fills: Sequence[Fill], edges: Callable[[str], np.ndarray], temperature: Any) -> dict[str, tuple[Any, Any]]:
    """Smooth histograms of ``fills``; fills of the same values (weight variations) share one kernel matrix."""
    import jax.numpy as jnp

    from agcframe.optimize.soft import kde_histogram

    groups: dict[tuple[str, int], list[Fill]] = {}
    for fill in fills:
        groups.setdefault((fill.region, id(fill.values)), []).append(fill)
    histograms: dict[str, tuple[Any, Any]] = {}
    for (region, _), group in groups.items():
        region_edges = edges(region)
        bandwidth = KDE_BANDWIDTH * float(np.min(np.diff(region_edges))) * temperature
        weights = jnp.stack([fill.factors * fill.scale for fill in group], axis=1)
        sums, squares = kde_histogram(group[0].values, weights, region_edges, bandwidth)
        for k, fill in enumerate(group):
            name = histogram_name(region, fill.process, fill.variation)
            if name in histograms:
                previous = histograms[name]
                histograms[name] = (previous[0] + sums[:, k], previous[1] + squares[:, k])
            else:
                histograms[name] = (sums[:, k], squares[:, k])
    return histograms


def soft_form(analysis: Analysis) -> Differentiable:
    """The soft form an analysis offers (its ``differentiable()``); :class:`ConfigError` for one that offers none."""
    differentiable = getattr(analysis, "differentiable", None)
    if differentiable is None:
        raise ConfigError(f"analysis '{analysis.name}' has no soft form, so it cannot be optimised; see 'How an analysis opts in' in docs/your-analysis.md")
    return differentiable()


def soft_objective(settings: OptimizeSettings, *, show_progress: bool = False) -> tuple[SoftObjective, dict[str, Any], dict[str, float]]:
    """Read the inputs of ``settings.run`` once and build its :class:`SoftObjective`; also the run's parameter values and the reading time."""
    import jax

    from agcframe.stats.fitting import configure_jax

    started = time.perf_counter()
    inputs = plan_inputs(settings.run)
    analysis = inputs.analysis
    form = soft_form(analysis)
    offered = {cut.parameter: cut for cut in form.soft_cuts}
    chosen = settings.parameters or tuple(offered)
    cuts = []
    for name in chosen:
        if name not in offered:
            raise ConfigError(f"analysis '{analysis.name}' cannot optimise parameter {name!r}; its optimisable parameters are {', '.join(offered)}")
        cut = offered[name]
        low, high = settings.ranges.get(name, (cut.low, cut.high))
        if not cut.low <= low < high <= cut.high:
            raise ConfigError(f"the range of {name!r} must lie within [{cut.low:g}, {cut.high:g}] with low < high, not [{low:g}, {high:g}]")
        start = inputs.parameters[name]
        if not low <= start <= high:
            raise ConfigError(f"the starting value of {name!r}, {start:g}, is outside its range [{low:g}, {high:g}]; set it with --set {name}=VALUE")
        cuts.append(SoftCut(name, cut.width, low, high))
    for name in settings.ranges:
        if name not in chosen:
            raise ConfigError(f"--range names {name!r}, which is not optimised; optimised: {', '.join(chosen)}")
    ranges = {cut.parameter: (cut.low, cut.high) for cut in cuts}

    columns: dict[Dataset, list[dict[str, np.ndarray]]] = {}
    by_dataset = {(dataset.process, dataset.variation): dataset for dataset in inputs.datasets}
    with column_cache.using(settings.run.cache()), showing_progress(show_progress), progress_bar("reading", len(inputs.items), "chunks") as advance:
        for item in inputs.items:
            dataset = by_dataset[(item.process, item.variation)]
            columns.setdefault(dataset, []).append(form.columns(item, inputs.parameters, ranges, settings.run.seed))
            advance()
    joined = {dataset: {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} for dataset, parts in columns.items()}
    configure_jax()
    jax.config.update("jax_enable_x64", True)
    objective = SoftObjective(analysis, form, joined, inputs.parameters, cuts, settings.objective, settings.temperature)
    return objective, inputs.parameters, {"reading_s": time.perf_counter() - started}


def optimize(settings: OptimizeSettings, *, show_progress: bool = False, report: Callable[[str], None] | None = None) -> OptimizeResult:
    """Move the chosen cuts of ``settings.run``'s analysis to a minimum of the soft objective.

    Writes ``optimize.json`` (settings, trajectory, best values, timing, the
    command), the figures of the objective, the parameters and the templates
    before and after into ``settings.run.output``, atomically; ``report`` is
    called with the summary lines, the last one the command that runs the
    analysis at the best values.
    """
    import optax

    report = report or (lambda line: None)
    output = Path(settings.run.output)
    with held_output(output):
        started = time.perf_counter()
        objective, parameters, timing = soft_objective(settings, show_progress=show_progress)
        names = [cut.parameter for cut in objective.cuts]
        optimizer = optax.adam(settings.learning_rate)
        scaled = objective.scaled(parameters)
        state = optimizer.init(scaled)
        trajectory: list[dict[str, Any]] = []
        quiet, converged = 0, False
        compiled = time.perf_counter()
        step_times = []
        with showing_progress(show_progress), progress_bar("optimizing", settings.steps, "steps", status="") as advance:
            for step in range(settings.steps + 1):
                begun = time.perf_counter()
                value, gradient, templates = objective.value_and_gradient(scaled)
                if step == 0:
                    compiled = time.perf_counter()
                    initial_templates = templates
                else:
                    step_times.append(time.perf_counter() - begun)
                if not trajectory or value < min(entry["objective"] for entry in trajectory):
                    best_templates = templates
                values = objective.values(scaled)
                trajectory.append(
                    {
                        "step": step,
                        "objective": value,
                        "parameters": {name: float(values[i]) for i, name in enumerate(names)},
                        "gradient": {name: float(gradient[i] / objective.span[i]) for i, name in enumerate(names)},
                    }
                )
                if step and abs(trajectory[-2]["objective"] - value) <= settings.tolerance * abs(value):
                    quiet += 1
                else:
                    quiet = 0
                if not np.all(np.isfinite(gradient)) or not np.isfinite(value):
                    raise ConfigError(f"the soft objective is not finite at {trajectory[-1]['parameters']}; raise the temperature or narrow the ranges")
                if quiet >= PATIENCE or step == settings.steps:
                    converged = quiet >= PATIENCE
                    break
                updates, state = optimizer.update(gradient, state, scaled)
                scaled = np.clip(optax.apply_updates(scaled, updates), 0.0, 1.0)
                advance(status=f"{settings.objective} {value:.5g}")
        best = min(trajectory, key=lambda entry: entry["objective"])
        command = run_command(settings.run, best["parameters"])
        timing.update(
            compile_s=compiled - started - timing["reading_s"],
            step_s=float(np.median(step_times)) if step_times else float("nan"),
            total_s=time.perf_counter() - started,
        )
        document = {
            "analysis": objective.analysis.name,
            "objective": settings.objective,
            "objective_description": OBJECTIVES[settings.objective],
            "settings": {
                "parameters": names,
                "ranges": {cut.parameter: [cut.low, cut.high] for cut in objective.cuts},
                "widths": {cut.parameter: cut.width for cut in objective.cuts},
                "temperature": settings.temperature,
                "learning_rate": settings.learning_rate,
                "steps": settings.steps,
                "tolerance": settings.tolerance,
                "seed": settings.run.seed,
                "fileset": settings.run.fileset,
                "fixed_parameters": {name: value for name, value in parameters.items() if name not in names},
            },
            "initial": trajectory[0],
            "best": best,
            "converged": converged,
            "trajectory": trajectory,
            "timing": timing,
            "command": command,
        }
        with staged_outputs(output, "optimize") as staging:
            write_json(staging / OPTIMIZE_FILE, document)
            from agcframe.optimize.plots import draw_optimization

            draw_optimization(document, objective.analysis, initial_templates, best_templates, staging / "plots")
    first = trajectory[0]
    report(f"{settings.objective}: {first['objective']:.5g} at the start, {best['objective']:.5g} at step {best['step']} of {len(trajectory) - 1} (soft cuts, temperature {settings.temperature:g})")
    report(f"wrote {output / OPTIMIZE_FILE} and its plots in {output / 'plots'}")
    report(f"run the analysis there: {command}")
    return OptimizeResult(settings.objective, trajectory, best, command, converged, timing, output)


def run_command(run: RunConfig, values: Mapping[str, float]) -> str:
    """``agcframe run`` with ``values`` and the run's other settings that differ from the defaults."""
    words = ["agcframe", "run"]
    if run.plugins.get("analysis") != DEFAULT_PLUGINS["analysis"]:
        words += ["--analysis", run.plugins["analysis"]]
    if run.fileset:
        words += ["--fileset", str(run.fileset)]
    if run.n_files_max != -1:
        words += ["--n-files-max", str(run.n_files_max)]
    settings = {**run.parameters, **{name: float(f"{value:.4g}") for name, value in values.items()}}
    for name, value in settings.items():
        words += ["--set", f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"]
    return shlex.join(words)
