"""An external Dask cluster, started as a facility starts one: ``dask scheduler`` and ``dask worker`` as separate commands.

The README's facility recipe is what this test does: agcframe connects with
``--dask-scheduler-address`` and gets the histograms of the iterative executor,
bit for bit, also when one worker is killed in the middle of the run; from
local files and from ``root://`` URLs of a real XRootD origin (the workers
read over the network, as at a facility).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from agcframe.engine.checkpoints import checkpoint_directory
from histograms import assert_bit_identical
from test_cli import agcframe_cli
from tls_certificates import make_certificates
from xrootd_servers import origin_config, remote_fileset, require_xrootd, served_copy, xrootd



#: the ``dask`` command of this environment (``dask scheduler``, ``dask worker``)
DASK = str(Path(sys.executable).with_name("dask"))


def _start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a dask command; its scratch space (by default in the temporary directory, left behind) beside ``log``."""
    scratch = {"DASK_TEMPORARY_DIRECTORY": str(log.with_suffix(".scratch"))}
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **scratch})


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server by its PID: SIGTERM to its process group, SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def _cluster(directory: Path, *security: str) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler on a loopback port and two single-threaded workers, each a command of its own; ``security``: their TLS options."""
    scheduler_file = directory / "scheduler.json"
    scheduler = _start(
        DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", *security,
        "--no-dashboard", "--scheduler-file", str(scheduler_file), log=directory / "scheduler.log",
    )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for number in range(2):
            workers.append(
                _start(
                    DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", *security,
                    "--no-dashboard", "--name", f"worker-{number}", log=directory / f"worker-{number}.log",
                )  # fmt: skip
            )
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            _stop(process)


@pytest.fixture
def external_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A plain (``tcp://``) cluster of two workers, all its workers up."""
    with _cluster(tmp_path) as (address, workers):
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address, workers


def _worker_processes(nannies: list[subprocess.Popen[bytes]]) -> list[psutil.Process]:
    """The worker processes the nannies started (the processes that run the tasks)."""
    return [child for nanny in nannies for child in psutil.Process(nanny.pid).children(recursive=True) if "resource_tracker" not in " ".join(child.cmdline())]


@pytest.fixture(params=["local", "root"])
def inputs(request: pytest.FixtureRequest, small_fileset: Path, tmp_path: Path) -> Iterator[Path]:
    """The small dataset's fileset: local paths, or ``root://`` URLs of a real XRootD origin serving a copy."""
    if request.param == "local":
        yield small_fileset
        return
    require_xrootd()
    with served_copy(small_fileset.parent) as served:
        with xrootd(served, "agcframe-origin", origin_config(served / "data")) as origin:
            yield remote_fileset(f"root://127.0.0.1:{origin.port}", served / "data", tmp_path)


def test_agcframe_on_an_external_cluster_survives_a_killed_worker(
    external_cluster: tuple[str, list[subprocess.Popen[bytes]]], inputs: Path, small_fileset: Path, tmp_path: Path
) -> None:
    address, nannies = external_cluster
    expected = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--chunksize", "250", "--output", str(tmp_path / "iterative"))
    assert expected.returncode == 0, expected.stderr
    output = tmp_path / "dask"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 300
        directory = checkpoint_directory(output)
        while time.monotonic() < deadline and not (directory.is_dir() and len(list(directory.glob("*.pkl"))) >= 10):
            time.sleep(0.05)
        victim = _worker_processes(nannies)[0]
        killed.append(victim.pid)
        victim.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    result = agcframe_cli(
        "run", "--no-fit", "--fileset", str(inputs), "--chunksize", "250", "--workers", "2",
        "--plugin", "executor=dask", "--dask-scheduler-address", address, "--output", str(output),
    )  # fmt: skip
    killer.join(timeout=10)
    assert result.returncode == 0, result.stderr
    assert killed, "no worker was killed"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["chunks_computed"] == metrics["chunks"] > 10 and metrics["planning_workers"] == 2
    read = [entry["path"] for entry in json.loads((output / "provenance.json").read_text())["inputs"]]
    assert all(path.startswith("root://127.0.0.1:") == (inputs != small_fileset) for path in read)
    assert_bit_identical(tmp_path / "iterative" / "histograms.root", output / "histograms.root")


JET_PT_PROCESSOR = '''
import awkward as ak
import hist
from coffea import processor


class JetPt(processor.ProcessorABC):
    def process(self, events):
        h = hist.Hist.new.Reg(50, 0, 500, name="pt").StrCat([], name="process", growth=True).Weight()
        h.fill(pt=ak.flatten(events.Jet.pt), process=events.metadata["process"], weight=events.metadata["xsec"] / events.metadata["nevts"])
        return {"jet_pt": h, "events": len(events)}

    def postprocess(self, accumulator):
        return accumulator
'''


