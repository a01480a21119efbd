"""Figures of a fit, drawn with cabinetry's visualisation as PNG files, ready for a slide.

They are drawn in mplhep's CMS style with the font sizes reduced to fit
cabinetry's figure sizes (at mplhep's own sizes labels overflow the axes), at
:data:`DPI`. The data/MC figures carry the experiment label (CMS Open Data, the
analysis' luminosity and energy: 3378 pb⁻¹, 13 TeV for the AGC), the
observables' axis labels, the data labelled as the analysis' model names them
(the AGC fits "Pseudodata") and a y range that keeps the legend and labels
clear of the stack and the data. A figure that cannot be drawn is a warning;
the others are still drawn. The correlation matrix shows the
physics nuisance parameters; the per-bin MC-statistics parameters are in
``fit_results.json``. The ranking is drawn from the result's impacts, which
are ``ranking.json``.

Every figure is made from the fitted pyhf workspace and the :class:`FitResult`,
so the plots look the same whichever inference plugin fitted the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agcframe.data import FitResult
from agcframe.plugin.analysis import Analysis
from agcframe.stats.model import model_and_data
from agcframe.progress import advance_current

__all__ = ["FIT_FIGURES", "PlotLabels", "draw_fit_plots", "draw_ml_validation_plots"]

log = logging.getLogger(__name__)

DPI = 150
#: the fit's figures, by the name :func:`draw_fit_plots` takes: pre- and post-fit data/MC per region, pulls, correlations, ranking
FIT_FIGURES = ("data_mc", "pulls", "correlations", "ranking")
#: mplhep's CMS sizes (26 pt) made for 10 x 10 inch figures, scaled to cabinetry's smaller ones
FONT_SIZES = {"font.size": 13, "axes.labelsize": 13, "legend.fontsize": 11, "xtick.labelsize": 12, "ytick.labelsize": 12}
#: the names of the per-bin MC-statistics parameters (pyhf's staterror modifiers)
MC_STATISTICS_PREFIX = "staterror_"
#: free space between the highest bar or point and the lowest legend or label, as a fraction of the axes
HEADROOM = 0.03
#: the main panel's range above its highest content, at least and (if two legend columns suffice) at most
MINIMUM_HEADROOM = 0.05
MAXIMUM_HEADROOM = 0.4
#: on a log axis, the most decades above the highest content (the axis then starts higher)
MAXIMUM_LOG_HEADROOM = 2
#: the data/MC figures' margins (figure fractions of cabinetry's 6 x 6 inch figure), set instead of a
#: layout engine: the legend and labels are measured without a layout pass and saving lays nothing out;
#: the left one then moves to fit the y axes' labels (see :func:`_room_for_y_labels`)
DATA_MC_MARGINS = {"left": 0.15, "right": 0.96, "bottom": 0.11, "top": 0.95}
#: the space (inches) between the figure's left edge and the y axes' labels
LEFT_PAD = 0.08
#: the ranking plot's mark of a parameter with a multimodal impact (see :class:`~agcframe.data.Impact`)
MULTIMODAL_MARK = "\N{DAGGER}"
#: the ratio panel's half-ranges about 1 to choose from (the smallest that holds the data and band)
RATIO_HALF_RANGES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class PlotLabels:
    """What the figures take from the analysis: each channel's bin edges and axis label, the luminosity text and the data's name.

    Plain data (picklable): the figures can be drawn in another process than the one holding the analysis.
    """

    variables: dict[str, tuple[np.ndarray, str]]
    luminosity: str
    data: str

    @classmethod
    def of(cls, analysis: Analysis, data: str) -> PlotLabels:
        variables = {}
        for model in (analysis.ml_model, analysis.model):  # the main model's channels win a shared name
            for channel, region in (model.channels.items() if model is not None else ()):
                binning = analysis.binning(region)
                edges = model.edges(region)
                variables[channel] = (binning.edges if edges is None else edges, binning.axis_label)
        return cls(variables, rf"{analysis.luminosity:.0f} pb$^{{-1}}$ ({analysis.energy})", data)

    @classmethod
    def of_fit(cls, analysis: Analysis, *, asimov: bool = False) -> PlotLabels:
        """The labels of the main fit's figures (its data named as the analysis' model names it)."""
        return cls.of(analysis, "Asimov data" if asimov else analysis.model.data_label)

    @classmethod
    def of_ml_validation(cls, analysis: Analysis) -> PlotLabels:
        """The labels of the ML validation model's figures."""
        return cls.of(analysis, (analysis.ml_model or analysis.model).data_label)

    def has_variable(self, channel: str, n_bins: int) -> bool:
        return channel in self.variables and len(self.variables[channel][0]) == n_bins + 1

    def bin_edges(self, channel: str, n_bins: int) -> np.ndarray:
        """The bin edges a channel's figure has on its x axis: its variable's, else (as cabinetry draws it) the bin numbers."""
        return np.asarray(self.variables[channel][0], dtype=float) if self.has_variable(channel, n_bins) else np.arange(n_bins + 1.0)

    def plot_config(self, model: Any) -> dict[str, Any]:
        """A cabinetry config with only what its plots read: each region's binning and variable."""
        regions = []
        for channel, n_bins in zip(model.config.channels, model.config.channel_nbins.values()):
            region: dict[str, Any] = {"Name": channel}
            if self.has_variable(channel, n_bins):
                edges, label = self.variables[channel]
                region.update(Binning=np.asarray(edges).tolist(), Variable=label)
            regions.append(region)
        return {"Regions": regions}


