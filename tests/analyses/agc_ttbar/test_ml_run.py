"""``agcframe run --ml``: histograms_ml.root, coffea ≡ numba bit for bit, and the same whatever the chunking or executor."""

from __future__ import annotations

import functools
import json
import os
import shutil
import types
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import uproot
from agcframe.plugins.hist.histogrammer import HistHistogrammer
from histograms import assert_bit_identical, read_histograms
from matplotlib.testing.compare import compare_images
from image_baselines import BASELINES, UPDATE_ENV

import agcframe
from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe import hookimpl
from agcframe.analyses.agc_ttbar import ml
from agcframe.data import Fill
from agcframe.errors import ConfigError
from agcframe.plugin.manager import PluginManager
from agcframe.plugin.specs import ProcessorSpec

pytest.importorskip("xgboost", reason="the coffea processor's ML stage scores with xgboost (pip install -e '.[test]')")


def _run(fileset: Path, output: Path, processor: str, executor: str = "iterative", **options: object) -> agcframe.RunResult:
    plugins = {"processor": processor, "executor": executor}
    config = agcframe.RunConfig(fileset=str(fileset), output=str(output), fit=False, ml=True, plugins=plugins, **options)
    return agcframe.run(config)


@pytest.fixture(scope="module")
def ml_outputs(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    output = tmp_path_factory.mktemp("ml")
    for processor in ("coffea", "numba"):
        _run(small_fileset, output / processor, processor)
    return {processor: output / processor for processor in ("coffea", "numba")}


def test_coffea_and_numba_write_the_same_ml_histograms(ml_outputs: dict[str, Path]) -> None:
    assert_bit_identical(ml_outputs["coffea"] / "histograms_ml.root", ml_outputs["numba"] / "histograms_ml.root")
    assert_bit_identical(ml_outputs["coffea"] / "histograms.root", ml_outputs["numba"] / "histograms.root")


def test_every_feature_has_the_4j2b_histograms(ml_outputs: dict[str, Path]) -> None:
    """One ML histogram per feature for each 4j2b (process, variation), the pseudodata included, titled by the feature."""
    main = read_histograms(ml_outputs["numba"] / "histograms.root")
    ml = read_histograms(ml_outputs["numba"] / "histograms_ml.root")
    in_4j2b = sorted(name.removeprefix("4j2b") for name in main if name.startswith("4j2b_"))
    assert "_pseudodata" in in_4j2b and "_ttbar_pt_res_up" in in_4j2b and "_wjets_scale_var_down" in in_4j2b
    assert sorted(ml) == sorted(f"{feature}{rest}" for feature in agc.ML_FEATURES for rest in in_4j2b)
    with uproot.open(ml_outputs["numba"] / "histograms_ml.root") as file:
        h = file["mass_w1w2_ttbar"]
        assert h.member("fTitle") == "mass_w1w2" and h.axis().member("fTitle") == "mass_w1w2 [GeV]"
        assert h.axis().edges().tolist() == pytest.approx(np.linspace(50, 300, 26).tolist())
    for name, (values, _) in ml.items():
        assert values.min() >= agc.ML_BIN_OFFSET, name  # the AGC's offset on every bin


def test_ml_histograms_do_not_depend_on_chunking_or_executor(small_fileset: Path, ml_outputs: dict[str, Path], tmp_path: Path) -> None:
    _run(small_fileset, tmp_path / "futures", "numba", "futures", chunksize=377, workers=2)
    assert_bit_identical(ml_outputs["numba"] / "histograms_ml.root", tmp_path / "futures" / "histograms_ml.root")


def test_without_ml_no_ml_histograms(small_fileset: Path, tmp_path: Path) -> None:
    result = agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path), fit=False, plugins={"processor": "numba"}))
    assert not (tmp_path / "histograms_ml.root").exists() and result.ml_histogram_names == []


def _manager_with(hook: str, spec: object) -> PluginManager:
    """All installed plugins and a third-party one whose hook ``hook`` declares ``spec``."""
    module = types.ModuleType(f"plugin_{spec.name}")  # type: ignore[attr-defined]

    def declare() -> Iterable[object]:
        yield spec

    setattr(module, hook, hookimpl(declare, specname=hook))
    manager = PluginManager()
    manager.register(module, name=spec.name, distribution=f"{spec.name}-dist")  # type: ignore[attr-defined]
    return manager


def test_a_processor_without_an_ml_stage_is_refused(small_fileset: Path, tmp_path: Path) -> None:
    manager = _manager_with("agcframe_processors", ProcessorSpec(name="plain", backend=object, analyses=("agc_ttbar",)))
    config = agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path / "out"), fit=False, ml=True, plugins={"processor": "plain"})
    with pytest.raises(ConfigError, match=r"processor plugin 'plain' has no ML stage.*--plugin processor=coffea or numba"):
        agcframe.run(config, manager=manager)
    assert not (tmp_path / "out").exists()


