"""The whole analysis on generated files, against an independent per-event computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

import agcframe
from agcframe import RunConfig
from agcframe.io.histogram_file import split_name
from agcframe.tools.generate import EVENTS_FACTOR, GenerationSettings, generated_events
from agcframe.analyses.agc_ttbar.numba.processor import BRANCHES
from histograms import assert_bit_identical, read_histograms
from reference_analysis import reference_histograms
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()

SEED = 11


@pytest.fixture(scope="module")
def small_run(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> agcframe.RunResult:
    output = tmp_path_factory.mktemp("run") / "out"
    # without the column cache: test_outputs_describe_the_run counts the bytes read from the files
    return agcframe.run(RunConfig(fileset=str(small_fileset), seed=SEED, output=str(output), fit=False, column_cache=False))


def test_all_124_histograms_are_written(small_run: agcframe.RunResult) -> None:
    names = read_histograms(small_run.output / "histograms.root")
    assert len(names) == 124
    assert sum(name.startswith("4j1b_") for name in names) == 62
    for name in ("4j2b_wjets_btag_var_2_down", "4j1b_ttbar_ME_var", "4j2b_pseudodata", "4j1b_wjets_scale_var_up"):
        assert name in names


def test_the_result_holds_the_histograms_as_one_hist(small_run: agcframe.RunResult) -> None:
    """``RunResult.histograms``: the AGC notebook's observable x region x process x variation histogram, equal to the file."""
    h = small_run.histograms
    assert [axis.name for axis in h.axes] == ["observable", "region", "process", "variation"]
    assert list(h.axes["region"]) == ["4j1b", "4j2b"]
    assert list(h.axes["process"]) == [*agcframe.analyses.agc_ttbar.analysis.PROCESSES, "pseudodata"]
    assert h.axes["variation"][0] == "nominal" and "scale_var_up" in h.axes["variation"]
    produced = read_histograms(small_run.output / "histograms.root")
    for name, region, process, variation in (
        ("4j2b_ttbar", "4j2b", "ttbar", "nominal"),
        ("4j1b_wjets_scale_var_down", "4j1b", "wjets", "scale_var_down"),
        ("4j1b_single_top_s_chan_btag_var_3_up", "4j1b", "single_top_s_chan", "btag_var_3_up"),
        ("4j2b_pseudodata", "4j2b", "pseudodata", "nominal"),
    ):
        one = h[:, region, process, variation]
        assert one.values(flow=True).tobytes() == produced[name][0].tobytes(), name
        assert one.variances(flow=True).tobytes() == produced[name][1].tobytes(), name
    assert h[:, :, "ttbar", "scale_var_up"].sum(flow=True).value == 0  # the W+jets scale exists for W+jets only
    nominal = [name for name in small_run.yields if split_name(name, AGC)[2] == "nominal"]
    assert len(nominal) == 10
    assert h[::sum, :, :5, "nominal"].values().sum() == pytest.approx(sum(small_run.yields[name] for name in nominal), rel=1e-12)


def test_load_histograms_names_a_file_outside_the_analysis_naming(tmp_path: Path) -> None:
    import hist

    path = tmp_path / "histograms.root"
    with uproot.recreate(path) as file:
        file["4j1b_ttbar"] = hist.Hist.new.Regular(25, 50, 550).Weight()
        file["signal_region_zprime"] = hist.Hist.new.Regular(25, 50, 550).Weight()
    with pytest.raises(agcframe.AgcframeError, match="histogram 'signal_region_zprime' does not follow the naming .* with a process of analysis 'agc_ttbar'"):
        agcframe.load_histograms(path)


def test_histograms_match_per_event_reference(small_run: agcframe.RunResult, small_fileset: Path) -> None:
    produced = read_histograms(small_run.output / "histograms.root")
    expected = reference_histograms(small_fileset, SEED)
    assert set(expected) == {name for name in produced if not name.endswith("pseudodata")}
    for name, values in expected.items():
        np.testing.assert_allclose(produced[name][0], values, rtol=1e-7, atol=1e-9, err_msg=name)
    for region in ("4j1b", "4j2b"):
        pseudodata = (expected[f"{region}_ttbar_ME_var"] + expected[f"{region}_ttbar_PS_var"]) / 2 + expected[f"{region}_wjets"]
        np.testing.assert_allclose(produced[f"{region}_pseudodata"][0], pseudodata, rtol=1e-7)


def test_variances_are_sums_of_squared_weights(small_run: agcframe.RunResult) -> None:
    values, variances = read_histograms(small_run.output / "histograms.root")["4j2b_ttbar"]
    fileset = json.loads(Path(small_run.provenance["fileset"]).read_text())
    weight = 729.84 * 3378 / sum(f["nevts"] for f in fileset["ttbar"]["nominal"]["files"])
    np.testing.assert_allclose(variances, values * weight, rtol=1e-8)