def _cabinetry_results(result: FitResult) -> Any:
    import cabinetry

    return cabinetry.fit.FitResults(
        np.array([p.value for p in result.parameters]),
        np.array([p.error for p in result.parameters]),
        [p.name for p in result.parameters],
        np.array(result.correlation),
        2 * (result.minimum_nll or 0.0),
    )


def _slide_ready(figure: Any, labels: PlotLabels, bins: _ChannelBins) -> Any:
    """A cabinetry data/MC figure with the experiment label, the data named as the model names them, the legend clear
    of the content and a ratio panel whose range follows the data and the band."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    main, ratio = figure.axes[:2]
    figure.set_layout_engine("none")  # cabinetry's constrained layout measures every tick label at each draw
    main.get_gridspec().update(**DATA_MC_MARGINS)
    for text in main.get_legend().get_texts():
        if text.get_text() == "Data":
            text.set_text(labels.data)
    _experiment_label(main, labels.luminosity)
    ratio.set_ylim(_ratio_range(bins))
    ratio.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10], prune="upper"))
    ratio.yaxis.set_major_formatter(ScalarFormatter())
    bottom = main.get_ylim()[0]
    for _ in range(2):  # the range's tick labels set the margin, the margin the axes' width, which the range depends on
        main.set_ylim(_main_range(figure, main, bins, bottom))
        if not _room_for_y_labels(figure, (main, ratio)):
            break
    return figure


def _room_for_y_labels(figure: Any, panels: tuple[Any, ...]) -> bool:
    """Move the left margin so that the panels' y labels end :data:`LEFT_PAD` inside the figure; whether it moved."""
    renderer = figure.canvas.get_renderer()
    leftmost = min(panel.yaxis.get_tightbbox(renderer).x0 for panel in panels)  # the y axis alone: the x axis' ticks need no layout
    shift = (LEFT_PAD * figure.dpi - leftmost) / figure.bbox.width
    if abs(shift) * figure.bbox.width < 1:  # less than a pixel
        return False
    gridspec = panels[0].get_gridspec()
    gridspec.update(left=gridspec.left + shift)
    return True


def _experiment_label(axes: Any, luminosity: str) -> None:
    """"CMS *Open Data*" above the axes' top left and the luminosity and energy above its top right.

    mplhep's ``cms.label`` draws the same, but renders the whole figure (twice) to
    measure its texts first: 0.3 to 0.7 s a figure. Packed as offset boxes, the
    texts are laid out when the figure is saved.
    """
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnchoredOffsetbox, HPacker, TextArea

    size = plt.rcParams["font.size"]
    experiment = TextArea("CMS", textprops={"fontweight": "bold", "fontsize": 1.3 * size})
    status = TextArea("Open Data", textprops={"fontstyle": "italic", "fontsize": 1.04 * size})
    label = HPacker(children=[experiment, status], align="baseline", pad=0, sep=0.3 * size)
    axes.add_artist(
        AnchoredOffsetbox(
            "lower left", child=label, pad=0, borderpad=0.1, frameon=False, bbox_to_anchor=(0, 1), bbox_transform=axes.transAxes
        )
    )
    axes.text(1, 1.01, luminosity, transform=axes.transAxes, ha="right", va="bottom", fontsize=0.9 * size)


