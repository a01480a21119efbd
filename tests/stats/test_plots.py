"""Fit plots: image comparison with committed baselines (as cabinetry tests its plots), and PNGs that load."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
from matplotlib.testing.compare import compare_images

import agcframe
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar
from image_baselines import BASELINES, UPDATE_ENV

EXPECTED = [
    "4j1b_CR_postfit.png",
    "4j1b_CR_prefit.png",
    "4j2b_SR_postfit.png",
    "4j2b_SR_prefit.png",
    "correlation_matrix.png",
    "pulls.png",
    "ranking.png",
]


@pytest.fixture(scope="module")
def plots(real_histograms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plots of the fit to the real AGC histograms (deterministic inputs, so stable images)."""
    output = tmp_path_factory.mktemp("plots")
    agcframe.fit(real_histograms, output)
    directory = output / "plots"
    if os.environ.get(UPDATE_ENV):
        for name in EXPECTED:
            shutil.copyfile(directory / name, BASELINES / name)
    return directory


def test_every_plot_is_written(plots: Path) -> None:
    assert sorted(path.name for path in plots.iterdir()) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_plot_matches_baseline(plots: Path, name: str) -> None:
    baseline = BASELINES / name
    assert baseline.exists(), f"no baseline {baseline}; create it with {UPDATE_ENV}=1 python -m pytest {__file__}"
    difference = compare_images(str(baseline), str(plots / name), tol=1.0)
    assert difference is None, difference


@pytest.mark.parametrize("name", EXPECTED)
def test_plot_is_a_loadable_nonblank_png(plots: Path, name: str) -> None:
    image = matplotlib.image.imread(plots / name)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    assert np.ptp(image[..., :3]) > 0.5  # drawn content, not a blank canvas


def test_a_changed_plot_fails_the_comparison(plots: Path, tmp_path: Path) -> None:
    """The comparison can fail: the post-fit plot of one region is not the pre-fit one."""
    assert compare_images(str(BASELINES / "4j2b_SR_prefit.png"), str(plots / "4j2b_SR_postfit.png"), tol=1.0) is not None


def test_a_negative_predicted_yield_is_drawn_as_zero_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    import cabinetry
    import pyhf

    from agcframe.stats.plots import _drawable

    model = pyhf.simplemodels.uncorrelated_background(signal=[1.0, 5.0], bkg=[10.0, 10.0], bkg_uncertainty=[1.0, 1.0])
    prediction = cabinetry.model_utils.prediction(model)
    negative = prediction._replace(model_yields=[[[-0.5, 5.0], [0.2, 10.0]]])
    drawable = _drawable(negative)
    assert drawable.model_yields == [[[0.0, 5.0], [0.2, 10.0]]]
    assert "negative in bin(s) [0]" in caplog.text and "singlechannel" in caplog.text
    figures = cabinetry.visualize.data_mc(drawable, [10.0, 15.0], save_figure=False, close_figure=True)
    assert len(figures) == 1


def test_the_ranking_plot_leaves_out_mc_statistics_that_ranking_json_keeps() -> None:
    import matplotlib.pyplot as plt

    from agcframe.data import FitParameter, FitResult, Impact
    from agcframe.stats.plots import _ranking_figure

    names = ["ttbar_norm", "Luminosity", "staterror_4j1b-CR[0]"]
    result = FitResult(
        poi="ttbar_norm",
        parameters=tuple(FitParameter(name, 1.0 if name != "Luminosity" else 0.1, 0.2) for name in names),
        correlation=tuple(tuple(float(i == j) for j in range(3)) for i in range(3)),
        ranking=(Impact("Luminosity", 0.01, -0.01, 0.008, -0.008), Impact("staterror_4j1b-CR[0]", 0.05, -0.05, 0.04, -0.04)),
    )
    figure = _ranking_figure(result)
    labels = {label.get_text() for axes in figure.axes for label in axes.get_yticklabels()}
    plt.close(figure)
    assert "Luminosity" in labels and not any(label.startswith("staterror_") for label in labels)