def test_a_coffea_processor_the_workers_cannot_import_runs_on_an_external_cluster(
    external_cluster: tuple[str, list[subprocess.Popen[bytes]]], small_fileset: Path, tmp_path: Path
) -> None:
    """A processor in a file of the working directory travels to workers started elsewhere by value, and accumulates as iterative does."""
    from coffea.util import load

    address, _ = external_cluster
    (tmp_path / "jet_pt.py").write_text(JET_PT_PROCESSOR)
    common = ("run", "--processor", "jet_pt:JetPt", "--no-fit", "--fileset", str(small_fileset), "--chunksize", "700")
    iterative = agcframe_cli(*common, "--output", "iterative", cwd=tmp_path)
    assert iterative.returncode == 0, iterative.stderr
    dask = agcframe_cli(*common, "--workers", "2", "--plugin", "executor=dask", "--dask-scheduler-address", address, "--output", "dask", cwd=tmp_path)
    assert dask.returncode == 0, dask.stderr
    ours, theirs = (load(str(tmp_path / run / "output.coffea")) for run in ("dask", "iterative"))
    assert ours["events"] == theirs["events"] > 0
    assert ours["jet_pt"].view(flow=True).tobytes() == theirs["jet_pt"].view(flow=True).tobytes()
    assert list(ours["jet_pt"].axes["process"]) == list(theirs["jet_pt"].axes["process"])


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A cluster that speaks TLS only (a certificate of the tests' own authority), and the Dask variables of its clients."""
    directory = tmp_path_factory.mktemp("tls-dask")
    certificates = make_certificates(directory)
    security = ["--tls-ca-file", str(certificates.ca), "--tls-cert", str(certificates.certificate), "--tls-key", str(certificates.key)]
    with _cluster(directory, "--protocol", "tls", *security) as (address, _):
        environment = {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(certificates.ca),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(certificates.certificate),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(certificates.key),
        }
        from distributed import Client

        with Client(address, timeout="30s", security=_security(environment)) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, environment


def _security(environment: dict[str, str]) -> Any:
    """The client security of ``environment``'s files, as an object (Dask Gateway's clients carry one, not configuration)."""
    from distributed.security import Security

    return Security(
        tls_ca_file=environment["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"], tls_client_cert=environment["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"],
        tls_client_key=environment["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"], require_encryption=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def iterative_histograms(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("iterative")
    expected = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--chunksize", "700", "--output", str(output))
    assert expected.returncode == 0, expected.stderr
    return output / "histograms.root"


def test_a_tls_cluster_gives_the_iterative_histograms(
    tls_cluster: tuple[str, dict[str, str]], small_fileset: Path, iterative_histograms: Path, tmp_path: Path
) -> None:
    """``--dask-scheduler-address tls://...`` with the certificates where Dask reads them (here its DASK_ variables)."""
    address, environment = tls_cluster
    assert address.startswith("tls://127.0.0.1:")
    result = agcframe_cli(
        "run", "--no-fit", "--fileset", str(small_fileset), "--chunksize", "700", "--workers", "2",
        "--plugin", "executor=dask", "--dask-scheduler-address", address, "--output", str(tmp_path / "tls"), env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "tls" / "metrics.json").read_text())["planning_workers"] == 2
    assert_bit_identical(iterative_histograms, tmp_path / "tls" / "histograms.root")


@pytest.mark.parametrize("certificates", ["none", "another-authority"])
def test_a_tls_cluster_refuses_a_client_without_its_certificates_in_one_line(
    tls_cluster: tuple[str, dict[str, str]], small_fileset: Path, tmp_path: Path, certificates: str
) -> None:
    address, _ = tls_cluster
    environment: dict[str, str] = {}
    if certificates == "another-authority":
        other = make_certificates(tmp_path)
        environment = {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(other.ca), "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(other.certificate),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(other.key),
        }  # fmt: skip
    result = agcframe_cli(
        "run", "--no-fit", "--fileset", str(small_fileset), "--plugin", "executor=dask",
        "--dask-scheduler-address", address, "--output", str(tmp_path / "out"), env=environment,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    if certificates == "none":
        assert f"the Dask scheduler at {address} speaks TLS, and Dask's configuration has no client certificate" in result.stderr
        assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in result.stderr
    else:
        assert f"cannot reach the Dask scheduler at {address} (" in result.stderr and "TLS" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_connected_client_with_its_own_security_is_used(
    tls_cluster: tuple[str, dict[str, str]], small_fileset: Path, iterative_histograms: Path, tmp_path: Path
) -> None:
    """Dask Gateway's form: the caller connects a client with a security object (no configuration) and gives agcframe its address."""
    import agcframe
    from distributed import Client

    address, environment = tls_cluster
    with Client(address, timeout="30s", security=_security(environment)) as client:
        config = agcframe.RunConfig(
            fileset=str(small_fileset), output=str(tmp_path / "gateway"), fit=False, chunksize=700, workers=2,
            plugins={"executor": "dask"}, plugin_options={"dask": {"scheduler_address": client.scheduler.address}},
        )  # fmt: skip
        agcframe.run(config)
        assert client.status == "running"  # the caller's client: agcframe does not close it
    assert_bit_identical(iterative_histograms, tmp_path / "gateway" / "histograms.root")