@dataclass(frozen=True)
class _ChannelBins:
    """What one channel's figure shows, bin by bin: edges, the drawn prediction with its uncertainty, the data."""

    edges: np.ndarray
    prediction: np.ndarray
    uncertainty: np.ndarray
    data: np.ndarray

    @property
    def heights(self) -> np.ndarray:
        """The top of the band or of the data's error bar in each bin."""
        return np.maximum(self.prediction + self.uncertainty, self.data + np.sqrt(self.data))


def _main_range(figure: Any, main: Any, bins: _ChannelBins, bottom: float) -> tuple[float, float]:
    """The y range of the main panel: the content ends below the legend and labels above it (bin by bin), little more.

    Each box (the legend, the region labels) needs the bins under it to end
    :data:`HEADROOM` below its lower edge; the range is the smallest that gives
    every box that, and at least :data:`MINIMUM_HEADROOM` above the highest
    content. Where one column of legend needs more than :data:`MAXIMUM_HEADROOM`,
    the legend takes two. On a log axis (cabinetry's choice for a large range)
    the same holds in decades, and the axis starts a decade higher than
    ``bottom`` (cabinetry's) while the range above the content exceeds
    :data:`MAXIMUM_LOG_HEADROOM` decades.
    """
    log_scale = main.get_yscale() == "log"
    scale, unscale = (np.log10, lambda value: 10**value) if log_scale else (float, float)
    content = float(np.max(bins.heights))

    def top_clearing(boxes: list[tuple[float, float, float]], bottom: float) -> float:
        """The least top at which the bins under each box (x0, y0, x1, axes fractions) end below it."""
        left, right = main.get_xlim()
        fractions = (bins.edges - left) / (right - left)
        top = bottom
        for x0, y0, x1 in boxes:
            under = (fractions[1:] > x0) & (fractions[:-1] < x1)
            if under.any():
                highest = float(np.max(bins.heights[under]))
                top = max(top, unscale(scale(bottom) + (scale(highest) - scale(bottom)) / max(y0 - HEADROOM, 0.2)))
        return top

    boxes = _label_boxes(figure, main)
    top = top_clearing(boxes, bottom)
    if scale(top) - scale(bottom) > (1 + MAXIMUM_HEADROOM) * (scale(content) - scale(bottom)):
        _legend_in_two_columns(main)
        boxes = _label_boxes(figure, main)
        top = top_clearing(boxes, bottom)
    while log_scale and top > content * 10**MAXIMUM_LOG_HEADROOM and bottom * 10 < content / 10:
        bottom *= 10  # a decade less at the bottom gives the content more of the axis (the boxes stay where they are)
        top = top_clearing(boxes, bottom)
    least = unscale(scale(bottom) + (1 + MINIMUM_HEADROOM) * (scale(content) - scale(bottom)))
    return bottom, max(top, least)


def _label_boxes(figure: Any, main: Any) -> list[tuple[float, float, float]]:
    """The legend and the labels inside the axes as (left, bottom, right) axes fractions.

    The axes have their final place (:data:`DATA_MC_MARGINS`), so the texts are
    measured with the figure's renderer without drawing anything.
    """
    renderer = figure.canvas.get_renderer()
    to_axes = main.transAxes.inverted()
    labels = [*main.texts, *main.artists]  # cabinetry's region label is an AnchoredText
    legend = to_axes.transform(main.get_legend().get_window_extent(renderer))
    inside = [
        corners for corners in (to_axes.transform(label.get_window_extent(renderer)) for label in labels) if 0 <= corners[0][1] <= 1
    ]
    return [(float(x0), float(y0), float(x1)) for (x0, y0), (x1, _) in (legend, *inside)]


def _legend_in_two_columns(main: Any) -> None:
    """cabinetry's legend (its entries: the stack from the top, the band, the data) again, in two columns."""
    legend = main.get_legend()
    *stack, band, data = main.containers
    main.legend([*stack[::-1], band, data], [text.get_text() for text in legend.get_texts()], frameon=False, ncols=2, loc="upper right", labelspacing=0.3)