def test_data_mc_ranges_leave_little_headroom_and_hold_the_ratios(plots: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """At most about 40 % above the content (linear), the legend clear of it, and a ratio panel holding data and band."""
    import json

    import cabinetry

    from agcframe.stats import plots as plotting
    from agcframe.stats.model import model_and_data

    model, data = model_and_data(json.loads((plots.parent / "workspace.json").read_text()))
    drawn: dict[str, tuple[Any, Any]] = {}

    def keep(figure: Any, path: Path) -> Path:
        main, ratio = figure.axes[:2]
        drawn[path.name] = (main, ratio)
        return path

    monkeypatch.setattr(plotting, "_save", keep)
    fit = cabinetry.fit.fit(model, data)
    plotting._draw_data_mc(model, data, fit, plotting.PlotLabels.of(AgcTtbar(), "Pseudodata"), tmp_path)
    assert len(drawn) == 4
    for name, (main, ratio) in drawn.items():
        tops = [max(patch.get_y() + patch.get_height() for patch in container) for container in main.containers[:-1]]
        data_points = main.containers[-1].lines[0].get_ydata()
        content = max(*tops, *data_points)
        assert main.get_yscale() == "linear" and 1.05 <= main.get_ylim()[1] / content <= 1.45, name
        (left, bottom), (right, _) = main.transAxes.inverted().transform(main.get_legend().get_window_extent())
        to_axes = main.transLimits  # data coordinates to axes fractions
        corners = [
            to_axes.transform((x, patch.get_y() + patch.get_height()))
            for container in main.containers[:-1] for patch in container for x in (patch.get_x(), patch.get_x() + patch.get_width())
        ]  # fmt: skip
        under = [y for x, y in corners if left <= x <= right]
        assert under and max(under) < bottom, f"{name}: the content reaches {max(under):.2f}, the legend down to {bottom:.2f}"
        low, high = ratio.get_ylim()
        for container in ratio.containers:
            heights = [(patch.get_y(), patch.get_y() + patch.get_height()) for patch in container] if hasattr(container, "patches") else []
            points = container.lines[0].get_ydata() if hasattr(container, "lines") and container.lines[0] is not None else []
            assert all(low <= value <= high for pair in heights for value in pair), f"{name}: band outside {low, high}"
            assert all(low <= value <= high for value in points), f"{name}: a ratio outside {low, high}"
        assert high - low <= 2.0, name


def test_the_ranking_plot_marks_a_parameter_whose_impact_is_multimodal(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from agcframe.data import FitParameter, FitResult, Impact
    from agcframe.stats.plots import MULTIMODAL_MARK, _ranking_figure

    names = ["ttbar_norm", "Luminosity", "Jet energy scale"]
    result = FitResult(
        poi="ttbar_norm",
        parameters=tuple(FitParameter(name, 0.1, 0.9) for name in names),
        correlation=tuple(tuple(float(i == j) for j in range(3)) for i in range(3)),
        ranking=(
            Impact("Luminosity", 0.01, -0.01, 0.008, -0.008),
            Impact("Jet energy scale", 0.03, -0.02, 0.02, -0.01, multimodal=("prefit_down",)),
        ),
    )
    figure = _ranking_figure(result)
    labels = {label.get_text() for axes in figure.axes for label in axes.get_yticklabels()}
    note = figure.get_supxlabel()
    figure.savefig(tmp_path / "ranking.png")
    plt.close(figure)
    assert labels >= {"Luminosity", f"Jet energy scale {MULTIMODAL_MARK}"}
    assert note.startswith(MULTIMODAL_MARK) and "lowest" in note


def test_a_plot_that_cannot_be_drawn_is_a_warning_and_the_rest_is_written(
    real_histograms: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """In this process (the ranking figure, drawn here after the refits) as in the plot process (a job it cannot draw)."""
    import cabinetry

    from agcframe.stats.plot_process import PlotProcess
    from agcframe.stats.plots import PlotLabels

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("cannot draw this")

    monkeypatch.setattr(cabinetry.visualize, "ranking", broken)
    result = agcframe.fit(real_histograms, tmp_path / "out", options=agcframe.FitOptions(ranking=True))
    assert "plot ranking.png was not drawn: ValueError: cannot draw this" in caplog.text
    written = {path.name for path in (tmp_path / "out" / "plots").iterdir()}
    assert written == set(EXPECTED) - {"ranking.png"}
    assert (tmp_path / "out" / "fit_results.json").is_file() and (tmp_path / "out" / "ranking.json").is_file()

    caplog.clear()
    log_file = tmp_path / "fit.log"
    labels = PlotLabels.of_fit(AgcTtbar())
    with PlotProcess(log_file) as plotter:
        plotter.draw("fit", result, labels, tmp_path / "plots", figures=["pulls"])
        plotter.draw("fit", dataclasses.replace(result, workspace=None), labels, tmp_path / "plots")
        plotter.draw("fit", result, labels, tmp_path / "plots", figures=["correlations"])
        drawn = plotter.close()
    assert drawn == [tmp_path / "plots" / "pulls.png", tmp_path / "plots" / "correlation_matrix.png"]
    assert "the fit figures were not drawn: ValueError: the fit result has no workspace to plot" in caplog.text
    assert "the fit figures were not drawn" in log_file.read_text()  # agcframe's messages are copied into the log, as here


def test_the_figures_of_a_plot_process_that_dies_are_drawn_here(
    real_histograms: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from agcframe.stats.plot_process import PlotProcess
    from agcframe.stats.plots import PlotLabels

    result = agcframe.fit(real_histograms, tmp_path / "out", options=agcframe.FitOptions(), plots=False)
    with PlotProcess(tmp_path / "fit.log") as plotter:
        plotter._process.kill()
        plotter.draw("fit", result, PlotLabels.of_fit(AgcTtbar()), tmp_path / "plots", figures=["pulls", "correlations"])  # into a closed pipe
        drawn = plotter.close()
    assert drawn == [tmp_path / "plots" / "pulls.png", tmp_path / "plots" / "correlation_matrix.png"]
    assert all(path.stat().st_size > 10_000 for path in drawn)
    assert f"the plot process ended with exit code -9 (see {tmp_path / 'fit.log'}): its figures are drawn here" in caplog.text


def test_agcframe_plot_draws_later_what_the_fit_would_have_drawn(plots: Path, tmp_path: Path) -> None:
    """``agcframe plot`` on a fit's output without its plots: the same figures, byte for byte, and the fit's files kept."""
    from agcframe.engine.outputs import MANIFEST
    from test_cli import agcframe_cli

    output = tmp_path / "output"
    shutil.copytree(plots.parent, output, ignore=shutil.ignore_patterns("plots", MANIFEST))
    before = {path.name: path.read_bytes() for path in output.iterdir() if path.is_file()}
    done = agcframe_cli("plot", str(output))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"drew {len(EXPECTED)} plots into {output / 'plots'}"
    for name in EXPECTED:
        assert (output / "plots" / name).read_bytes() == (plots / name).read_bytes(), name
    assert all((output / name).read_bytes() == content for name, content in before.items())
    assert (output / "plot.log").is_file()


def test_agcframe_plot_without_a_fit_is_one_line(tmp_path: Path) -> None:
    from test_cli import agcframe_cli

    done = agcframe_cli("plot", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"{tmp_path / 'fit_results.json'} does not exist; plot the output of 'agcframe run' or 'agcframe fit'" in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_the_fit_is_reported_and_written_before_its_ranking_and_any_plot(real_histograms: Path, tmp_path: Path) -> None:
    """The numbers before the pictures and the impacts: the fit's lines come while no figure and no ranking exist yet."""
    lines: list[str] = []
    seen: list[tuple[list[str], list[str]]] = []

    def report(line: str) -> None:
        lines.append(line)
        seen.append((sorted(path.name for path in tmp_path.rglob("*.png")), sorted(path.name for path in tmp_path.rglob("*.json"))))

    result = agcframe.fit(real_histograms, tmp_path / "out", options=agcframe.FitOptions(ranking=True), report=report)
    assert lines[0].startswith(f"ttbar_norm = {result.parameter('ttbar_norm').value:.4f} ± ") and lines[1].startswith("fit status: valid")
    assert len(lines) == 2  # each line once: the result after the ranking has the same fit
    assert seen[0] == ([], ["fit_results.json"])
    assert {path.name for path in (tmp_path / "out" / "plots").iterdir()} == set(EXPECTED)
    assert (tmp_path / "out" / "ranking.json").is_file() and result.ranking
