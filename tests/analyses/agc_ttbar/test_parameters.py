"""The AGC analysis' cuts are parameters: ``--set``, ``parameters:`` and ``RunConfig(parameters=...)``.

At values other than the AGC's, both processors give bit-identical histograms
that agree with the tests' independent per-event implementation; a bad name or
value is one line; a checkpoint made at other values is never reused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import agcframe
from agcframe import RunConfig
from agcframe.engine.checkpoints import checkpoint_directory
from agcframe.errors import ConfigError
from agcframe.plugin.manager import PluginManager
from agcframe.plugin.specs import ProcessorSpec
from histograms import assert_bit_identical, read_histograms
from reference_analysis import reference_histograms
from runs import wait_for_checkpoints
from test_cli import agcframe_cli

SEED = 11
#: every kind of cut moved at once: lepton, jet and b-tag cuts and the regions' multiplicities
MOVED = {
    "electron_pt_min": 27.5, "electron_abs_eta_max": 2.3, "electron_cut_based": 3, "electron_sip3d_max": 5.0,
    "muon_pt_min": 26.0, "muon_tight_id": False, "muon_iso_max": 0.25, "muon_sip3d_max": 3.0, "muon_abs_eta_max": 2.4,
    "jet_pt_min": 35.0, "jet_abs_eta_max": 2.0, "jet_id_mask": 2, "btag_threshold": 0.45,
    "min_jets": 5, "control_region_btags": 0, "signal_region_min_btags": 1,
}  # fmt: skip


def _cli_run(fileset: Path, output: Path, processor: str, *flags: str) -> subprocess.CompletedProcess[str]:
    done = agcframe_cli("run", "--fileset", str(fileset), "--output", str(output), "--no-fit", "--seed", str(SEED),
                        "--plugin", f"processor={processor}", *flags)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _assert_matches_reference(histograms: Path, fileset: Path, cuts: dict) -> None:
    produced = read_histograms(histograms)
    expected = reference_histograms(fileset, SEED, cuts)
    assert set(expected) == {name for name in produced if not name.endswith("pseudodata")}
    for name, values in expected.items():
        np.testing.assert_allclose(produced[name][0], values, rtol=1e-7, atol=1e-9, err_msg=name)


def test_set_btag_threshold_runs_in_both_processors_as_in_the_reference(small_fileset: Path, tmp_path: Path) -> None:
    for processor in ("numba", "coffea"):
        _cli_run(small_fileset, tmp_path / processor, processor, "--set", "btag_threshold=0.6")
    assert_bit_identical(tmp_path / "numba" / "histograms.root", tmp_path / "coffea" / "histograms.root")
    _assert_matches_reference(tmp_path / "numba" / "histograms.root", small_fileset, {"btag_threshold": 0.6})
    provenance = json.loads((tmp_path / "numba" / "provenance.json").read_text())
    assert provenance["parameters"]["btag_threshold"] == 0.6 and provenance["parameters"]["jet_pt_min"] == 30.0
    _cli_run(small_fileset, tmp_path / "default", "numba")
    default, moved = (read_histograms(tmp_path / run / "histograms.root") for run in ("default", "numba"))
    assert all(default[name][0].tobytes() != moved[name][0].tobytes() for name in ("4j1b_ttbar", "4j2b_ttbar"))


@pytest.mark.parametrize("processor", ["numba", "coffea"])
def test_every_cut_moved_at_once_agrees_with_the_reference(processor: str, small_fileset: Path, tmp_path: Path) -> None:
    result = agcframe.run(RunConfig(fileset=str(small_fileset), seed=SEED, output=str(tmp_path / "out"), fit=False,
                                    plugins={"processor": processor}, parameters=MOVED))  # fmt: skip
    assert result.provenance["parameters"] == MOVED
    _assert_matches_reference(tmp_path / "out" / "histograms.root", small_fileset, MOVED)


def test_parameters_from_a_run_configuration_equal_set(small_fileset: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yml"
    config.write_text(yaml.safe_dump({"fileset": str(small_fileset), "seed": SEED, "fit": False, "parameters": {"jet_pt_min": 35}}))
    done = agcframe_cli("run", "--config", str(config), "--output", str(tmp_path / "from-config"), "--plugin", "processor=numba")
    assert done.returncode == 0, done.stderr[-2000:]
    _cli_run(small_fileset, tmp_path / "from-set", "coffea", "--set", "jet_pt_min=35")
    assert_bit_identical(tmp_path / "from-config" / "histograms.root", tmp_path / "from-set" / "histograms.root")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("btag_treshold=0.6", "analysis 'agc_ttbar' has no parameter 'btag_treshold'; did you mean 'btag_threshold'? valid: electron_pt_min,"),
        ("btag_threshold=high", "parameter 'btag_threshold' of analysis 'agc_ttbar' must be a number, not 'high'"),
        ("btag_threshold=1.5", "parameter 'btag_threshold' of analysis 'agc_ttbar' must be in [0, 1], not '1.5'"),
        ("min_jets=4.5", "parameter 'min_jets' of analysis 'agc_ttbar' must be an integer, not '4.5'"),
        ("muon_tight_id=maybe", "parameter 'muon_tight_id' of analysis 'agc_ttbar' must be true or false, not 'maybe'"),
        ("btag_threshold", "--set 'btag_threshold' must look like name=value"),
    ],
)
def test_a_bad_parameter_is_one_line_naming_it(setting: str, message: str, tmp_path: Path) -> None:
    done = agcframe_cli("run", "--no-fit", "--output", str(tmp_path / "out"), "--set", setting)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_value_in_a_run_configuration_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match="^parameter 'jet_pt_min' of analysis 'agc_ttbar' must be at least 0, not -5$"):
        agcframe.run(RunConfig(fit=False, parameters={"jet_pt_min": -5}))


def test_analyses_lists_every_parameter_with_its_default() -> None:
    done = agcframe_cli("analyses", "--json")
    assert done.returncode == 0, done.stderr
    parameters = {p["name"]: p for p in json.loads(done.stdout)["agc_ttbar"]["parameters"]}
    assert parameters["btag_threshold"]["default"] == 0.5 and parameters["btag_threshold"]["high"] == 1.0
    assert parameters["jet_pt_min"]["default"] == 30.0 and parameters["muon_tight_id"]["default"] is True
    assert set(parameters) == set(MOVED)
    table = agcframe_cli("analyses").stdout
    assert "agc_ttbar (default)" in table and "btag_threshold" in table and "in [0, 1]" in table


class _OtherAnalysisProcessor:
    @agcframe.hookimpl
    def agcframe_processors(self):  # type: ignore[no-untyped-def]
        yield ProcessorSpec(name="dilepton_only", backend=object, description="implements another analysis", analyses=("dilepton",))


def test_a_processor_of_another_analysis_is_refused_in_one_line(tmp_path: Path) -> None:
    manager = PluginManager()
    manager.register(_OtherAnalysisProcessor(), name="other", distribution="other-dist")
    with pytest.raises(ConfigError) as raised:
        agcframe.run(RunConfig(fit=False, output=str(tmp_path / "out"), plugins={"processor": "dilepton_only"}), manager=manager)
    assert str(raised.value) == (
        "processor plugin 'dilepton_only' implements dilepton, not analysis 'agc_ttbar'; "
        "use --plugin processor=coffea or numba, or choose another --analysis"
    )


def test_a_resume_at_other_values_reuses_no_checkpoint_and_says_why(small_fileset: Path, tmp_path: Path) -> None:
    output = tmp_path / "resumed"
    args = ["run", "--fileset", str(small_fileset), "--output", str(output), "--no-fit", "--seed", str(SEED), "--chunksize", "250"]
    process = subprocess.Popen([sys.executable, "-m", "agcframe", *args, "--set", "btag_threshold=0.6", "--plugin", "processor=coffea"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())  # fmt: skip
    wait_for_checkpoints(checkpoint_directory(output), 5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = agcframe_cli(*args, "--resume", "--plugin", "processor=coffea")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "changed: parameters.btag_threshold)" in resumed.stderr, resumed.stderr
    assert json.loads((output / "metrics.json").read_text())["chunks_resumed"] == 0
    _cli_run(small_fileset, tmp_path / "clean", "numba", "--chunksize", "250")
    assert_bit_identical(output / "histograms.root", tmp_path / "clean" / "histograms.root")
