"""Both inference plugins: same model, same fit; Asimov and injected-signal closure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agcframe
from agcframe.analyses.agc_ttbar.analysis import FIT_SAMPLES, REGIONS
from agcframe.data import FitOptions, Significance
from agcframe.io.histogram_file import read_histograms
from agcframe.io.histogram_json import write_histograms
from agcframe.stats.model import build_workspace, model_and_data
from test_cli import agcframe_cli
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()



@pytest.fixture(scope="module")
def generated_histograms(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("generated-run")
    return agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(output), fit=False)).output / "histograms.root"


def test_plugins_agree_on_the_real_agc_histograms(real_histograms: Path, tmp_path: Path) -> None:
    results = {name: agcframe.fit(real_histograms, tmp_path / name, inference=name, plots=False) for name in ("cabinetry", "pyhf")}
    cabinetry, pyhf = (results[name].parameter("ttbar_norm") for name in ("cabinetry", "pyhf"))
    assert 0.94 < pyhf.value < 0.97 and 0.08 < pyhf.error < 0.10
    assert pyhf.value == pytest.approx(cabinetry.value, abs=1e-4)
    assert pyhf.error == pytest.approx(cabinetry.error, abs=1e-4)
    for name in ("cabinetry", "pyhf"):
        workspace = json.loads((tmp_path / name / "workspace.json").read_text())
        assert [c["name"] for c in workspace["channels"]] == ["4j1b CR", "4j2b SR"]
        assert all(len(o["data"]) == 11 for o in workspace["observations"])
        document = json.loads((tmp_path / name / "fit_results.json").read_text())
        n = len(document["parameters"])
        assert len(document["correlation"]) == n and all(len(row) == n for row in document["correlation"])


def test_workspace_has_every_systematic(real_histograms: Path) -> None:
    workspace = build_workspace(real_histograms, AGC.model)
    ttbar = next(s for s in workspace["channels"][1]["samples"] if s["name"] == "ttbar")
    names = {m["name"] for m in ttbar["modifiers"]}
    assert {"ttbar_norm", "ME variation", "PS variation", "ttbar scale variations", "Jet energy scale",
            "Jet energy resolution", "b-tag NP 1", "b-tag NP 2", "b-tag NP 3", "b-tag NP 4", "Luminosity",
            "staterror_4j2b-SR"} == names  # fmt: skip
    wjets = next(s for s in workspace["channels"][0]["samples"] if s["name"] == "W+jets")
    assert "W+jets scale variations" in {m["name"] for m in wjets["modifiers"]}


@pytest.mark.parametrize("inference", ["cabinetry", "pyhf"])
def test_asimov_fit_returns_one(generated_histograms: Path, tmp_path: Path, inference: str) -> None:
    result = agcframe.fit(generated_histograms, tmp_path, inference=inference, options=FitOptions(asimov=True), plots=False)
    assert result.parameter("ttbar_norm").value == pytest.approx(1.0, abs=1e-6)


def with_ttbar_scaled(histograms_file: Path, ttbar_scale: float, output: Path) -> Path:
    """A copy of ``histograms_file`` whose pseudodata are the backgrounds plus ``ttbar_scale`` times ttbar."""
    histograms = read_histograms(histograms_file)
    for region in REGIONS:
        pseudodata = histograms[f"{region}_ttbar"] * ttbar_scale
        for process in FIT_SAMPLES.values():
            if process != "ttbar":
                pseudodata = pseudodata + histograms[f"{region}_{process}"]
        histograms[f"{region}_pseudodata"] = pseudodata
    write_histograms(histograms, output)
    return output


def test_injected_ttbar_signal_is_recovered(generated_histograms: Path, tmp_path: Path) -> None:
    injected = with_ttbar_scaled(generated_histograms, 1.3, tmp_path / "injected.root")
    poi = agcframe.fit(injected, tmp_path / "fit", inference="pyhf", plots=False).parameter("ttbar_norm")
    assert abs(poi.value - 1.3) < poi.error
    assert poi.error < 0.3


def test_plugins_agree_on_a_finite_discovery_significance(real_histograms: Path, tmp_path: Path) -> None:
    """Real-data templates, pseudodata = backgrounds + 1% of ttbar: a few sigma, the same from both plugins."""
    weak = with_ttbar_scaled(real_histograms, 0.01, tmp_path / "weak.root")
    options = FitOptions(significance=True)
    found = {
        name: agcframe.fit(weak, tmp_path / name, inference=name, options=options, plots=False).significance
        for name in ("cabinetry", "pyhf")
    }
    assert found["pyhf"] is not None and found["cabinetry"] is not None
    assert 2 < found["pyhf"].observed < 6
    assert found["pyhf"].observed == pytest.approx(found["cabinetry"].observed, rel=1e-3)
    assert found["pyhf"].expected == pytest.approx(found["cabinetry"].expected, rel=1e-3)
    # the same p-values as plain pyhf's hypotest (numpy backend, scipy optimizer), none of agcframe's fitting
    import pyhf

    model, data = model_and_data(build_workspace(weak, AGC.model))
    backend, optimizer = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    try:
        observed, expected = (float(p) for p in pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True))
    finally:
        pyhf.set_backend(backend, optimizer)
    assert found["pyhf"].observed_p_value == pytest.approx(observed, rel=1e-3)
    assert found["pyhf"].expected_p_value == pytest.approx(expected, rel=1e-3)
    document = json.loads((tmp_path / "pyhf" / "fit_results.json").read_text())
    assert document["significance"]["observed"] == pytest.approx(found["pyhf"].observed)


def test_a_user_cabinetry_yaml_is_fitted(real_histograms: Path, tmp_path: Path) -> None:
    """The AGC's own cabinetry_config.yml form, without Binning: templates read as they are (25 bins from 50 GeV)."""
    import yaml

    from agcframe.plugins.cabinetry.inference import cabinetry_config

    config = cabinetry_config(AGC.model, real_histograms.name)
    for region in config["Regions"]:
        del region["Binning"]
    path = tmp_path / "cabinetry_config.yml"
    path.write_text(yaml.safe_dump(config))
    result = agcframe.fit(
        real_histograms, tmp_path / "out", plots=False, plugin_options={"cabinetry": {"config": str(path)}}
    )
    workspace = json.loads((tmp_path / "out" / "workspace.json").read_text())
    assert all(len(o["data"]) == 25 for o in workspace["observations"])
    assert 0.8 < result.parameter("ttbar_norm").value < 1.1


