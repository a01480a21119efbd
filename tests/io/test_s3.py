"""``s3://`` inputs from a real S3-protocol server on loopback (moto's, see ``tests/s3_server.py``):
histograms bit-identical to the local run, reads batched, and a refusal is one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from histograms import assert_bit_identical
from s3_server import S3Server, s3_server
from test_cli import agcframe_cli
from xrootd_servers import remote_fileset

pytest.importorskip("s3fs", reason="s3:// inputs need s3fs; pip install 'agcframe[s3]'")
pytest.importorskip("moto.server", reason="the test S3 server is moto's; pip install 'moto[server]'")


@pytest.fixture(scope="module")
def server(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3"), {"agc-open-data": small_fileset.parent}) as running:
        yield running


def _profile(server: S3Server, folder: Path) -> dict[str, str]:
    """The server's credentials as a profile of an AWS credentials file, and the variables that choose it (no keys in them)."""
    credentials = folder / "credentials"
    credentials.write_text(f"[analysis]\naws_access_key_id = {server.access_key}\naws_secret_access_key = {server.secret_key}\n")
    return server.environment(
        AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_PROFILE="analysis"
    )


@pytest.mark.parametrize(
    ("processor", "credentials"), [("numba", "variables"), ("coffea", "variables"), ("numba", "profile")], ids=lambda value: value
)
def test_s3_inputs_give_the_local_histograms(server: S3Server, small_fileset: Path, tmp_path: Path, processor: str, credentials: str) -> None:
    """With the credentials in the AWS variables, or in a profile of the AWS credentials file."""
    fileset = remote_fileset("s3://agc-open-data", small_fileset.parent, tmp_path)
    common = ["run", "--no-fit", "--no-column-cache", "--plugin", f"processor={processor}"]
    local = agcframe_cli(*common, "--fileset", str(small_fileset), "--output", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    gets = server.object_gets("agc-open-data")
    environment = server.environment() if credentials == "variables" else _profile(server, tmp_path)
    remote = agcframe_cli(*common, "--fileset", str(fileset), "--output", str(tmp_path / "s3"), env=environment)
    assert remote.returncode == 0, remote.stderr
    assert_bit_identical(tmp_path / "local" / "histograms.root", tmp_path / "s3" / "histograms.root")
    provenance = json.loads((tmp_path / "s3" / "provenance.json").read_text())
    assert provenance["inputs"] and all(entry["path"].startswith("s3://agc-open-data/") for entry in provenance["inputs"])
    metrics = json.loads((tmp_path / "s3" / "metrics.json").read_text())
    # batched: uproot merges the baskets a chunk needs into a few ranged GETs (S3 answers one range per GET)
    requests = server.object_gets("agc-open-data") - gets
    assert 0 < requests < metrics["chunks"] * 40, (requests, metrics["chunks"])


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIANOTAKEY"}, "refused to serve it (PermissionError: The AWS Access Key Id you provided does not exist"),
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "refused to serve it (PermissionError: The request signature we calculated does not match"),
    ],
    ids=["unknown-key", "wrong-secret"],
)
def test_wrong_credentials_are_one_line(server: S3Server, small_fileset: Path, tmp_path: Path, change: dict[str, str], said: str) -> None:
    fileset = remote_fileset("s3://agc-open-data", small_fileset.parent, tmp_path)
    result = agcframe_cli("run", "--no-fit", "--fileset", str(fileset), "--output", str(tmp_path / "out"), env=server.environment(**change))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("agcframe: error: input file s3://agc-open-data/") and "s3://agc-open-data refused" in result.stderr
    assert said in result.stderr and "check the credentials (AWS_ACCESS_KEY_ID" in result.stderr, result.stderr
    assert change[next(iter(change))] not in result.stderr  # a credential is never printed
    assert not (tmp_path / "out").exists()


def test_a_missing_bucket_is_one_line(server: S3Server, small_fileset: Path, tmp_path: Path) -> None:
    fileset = remote_fileset("s3://no-such-bucket", small_fileset.parent, tmp_path)
    result = agcframe_cli("run", "--no-fit", "--fileset", str(fileset), "--output", str(tmp_path / "out"), env=server.environment())
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "input file s3://no-such-bucket/" in result.stderr and "does not exist on s3://no-such-bucket" in result.stderr
    assert "The specified bucket does not exist" in result.stderr and "check the fileset paths" in result.stderr
    assert not (tmp_path / "out").exists()
