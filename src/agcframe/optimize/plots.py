"""The figures of ``agcframe optimize``: the objective and each parameter against the step, the templates before and after."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agcframe.data import histogram_name
from agcframe.plugin.analysis import Analysis

__all__ = ["draw_optimization"]

DPI = 100


def draw_optimization(
    document: Mapping[str, Any],
    analysis: Analysis,
    before: Mapping[str, tuple[np.ndarray, np.ndarray]],
    after: Mapping[str, tuple[np.ndarray, np.ndarray]],
    directory: Path,
) -> list[Path]:
    """Draw ``objective.png``, ``parameters.png`` and ``templates_{channel}.png`` of an optimisation (``document``: optimize.json) into ``directory``."""
    from matplotlib.figure import Figure

    directory.mkdir(parents=True, exist_ok=True)
    trajectory = document["trajectory"]
    steps = [entry["step"] for entry in trajectory]
    written = []

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(steps, [entry["objective"] for entry in trajectory], marker=".")
    axes.set_xlabel("step")
    axes.set_ylabel(document["objective"].replace("_", " ") + " (soft)")
    axes.axvline(document["best"]["step"], color="grey", linestyle=":", label="best")
    axes.legend()
    written.append(_save(figure, directory / "objective.png"))

    names = document["settings"]["parameters"]
    figure = Figure(figsize=(6, 2.2 * len(names)), layout="constrained")
    for index, name in enumerate(names):
        axes = figure.add_subplot(len(names), 1, index + 1)
        axes.plot(steps, [entry["parameters"][name] for entry in trajectory], marker=".")
        low, high = document["settings"]["ranges"][name]
        axes.set_ylim(low - 0.02 * (high - low), high + 0.02 * (high - low))
        axes.set_ylabel(name)
    axes.set_xlabel("step")
    written.append(_save(figure, directory / "parameters.png"))

    model = analysis.model
    for channel, region in model.channels.items():
        edges = model.edges(region)
        edges = analysis.binning(region).edges if edges is None else edges
        figure = Figure(figsize=(6, 4.5), layout="constrained")
        axes = figure.add_subplot()
        for index, (sample, process) in enumerate(model.samples.items()):
            name = histogram_name(region, process, "nominal")
            color = f"C{index}"
            axes.stairs(before[name][0], edges, color=color, linestyle="--")
            axes.stairs(after[name][0], edges, color=color, label=sample)
        axes.set_xlabel(analysis.binning(region).axis_label)
        axes.set_ylabel("events (soft), dashed: start, solid: best")
        axes.set_title(channel)
        axes.legend(fontsize="small")
        written.append(_save(figure, directory / f"templates_{channel.replace(' ', '_')}.png"))
    return written


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, format="png")
    return path
