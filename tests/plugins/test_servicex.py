"""The servicex source: the real servicex client, its local backend, parity with uproot, its errors."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import pytest
import uproot
from agcframe.tools.generate import GenerationSettings, generated_events
from agcframe.plugins.servicex.source import ServiceXSource, uproot_raw_query
from agcframe.analyses.agc_ttbar.parameters import DEFAULTS
from agcframe.analyses.agc_ttbar.preselection import preselection_jet_pt_min

from agcframe.analyses.agc_ttbar import analysis
from agcframe.config import RunConfig
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.engine.pipeline import run
from conftest import REAL_FILE
from histograms import assert_bit_identical, read_histograms
from test_cli import agcframe_cli
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()

LOCAL = {"servicex": {"endpoint": "local"}}


def _run(fileset: Path, output: Path, source: str, **options: object) -> dict[str, object]:
    config = RunConfig(
        fileset=str(fileset),
        output=str(output),
        fit=False,
        plugins={"source": source},
        plugin_options=LOCAL if source == "servicex" else {},
        **options,  # type: ignore[arg-type]
    )
    return run(config).metrics


def test_histograms_bit_identical_to_the_uproot_source(small_fileset: Path, tmp_path: Path) -> None:
    """The main and the ML stage's histograms (the preselection keeps every 4j2b event, the query the ML branches)."""
    metrics = _run(small_fileset, tmp_path / "servicex", "servicex", chunksize=700, ml=True)
    _run(small_fileset, tmp_path / "uproot", "uproot", ml=True)
    for name in ("histograms.root", "histograms_ml.root"):
        assert_bit_identical(tmp_path / "servicex" / name, tmp_path / "uproot" / name)
    delivery = metrics["source"]
    assert isinstance(delivery, dict)
    assert delivery["backend"] == "local"
    assert delivery["files_delivered"] == delivery["files_in"] == 18
    # the preselection drops events, and the delivered files are smaller than the inputs
    assert 0 < delivery["events_delivered"] < delivery["events_in"] == generated_events(GenerationSettings(seed=7, events_per_file=1500, files_per_sample=2))
    assert 0 < delivery["bytes_delivered"] < delivery["bytes_in"]


def test_the_query_the_plugin_builds_is_the_query_that_runs(small_fileset: Path) -> None:
    source = ServiceXSource(AGC, DEFAULTS, endpoint="local", ignore_cache=True)
    datasets = select_datasets(load_fileset(small_fileset, AGC), AGC, 1)[:1]
    items = source.plan(datasets, 100_000)
    transformer = source.backend.adapter
    statuses = [transformer._status[request] for request in transformer.transformed]  # type: ignore[attr-defined]
    assert [status.selection for status in statuses] == [uproot_raw_query(AGC.column_request(DEFAULTS)).generate_selection_string()]
    with uproot.open(items[0].path) as file:
        branches = set(file["Events"].keys())
    counters = {"nJet", "nElectron", "nMuon"}
    assert branches == set(analysis.BRANCHES) | set(analysis.ML_BRANCHES) | counters
    with uproot.open(items[0].path) as file:
        jet_pt = file["Events"]["Jet_pt"].array()
    # every delivered event has the jets the preselection asks for
    assert ak.all(ak.sum(jet_pt > preselection_jet_pt_min(DEFAULTS), axis=1) >= DEFAULTS["min_jets"])


def test_results_are_cached_until_an_input_changes(small_fileset: Path) -> None:
    datasets = select_datasets(load_fileset(small_fileset, AGC), AGC, 1)[:1]
    first = ServiceXSource(AGC, DEFAULTS, endpoint="local", ignore_cache=True)
    items = first.plan(datasets, 100_000)
    again = ServiceXSource(AGC, DEFAULTS, endpoint="local")
    assert again.plan(datasets, 100_000) == items
    assert again.backend.adapter.transformed == {}  # type: ignore[attr-defined]  # nothing transformed: from the cache
    path = datasets[0].files[0].path
    os.utime(path)  # the input changed after the cached transform
    changed = ServiceXSource(AGC, DEFAULTS, endpoint="local")
    changed.plan(datasets, 100_000)
    assert len(changed.backend.adapter.transformed) == 1  # type: ignore[attr-defined]


