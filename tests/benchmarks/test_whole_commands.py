"""Whole commands as a user runs them: start-up, and ``agcframe run --no-fit`` against the AGC reference coffea command.

Every benchmark is a fresh process, imports included:

* ``agcframe --help`` and ``agcframe plugins``;
* the default ``agcframe run`` (the README's first command), with its fit stage;
* ``agcframe run --no-fit --plugin processor=numba`` and the AGC reference
  analysis as a command (``agc_reference.py``: the AGC notebook's coffea
  processor under ``coffea.processor.Runner``), side by side on the same files:
  the embedded dataset, and files of ``agcframe generate --all-branches`` (the
  947 branches of real NanoAOD).

Compare the medians per dataset. The default test run (``--benchmark-disable``)
runs each once, on ``--all-branches`` files of 2,000 events per file; set
``AGCFRAME_BENCHMARK_FULL_STARTUP=1`` for 20,000 events per file, as the
embedded dataset has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agcframe.tools.generate import GenerationSettings, generate_dataset
from agcframe.engine.pipeline import default_fileset

FULL_ENV = "AGCFRAME_BENCHMARK_FULL_STARTUP"
REFERENCE = Path(__file__).with_name("agc_reference.py")


def _command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize("args", [("--help",), ("plugins",)], ids=" ".join)
def test_startup(benchmark: Any, args: tuple[str, ...], tmp_path: Path) -> None:
    """``agcframe --help`` and ``agcframe plugins``, whole process (the bar is 0.5 s)."""
    result = benchmark.pedantic(_command, args=("-m", "agcframe", *args), kwargs={"cwd": tmp_path}, rounds=5, iterations=1)
    assert "agcframe" in result.stdout


@pytest.fixture(scope="module", params=["embedded", "all-branches"])
def fileset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.param == "embedded":
        return default_fileset()
    events = 20_000 if os.environ.get(FULL_ENV) == "1" else 2_000
    return generate_dataset(tmp_path_factory.mktemp("all-branches") / "data", GenerationSettings(events_per_file=events, all_branches=True))


def test_agcframe_run_numba_command(benchmark: Any, fileset: Path, tmp_path: Path) -> None:
    """``agcframe run --no-fit --plugin processor=numba``, whole process."""
    args = ("-m", "agcframe", "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(fileset), "--output", "out", "--no-column-cache")
    result = benchmark.pedantic(_command, args=args, kwargs={"cwd": tmp_path}, rounds=3, iterations=1)
    benchmark.extra_info.update(dataset=fileset.parent.name, summary=result.stdout.strip())
    assert (tmp_path / "out" / "histograms.root").is_file()


def test_the_default_agcframe_run_command(benchmark: Any, tmp_path: Path) -> None:
    """``agcframe run`` as the README's first command runs it (the embedded dataset already generated), whole process.

    ``extra_info`` has the median of the fit stage's time (``fit_time_s`` of ``metrics.json``) over the rounds.
    """
    import json
    import statistics

    default_fileset()  # generated once, before the clock starts
    fit_times: list[float] = []

    def run() -> subprocess.CompletedProcess[str]:
        result = _command("-m", "agcframe", "run", cwd=tmp_path)
        fit_times.append(json.loads((tmp_path / "agc-output" / "metrics.json").read_text())["fit_time_s"])
        return result

    result = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(fit_time_s=statistics.median(fit_times), lines=result.stdout.count("\n") + result.stderr.count("\n"))
    assert "ttbar_norm = " in result.stdout


def test_agc_reference_coffea_command(benchmark: Any, fileset: Path, tmp_path: Path) -> None:
    """The AGC reference coffea processor under ``coffea.processor.Runner``, whole process, on the same files."""
    result = benchmark.pedantic(
        _command, args=(str(REFERENCE), str(fileset), "histograms.root"), kwargs={"cwd": tmp_path}, rounds=3, iterations=1
    )
    benchmark.extra_info.update(dataset=fileset.parent.name, summary=result.stdout.strip())
    assert (tmp_path / "histograms.root").is_file()


def test_the_reference_command_fills_what_agcframe_fills(small_fileset: Path, tmp_path: Path) -> None:
    """The two commands do the same work: equal histograms, but for the reference's unseeded resolution smearing."""
    import numpy as np
    import uproot

    _command(str(REFERENCE), str(small_fileset), "reference.root", "--chunksize", "1000", cwd=tmp_path)
    _command("-m", "agcframe", "run", "--no-fit", "--fileset", str(small_fileset), "--output", "out", cwd=tmp_path)
    with uproot.open(tmp_path / "reference.root") as reference, uproot.open(tmp_path / "out" / "histograms.root") as ours:
        names = [name for name in reference.keys(cycle=False) if not name.endswith("pt_res_up")]
        assert {name.removesuffix("_nominal") for name in names} == {
            name for name in ours.keys(cycle=False) if not name.endswith(("pt_res_up", "pseudodata"))
        }
        for name in names:
            ours_name = name.removesuffix("_nominal")
            np.testing.assert_allclose(reference[name].values(flow=True), ours[ours_name].values(flow=True), rtol=1e-6, err_msg=name)
