"""Figures of a fit, drawn with cabinetry's visualisation as PNG files, ready for a slide.

They are drawn in mplhep's CMS style with the font sizes reduced to fit
cabinetry's figure sizes (at mplhep's own sizes labels overflow the axes), at
:data:`DPI`. The data/MC figures carry the experiment label (CMS Open Data,
3378 pb⁻¹, 13 TeV as in the AGC), LaTeX axis labels, the data labelled as
pseudodata (the AGC fits pseudodata) and a y range that keeps the legend and
labels clear of the stack and the data. The correlation matrix shows the
physics nuisance parameters; the per-bin MC-statistics parameters are in
``fit_results.json``. The ranking is drawn from the result's impacts, which
are ``ranking.json``.

Every figure is made from the fitted pyhf workspace and the :class:`FitResult`,
so the plots look the same whichever inference plugin fitted the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from . import analysis as agc
from .data import FitResult
from .model import model_and_data

__all__ = ["draw_fit_plots", "draw_ml_validation_plots"]

log = logging.getLogger(__name__)

DPI = 150
#: mplhep's CMS sizes (26 pt) made for 10 x 10 inch figures, scaled to cabinetry's smaller ones
FONT_SIZES = {"font.size": 13, "axes.labelsize": 13, "legend.fontsize": 11, "xtick.labelsize": 12, "ytick.labelsize": 12}
#: axis labels of the observables
OBSERVABLE_LABELS = {"HT": r"$H_{T}$ [GeV]", "m_bjj": r"$m_{bjj}$ [GeV]"}
#: axis labels of the ML validation model's features
FEATURE_LABELS = {
    "deltar_leptonbtoplep": r"$\Delta R(\ell, b_{lep})$",
    "deltar_w1w2": r"$\Delta R(j_{W1}, j_{W2})$",
    "deltar_w1btophad": r"$\Delta R(j_{W1}, b_{had})$",
    "mass_leptonbtoplep": r"$m(\ell b_{lep})$ [GeV]",
    "mass_w1w2": r"$m(j_{W1} j_{W2})$ [GeV]",
    "mass_w1w2btophad": r"$m(j_{W1} j_{W2} b_{had})$ [GeV]",
    "pt_w1w2btophad": r"$p_{T}(j_{W1} j_{W2} b_{had})$ [GeV]",
}
#: model channel -> (bin edges, axis label), for the main and the ML validation models
VARIABLES = {
    **{name: (agc.FIT_BIN_EDGES, OBSERVABLE_LABELS[agc.OBSERVABLES[path]]) for name, path in agc.FIT_REGIONS.items()},
    **{name: (agc.binning(path).edges, FEATURE_LABELS[path]) for name, path in agc.ML_FIT_REGIONS.items()},
}
#: the experiment label's right-hand text: the AGC's integrated luminosity and energy
LUMI_LABEL = rf"{agc.LUMINOSITY:.0f} pb$^{{-1}}$ (13 TeV)"
#: the names of the per-bin MC-statistics parameters (pyhf's staterror modifiers)
MC_STATISTICS_PREFIX = "staterror_"
#: free space between the highest bar or point and the lowest legend or label, as a fraction of the axes
HEADROOM = 0.04


def _plot_config(model: Any) -> dict[str, Any]:
    """A cabinetry config with only what its plots read: each region's binning and variable."""
    regions = []
    for channel, n_bins in zip(model.config.channels, model.config.channel_nbins.values()):
        region: dict[str, Any] = {"Name": channel}
        if channel in VARIABLES and len(VARIABLES[channel][0]) == n_bins + 1:
            edges, label = VARIABLES[channel]
            region.update(Binning=edges.tolist(), Variable=label)
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