def test_real_cms_file_delivered_with_column_and_event_reduction(tmp_path: Path) -> None:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": str(REAL_FILE), "nevts": 200}]}}}))
    result = agcframe_cli(
        "run", "--fileset", str(fileset), "--no-fit", "--output", str(tmp_path / "out"),
        "--plugin", "source=servicex", "--servicex-endpoint", "local", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    delivery = json.loads((tmp_path / "out" / "metrics.json").read_text())["source"]
    assert delivery["events_in"] == 200
    assert 0 < delivery["events_delivered"] < 200
    # 24 of 947 branches of 4 events; the delivered file's fixed ROOT overhead
    # (streamers, directory, about 35 kB) makes up most of what is left
    assert delivery["byte_fraction"] < 0.15


def _servicex_error(tmp_path: Path, *args: str) -> str:
    fileset = tmp_path / "fileset.json"
    if not fileset.exists():
        fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": str(REAL_FILE), "nevts": 200}]}}}))
    result = agcframe_cli(
        "run", "--fileset", str(fileset), "--no-fit", "--output", str(tmp_path / "out"),
        "--plugin", "source=servicex", *args, cwd=tmp_path, env={"HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_transform_failure_names_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(b"root" + b"\0" * 1000)
    (tmp_path / "fileset.json").write_text(
        json.dumps({"ttbar": {"nominal": {"files": [{"path": str(corrupt), "nevts": 10}]}}})
    )
    line = _servicex_error(tmp_path, "--servicex-endpoint", "local")
    assert "transform of sample ttbar__nominal failed for 1 file(s)" in line
    assert str(corrupt) in line


def test_no_endpoint_configured(tmp_path: Path) -> None:
    line = _servicex_error(tmp_path, "--servicex-endpoint", "coffea-casa")
    assert "no ServiceX endpoint configured" in line
    assert "servicex.yaml" in line


def _servicex_yaml(directory: Path, endpoint: str, token: str | None = None) -> None:
    """``directory/servicex.yaml`` with the endpoint ``af``; the client's cache in ``directory`` (its default is under /tmp)."""
    token_line = f"    token: {token}\n" if token else ""
    (directory / "servicex.yaml").write_text(
        f"api_endpoints:\n  - name: af\n    endpoint: {endpoint}\n{token_line}cache_path: {directory / 'servicex-cache'}\n"
    )


def test_endpoint_name_missing_from_servicex_yaml(tmp_path: Path) -> None:
    _servicex_yaml(tmp_path, "http://127.0.0.1:1")
    line = _servicex_error(tmp_path, "--servicex-endpoint", "coffea-casa")
    assert "'coffea-casa' is not configured" in line and "af" in line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_endpoint_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    _servicex_yaml(tmp_path, url)
    line = _servicex_error(tmp_path)
    assert f"ServiceX endpoint {url} is unreachable" in line


class _RejectingTokens(http.server.BaseHTTPRequestHandler):
    """Answers as a ServiceX endpoint does to a refresh token it does not accept."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        status = 401 if self.path == "/token/refresh" else 404
        body = json.dumps({"message": "Invalid token"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def token_rejecting_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RejectingTokens)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bad_token(tmp_path: Path, token_rejecting_endpoint: str) -> None:
    _servicex_yaml(tmp_path, token_rejecting_endpoint, token="not-a-valid-token")
    line = _servicex_error(tmp_path, "--servicex-endpoint", "af")
    assert "refused agcframe" in line and "401" in line
    assert "renew the token" in line


def test_an_analysis_without_a_column_request_is_refused_in_one_line(tmp_path: Path) -> None:
    import dataclasses

    from agcframe.errors import ConfigError

    @dataclasses.dataclass(frozen=True)
    class NoRequest:
        name: str = "no_request"

    with pytest.raises(ConfigError, match=r"^analysis 'no_request' does not say which columns to deliver .*use --plugin source=uproot$"):
        ServiceXSource(NoRequest(), {}, endpoint="local")  # type: ignore[arg-type]


def test_a_coffea_processor_runs_on_the_delivered_columns(small_fileset: Path, tmp_path: Path) -> None:
    """The AGC notebook's processor (``--processor``) on what ServiceX delivers for the AGC: the uproot source's histograms."""
    from benchmarks.agc_reference import TtbarAnalysis

    _run(small_fileset, tmp_path / "servicex", "servicex", processor=TtbarAnalysis())
    _run(small_fileset, tmp_path / "uproot", "uproot", processor=TtbarAnalysis())
    delivered, read = (read_histograms(tmp_path / source / "histograms.root") for source in ("servicex", "uproot"))
    assert sorted(delivered) == sorted(read)
    for name in (name for name in read if "pt_res_up" not in name):  # the AGC smears with numpy's global generator
        assert delivered[name][0].tobytes() == read[name][0].tobytes(), name
