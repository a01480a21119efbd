"""A coffea processor through agcframe and through coffea's own ``Runner``: the same processor, files, executor and chunk size.

The processor is the AGC notebook's ``TtbarAnalysis`` (``agc_reference.py``), unchanged. Both sides
are whole commands, fresh processes, imports included:

* ``agcframe run --processor agc_reference.py:TtbarAnalysis --no-fit`` (it also writes
  ``output.coffea``, ``histograms.root``, ``metrics.json`` and ``provenance.json``, and checkpoints
  every chunk);
* ``python agc_reference.py``: ``coffea.processor.Runner`` with the same executor, then the
  histograms written with uproot.

With the iterative executor and with the futures executor on 2 workers, at the default chunk size
(100,000), on two inputs: the embedded dataset from the local disk, and the benchmark dataset (nine
files, ``AGCFRAME_BENCHMARK_EVENTS_PER_FILE`` events each) over ``root://`` from a real XRootD origin
behind a delaying proxy that adds 10 ms of round trip, as a facility's storage does. Compare the
medians of a row's two benchmarks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agcframe.engine.pipeline import default_fileset
from xrootd_servers import delay_proxy, origin_config, remote_fileset, require_xrootd, served_copy, xrootd

REFERENCE = Path(__file__).with_name("agc_reference.py")
EXECUTORS = {"iterative": 1, "futures": 2}
ROUND_TRIP_MS = 10


def _command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module", params=["embedded", f"root-{ROUND_TRIP_MS}ms"])
def fileset(request: pytest.FixtureRequest, benchmark_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The inputs; the default test command (``--benchmark-disable``) runs each benchmark once, on the small benchmark files."""
    if request.param == "embedded":
        yield benchmark_fileset if request.config.getoption("benchmark_disable") else default_fileset()  # generated before any clock starts
        return
    require_xrootd()
    with served_copy(benchmark_fileset.parent) as served:
        with xrootd(served, "agcframe-runner-origin", origin_config(served / "data")) as origin:
            with delay_proxy(origin.port, ROUND_TRIP_MS, served) as port:
                yield remote_fileset(f"root://127.0.0.1:{port}", served / "data", tmp_path_factory.mktemp("remote"))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_agcframe_run_processor_command(benchmark: Any, executor: str, fileset: Path, tmp_path: Path) -> None:
    args = (
        "-m", "agcframe", "run", "--processor", f"{REFERENCE}:TtbarAnalysis", "--no-fit", "--fileset", str(fileset),
        "--plugin", f"executor={executor}", "--workers", str(EXECUTORS[executor]), "--output", "out",
        "--no-column-cache",  # coffea's Runner reads the files every time
    )  # fmt: skip
    result = benchmark.pedantic(_command, args=args, kwargs={"cwd": tmp_path}, rounds=3, iterations=1)
    benchmark.extra_info.update(executor=executor, inputs=fileset.parent.name, summary=result.stdout.strip())
    assert (tmp_path / "out" / "output.coffea").is_file()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_coffea_runner_command(benchmark: Any, executor: str, fileset: Path, tmp_path: Path) -> None:
    args = (str(REFERENCE), str(fileset), "histograms.root", "--executor", executor, "--workers", str(EXECUTORS[executor]))
    result = benchmark.pedantic(_command, args=args, kwargs={"cwd": tmp_path}, rounds=3, iterations=1)
    benchmark.extra_info.update(executor=executor, inputs=fileset.parent.name, summary=result.stdout.strip())
    assert (tmp_path / "histograms.root").is_file()