def _slide_ready(figure: Any, *, asimov: bool) -> Any:
    """A cabinetry data/MC figure with the experiment label, pseudodata named so and the legend clear of the content."""
    import mplhep

    main = figure.axes[0]
    data_name = "Asimov data" if asimov else "Pseudodata"
    for text in main.get_legend().get_texts():
        if text.get_text() == "Data":
            text.set_text(data_name)
    mplhep.cms.label("Open Data", data=True, rlabel=LUMI_LABEL, ax=main, loc=0)
    figure.draw_without_rendering()  # lays out the texts to measure them, without drawing a pixel
    # the lowest edge of the legend and of the labels inside the axes, as axes fractions
    content = main.dataLim.y1  # the highest bar, band or data point
    to_axes = main.transAxes.inverted()
    boxes = [main.get_legend().get_window_extent()] + [
        text.get_window_extent() for text in main.texts if 0 <= to_axes.transform(text.get_window_extent())[0][1] <= 1
    ]
    lowest = min(to_axes.transform(box)[0][1] for box in boxes)
    bottom, top = main.get_ylim()
    # the content must end below the legend: on a log axis (cabinetry's choice for a large range) in decades
    scale, unscale = (np.log10, lambda value: 10**value) if main.get_yscale() == "log" else (float, float)
    needed = unscale(scale(bottom) + (scale(content) - scale(bottom)) / max(lowest - HEADROOM, 0.2))
    if needed > top:
        main.set_ylim(bottom, needed)
    return figure


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
    return path


def _style() -> dict[str, Any]:
    import mplhep

    return {**mplhep.style.CMS, **FONT_SIZES}


def draw_fit_plots(result: FitResult, directory: Path, *, asimov: bool = False) -> list[Path]:
    """Draw the fit's figures (see :func:`_draw`) in mplhep's CMS style."""
    import matplotlib.pyplot as plt

    with plt.style.context(_style()):
        return _draw(result, directory, asimov=asimov)


def draw_ml_validation_plots(workspace: dict[str, Any], result: FitResult, directory: Path) -> list[Path]:
    """The ML validation model's observables against the pseudodata, before and with the main fit's parameters.

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
        return _draw_data_mc(model, data, matched, directory, asimov=False)


def _draw_data_mc(model: Any, data: Any, fit_results: Any, directory: Path, *, asimov: bool) -> list[Path]:
    """Pre- and post-fit (``fit_results``) data/MC figures of every channel of ``model``."""
    import cabinetry

    config = _plot_config(model)
    written = []
    for label, prediction in (
        ("prefit", cabinetry.model_utils.prediction(model)),
        ("postfit", cabinetry.model_utils.prediction(model, fit_results=fit_results)),
    ):
        figures = cabinetry.visualize.data_mc(_drawable(prediction), data, config=config, save_figure=False) or []
        for entry in figures:
            region = entry["region"].replace(" ", "_")
            written.append(_save(_slide_ready(entry["figure"], asimov=asimov), directory / f"{region}_{label}.png"))
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
    other parameters' 0; their impacts stay in ``ranking.json``.
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
        [p.name for p in parameters],
        column("prefit_up"),
        column("prefit_down"),
        column("postfit_up"),
        column("postfit_down"),
    )
    return cabinetry.visualize.ranking(ranking, max_pars=20, save_figure=False, close_figure=False)


def _draw(result: FitResult, directory: Path, *, asimov: bool) -> list[Path]:
    """Draw pre- and post-fit distributions per region, pulls, correlations and the ranking (if the result has one).

    Parameters
    ----------
    result
        A fit result that carries its workspace.
    directory
        Folder for the PNG files (created); callers stage it, as every output.
    asimov
        The fit was to Asimov data; show that data.

    Returns
    -------
    The paths written.
    """
    import cabinetry

    if result.workspace is None:
        raise ValueError("the fit result has no workspace to plot")
    directory.mkdir(parents=True, exist_ok=True)
    model, data = model_and_data(result.workspace, asimov=asimov)
    fit_results = _cabinetry_results(result)
    written = _draw_data_mc(model, data, fit_results, directory, asimov=asimov)
    mc_statistics = [name for name in fit_results.labels if name.startswith(MC_STATISTICS_PREFIX)]
    pulls = cabinetry.visualize.pulls(fit_results, exclude=[*mc_statistics, result.poi], save_figure=False, close_figure=False)
    written.append(_save(pulls, directory / "pulls.png"))
    correlations = cabinetry.visualize.correlation_matrix(
        _without(fit_results, mc_statistics), pruning_threshold=0.05, save_figure=False, close_figure=False
    )
    written.append(_save(correlations, directory / "correlation_matrix.png"))
    if result.ranking:
        written.append(_save(_ranking_figure(result), directory / "ranking.png"))
    return written