def test_the_written_cabinetry_config_gives_the_same_fit(real_histograms: Path, tmp_path: Path) -> None:
    """A fit writes the cabinetry_config.yml it used; given back unchanged as --cabinetry-config, the fit is the same."""
    options = agcframe.FitOptions(ranking=False)
    default = agcframe.fit(real_histograms, tmp_path / "default", plots=False, options=options)
    written = tmp_path / "default" / "cabinetry_config.yml"
    assert written.is_file()
    again = agcframe.fit(
        real_histograms, tmp_path / "again", plots=False, options=options, plugin_options={"cabinetry": {"config": str(written)}}
    )
    assert (tmp_path / "again" / "cabinetry_config.yml").read_text() == written.read_text()
    assert json.loads((tmp_path / "again" / "workspace.json").read_text()) == json.loads((tmp_path / "default" / "workspace.json").read_text())
    assert [(p.name, p.value, p.error) for p in again.parameters] == [(p.name, p.value, p.error) for p in default.parameters]


def test_a_binning_that_is_not_a_rebinning_is_one_error(real_histograms: Path, tmp_path: Path) -> None:
    import yaml

    from agcframe.plugins.cabinetry.inference import cabinetry_config

    config = cabinetry_config(AGC.model, real_histograms.name)
    config["Regions"][0]["Binning"] = [110, 155, 550]
    path = tmp_path / "cabinetry_config.yml"
    path.write_text(yaml.safe_dump(config))
    result = agcframe_cli("fit", str(real_histograms), "--cabinetry-config", str(path), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "region '4j1b CR': Binning [110, 155, 550]" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_cls_upper_limit_on_real_data(real_histograms: Path, tmp_path: Path) -> None:
    import pyhf

    result = agcframe_cli(
        "fit", str(real_histograms), "--plugin", "inference=pyhf", "--limit", "--no-plots", "--output", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "95% CL upper limit on ttbar_norm: observed" in result.stdout
    document = json.loads((tmp_path / "fit_results.json").read_text())
    limit, poi = document["limit"], document["ttbar_norm"]
    assert limit["cl"] == pytest.approx(0.95)
    bands = [limit["expected"][band] for band in ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")]
    assert bands == sorted(bands) and bands[0] > 0
    # ttbar is observed far above zero: the limit lies above the fitted value, about 1.64 sigma up
    assert poi["value"] + poi["error"] < limit["observed"] < poi["value"] + 3 * poi["error"]
    # CLs is 0.05 at the observed limit
    workspace = pyhf.Workspace(json.loads((tmp_path / "workspace.json").read_text()))
    model = workspace.model()
    backend, optimizer = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())  # plain pyhf, none of agcframe's fitting
    try:
        cls = float(pyhf.infer.hypotest(limit["observed"], workspace.data(model), model, test_stat="qtilde"))
    finally:
        pyhf.set_backend(backend, optimizer)
    assert cls == pytest.approx(0.05, abs=1e-3)


def test_a_p_value_below_a_double_prints_as_a_bound() -> None:
    line = Significance(observed_p_value=0.0, observed=65.51, expected_p_value=2.5e-5, expected=4.06).describe("ttbar_norm")
    assert line == "discovery significance of ttbar_norm: observed 65.51 σ (p < 1e-300), expected 4.06 σ (p = 2.5e-05)"


@pytest.mark.parametrize("plots", [True, False], ids=["plots", "no-plots"])
def test_the_refits_leave_a_core_to_the_plot_process(real_histograms: Path, tmp_path: Path, plots: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """On two cores the plot process draws beside the refits: they run in one thread then, in two without plots."""
    import os

    from agcframe.stats import fitting

    used: list[int] = []
    real = fitting.impacts

    def recorded(*args: object, threads: int = fitting.REFIT_THREADS) -> object:
        used.append(threads)
        return real(*args, threads=threads)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(fitting, "impacts", recorded)
    result = agcframe.fit(real_histograms, tmp_path, plots=plots)
    assert result.ranking
    assert used == [1 if plots else 2]
