"""The second analysis of examples/: installed with pip, run end to end by name, changed by one file of the user's code."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import uproot
import yaml

from installed_packages import installed
from test_cli import agcframe_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dilepton_ttbar"
REGIONS = ("ee", "emu", "mumu")


@pytest.fixture(scope="module")
def installed_example() -> Iterator[None]:
    with installed(EXAMPLE):
        yield


@pytest.fixture(scope="module")
def dilepton_run(installed_example: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``agcframe run --analysis dilepton_ttbar`` end to end on the embedded dataset (dileptons are rare): histograms, fit and plots."""
    output = tmp_path_factory.mktemp("dilepton") / "out"
    done = agcframe_cli("run", "--analysis", "dilepton_ttbar", "--output", str(output), "--no-ranking")
    assert done.returncode == 0, done.stderr
    return output


def test_listed_with_its_parameters(installed_example: None) -> None:
    done = agcframe_cli("analyses", "--json")
    assert done.returncode == 0, done.stderr
    analyses = json.loads(done.stdout)
    assert set(analyses) >= {"agc_ttbar", "dilepton_ttbar"}
    parameters = {parameter["name"]: parameter["default"] for parameter in analyses["dilepton_ttbar"]["parameters"]}
    assert parameters["mll_min"] == 20.0 and parameters["min_btags"] == 1


def test_a_run_by_name_writes_its_own_histograms_fit_and_plots(dilepton_run: Path) -> None:
    with uproot.open(dilepton_run / "histograms.root") as file:
        names = set(file.keys(cycle=False))
        assert {f"{region}_{process}" for region in REGIONS for process in ("ttbar", "single_top_tW", "pseudodata")} <= names
        assert {"ee_ttbar_lepton_sf_up", "emu_ttbar_jet_scale_up", "mumu_ttbar_PS_var"} <= names
        assert not any(name.startswith(("4j1b", "4j2b")) for name in names)
        assert file["emu_ttbar"].axis().edges()[[0, -1]].tolist() == [100.0, 1000.0]
        assert file["ee_ttbar"].member("fTitle") == "m_ll"
    provenance = json.loads((dilepton_run / "provenance.json").read_text())
    assert provenance["plugins"]["analysis"]["name"] == "dilepton_ttbar"
    assert provenance["plugins"]["processor"]["name"] == "dilepton-coffea"  # the analysis' own, without --plugin
    fit = json.loads((dilepton_run / "fit_results.json").read_text())
    poi = next(parameter for parameter in fit["parameters"] if parameter["name"] == fit["poi"])
    assert fit["poi"] == "ttbar_norm" and 0.5 < poi["value"] < 1.5
    config = yaml.safe_load((dilepton_run / "cabinetry_config.yml").read_text())
    assert [region["Name"] for region in config["Regions"]] == ["ee", "mumu", "emu"]
    assert config["General"]["Measurement"] == "dilepton_ttbar"
    plots = {path.name for path in (dilepton_run / "plots").iterdir()}
    assert {f"{region}_{stage}.png" for region in REGIONS for stage in ("prefit", "postfit")} <= plots


def test_its_plots_are_labelled_from_its_definition(installed_example: None, dilepton_run: Path) -> None:
    from agcframe.engine.pipeline import analysis_definition
    from agcframe.stats.plots import PlotLabels

    labels = PlotLabels.of(analysis_definition("dilepton_ttbar"), "Pseudodata")
    assert labels.variables["ee"][1] == r"$m_{\ell\ell}$ [GeV]"
    assert labels.variables["emu"][0].tolist()[:2] == [100.0, 150.0]
    assert labels.luminosity == r"3378 pb$^{-1}$ (13 TeV)"


def test_a_fit_of_its_histograms_finds_its_model(dilepton_run: Path, tmp_path: Path) -> None:
    done = agcframe_cli("fit", str(dilepton_run / "histograms.root"), "--output", str(tmp_path / "fit"), "--no-ranking", "--no-plots")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "fit" / "workspace.json").read_text())["measurements"][0]["name"] == "dilepton_ttbar"


def test_a_cut_is_one_flag(dilepton_run: Path, tmp_path: Path) -> None:
    done = agcframe_cli("run", "--analysis", "dilepton_ttbar", "--set", "mll_min=100", "--output", str(tmp_path / "cut"), "--no-fit")
    assert done.returncode == 0, done.stderr
    with uproot.open(dilepton_run / "histograms.root") as before, uproot.open(tmp_path / "cut" / "histograms.root") as after:
        assert after["ee_ttbar"].values()[:4].sum() == 0 < before["ee_ttbar"].values()[:4].sum()  # 20-100 GeV now empty
        assert after["emu_ttbar"].values().tolist() == before["emu_ttbar"].values().tolist()  # m_ll cuts only same-flavour pairs


def test_an_observable_is_one_entry_in_the_users_file(dilepton_run: Path, tmp_path: Path) -> None:
    """A copy of the package with one more region (the leading jet's pT in emu), edited in its one file of analysis code."""
    package = tmp_path / "src"
    shutil.copytree(EXAMPLE / "src", package)
    analysis = package / "dilepton_ttbar" / "analysis.py"
    analysis.write_text(
        analysis.read_text()
        + '''

def leading_jet_pt(events: Selected) -> ak.Array:
    return ak.max(events.jet_pt, axis=1)


OBSERVABLES["emu_lead_jet_pt"] = Observable("emu", Binning(20, 0.0, 500.0, "leading jet pT", "GeV"), leading_jet_pt)
'''
    )
    output = tmp_path / "out"
    done = agcframe_cli(
        "run", "--analysis", "dilepton_ttbar", "--output", str(output), "--no-fit",
        env={"PYTHONPATH": os.pathsep.join([str(package), os.environ["PYTHONPATH"]])},  # the copy before the installed package
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with uproot.open(output / "histograms.root") as file:
        lead = file["emu_lead_jet_pt_ttbar"]
        assert lead.axis().edges()[[0, -1]].tolist() == [0.0, 500.0]
        assert lead.values(flow=True).sum() == pytest.approx(file["emu_ttbar"].values(flow=True).sum())  # the same events, another observable


def test_the_agc_processor_is_refused_for_it_in_one_line(installed_example: None, small_fileset: Path, tmp_path: Path) -> None:
    done = agcframe_cli("run", "--analysis", "dilepton_ttbar", "--plugin", "processor=coffea", "--fileset", str(small_fileset), "--output", str(tmp_path / "x"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "processor plugin 'coffea' implements agc_ttbar, not analysis 'dilepton_ttbar'; use --plugin processor=dilepton-coffea" in done.stderr
    assert not (tmp_path / "x").exists()


def test_its_soft_form_is_optimised(installed_example: None, tmp_path: Path) -> None:
    """``agcframe optimize --analysis dilepton_ttbar``: the analysis opts in with ``differentiable()`` (its ``soft.py``)."""
    done = agcframe_cli("optimize", "--analysis", "dilepton_ttbar", "--steps", "8", "--output", str(tmp_path / "optimize"))
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "optimize" / "optimize.json").read_text())
    assert document["analysis"] == "dilepton_ttbar"
    assert document["best"]["objective"] < document["initial"]["objective"]
    assert {path.name for path in (tmp_path / "optimize" / "plots").iterdir()} == {
        "objective.png", "parameters.png", "templates_ee.png", "templates_mumu.png", "templates_emu.png",
    }  # fmt: skip
    assert done.stdout.strip().splitlines()[-1].startswith("run the analysis there: agcframe run --analysis dilepton_ttbar --set btag_threshold=")
