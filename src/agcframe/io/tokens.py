"""The user's bearer token, found by the WLCG bearer token discovery rules.

The rules (WLCG Bearer Token Discovery, the ones XRootD's ``ztn`` client and
HTCondor follow), first match wins:

1. ``BEARER_TOKEN``: the token itself;
2. ``BEARER_TOKEN_FILE``: a file holding it;
3. ``$XDG_RUNTIME_DIR/bt_u$UID``;
4. ``bt_u$UID`` in the temporary directory (``/tmp``).

The token is sent as ``Authorization: Bearer`` to ``https://`` servers (never
over plain ``http://``); for ``root://`` the XRootD client's ``ztn`` protocol
finds it by the same rules itself. The token's value never enters a message,
a log, ``metrics.json``, ``provenance.json`` or a checkpoint key: only where it
was found (:attr:`BearerToken.source`) does.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agcframe.errors import InputError

__all__ = ["BearerToken", "bearer_token", "token_places"]


@dataclass(frozen=True)
class BearerToken:
    """A bearer token and where it was found (``BEARER_TOKEN``, or a file's path); its ``repr`` hides the value."""

    value: str = field(repr=False)
    source: str


def token_places() -> str:
    """Where :func:`bearer_token` looks, for messages."""
    return f"BEARER_TOKEN, BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u{os.getuid()}, {Path(tempfile.gettempdir()) / f'bt_u{os.getuid()}'}"


def bearer_token() -> BearerToken | None:
    """The token the WLCG discovery rules find, or ``None``.

    A file that ``BEARER_TOKEN_FILE`` names and that cannot be read, or that is
    empty, is an :class:`InputError` naming the file: the user meant a token.
    """
    value = os.environ.get("BEARER_TOKEN", "").strip()
    if value:
        return BearerToken(value, "BEARER_TOKEN")
    named = os.environ.get("BEARER_TOKEN_FILE", "")
    if named:
        return _read_token(Path(named), f"BEARER_TOKEN_FILE={named}")
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    for candidate in ([Path(runtime) / f"bt_u{os.getuid()}"] if runtime else []) + [Path(tempfile.gettempdir()) / f"bt_u{os.getuid()}"]:
        if candidate.is_file():
            return _read_token(candidate, str(candidate))
    return None


def _read_token(path: Path, source: str) -> BearerToken:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise InputError(f"the bearer token file {source} cannot be read: {exc.strerror}; fix it, or unset BEARER_TOKEN_FILE") from None
    if not value:
        raise InputError(f"the bearer token file {source} is empty; get a new token into it")
    return BearerToken(value, source)
