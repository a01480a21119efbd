"""The fit engine: impacts against independent refits, the fit's health, the covariance, retries, quiet output."""

from __future__ import annotations

import functools
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

import agcframe
from agcframe.stats import fitting
from agcframe.data import FitOptions
from agcframe.stats.model import model_and_data
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()

#: parameters whose impacts are refitted independently (the rest follow the same code)
CHECKED = ("Luminosity", "Jet energy scale", "ME variation", "b-tag NP 2", "staterror_4j2b-SR[3]")
IMPACT_KEYS = ("prefit_up", "prefit_down", "postfit_up", "postfit_down")


@pytest.fixture(scope="module")
def embedded_histograms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """histograms.root of the embedded default dataset, as ``agcframe run --no-fit`` writes it."""
    output = tmp_path_factory.mktemp("embedded-run")
    return agcframe.run(agcframe.RunConfig(output=str(output), fit=False)).output / "histograms.root"


@pytest.fixture(scope="module", params=["embedded", "real"])
def fitted(request: pytest.FixtureRequest, embedded_histograms: Path, real_histograms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output directory of ``agcframe fit`` with its defaults (fit, ranking, plots)."""
    histograms = embedded_histograms if request.param == "embedded" else real_histograms
    output = tmp_path_factory.mktemp(f"fit-{request.param}")
    agcframe.fit(histograms, output)
    return output


def _independent_refit(model: object, data: object, index: int, value: float, best: np.ndarray, covariance: np.ndarray) -> float:
    """POI of a refit with parameter ``index`` held at ``value``: plain pyhf (numpy) and iminuit, strategy 2.

    The conditional likelihood can have more than one minimum (on the embedded
    dataset b-tag NP 2 held at +1 has two, 0.19 apart in -2 ln L, and MINUIT
    from the best fit finds the higher one), so the refit starts from the best
    fit, from the model's initial values and from the conditional minimum the
    fitted covariance predicts, and keeps the lowest minimum.
    """
    import iminuit

    fixed = list(model.config.suggested_fixed())  # type: ignore[attr-defined]
    fixed[index] = True
    predicted = best + covariance[index] / covariance[index, index] * (value - best[index])
    minima = []
    for start in (best, np.array(model.config.suggested_init(), dtype=float), predicted):  # type: ignore[attr-defined]
        init = np.clip(np.array(start, dtype=float), *np.array(model.config.suggested_bounds()).T)  # type: ignore[attr-defined]
        init[index] = value
        minuit = iminuit.Minuit(lambda pars: float(-2 * model.logpdf(pars, data)[0]), init)  # type: ignore[attr-defined]
        minuit.errordef = 1
        minuit.fixed = fixed
        minuit.limits = model.config.suggested_bounds()  # type: ignore[attr-defined]
        minuit.strategy = 2
        minuit.migrad()
        if minuit.valid:
            minima.append((float(minuit.fval), float(minuit.values[model.config.poi_index])))  # type: ignore[attr-defined]
    assert minima, "no independent refit converged"
    return min(minima)[1]


@pytest.mark.parametrize("fitted", ["real"], indirect=True)  # every impact of the embedded dataset is checked below
def test_ranking_json_agrees_with_independent_refits(fitted: Path) -> None:
    ranking = json.loads((fitted / "ranking.json").read_text())
    document = json.loads((fitted / "fit_results.json").read_text())
    model, data = model_and_data(json.loads((fitted / "workspace.json").read_text()))
    fixed = model.config.suggested_fixed()
    free = [name for name, is_fixed in zip(model.config.par_names, fixed) if not is_fixed and name != "ttbar_norm"]
    assert [entry["name"] for entry in ranking] == free  # every free nuisance parameter, in the model's order
    assert all(set(entry) == {"name", *IMPACT_KEYS, "valid", "multimodal"} and entry["valid"] for entry in ranking)
    best = np.array([p["value"] for p in document["parameters"]])
    errors = {p["name"]: p["error"] for p in document["parameters"]}
    sigma = np.array([p["error"] for p in document["parameters"]])
    covariance = np.array(document["correlation"]) * np.outer(sigma, sigma)
    poi = best[model.config.poi_index]
    by_name = {entry["name"]: entry for entry in ranking}
    for name in CHECKED:
        index = model.config.par_names.index(name)
        base, _, bin_index = name.partition("[")
        width = float(model.config.param_set(base).width()[int(bin_index.rstrip("]") or 0)])
        shifts = {"prefit_up": width, "prefit_down": -width, "postfit_up": errors[name], "postfit_down": -errors[name]}
        for key, shift in shifts.items():
            refit_poi = _independent_refit(model, data, index, best[index] + shift, best, covariance)
            expected = refit_poi - poi
            assert by_name[name][key] == pytest.approx(expected, abs=max(5e-3, 0.1 * abs(expected))), (name, key)


#: every impact checked against plain MIGRAD with this set (396 refits, about 90 s); by default a seeded sample
ALL_IMPACTS_ENV = "AGCFRAME_TEST_ALL_IMPACTS"
#: parameters in the default sample besides those always checked
IMPACT_SAMPLE = 6


def _sampled_impacts(names: list[str], always: list[str]) -> set[str]:
    """``names``, or (unless :data:`ALL_IMPACTS_ENV` is 1) ``always`` and a seeded sample of :data:`IMPACT_SAMPLE` others."""
    if os.environ.get(ALL_IMPACTS_ENV) == "1":
        return set(names)
    others = [name for name in names if name not in always]
    return {*always, *random.Random(20261207).sample(others, IMPACT_SAMPLE)}


@pytest.mark.parametrize("fitted", ["embedded"], indirect=True)
def test_every_impact_is_the_lowest_of_several_minuit_starts(fitted: Path) -> None:
    """Every impact of ranking.json equals the lowest conditional minimum of plain MIGRAD started three ways.

    A seeded sample of the parameters and the multimodal one below; all of them
    with ``AGCFRAME_TEST_ALL_IMPACTS=1``.

    The embedded dataset's likelihood has two conditional minima for
    staterror_4j1b-CR[6] held at its pre-fit down shift (from the best fit
    MIGRAD reaches a minimum 1.86 higher than from the initial values, with an
    impact of -0.066 instead of -0.039): the engine reports the lower one and
    marks the shift multimodal. Plain MIGRAD (strategy 1, the gradient of
    pyhf's own JAX likelihood) starts from the best fit, the initial values and
    the predicted minimum.
    """
    import iminuit
    import jax
    import pyhf

    ranking = {entry["name"]: entry for entry in json.loads((fitted / "ranking.json").read_text())}
    document = json.loads((fitted / "fit_results.json").read_text())
    best = np.array([p["value"] for p in document["parameters"]])
    sigma = np.array([p["error"] for p in document["parameters"]])
    covariance = np.array(document["correlation"]) * np.outer(sigma, sigma)
    pyhf.set_backend("jax")
    try:
        model, data = model_and_data(json.loads((fitted / "workspace.json").read_text()))
        poi_index, bounds = model.config.poi_index, model.config.suggested_bounds()
        value_and_gradient = jax.jit(jax.value_and_grad(lambda pars: -2 * model.logpdf(pars, data)[0]))

        @functools.lru_cache(maxsize=1)
        def twice_nll(pars: tuple[float, ...]) -> tuple[float, np.ndarray]:
            value, gradient = value_and_gradient(np.array(pars))
            return float(value), np.asarray(gradient, dtype=float)

        widths = {name: model.config.param_set(name).width() for name in model.config.parameters if name != model.config.poi_name}
        checked = _sampled_impacts(sorted(ranking), always=["staterror_4j1b-CR[6]"])
        for index, name in enumerate(model.config.par_names):
            if name not in checked:
                continue
            base, _, bin_index = name.partition("[")
            width = float(widths[base][int(bin_index.rstrip("]") or 0)]) if widths[base] is not None else None
            shifts = {"prefit_up": width, "prefit_down": None if width is None else -width, "postfit_up": sigma[index], "postfit_down": -sigma[index]}
            for key, shift in shifts.items():
                if shift is None:
                    continue
                value = float(np.clip(best[index] + shift, *bounds[index]))
                minima = []
                predicted = best + covariance[index] / covariance[index, index] * (value - best[index])
                for start in (best, np.array(model.config.suggested_init(), dtype=float), predicted):
                    init = np.clip(np.array(start, dtype=float), *np.array(bounds).T)
                    init[index] = value
                    minuit = iminuit.Minuit(lambda pars: twice_nll(tuple(pars))[0], init, grad=lambda pars: twice_nll(tuple(pars))[1])
                    minuit.errordef = 1
                    minuit.fixed = [*model.config.suggested_fixed()[:index], True, *model.config.suggested_fixed()[index + 1 :]]
                    minuit.limits = bounds
                    minuit.strategy = 1  # strategy 0 stops 0.05 above the flat minimum of b-tag NP 1 held at -1
                    minuit.migrad()
                    if minuit.valid:
                        minima.append((float(minuit.fval), float(minuit.values[poi_index]) - best[poi_index]))
                lowest = min(minima)[1]
                assert ranking[name][key] == pytest.approx(lowest, abs=max(5e-3, 0.1 * abs(lowest))), (name, key, minima)
    finally:
        pyhf.set_backend("numpy")
    assert "prefit_down" in ranking["staterror_4j1b-CR[6]"]["multimodal"]


def test_fit_status_is_written_and_healthy(fitted: Path) -> None:
    status = json.loads((fitted / "fit_results.json").read_text())["status"]
    assert set(status) == {"valid", "edm", "covariance", "calls", "strategy"}
    assert status["valid"] is True and status["covariance"] == "accurate"
    assert 0 <= status["edm"] < fitting.EDM_GOAL and status["calls"] > 0 and status["strategy"] in (0, 1, 2)


def test_poi_error_is_the_curvature_of_the_likelihood(real_histograms: Path, tmp_path: Path) -> None:
    """The error from the exact Hessian equals second differences of plain pyhf's -2 ln L (numpy, no JAX)."""
    result = agcframe.fit(real_histograms, tmp_path, inference="pyhf", options=FitOptions(), plots=False)
    poi = result.parameter("ttbar_norm")
    assert poi.value == pytest.approx(0.9535, abs=1e-3)  # the AGC reference fit's value on these histograms
    model, data = model_and_data(result.workspace)  # type: ignore[arg-type]
    best = np.array([p.value for p in result.parameters])
    free = np.flatnonzero(~np.array(model.config.suggested_fixed()))

    def twice_nll(pars: np.ndarray) -> float:
        return float(-2 * model.logpdf(pars, data)[0])

    step = 1e-3
    hessian = np.empty((len(free), len(free)))
    for a, i in enumerate(free):
        for b, j in enumerate(free[: a + 1]):
            corners = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                shifted = best.copy()
                shifted[i] += si * step
                shifted[j] += sj * step
                corners.append(si * sj * twice_nll(shifted))
            hessian[a, b] = hessian[b, a] = sum(corners) / (4 * step * step)
    covariance = np.linalg.inv(hessian / 2)
    position = list(free).index(model.config.poi_index)
    assert poi.error == pytest.approx(np.sqrt(covariance[position, position]), rel=2e-3)


def test_a_refit_below_the_global_minimum_makes_the_global_fit_redo(real_histograms: Path) -> None:
    """A global 'minimum' moved off the true one: the impact refits find lower likelihoods and say so."""
    from agcframe.stats.model import build_workspace

    model, data = model_and_data(build_workspace(real_histograms, AGC.model))
    with fitting.jax_backend():
        likelihood = fitting.Likelihood(model, data)
        fit = fitting._global_fit(likelihood, [model.config.suggested_init()])
        moved = fit.minimum.values.copy()
        moved[model.config.par_names.index("ME variation")] += 0.5  # well off the minimum
        off = fitting._Fit(
            fitting.Minimum(moved, likelihood.value(moved), True, 0.0, 1, 0), fit.errors, fit.covariance, fit.correlation, fit.status
        )
        found = fitting.impacts(likelihood, off)
    assert isinstance(found, np.ndarray)  # the values of a lower minimum, not impacts
    assert likelihood.value(found) < likelihood.value(moved) - fitting.TWICE_NLL_TOLERANCE


def test_a_refit_that_does_not_converge_is_invalid_not_a_number(real_histograms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refits of Luminosity never converge: its impacts are null, it is invalid, and the plot leaves it out."""
    real_checked = fitting._checked

    def failing_for_luminosity(likelihood, starts, fixed, bounds, *args, **kwargs):  # type: ignore[no-untyped-def]
        luminosity = likelihood.model.config.par_names.index("Luminosity")
        minimum, hessian = real_checked(likelihood, starts, fixed, bounds, *args, **kwargs)
        if fixed[luminosity]:
            return fitting.Minimum(minimum.values, minimum.twice_nll, False, 1.0, 2, 0), None
        return minimum, hessian

    def none_for_luminosity(steps):  # type: ignore[no-untyped-def]
        def steps_unless_luminosity_is_held(likelihood, start, free, bounds):  # type: ignore[no-untyped-def]
            if likelihood.model.config.par_names.index("Luminosity") not in free:
                return None
            return steps(likelihood, start, free, bounds)

        return steps_unless_luminosity_is_held

    monkeypatch.setattr(fitting, "_checked", failing_for_luminosity)
    monkeypatch.setattr(fitting, "_newton", none_for_luminosity(fitting._newton))
    monkeypatch.setattr(fitting, "_damped_newton", none_for_luminosity(fitting._damped_newton))
    result = agcframe.fit(real_histograms, tmp_path, inference="pyhf")
    ranking = {entry["name"]: entry for entry in json.loads((tmp_path / "ranking.json").read_text())}
    assert ranking["Luminosity"]["valid"] is False
    assert all(ranking["Luminosity"][key] is None for key in IMPACT_KEYS)
    assert ranking["Jet energy scale"]["valid"] is True
    assert result.status is not None and result.status.valid
    assert (tmp_path / "plots" / "ranking.png").is_file()


def test_minuit_output_goes_to_fit_log_not_the_terminal(tmp_path: Path) -> None:
    """In a fresh process, as the CLI runs: MINUIT's C++ warnings and Python warnings land in fit.log only."""
    import subprocess
    import sys

    script = """
import sys, warnings
from pathlib import Path
import iminuit
from agcframe.stats.fitlog import fit_log
with fit_log(Path(sys.argv[1])):
    minuit = iminuit.Minuit(lambda x, y: (x - 1) ** 2 + 1e8 * (x * y) ** 4, 3, 3)
    minuit.print_level = 1
    minuit.migrad(ncall=20)  # stops at the call limit: MINUIT warns on standard output
    warnings.warn("a library warning")
print("after the block")
"""
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "fit.log").read_text()
    assert "W VariableMetricBuilder" in log and "a library warning" in log
    assert "VariableMetricBuilder" not in result.stdout + result.stderr
    assert "a library warning" not in result.stdout + result.stderr
    assert result.stdout.strip() == "after the block"  # standard output is back after the block


def _evaluated(bound: object, model: object, data: object) -> list[np.ndarray]:
    """-2 ln L, its gradient and its Hessian at the model's initial values, as numpy arrays."""
    pars = np.asarray(model.config.suggested_init(), dtype=np.float64)  # type: ignore[attr-defined]
    observed = np.asarray(data, dtype=np.float64)
    value, gradient = bound.value_and_gradient(pars, observed)  # type: ignore[attr-defined]
    return [np.asarray(value), np.asarray(gradient), np.asarray(bound.hessian(pars, observed))]  # type: ignore[attr-defined]


def test_a_compiled_likelihood_is_loaded_by_the_next_process_and_a_damaged_one_traced_again(
    real_histograms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model of a known structure is not traced again: its likelihood comes from the cache directory, the same bit for bit."""
    from agcframe.stats.model import build_workspace

    monkeypatch.setenv("AGCFRAME_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fitting, "_COMPILED", {})
    model, data = model_and_data(build_workspace(real_histograms, AGC.model))  # pyhf's numpy backend, as the fits build it
    compiled = _evaluated(fitting._compiled_pyhf(model), model, data)
    (stored,) = (tmp_path / fitting.COMPILED_DIRECTORY).iterdir()

    traced: list[object] = []
    real_compile = fitting._compile
    monkeypatch.setattr(fitting, "_compile", lambda *args: traced.append(args) or real_compile(*args))
    monkeypatch.setattr(fitting, "_COMPILED", {})  # a new process
    loaded = _evaluated(fitting._compiled_pyhf(model), model, data)
    assert traced == []
    assert all(np.array_equal(a, b) for a, b in zip(compiled, loaded))

    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    monkeypatch.setattr(fitting, "_COMPILED", {})
    again = _evaluated(fitting._compiled_pyhf(model), model, data)
    assert len(traced) == 1  # the damaged entry is not used: traced again and stored whole
    assert all(np.array_equal(a, b) for a, b in zip(compiled, again))
    assert stored.read_bytes() != bytes(damaged)


def test_a_model_built_with_numpy_has_the_likelihood_of_the_same_model_built_with_jax(real_histograms: Path) -> None:
    """The fits build models with pyhf's numpy backend (ten times faster): the compiled likelihood is the same, bit for bit."""
    from agcframe.stats.model import build_workspace

    workspace = build_workspace(real_histograms, AGC.model)
    model, data = model_and_data(workspace)
    with_numpy = _evaluated(fitting._compiled_pyhf(model), model, data)
    with fitting.jax_backend():
        jax_model, jax_data = model_and_data(workspace)
        with_jax = _evaluated(fitting._compiled_pyhf(jax_model), jax_model, jax_data)
    assert all(np.array_equal(a, b) for a, b in zip(with_numpy, with_jax))


def test_every_compiled_program_is_kept_also_in_a_jax_cache_the_environment_names() -> None:
    """JAX keeps only programs that took a second to compile: the likelihood's gradient (0.5 s) was compiled again in every run."""
    import jax

    assert os.environ.get("JAX_COMPILATION_CACHE_DIR")  # the test session names one (tests/conftest.py)
    fitting.configure_jax()
    assert jax.config.jax_compilation_cache_dir == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == 0


def test_an_impact_refit_whose_newton_steps_fail_takes_damped_steps_to_the_lower_minimum(tmp_path: Path) -> None:
    """The embedded dataset at b-tag threshold 0.6, staterror_4j1b-CR[7] at its post-fit up shift: Newton steps from the
    predicted minimum fail, and MIGRAD from there stops at a conditional minimum 0.31 higher (impact 0.047); damped
    Newton steps from the same start reach the lowest one (impact 0.014), as plain MINUIT's lowest of three starts."""
    from agcframe.stats.model import build_workspace

    output = agcframe.run(agcframe.RunConfig(output=str(tmp_path / "run"), fit=False, parameters={"btag_threshold": 0.6})).output
    model, data = model_and_data(build_workspace(output / "histograms.root", AGC.model))
    fitting.configure_jax()
    likelihood = fitting.Likelihood(model, data)
    fit = fitting._global_fit(likelihood, [model.config.suggested_init()])
    index = model.config.par_names.index("staterror_4j1b-CR[7]")
    best, poi = fit.minimum.values, model.config.poi_index
    value = float(np.clip(best[index] + fit.errors[index], *model.config.suggested_bounds()[index]))
    fixed = np.asarray(model.config.suggested_fixed(), dtype=bool)
    fixed[index] = True
    predicted = best + fit.covariance[index] / fit.covariance[index, index] * (value - best[index])
    predicted[index] = value
    bounds = model.config.suggested_bounds()
    assert fitting._newton(likelihood, predicted, np.flatnonzero(~fixed), bounds) is None
    migrad, _ = fitting._checked(likelihood, [predicted], fixed, bounds, fitting.REFIT_STRATEGIES, fit.errors, fitting.REFIT_CALLS, confirmed=False)

    refit, _ = fitting._refit(likelihood, fit, index, value)
    assert refit is not None and refit.twice_nll < migrad.twice_nll - 0.1
    lowest = _independent_refit(model, data, index, value, best, fit.covariance)
    assert refit.values[poi] - best[poi] == pytest.approx(lowest - best[poi], abs=5e-4)