def test_rerun_and_other_chunking_are_bit_identical(small_run: agcframe.RunResult, small_fileset: Path, tmp_path: Path) -> None:
    again = agcframe.run(RunConfig(fileset=str(small_fileset), seed=SEED, output=str(tmp_path / "a"), fit=False))
    assert_bit_identical(small_run.output / "histograms.root", again.output / "histograms.root")
    rechunked = agcframe.run(
        RunConfig(fileset=str(small_fileset), seed=SEED, chunksize=377, output=str(tmp_path / "b"), fit=False)
    )
    assert rechunked.metrics["chunks"] > again.metrics["chunks"]
    assert_bit_identical(small_run.output / "histograms.root", rechunked.output / "histograms.root")


def test_seed_changes_only_the_resolution_systematic(small_run: agcframe.RunResult, small_fileset: Path, tmp_path: Path) -> None:
    other = agcframe.run(RunConfig(fileset=str(small_fileset), seed=SEED + 1, output=str(tmp_path / "o"), fit=False))
    a, b = read_histograms(small_run.output / "histograms.root"), read_histograms(other.output / "histograms.root")
    changed = {name for name in a if not np.array_equal(a[name][0], b[name][0])}
    assert changed and all(name.endswith("pt_res_up") for name in changed)


def test_outputs_describe_the_run(small_run: agcframe.RunResult) -> None:
    metrics = json.loads((small_run.output / "metrics.json").read_text())
    assert metrics["events"] == generated_events(GenerationSettings(seed=7, events_per_file=1500, files_per_sample=2))
    assert metrics["chunks"] == 18
    assert metrics["events_per_s"] > 0 and metrics["wall_time_s"] > 0
    phases = ("reading", "computing", "filling")
    assert all(metrics[f"{phase}_time_s"] > 0 for phase in phases)
    assert sum(metrics[f"{phase}_time_s"] for phase in phases) <= metrics["processing_time_s"]
    assert sum(metrics[f"{phase}_share"] for phase in phases) == pytest.approx(1)
    assert metrics["peak_memory_bytes"] > 50 * 2**20
    assert metrics["chunks_computed"] == 18 and metrics["chunks_resumed"] == metrics["chunks_failed"] == 0
    assert metrics["partial"] is False and metrics["skipped_inputs"] == []
    provenance = json.loads((small_run.output / "provenance.json").read_text())
    assert provenance["agcframe_version"] == agcframe.__version__
    assert provenance["seed"] == SEED
    assert provenance["plugins"]["processor"] == {"name": "numba", "distribution": "agcframe", "version": agcframe.__version__}
    assert provenance["config"]["chunksize"] == 100_000
    assert len(provenance["inputs"]) == 18
    assert all(entry["size_bytes"] > 0 and entry["entries"] == 1500 * EVENTS_FACTOR.get(entry["process"], 1) for entry in provenance["inputs"])
    assert metrics["input_bytes"] == sum(entry["size_bytes"] for entry in provenance["inputs"])
    # the baskets of the branches the (default) numba processor reads, and a few hundred bytes of metadata per file
    preloaded = sum(
        sum(tree[name].compressed_bytes for name in BRANCHES)
        for tree in (uproot.open(entry["path"])["Events"] for entry in provenance["inputs"])
    )
    assert preloaded <= metrics["bytes_read"] < 1.01 * preloaded < metrics["input_bytes"]
    assert not (small_run.output / "fit_results.json").exists()


def test_fit_of_generated_histograms(small_run: agcframe.RunResult, tmp_path: Path) -> None:
    # 1,500 events per file: the fit, without the ranking (its refits are slow and partly invalid on so few events)
    result = agcframe.fit(small_run.output / "histograms.root", tmp_path / "fit", options=agcframe.FitOptions())
    document = json.loads((tmp_path / "fit" / "fit_results.json").read_text())
    assert document["ttbar_norm"]["value"] == pytest.approx(result.parameter("ttbar_norm").value)
    assert 0.5 < document["ttbar_norm"]["value"] < 1.5
    assert 0 < document["ttbar_norm"]["error"] < 0.5
    names = {p["name"] for p in document["parameters"]}
    assert {"Luminosity", "Jet energy scale", "b-tag NP 4", "ME variation", "W+jets scale variations"} <= names


def test_failed_run_leaves_previous_outputs_untouched(small_run: agcframe.RunResult, tmp_path: Path) -> None:
    output = tmp_path / "kept"
    output.mkdir()
    (output / "histograms.root").write_bytes(b"previous good output")
    broken = tmp_path / "fileset.json"
    broken.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": "missing.root", "nevts": 10}]}}}))
    with pytest.raises(agcframe.AgcframeError, match="missing.root does not exist"):
        agcframe.run(RunConfig(fileset=str(broken), output=str(output), fit=False))
    assert (output / "histograms.root").read_bytes() == b"previous good output"
    assert sorted(p.name for p in output.iterdir()) == ["histograms.root"]
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
