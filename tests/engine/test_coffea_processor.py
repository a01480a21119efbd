"""A coffea ProcessorABC run unchanged: the AGC notebook's own ``TtbarAnalysis`` (tests/benchmarks/agc_reference.py).

It runs through ``agcframe run --processor`` and ``agcframe.run(RunConfig(processor=...))``
with every executor, survives a kill and ``--resume``, and its histograms equal
the built-in coffea processor's, except ``pt_res_up``: the AGC smears the jets
with numpy's global generator, agcframe with its seeded per-jet one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
from coffea.util import load

import agcframe
from agcframe import RunConfig
from agcframe.engine.checkpoints import checkpoint_directory
from benchmarks.agc_reference import TtbarAnalysis
from histograms import read_histograms
from runs import wait_for_checkpoints
from test_cli import agcframe_cli

REFERENCE = Path(__file__).parents[1] / "benchmarks" / "agc_reference.py"
PROCESSOR = f"{REFERENCE}:TtbarAnalysis"
CHUNKSIZE = 1000
#: the bounds docs/coffea-processor.md states: the AGC processor's histograms against the built-in processor's, bin by bin,
#: and against its own at another chunk size
BUILT_IN_RTOL = 1e-7
CHUNK_SIZE_RTOL = 1e-12


def _deterministic(histograms: dict[str, Any]) -> dict[str, Any]:
    """All but the resolution smearing's histograms, which the AGC draws from numpy's global generator."""
    return {name: value for name, value in histograms.items() if "pt_res_up" not in name}


@pytest.fixture(scope="module")
def built_in(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("built-in")
    agcframe.run(RunConfig(fileset=str(small_fileset), fit=False, chunksize=CHUNKSIZE, output=str(output)))
    return read_histograms(output / "histograms.root")


@pytest.fixture(scope="module")
def iterative(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> agcframe.RunResult:
    output = tmp_path_factory.mktemp("iterative")
    return agcframe.run(RunConfig(fileset=str(small_fileset), processor=TtbarAnalysis(), fit=False, chunksize=CHUNKSIZE, output=str(output)))


def test_the_agc_processor_gives_the_built_in_processors_histograms(iterative: agcframe.RunResult, built_in: dict[str, Any]) -> None:
    ours = read_histograms(iterative.output / "histograms.root")
    assert sorted(ours) == sorted(built_in)  # 4j1b_pseudodata and 4j2b_pseudodata too: the analysis' parts are there
    for name, (values, variances) in _deterministic(built_in).items():
        np.testing.assert_allclose(ours[name][0], values, rtol=BUILT_IN_RTOL, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(ours[name][1], variances, rtol=2 * BUILT_IN_RTOL, atol=1e-9, err_msg=name)
    output = iterative.processor_output
    assert sum(output["nevents"].values()) == iterative.metrics["events"] > 0
    assert set(output["nevents"]) == {f"{process}__{variation}" for process, variation in _samples(iterative)}


def _samples(result: agcframe.RunResult) -> set[tuple[str, str]]:
    return {(entry["process"], entry["variation"]) for entry in result.provenance["inputs"]}


@pytest.mark.parametrize("executor", ["futures", "dask"])
def test_every_executor_accumulates_the_same_histograms_bit_for_bit(
    executor: str, iterative: agcframe.RunResult, small_fileset: Path, tmp_path: Path
) -> None:
    result = agcframe.run(
        RunConfig(
            fileset=str(small_fileset), processor=TtbarAnalysis(), fit=False, chunksize=CHUNKSIZE, output=str(tmp_path),
            plugins={"executor": executor}, workers=2,
        )
    )  # fmt: skip
    ours, theirs = (_deterministic(read_histograms(r.output / "histograms.root")) for r in (result, iterative))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name][0].tobytes() == theirs[name][0].tobytes(), name
        assert ours[name][1].tobytes() == theirs[name][1].tobytes(), name
    assert result.processor_output["nevents"] == iterative.processor_output["nevents"]


def test_other_chunk_sizes_differ_within_the_bound_the_docs_state(iterative: agcframe.RunResult, small_fileset: Path, tmp_path: Path) -> None:
    """Floating-point sums over other groupings of the events: within 1e-12 relative (docs/coffea-processor.md)."""
    result = agcframe.run(RunConfig(fileset=str(small_fileset), processor=TtbarAnalysis(), fit=False, chunksize=1500, output=str(tmp_path)))
    ours, theirs = (_deterministic(read_histograms(r.output / "histograms.root")) for r in (result, iterative))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name][0], theirs[name][0], rtol=CHUNK_SIZE_RTOL, atol=0, err_msg=name)
        np.testing.assert_allclose(ours[name][1], theirs[name][1], rtol=CHUNK_SIZE_RTOL, atol=0, err_msg=name)


def test_the_command_writes_the_output_as_coffea_saves_it(small_fileset: Path, iterative: agcframe.RunResult, tmp_path: Path) -> None:
    done = agcframe_cli("run", "--processor", PROCESSOR, "--fileset", str(small_fileset), "--no-fit", "--chunksize", str(CHUNKSIZE), "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "wrote 124 histograms" in done.stdout
    saved = load(str(tmp_path / "output.coffea"))
    assert saved["nevents"] == iterative.processor_output["nevents"]
    nominal = saved["hist"][:, "4j2b", "ttbar", "nominal"]
    assert nominal.values().tobytes() == iterative.processor_output["hist"][:, "4j2b", "ttbar", "nominal"].values().tobytes()
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["processor"]["class"] == "agc_reference:TtbarAnalysis"
    assert provenance["config"]["processor"] == PROCESSOR


def test_a_killed_run_resumes_from_its_checkpoints(small_fileset: Path, iterative: agcframe.RunResult, tmp_path: Path) -> None:
    output = tmp_path / "resumed"
    command = ["run", "--processor", PROCESSOR, "--fileset", str(small_fileset), "--no-fit", "--chunksize", str(CHUNKSIZE), "--output", str(output)]
    process = subprocess.Popen([sys.executable, "-m", "agcframe", *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoints(checkpoint_directory(output), 5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = agcframe_cli(*command, "--resume")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["chunks_resumed"] >= 5 and metrics["chunks_resumed"] + metrics["chunks_computed"] == metrics["chunks"]
    ours, theirs = (_deterministic(read_histograms(path / "histograms.root")) for path in (output, iterative.output))
    assert all(ours[name][0].tobytes() == theirs[name][0].tobytes() for name in theirs)


def test_the_run_fits_the_analysis_model_when_the_histograms_hold_it(tmp_path: Path) -> None:
    """The AGC processor's histograms are the AGC's model, so the run fits it as for agcframe's own processor.

    On the embedded dataset (the small one's fit is fragile), with numpy's global generator seeded for the smearing.
    """
    np.random.seed(1)
    options = {"ranking": False, "plots": False}
    result = agcframe.run(RunConfig(processor=TtbarAnalysis(), output=str(tmp_path / "processor"), **options))
    own = agcframe.run(RunConfig(plugins={"processor": "numba"}, output=str(tmp_path / "own"), **options))
    assert result.fit is not None and own.fit is not None and result.fit.status is not None and result.fit.status.valid
    ours, theirs = (fit.parameter(fit.poi) for fit in (result.fit, own.fit))
    assert abs(ours.value - theirs.value) < 0.1 * theirs.error and ours.error == pytest.approx(theirs.error, rel=0.05)

PROCESSORS = '''
import threading

from coffea import processor


class Broken(processor.ProcessorABC):
    def process(self, events):
        if events.metadata["entrystart"] >= 1000:
            raise ValueError("no jets today")
        return {"events": len(events)}

    def postprocess(self, accumulator):
        return accumulator


class Locked(processor.ProcessorABC):
    def __init__(self):
        self.lock = threading.Lock()

    def process(self, events):
        return {}

    def postprocess(self, accumulator):
        return accumulator


class ByFlavour(processor.ProcessorABC):
    """Jet pT per hadron flavour: a category axis the default naming does not know."""

    def process(self, events):
        import awkward as ak
        import hist

        h = hist.Hist.new.Reg(10, 0, 500, name="pt").IntCat([0, 4, 5], name="flavour").Weight()
        jets = ak.flatten(events.Jet)
        h.fill(pt=jets.pt, flavour=jets.hadronFlavour)
        return {"jets": {events.metadata["process"]: h}}

    def postprocess(self, accumulator):
        return accumulator


def by_flavour(keys, categories):
    return f"jets_{keys[1]}_{categories['flavour']}" if categories["flavour"] != "0" else None


class Flaky(processor.ProcessorABC):
    """A read that fails once per chunk, as a remote file's may: a marker file remembers the first try."""

    def process(self, events):
        import pathlib

        marker = pathlib.Path(f"tried-{events.metadata['dataset']}-{events.metadata['entrystart']}")
        if not marker.exists():
            marker.touch()
            raise OSError("connection reset by peer")
        return {"events": len(events)}

    def postprocess(self, accumulator):
        return accumulator


class Counting(processor.ProcessorABC):
    def __init__(self, factor):
        self.factor = factor

    def process(self, events):
        return {"events": len(events) * self.factor}

    def postprocess(self, accumulator):
        return accumulator
'''


@pytest.fixture
def user_module(tmp_path: Path) -> Path:
    (tmp_path / "user_processors.py").write_text(PROCESSORS)
    return tmp_path


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--processor", "user_processors:Locked"], "processor Locked cannot be pickled to the workers (TypeError: cannot pickle '_thread.lock' object); keep only picklable state"),
        (["--processor", "no_such_module:Thing"], "--processor 'no_such_module:Thing': no module named 'no_such_module'"),
        (["--processor", "user_processors:Missing"], "--processor 'user_processors:Missing': module user_processors has no class 'Missing'"),
        (["--processor", "user_processors:threading"], "--processor 'user_processors:threading' is not a coffea processor.ProcessorABC subclass"),
        (["--processor", "user_processors:Counting", "--processor-option", "scale=2"], "Counting(scale=...) does not fit its constructor"),
        (["--processor", "user_processors:Counting", "--processor-option", "factor=2", "--processor-schema", "NoSchema"], "--processor-schema 'NoSchema' is not a coffea NanoEvents schema; choose one of "),
        (["--processor", "user_processors:Counting", "--processor-option", "factor=2", "--ml"], "--ml (config key 'ml') is the ML stage of agcframe's own processors"),
    ],
)
def test_a_processor_that_cannot_start_is_one_line_before_any_work(
    arguments: list[str], message: str, user_module: Path, small_fileset: Path
) -> None:
    done = agcframe_cli("run", *arguments, "--fileset", str(small_fileset), "--no-fit", "--output", "out", cwd=user_module)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("agcframe: error: "), done.stderr
    assert message in done.stderr
    assert not (user_module / "out").exists() and not checkpoint_directory(user_module / "out").exists()


def test_a_processor_that_raises_is_one_line_naming_its_class_and_the_chunk(user_module: Path, small_fileset: Path) -> None:
    command = ["run", "--processor", "user_processors:Broken", "--fileset", str(small_fileset), "--no-fit", "--chunksize", "1000", "--output", "out"]
    done = agcframe_cli(*command, cwd=user_module)
    assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
    assert "agcframe: error: processor Broken raised on " in done.stderr
    assert "ttbar__nominal__0000.root entries [1000, 2000): ValueError: no jets today" in done.stderr
    assert not (user_module / "out").exists()
    debug = agcframe_cli("--debug", *command, cwd=user_module)
    assert "Traceback" in debug.stderr and 'raise ValueError("no jets today")' in debug.stderr


def test_processor_options_and_the_fileset_metadata_reach_the_processor(user_module: Path, small_fileset: Path) -> None:
    done = agcframe_cli(
        "run", "--processor", "user_processors:Counting", "--processor-option", "factor=3",
        "--fileset", str(small_fileset), "--no-fit", "--output", "out", cwd=user_module,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 0 histograms" in done.stdout
    metrics = json.loads((user_module / "out" / "metrics.json").read_text())
    assert load(str(user_module / "out" / "output.coffea")) == {"events": 3 * metrics["events"]}


def test_a_naming_function_names_the_histograms_the_default_cannot(user_module: Path, small_fileset: Path) -> None:
    command = ["run", "--processor", "user_processors:ByFlavour", "--fileset", str(small_fileset), "--no-fit"]
    unnamed = agcframe_cli(*command, "--output", "unnamed", cwd=user_module)
    assert unnamed.returncode == 0, unnamed.stderr
    assert "wrote 0 histograms" in unnamed.stdout and "name it with --histogram-naming" in " ".join(unnamed.stderr.split())
    named = agcframe_cli(*command, "--histogram-naming", "user_processors:by_flavour", "--output", "named", cwd=user_module)
    assert named.returncode == 0, named.stderr
    histograms = read_histograms(user_module / "named" / "histograms.root")
    assert sorted(histograms) == sorted(f"jets_{process}_{flavour}" for process in _processes(small_fileset) for flavour in (4, 5))
    saved = load(str(user_module / "named" / "output.coffea"))
    assert histograms["jets_ttbar_5"][0][1:-1].tolist() == saved["jets"]["ttbar"][:, hist.loc(5)].values().tolist()


def _processes(fileset: Path) -> list[str]:
    return list(json.loads(fileset.read_text()))


def test_skip_bad_files_leaves_out_an_unreadable_file(user_module: Path, small_fileset: Path) -> None:
    document = json.loads(small_fileset.read_text())
    good = small_fileset.parent / document["wjets"]["nominal"]["files"][0]["path"]
    truncated = user_module / "truncated.root"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    fileset = user_module / "fileset.json"
    fileset.write_text(json.dumps({"wjets": {"nominal": {"files": [{"path": str(good), "nevts": 1500}, {"path": str(truncated), "nevts": 1500}]}}}))
    command = ["run", "--processor", "user_processors:Counting", "--processor-option", "factor=1", "--fileset", str(fileset), "--no-fit"]
    failed = agcframe_cli(*command, "--output", "strict", cwd=user_module)
    assert failed.returncode == 2 and f"input file {truncated} is truncated" in failed.stderr
    done = agcframe_cli(*command, "--skip-bad-files", "--output", "partial", cwd=user_module)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((user_module / "partial" / "metrics.json").read_text())
    assert metrics["partial"] and [entry["path"] for entry in metrics["skipped_inputs"]] == [str(truncated)]
    assert load(str(user_module / "partial" / "output.coffea")) == {"events": metrics["events"]} and metrics["events"] > 0


def test_a_failing_read_is_retried(user_module: Path, small_fileset: Path) -> None:
    command = ["run", "--processor", "user_processors:Flaky", "--fileset", str(small_fileset), "--no-fit"]
    failed = agcframe_cli(*command, "--retries", "0", "--output", "once", cwd=user_module)
    assert failed.returncode != 0 and failed.stderr.count("\n") == 1, failed.stderr
    assert "failed 1 times: OSError: connection reset by peer" in failed.stderr
    for marker in user_module.glob("tried-*"):
        marker.unlink()
    done = agcframe_cli(*command, "--retries", "1", "--output", "retried", cwd=user_module)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((user_module / "retried" / "metrics.json").read_text())
    assert load(str(user_module / "retried" / "output.coffea")) == {"events": metrics["events"]}
    assert "retrying" in done.stderr
