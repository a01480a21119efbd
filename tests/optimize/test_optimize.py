"""``agcframe optimize`` on the embedded dataset: the gradient, the soft objective's hard limit, and the payoff of the optimum.

The soft objective is compiled once for the module (its temperature is an
argument of the compiled function); the hard objectives come from the normal
run and Asimov fit at the same cut values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agcframe.config import RunConfig
from agcframe.data import FitOptions
from agcframe.engine.pipeline import fit, run
from agcframe.errors import ConfigError
from agcframe.optimize.optimizer import OptimizeSettings, optimize, soft_form, soft_objective
from test_cli import agcframe_cli


@pytest.fixture(scope="module")
def embedded_objective(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    objective, parameters, _ = soft_objective(OptimizeSettings(run=RunConfig(output=str(tmp_path_factory.mktemp("optimize")), fit=False)))
    return objective, objective.scaled(parameters)


def hard_poi_uncertainty(tmp_path: Path, parameters: dict[str, float]) -> float:
    """The expected POI uncertainty of the normal run at ``parameters``: hard cuts, histograms.root, the Asimov fit's Hessian."""
    output = tmp_path / "_".join(f"{name}{value:g}" for name, value in parameters.items())
    run(RunConfig(parameters=parameters, plugins={"processor": "numba"}, fit=False, output=str(output), column_cache=False))
    result = fit(output / "histograms.root", output / "fit", options=FitOptions(asimov=True, ranking=False), plots=False)
    (poi,) = [parameter for parameter in result.parameters if parameter.name == "ttbar_norm"]
    return poi.error


def test_the_gradient_equals_central_finite_differences(embedded_objective) -> None:  # type: ignore[no-untyped-def]
    """At the AGC's cuts and temperature 1; the step (1e-5 of each range) is small against the objective's curvature."""
    objective, start = embedded_objective
    _, gradient, _ = objective.value_and_gradient(start)
    step = 1e-5
    for i in range(len(start)):
        shift = np.zeros_like(start)
        shift[i] = step
        difference = (objective.value_and_gradient(start + shift)[0] - objective.value_and_gradient(start - shift)[0]) / (2 * step)
        assert difference == pytest.approx(gradient[i], rel=1e-3), objective.cuts[i].parameter
        assert abs(gradient[i]) > 1e-4  # a gradient that is there to compare


def test_the_soft_objective_approaches_the_hard_one_as_the_temperature_goes_to_zero(embedded_objective, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    objective, start = embedded_objective
    hard = hard_poi_uncertainty(tmp_path, {})
    gaps = [abs(objective.value_and_gradient(start, temperature)[0] - hard) / hard for temperature in (1.0, 0.1, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 2e-3, gaps
    assert gaps[0] > 0.05  # at temperature 1 the cuts are far from hard


def test_the_optimum_beats_the_agc_cuts_in_the_hard_analysis(tmp_path: Path) -> None:
    """The payoff: the normal run at the optimised cuts has a smaller expected POI uncertainty than at the AGC's."""
    result = optimize(OptimizeSettings(run=RunConfig(output=str(tmp_path / "optimize"), fit=False), steps=25))
    best = result.best["parameters"]
    assert best != result.trajectory[0]["parameters"]
    assert result.best["objective"] < result.trajectory[0]["objective"]
    before, after = hard_poi_uncertainty(tmp_path, {}), hard_poi_uncertainty(tmp_path, best)
    print(f"expected ttbar_norm uncertainty, hard cuts: {before:.4f} at the AGC's, {after:.4f} at {best}")
    assert after < 0.9 * before
    document = json.loads((tmp_path / "optimize" / "optimize.json").read_text())
    assert [entry["step"] for entry in document["trajectory"]] == list(range(len(document["trajectory"])))
    assert set(document["best"]["parameters"]) == {"btag_threshold", "jet_pt_min"}
    for name, (low, high) in document["settings"]["ranges"].items():
        assert all(low <= entry["parameters"][name] <= high for entry in document["trajectory"])
    plots = {path.name for path in (tmp_path / "optimize" / "plots").iterdir()}
    assert plots == {"objective.png", "parameters.png", "templates_4j1b_CR.png", "templates_4j2b_SR.png"}
    for name, value in best.items():
        assert f"--set {name}={float(f'{value:.4g}'):g}" in result.command


def test_the_command_line_prints_the_command_to_run_at_the_optimum(tmp_path: Path) -> None:
    """The module's settings: the step's compiled code comes from the disk cache the module's other tests filled."""
    process = agcframe_cli("optimize", "--steps", "3", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    last = process.stdout.strip().splitlines()[-1]
    assert last.startswith("run the analysis there: agcframe run --set btag_threshold=")
    values = dict(setting.split("=") for setting in last.split("--set ")[1:])
    assert 0.2 <= float(values["btag_threshold"]) <= 0.9 and 25 <= float(values["jet_pt_min"]) <= 60
    assert process.stderr.strip() == ""  # no library chatter on the terminal


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--parameter", "muon_iso_max"], "cannot optimise parameter 'muon_iso_max'; its optimisable parameters are btag_threshold, jet_pt_min"),
        (["--range", "btag_threshold=0.1:0.5"], "the range of 'btag_threshold' must lie within [0.2, 0.9]"),
        (["--range", "btag_threshold=low"], "--range 'btag_threshold=low' must be NAME=LOW:HIGH"),
        (["--set", "jet_pt_min=70"], "the starting value of 'jet_pt_min', 70, is outside its range [25, 60]"),
        (["--set", "btag_treshold=0.6"], "did you mean 'btag_threshold'?"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    process = agcframe_cli("optimize", *arguments, "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert process.returncode != 0
    assert process.stderr.count("\n") == 1 and message in process.stderr, process.stderr
    assert not (tmp_path / "out").exists()


def test_an_analysis_without_a_soft_form_is_refused() -> None:
    class Plain:
        name = "plain"

    with pytest.raises(ConfigError, match="analysis 'plain' has no soft form"):
        soft_form(Plain())  # type: ignore[arg-type]
