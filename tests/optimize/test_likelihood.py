"""The model of ``agcframe optimize`` (templates in, objective out) is the model the fit engine fits with pyhf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from agcframe.analyses.agc_ttbar.analysis import MODEL
from agcframe.data import FitOptions
from agcframe.errors import InputError
from agcframe.optimize.likelihood import objective_function
from agcframe.stats.model import build_workspace, fit_workspace, read_rebinned


def templates(histograms: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every histogram of ``histograms`` in the model's binning: sums of weights and of squared weights (float64, as the optimiser runs)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    with uproot.open(histograms) as file:
        found = {}
        for key in file.keys(cycle=False):
            h = read_rebinned(file, key, MODEL.edges(key.split("_")[0]))
            found[key] = (jnp.asarray(h.values()), jnp.asarray(h.variances()))
    return found


def test_the_poi_uncertainty_is_the_asimov_fits(real_histograms: Path) -> None:
    """On the AGC's real histograms: the objective equals the fit engine's POI error on the Asimov data (the fit ends within 1e-5 of the nominal point)."""
    result = fit_workspace(build_workspace(real_histograms, MODEL), FitOptions(asimov=True, ranking=False))
    (poi,) = [parameter for parameter in result.parameters if parameter.name == MODEL.poi]
    assert float(objective_function(MODEL, "poi_uncertainty")(templates(real_histograms))) == pytest.approx(poi.error, rel=1e-5)
    limit = float(objective_function(MODEL, "upper_limit")(templates(real_histograms)))
    assert 0 < limit < poi.error * 1.96  # the background-only POI error is the smaller


def test_a_missing_template_is_one_line_naming_it(real_histograms: Path) -> None:
    found = templates(real_histograms)
    del found["4j2b_wjets_pt_scale_up"]
    with pytest.raises(InputError, match="no histogram '4j2b_wjets_pt_scale_up', which the statistical model reads"):
        objective_function(MODEL, "poi_uncertainty")(found)
