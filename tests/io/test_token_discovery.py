"""The WLCG bearer token discovery rules, in their order, and the token's value kept out of reprs and messages."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from agcframe.errors import InputError
from agcframe.io.remote import remote_options
from agcframe.io.tokens import bearer_token


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every place the rules look, empty: the variables unset, the runtime and temporary folders of this test."""
    for name in ("BEARER_TOKEN", "BEARER_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "runtime").mkdir()
    (tmp_path / "temporary").mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temporary"))
    name = f"bt_u{os.getuid()}"
    return {"file": tmp_path / "token-file", "runtime": tmp_path / "runtime" / name, "temporary": tmp_path / "temporary" / name}


def test_the_first_place_that_holds_a_token_wins(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert bearer_token() is None
    places["temporary"].write_text("from-tmp\n")
    assert bearer_token().value == "from-tmp" and bearer_token().source == str(places["temporary"])
    places["runtime"].write_text("from-runtime\n")
    assert bearer_token().value == "from-runtime"
    places["file"].write_text("  from-file\n")
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(places["file"]))
    assert bearer_token().value == "from-file" and bearer_token().source == f"BEARER_TOKEN_FILE={places['file']}"
    monkeypatch.setenv("BEARER_TOKEN", "from-variable")
    token = bearer_token()
    assert token.value == "from-variable" and token.source == "BEARER_TOKEN" and "from-variable" not in repr(token)


def test_a_token_goes_to_https_servers_only(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEARER_TOKEN", "secret-value")
    assert remote_options("https://host:1094//file.root")["headers"] == {"Authorization": "Bearer secret-value"}
    assert "headers" not in remote_options("http://host:1094//file.root")  # never in clear text
    assert "headers" not in remote_options("root://host:1094//file.root")  # the XRootD client finds it itself


@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_a_named_token_file_that_cannot_be_used_is_one_line(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, content: str | None) -> None:
    if content is not None:
        places["file"].write_text(content)
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(places["file"]))
    with pytest.raises(InputError, match=f"the bearer token file BEARER_TOKEN_FILE={places['file']} (cannot be read|is empty)"):
        bearer_token()
