"""Bearer tokens over ``root://`` and ``https://`` from a real token-protected XRootD origin (``tests/token_origin.py``).

A valid token gives the local histograms bit for bit, with both processors;
no token, a token for another path and an expired one are each one line within
the remote timeout; the token is in no output, log or message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from histograms import assert_bit_identical
from test_cli import agcframe_cli
from token_origin import TokenOrigin, provisioned_scitokens, token_origin
from xrootd_servers import remote_fileset, served_copy

#: the remote timeout of these runs: a refusal must come well within it
TIMEOUT_S = 10


@pytest.fixture(scope="module")
def origin(small_fileset: Path) -> Iterator[TokenOrigin]:
    reason = provisioned_scitokens()
    if reason is not None:
        pytest.skip(reason)
    with served_copy(small_fileset.parent) as served, token_origin(served) as running:
        yield running


@pytest.fixture(scope="module")
def local_histograms(small_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    histograms = {}
    for processor in ("numba", "coffea"):
        output = tmp_path_factory.mktemp(f"local-{processor}")
        run = agcframe_cli("run", "--no-fit", "--no-column-cache", "--plugin", f"processor={processor}", "--fileset", str(small_fileset), "--output", str(output))
        assert run.returncode == 0, run.stderr
        histograms[processor] = output / "histograms.root"
    return histograms


def _environment(origin: TokenOrigin, token: str | None) -> dict[str, str]:
    """The client's environment: the origin's authority trusted, ``BEARER_TOKEN_FILE`` the named token (or none anywhere)."""
    nowhere = str(origin.tokens["valid"].parent / "no-runtime-dir")
    environment = {**origin.trust, "AGCFRAME_REMOTE_TIMEOUT_S": str(TIMEOUT_S), "XDG_RUNTIME_DIR": nowhere, "BEARER_TOKEN": "", "BEARER_TOKEN_FILE": ""}
    if token is not None:
        environment["BEARER_TOKEN_FILE"] = str(origin.tokens[token])
    return environment


@pytest.mark.parametrize("scheme", ["root", "https"])
@pytest.mark.parametrize("processor", ["numba", "coffea"])
def test_a_valid_token_gives_the_local_histograms_and_is_written_nowhere(
    origin: TokenOrigin, small_fileset: Path, local_histograms: dict[str, Path], tmp_path: Path, scheme: str, processor: str
) -> None:
    url = origin.root_url if scheme == "root" else origin.https_url
    fileset = remote_fileset(url, small_fileset.parent, tmp_path)
    output = tmp_path / "out"
    run = agcframe_cli(
        "--debug", "run", "--no-fit", "--no-column-cache", "--plugin", f"processor={processor}",
        "--fileset", str(fileset), "--output", str(output), env=_environment(origin, "valid"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert_bit_identical(local_histograms[processor], output / "histograms.root")
    # everything the run wrote (outputs, checkpoints beside them) and said, its libraries' debug logs included (--debug)
    token = origin.tokens["valid"].read_text().strip()
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {"provenance.json", "metrics.json", "histograms.root"} <= {path.name for path in written}
    for path in written:
        assert token.encode() not in path.read_bytes(), f"the token is in {path}"
    assert "DEBUG" in run.stderr  # the debug logs were there to leak it
    assert token not in run.stdout + run.stderr


@pytest.mark.parametrize("scheme", ["root", "https"])
@pytest.mark.parametrize("token", [None, "other-path", "expired"], ids=["no-token", "other-path", "expired"])
def test_a_refused_reader_is_one_line_within_the_timeout(origin: TokenOrigin, small_fileset: Path, tmp_path: Path, scheme: str, token: str | None) -> None:
    url = origin.root_url if scheme == "root" else origin.https_url
    fileset = remote_fileset(url, small_fileset.parent, tmp_path)
    started = time.monotonic()
    run = agcframe_cli("run", "--no-fit", "--fileset", str(fileset), "--output", str(tmp_path / "out"), env=_environment(origin, token))
    elapsed = time.monotonic() - started
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"agcframe: error: input file {url}//") and f"{url} refused to serve it (" in run.stderr, run.stderr
    assert "it may be missing, expired or for other paths" in run.stderr
    if token is None:
        assert "no bearer token was found (BEARER_TOKEN, BEARER_TOKEN_FILE" in run.stderr
    else:
        assert f"the token from BEARER_TOKEN_FILE={origin.tokens[token]}" in run.stderr
        assert origin.tokens[token].read_text().strip() not in run.stderr
    assert elapsed < TIMEOUT_S, elapsed
    assert not (tmp_path / "out").exists()