def test_the_offset_and_the_empty_rule_of_ml_histograms(tmp_path: Path) -> None:
    """Every bin gets 1e-6; a histogram is written only if its sum exceeds 25 x 1e-6 x 1.01 (the AGC's save_histograms)."""
    histogrammer = HistHistogrammer(agc.AgcTtbar())
    fills = [
        Fill("pt_w1", "ttbar", "nominal", np.array([40.0, 41.0, 250.0], np.float32), np.ones(3), 2.0),
        Fill("pt_w1", "ttbar", "ME_var", np.array([], np.float32), np.ones(0), 2.0),
        Fill("pt_w1", "wjets", "nominal", np.array([1000.0], np.float32), np.ones(1), 1.0),  # overflow only
    ]
    names = histogrammer.write(histogrammer.fill(fills), tmp_path / "ml.root", ["pt_w1"])
    assert names == ["pt_w1_ttbar"]
    values, variances = read_histograms(tmp_path / "ml.root")["pt_w1_ttbar"]
    expected = np.full(27, agc.ML_BIN_OFFSET)
    expected[2] += 4.0  # 40 and 41 GeV: bin [36, 47)
    expected[21] += 2.0
    assert values.tolist() == pytest.approx(expected.tolist(), rel=0, abs=1e-15)
    assert variances[1] == pytest.approx(agc.ML_BIN_OFFSET**2)


ML_FIT_CHANNELS = ["Feature0", "Feature1", "Feature2", "Feature4", "Feature5", "Feature6", "Feature7"]
ML_BASELINE = "ml_Feature6_postfit.png"


