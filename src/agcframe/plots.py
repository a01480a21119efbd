"""Figures of a fit, drawn with cabinetry's visualisation as PNG files.

They are drawn in mplhep's CMS style with the font sizes reduced to fit
cabinetry's figure sizes (at mplhep's own sizes labels overflow the axes).

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

__all__ = ["RANKING_STRATEGIES", "draw_fit_plots"]

log = logging.getLogger(__name__)

#: MINUIT strategies tried in turn for the ranking refits: MINUIT's default converges on
#: the embedded dataset, where strategy 2 does not; on the real AGC histograms single
#: default refits stop at the call limit (a nuisance parameter pinned away from its
#: best fit) and strategy 2 converges
RANKING_STRATEGIES = (None, 2)
DPI = 100
#: mplhep's CMS sizes (26 pt) made for 10 x 10 inch figures, scaled to cabinetry's smaller ones
FONT_SIZES = {"font.size": 13, "axes.labelsize": 13, "legend.fontsize": 11, "xtick.labelsize": 12, "ytick.labelsize": 12}
VARIABLES = {name: f"{agc.OBSERVABLES[path]} [GeV]" for name, path in agc.FIT_REGIONS.items()}


def _plot_config(model: Any) -> dict[str, Any]:
    """A cabinetry config with only what its plots read: each region's binning and variable."""
    edges = np.arange(agc.FIT_LOW_EDGE, agc.BIN_EDGES[-1] + 1e-9, agc.FIT_REBIN * np.diff(agc.BIN_EDGES)[0])
    regions = []
    for channel, n_bins in zip(model.config.channels, model.config.channel_nbins.values()):
        region: dict[str, Any] = {"Name": channel}
        if channel in VARIABLES and len(edges) == n_bins + 1:
            region.update(Binning=edges.tolist(), Variable=VARIABLES[channel])
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


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=DPI, format="png")
    plt.close(figure)
    return path


def _style() -> dict[str, Any]:
    import mplhep

    return {**mplhep.style.CMS, **FONT_SIZES}


def draw_fit_plots(result: FitResult, directory: Path, *, asimov: bool = False, ranking: bool = True) -> list[Path]:
    """Draw the fit's figures (see :func:`_draw`) in mplhep's CMS style."""
    import matplotlib.pyplot as plt

    with plt.style.context(_style()):
        return _draw(result, directory, asimov=asimov, ranking=ranking)


def _draw(result: FitResult, directory: Path, *, asimov: bool, ranking: bool) -> list[Path]:
    """Draw pre- and post-fit distributions per region, pulls, correlations and the ranking.

    Parameters
    ----------
    result
        A fit result that carries its workspace.
    directory
        Folder for the PNG files (created); callers stage it, as every output.
    asimov
        The fit was to Asimov data; show that data.
    ranking
        Also refit with each nuisance parameter shifted to rank its impact on
        the POI (two refits per parameter and shift, the slow part).

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
    config = _plot_config(model)
    written = []
    for label, prediction in (
        ("prefit", cabinetry.model_utils.prediction(model)),
        ("postfit", cabinetry.model_utils.prediction(model, fit_results=fit_results)),
    ):
        figures = cabinetry.visualize.data_mc(prediction, data, config=config, save_figure=False) or []
        for entry in figures:
            region = entry["region"].replace(" ", "_")
            written.append(_save(entry["figure"], directory / f"{region}_{label}.png"))
    not_pulled = [name for name in fit_results.labels if name.startswith("staterror_") or name == result.poi]
    written.append(_save(cabinetry.visualize.pulls(fit_results, exclude=not_pulled, save_figure=False, close_figure=False), directory / "pulls.png"))
    written.append(
        _save(
            cabinetry.visualize.correlation_matrix(fit_results, pruning_threshold=0.05, save_figure=False, close_figure=False),
            directory / "correlation_matrix.png",
        )
    )
    if ranking:
        import pyhf

        log.info("ranking nuisance parameters by their impact on %s (refits)", result.poi)
        for strategy in RANKING_STRATEGIES:
            try:
                impacts = cabinetry.fit.ranking(model, data, fit_results=fit_results, strategy=strategy)
                break
            except pyhf.exceptions.FailedMinimization as exc:
                failure = exc
                log.info("ranking refits with MINUIT strategy %s did not all converge", strategy or "default")
        else:
            log.warning("no ranking plot: a refit with a shifted nuisance parameter did not converge (%s)", failure)
            return written
        written.append(
            _save(cabinetry.visualize.ranking(impacts, max_pars=20, save_figure=False, close_figure=False), directory / "ranking.png")
        )
    return written
