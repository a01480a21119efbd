"""The dense likelihood is pyhf's: value, gradient and Hessian, for every modifier it covers; other models keep pyhf's graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agcframe.analyses.agc_ttbar.analysis import AgcTtbar
from agcframe.stats import dense, fitting
from agcframe.stats.model import build_workspace, model_and_data


def _sample(name: str, data: list[float], *modifiers: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "data": data, "modifiers": list(modifiers)}


def _workspace(*extra: dict[str, Any]) -> dict[str, Any]:
    """Two channels, three samples, and every modifier with a dense form: a normfactor in both channels, lumi, normsys,
    histosys, staterror and a shapefactor; ``extra`` modifiers go on the first sample of the first channel."""
    signal = {"name": "mu", "type": "normfactor", "data": None}
    lumi = {"name": "lumi", "type": "lumi", "data": None}
    channels = [
        {
            "name": "control",
            "samples": [
                _sample(
                    "signal", [5.0, 8.0, 3.0], signal, lumi, {"name": "scale", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}},
                    {"name": "shape", "type": "histosys", "data": {"hi_data": [5.5, 8.2, 2.0], "lo_data": [4.1, 7.5, 3.9]}}, *extra,
                ),
                _sample(
                    "background", [40.0, 30.0, 4.0], lumi, {"name": "staterror_control", "type": "staterror", "data": [2.0, 1.5, 0.8]},
                    {"name": "scale", "type": "normsys", "data": {"hi": 1.05, "lo": 0.9}},
                ),
                _sample("fakes", [3.0, 2.0, 1.0], {"name": "fake_shape", "type": "shapefactor", "data": None}),
            ],
        },
        {
            "name": "signal_region",
            "samples": [
                _sample("signal", [12.0, 20.0], signal, lumi, {"name": "shape", "type": "histosys", "data": {"hi_data": [13.0, 23.0], "lo_data": [11.5, 16.0]}}),
                _sample("background", [10.0, 6.0], lumi, {"name": "other", "type": "normsys", "data": {"hi": 1.3, "lo": 0.6}}),
            ],
        },
    ]
    return {
        "channels": channels,
        "observations": [{"name": "control", "data": [50.0, 41.0, 2.0]}, {"name": "signal_region", "data": [25.0, 27.0]}],
        "measurements": [
            {
                "name": "measurement",
                "config": {"poi": "mu", "parameters": [{"name": "lumi", "auxdata": [1.0], "sigmas": [0.03], "bounds": [[0.5, 1.5]], "inits": [1.0]}]},
            }
        ],
        "version": "1.0.0",
    }


def _evaluated(bound: Any, pars: np.ndarray, data: np.ndarray) -> list[np.ndarray]:
    value, gradient = bound.value_and_gradient(pars, data)
    return [np.asarray(value), np.asarray(gradient), np.asarray(bound.hessian(pars, data))]


def _assert_dense_is_pyhfs(model: Any, data: Any, points: int) -> None:
    """At the initial values and at random points (interpolations inside and past +-1), to rounding."""
    fitting.configure_jax()
    dense_bound = fitting._compiled_dense(model)
    assert dense_bound is not None and dense_bound.compiled.paths == ()
    pyhf_bound = fitting._compiled_pyhf(model)
    observed = np.asarray(data, dtype=np.float64)
    init = np.asarray(model.config.suggested_init(), dtype=np.float64)
    low, high = (np.asarray(side, dtype=np.float64) for side in zip(*model.config.suggested_bounds()))
    rng = np.random.default_rng(7)
    finite = 0
    for point in [init, *(np.clip(init + rng.normal(0.0, 1.3, init.size) * np.minimum(1.0, (high - low) / 4), low, high) for _ in range(points))]:
        (value, gradient, hessian), (pyhf_value, pyhf_gradient, pyhf_hessian) = _evaluated(dense_bound, point, observed), _evaluated(pyhf_bound, point, observed)
        for ours, pyhfs in ((value, pyhf_value), (gradient, pyhf_gradient)):
            np.testing.assert_allclose(ours, pyhfs, rtol=1e-11, atol=1e-11 * float(np.nanmax(np.abs(pyhfs))))
        # where a second derivative is not a number (an expectation at zero), the Hessians may place it differently:
        # dense.hessian reads a cross term from the product of either parameter
        defined = np.isfinite(pyhf_hessian)
        np.testing.assert_allclose(hessian[defined], pyhf_hessian[defined], rtol=1e-11, atol=1e-11 * float(np.max(np.abs(pyhf_hessian[defined]))))
        finite += bool(defined.all())
    assert finite > points // 2  # most points have a Hessian of numbers, compared whole


def test_the_dense_likelihood_is_pyhfs_on_the_agc_model(real_histograms: Path) -> None:
    model, data = model_and_data(build_workspace(real_histograms, AgcTtbar().model))
    _assert_dense_is_pyhfs(model, data, points=8)
    form = dense.dense_model(model)
    assert form is not None
    tangents = dense._hessian_layout(form.support)[0]
    assert tangents.shape == (13, 34)  # 12 parameters of many bins, and the 22 staterrors (one bin each) in one product


def test_the_dense_likelihood_is_pyhfs_for_every_modifier_it_covers() -> None:
    model, data = model_and_data(_workspace())
    assert {kind for _, kind in model.config.modifiers} == {"normfactor", "lumi", "normsys", "histosys", "staterror", "shapefactor"}
    _assert_dense_is_pyhfs(model, data, points=20)


def test_a_model_with_a_modifier_without_a_dense_form_is_fit_with_pyhfs_graph() -> None:
    """A shapesys (Poisson constraints) has no dense form: the likelihood is pyhf's graph, and the fit runs."""
    model, data = model_and_data(_workspace({"name": "uncorrelated", "type": "shapesys", "data": [1.0, 2.0, 0.5]}))
    assert dense.dense_model(model) is None
    fitting.configure_jax()
    likelihood = fitting.Likelihood(model, data)
    assert likelihood._functions.compiled.paths != ()
    fit = fitting._global_fit(likelihood, [model.config.suggested_init()])
    assert fit.status.valid


def test_a_dense_likelihood_that_differs_from_pyhfs_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check against pyhf's value catches a dense form that is wrong: pyhf's graph is used instead."""
    monkeypatch.setenv("AGCFRAME_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fitting, "_COMPILED", {})
    real = dense.twice_nll
    monkeypatch.setattr(dense, "twice_nll", lambda pars, data, arrays, indices: real(pars, data, arrays, indices) * (1 + 1e-7))
    model, data = model_and_data(_workspace())
    fitting.configure_jax()
    assert fitting._compiled_dense(model) is None
    assert fitting._compiled(model).compiled.paths != ()