@pytest.fixture(scope="module")
def ml_fits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs of the embedded dataset with the ML stage and the fit, one per inference plugin."""
    outputs = {}
    for inference in ("cabinetry", "pyhf"):
        outputs[inference] = output = tmp_path_factory.mktemp(f"ml-fit-{inference}")
        plugins = {"processor": "numba", "inference": inference}
        agcframe.run(agcframe.RunConfig(output=str(output), ml=True, ranking=False, plugins=plugins))
    if os.environ.get(UPDATE_ENV):
        shutil.copyfile(outputs["cabinetry"] / "plots" / "ml" / "Feature6_postfit.png", BASELINES / ML_BASELINE)
    return outputs


@pytest.mark.parametrize("inference", ["cabinetry", "pyhf"])
def test_the_ml_validation_model_and_its_plots(ml_fits: dict[str, Path], inference: str) -> None:
    """The pruned ML model (the AGC's Feature0, 1, 2, 4, 5, 6, 7) with every sample, drawn pre- and post-fit."""
    workspace = json.loads((ml_fits[inference] / "workspace_ml.json").read_text())
    assert [channel["name"] for channel in workspace["channels"]] == ML_FIT_CHANNELS
    assert all(len(channel["samples"]) == len(agc.FIT_SAMPLES) for channel in workspace["channels"])
    mass = next(c for c in workspace["channels"] if c["name"] == "Feature5")["samples"][0]["data"]
    assert len(mass) == agc.ML_BINS
    drawn = sorted(path.name for path in (ml_fits[inference] / "plots" / "ml").iterdir())
    assert drawn == sorted(f"{channel}_{stage}.png" for channel in ML_FIT_CHANNELS for stage in ("prefit", "postfit"))


def test_both_inference_plugins_build_the_same_ml_model(ml_fits: dict[str, Path]) -> None:
    from agcframe.stats.model import model_and_data

    (model, data), (other, other_data) = (
        model_and_data(json.loads((ml_fits[inference] / "workspace_ml.json").read_text())) for inference in ("cabinetry", "pyhf")
    )
    assert model.config.par_names == other.config.par_names
    init = model.config.suggested_init()
    assert np.allclose(model.expected_actualdata(init), other.expected_actualdata(init), rtol=1e-9, atol=0)
    assert np.allclose(data, other_data, rtol=1e-12, atol=0)


def test_ml_validation_plot_matches_baseline(ml_fits: dict[str, Path]) -> None:
    drawn = ml_fits["cabinetry"] / "plots" / "ml" / "Feature6_postfit.png"
    difference = compare_images(str(BASELINES / ML_BASELINE), str(drawn), tol=1.0)
    assert difference is None, difference
    # and the comparison can fail: the pre-fit figure is not the post-fit one
    assert compare_images(str(BASELINES / ML_BASELINE), str(drawn.with_name("Feature6_prefit.png")), tol=1.0) is not None


def test_compiled_scores_equal_xgboosts_on_every_assignment_of_the_embedded_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every assignment the numba processor scores in a run of the embedded dataset (all samples and variations), against XGBoost."""
    from agcframe.analyses.agc_ttbar.coffea.processor import xgboost_scores

    rows, largest_difference = [], []

    def compared(model: str, features: np.ndarray) -> np.ndarray:
        compiled = ml.compiled_scores(model, features)
        largest_difference.append(float(np.abs(compiled - xgboost_scores(model, features)).max()))
        rows.append(len(features))
        return compiled

    monkeypatch.setattr(ml, "feature_fills", functools.partial(ml.feature_fills, scores=compared))  # the numba processor imports it per call
    agcframe.run(agcframe.RunConfig(output=str(tmp_path), fit=False, ml=True, plugins={"processor": "numba"}))
    assert sum(rows) > 1_000_000  # every sample, nominal and jet-pt varied
    assert max(largest_difference) <= 1e-6


def test_the_best_assignment_reconstructs_the_w_and_the_top(ml_fits: dict[str, Path]) -> None:
    """In generated ttbar, the chosen W jets peak at the W mass and W jets + b_had at the top mass (README: realism)."""
    with uproot.open(ml_fits["cabinetry"] / "histograms_ml.root") as file:
        for feature, mass in (("mass_w1w2", 80.4), ("mass_w1w2btophad", 172.5)):
            h = file[f"{feature}_ttbar"]
            edges, values = h.axis().edges(), h.values()
            assert edges[values.argmax()] <= mass < edges[values.argmax() + 1], feature


def test_the_cli_runs_the_ml_stage_and_fit_ml_needs_its_histograms(small_fileset: Path, tmp_path: Path) -> None:
    from test_cli import agcframe_cli

    output = tmp_path / "run"
    result = agcframe_cli("run", "--ml", "--no-fit", "--plugin", "processor=numba", "--fileset", str(small_fileset), "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert f"and 1240 to {output / 'histograms_ml.root'}" in result.stdout and (output / "histograms_ml.root").is_file()
    (output / "histograms_ml.root").unlink()
    refused = agcframe_cli("fit", str(output / "histograms.root"), "--ml", "--output", str(tmp_path / "fit"))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "histograms_ml.root does not exist; the ML validation needs the output of 'agcframe run --ml'" in refused.stderr
    assert not (tmp_path / "fit").exists()


def test_an_ml_validation_that_raises_is_one_error_naming_the_plugin(small_fileset: Path, tmp_path: Path) -> None:
    from agcframe.plugins.pyhf.inference import PyhfInference

    from agcframe.errors import PluginError
    from agcframe.plugin.specs import InferenceSpec

    class BrokenMLInference(PyhfInference):
        def ml_workspace(self, histograms: Path, workdir: Path) -> dict[str, object]:
            raise RuntimeError("no such channel")

    manager = _manager_with("agcframe_inferences", InferenceSpec(name="broken-ml", backend=BrokenMLInference))
    plugins = {"processor": "numba", "inference": "broken-ml"}
    config = agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path / "out"), ml=True, plots=False, ranking=False, plugins=plugins)
    with pytest.raises(PluginError, match=r"^inference plugin 'broken-ml' failed on histograms_ml.root: RuntimeError: no such channel$"):
        agcframe.run(config, manager=manager)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_the_ml_histograms_as_hist_objects(ml_outputs: dict[str, Path]) -> None:
    """One ``hist.Hist`` per feature (feature x process x variation), with the values of the file."""
    by_feature = agcframe.load_ml_histograms(ml_outputs["numba"] / "histograms_ml.root")
    assert list(by_feature) == list(agc.ML_FEATURES)
    h = by_feature["mass_w1w2btophad"]
    assert [axis.name for axis in h.axes] == ["observable", "process", "variation"]
    assert h.axes["observable"].edges.tolist() == pytest.approx(np.linspace(50, 550, 26).tolist())
    stored = read_histograms(ml_outputs["numba"] / "histograms_ml.root")
    assert h[:, "ttbar", "btag_var_1_up"].values(flow=True).tolist() == stored["mass_w1w2btophad_ttbar_btag_var_1_up"][0].tolist()
    assert h[:, "pseudodata", "nominal"].values().sum() > 0
    with pytest.raises(agcframe.AgcframeError, match="holds no ML histograms; write one with 'agcframe run --ml'"):
        agcframe.load_ml_histograms(ml_outputs["numba"] / "histograms.root")


@pytest.mark.parametrize("processor", ["coffea", "numba"])
def test_runs_without_ml_do_not_need_jet_qgl(small_fileset: Path, tmp_path: Path, processor: str) -> None:
    from test_bad_inputs import _good_file, _one_file_fileset, _without_branch

    fileset = _one_file_fileset(tmp_path, _without_branch(tmp_path, _good_file(small_fileset), "Jet_qgl"))
    result = agcframe.run(agcframe.RunConfig(fileset=str(fileset), output=str(tmp_path / "out"), fit=False, plugins={"processor": processor}))
    assert result.yields["4j2b_ttbar"] > 0