def _ratio_range(bins: _ChannelBins) -> tuple[float, float]:
    """The ratio panel's range: symmetric about 1, just wide enough for the data with its errors and the band."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bins.data / bins.prediction
        spreads = [np.abs(ratio - 1) + np.sqrt(bins.data) / bins.prediction, bins.uncertainty / bins.prediction]
    deviations = np.concatenate(spreads)
    deviations = deviations[np.isfinite(deviations)]
    largest = float(deviations.max()) if deviations.size else 0.0
    half = next((step for step in RATIO_HALF_RANGES if step >= 1.25 * largest), RATIO_HALF_RANGES[-1])
    return max(1 - half, 0.0), 1 + half


def _without(fit_results: Any, names: list[str]) -> Any:
    """``fit_results`` without the parameters ``names`` (values, errors, labels and correlations)."""
    keep = [index for index, label in enumerate(fit_results.labels) if label not in names]
    return fit_results._replace(
        bestfit=fit_results.bestfit[keep],
        uncertainty=fit_results.uncertainty[keep],
        labels=[fit_results.labels[index] for index in keep],
        corr_mat=fit_results.corr_mat[np.ix_(keep, keep)],
    )


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=DPI, format="png")
    plt.close(figure)
    advance_current()  # a "plots" bar, where one is open (the plot process reports each figure to its parent's)
    return path


def _style() -> dict[str, Any]:
    import mplhep

    # figures made at the resolution they are saved at: text is measured (and its mathtext parsed) once, not per resolution
    return {**mplhep.style.CMS, **FONT_SIZES, "figure.dpi": DPI}


def draw_fit_plots(
    result: FitResult, labels: PlotLabels, directory: Path, *, asimov: bool = False, figures: Collection[str] = FIT_FIGURES
) -> list[Path]:
    """Draw the fit's ``figures`` (see :func:`_draw`) in mplhep's CMS style, labelled with ``labels`` (:meth:`PlotLabels.of_fit`)."""
    import matplotlib.pyplot as plt

    unknown = set(figures) - set(FIT_FIGURES)
    if unknown:
        raise ValueError(f"no fit figures {sorted(unknown)}; choose from {', '.join(FIT_FIGURES)}")
    with plt.style.context(_style()):
        return _draw(result, labels, directory, asimov=asimov, figures=figures)


def draw_ml_validation_plots(workspace: dict[str, Any], result: FitResult, labels: PlotLabels, directory: Path) -> list[Path]:
    """The ML validation model's observables against the data, before and with the main fit's parameters.

    ``workspace`` is the ML model (``Feature0``, ...); ``result`` the main fit,
    whose parameters are matched to it by name (cabinetry's
    ``match_fit_results``: parameters the main model lacks, such as the ML
    channels' MC statistics, stay at their pre-fit values).
    """
    import cabinetry
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    model, data = model_and_data(workspace)
    matched = cabinetry.model_utils.match_fit_results(model, _cabinetry_results(result))
    with plt.style.context(_style()):
        return _draw_data_mc(model, data, matched, labels, directory)


def _draw_data_mc(model: Any, data: Any, fit_results: Any, labels: PlotLabels, directory: Path) -> list[Path]:
    """Pre- and post-fit (``fit_results``) data/MC figures of every channel of ``model``."""
    import cabinetry

    config = labels.plot_config(model)
    written = []
    for label, prediction in (
        ("prefit", cabinetry.model_utils.prediction(model)),
        ("postfit", cabinetry.model_utils.prediction(model, fit_results=fit_results)),
    ):
        drawable = _drawable(prediction)
        for index, channel in enumerate(model.config.channels):
            bins = _ChannelBins(
                labels.bin_edges(channel, model.config.channel_nbins[channel]),
                np.sum(drawable.model_yields[index], axis=0),
                np.asarray(drawable.total_stdev_model_bins[index][-1]),
                np.asarray(data)[model.config.channel_slices[channel]],
            )
            path = directory / f"{channel.replace(' ', '_')}_{label}.png"
            with _warned_if_undrawable(path):
                for entry in cabinetry.visualize.data_mc(drawable, data, config=config, channels=channel, save_figure=False) or []:
                    written.append(_save(_slide_ready(entry["figure"], labels, bins), path))
    return written


def _drawable(prediction: Any) -> Any:
    """``prediction`` with negative sample yields drawn as zero, each such channel named in a warning.

    pyhf's interpolation of systematics can take a sample's prediction below
    zero in a bin with few MC events (generated datasets of a few thousand
    events do); cabinetry refuses to draw a negative total. The fit result is
    unchanged: only the figure shows zero there.
    """
    yields = []
    for channel, channel_yields in zip(prediction.model.config.channels, prediction.model_yields):
        samples = np.asarray(channel_yields, dtype=np.float64)
        negative = np.flatnonzero((samples < 0).any(axis=0))
        if negative.size:
            log.warning(
                "%s prediction of %s is negative in bin(s) %s (total %s): drawn as zero",
                prediction.label, channel, negative.tolist(), np.round(samples.sum(axis=0)[negative], 3).tolist(),
            )
        yields.append(np.clip(samples, 0.0, None).tolist())
    return prediction._replace(model_yields=yields)


def _ranking_figure(result: FitResult) -> Any:
    """cabinetry's ranking plot of the valid impacts of ``result.ranking`` (as in ranking.json).

    The per-bin MC-statistics parameters (``staterror_*``) are left out: cabinetry
    draws their pulls around 1, which reads as a one-sigma pull beside the
    other parameters' 0; their impacts stay in ``ranking.json``. A parameter
    with a multimodal impact (the conditional likelihood has several minima for
    one of its shifts; the lowest is drawn) is marked with :data:`MULTIMODAL_MARK`.
    """
    import cabinetry

    assert result.ranking is not None
    shown = [impact for impact in result.ranking if impact.valid and not impact.name.startswith(MC_STATISTICS_PREFIX)]
    left_out = [impact.name for impact in result.ranking if not impact.valid]
    if left_out:
        log.warning("ranking plot without %s: their impact refits did not converge", ", ".join(left_out))
    parameters = [result.parameter(impact.name) for impact in shown]

    def column(field: str) -> np.ndarray:
        return np.array([getattr(impact, field) or 0.0 for impact in shown])

    ranking = cabinetry.fit.RankingResults(
        np.array([p.value for p in parameters]),
        np.array([p.error for p in parameters]),
        [f"{impact.name} {MULTIMODAL_MARK}" if impact.multimodal else impact.name for impact in shown],
        column("prefit_up"),
        column("prefit_down"),
        column("postfit_up"),
        column("postfit_down"),
    )
    figure = cabinetry.visualize.ranking(ranking, max_pars=20, save_figure=False, close_figure=False)
    if any(MULTIMODAL_MARK in label.get_text() for label in figure.axes[0].get_yticklabels()):
        figure.supxlabel(f"{MULTIMODAL_MARK} several conditional minima: the lowest one's impact is drawn", x=0.02, ha="left", fontsize="medium")
    return figure


def _draw(result: FitResult, labels: PlotLabels, directory: Path, *, asimov: bool, figures: Collection[str]) -> list[Path]:
    """Draw those of the pre- and post-fit distributions per region, pulls, correlations and the ranking (if the result has one) in ``figures``.

    Parameters
    ----------
    result
        A fit result; all but the ranking need its workspace.
    labels
        The analysis' axis labels, luminosity and data name.
    directory
        Folder for the PNG files (created); callers stage it, as every output.
    asimov
        The fit was to Asimov data; show that data.
    figures
        Which of :data:`FIT_FIGURES` to draw.

    Returns
    -------
    The paths written.
    """
    import cabinetry

    if result.workspace is None and set(figures) - {"ranking"}:
        raise ValueError("the fit result has no workspace to plot")
    directory.mkdir(parents=True, exist_ok=True)
    fit_results = _cabinetry_results(result)
    mc_statistics = [name for name in fit_results.labels if name.startswith(MC_STATISTICS_PREFIX)]
    written = []
    if "data_mc" in figures:
        assert result.workspace is not None
        written.extend(_draw_data_mc(*model_and_data(result.workspace, asimov=asimov), fit_results, labels, directory))
    if "pulls" in figures:
        with _warned_if_undrawable(directory / "pulls.png") as path:
            pulls = cabinetry.visualize.pulls(fit_results, exclude=[*mc_statistics, result.poi], save_figure=False, close_figure=False)
            written.append(_save(pulls, path))
    if "correlations" in figures:
        with _warned_if_undrawable(directory / "correlation_matrix.png") as path:
            correlations = cabinetry.visualize.correlation_matrix(
                _without(fit_results, mc_statistics), pruning_threshold=0.05, save_figure=False, close_figure=False
            )
            written.append(_save(correlations, path))
    if "ranking" in figures and result.ranking:
        with _warned_if_undrawable(directory / "ranking.png") as path:
            written.append(_save(_ranking_figure(result), path))
    return written


@contextlib.contextmanager
def _warned_if_undrawable(path: Path) -> Iterator[Path]:
    """Draw the figure ``path`` in the block; if drawing fails, a warning naming it, and the other figures are still drawn."""
    import matplotlib.pyplot as plt

    try:
        yield path
    except Exception as exc:  # a figure is a convenience: never lose the fit's other outputs to one
        plt.close("all")
        log.warning("plot %s was not drawn: %s: %s", path.name, type(exc).__name__, exc)
