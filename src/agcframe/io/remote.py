"""Remote input files (``root://``, ``https://``, ``s3://``): the options uproot opens them with, and their errors for people.

uproot reads every URL through an fsspec filesystem: ``fsspec-xrootd`` for
``root://``, fsspec's HTTP filesystem (aiohttp) for ``http(s)://`` and
``s3fs`` (aiobotocore) for ``s3://``. An S3 endpoint and its credentials come
from where every AWS tool reads them: ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE`` and ``~/.aws/credentials``; agcframe adds none of its own.
A bearer token (:mod:`agcframe.io.tokens`) goes to ``https://`` servers as a
header; the XRootD client finds it for ``root://`` itself. A server's TLS
certificate is checked against the system's authorities, or ``SSL_CERT_FILE``
(``https://``) and ``X509_CERT_FILE``/``X509_CERT_DIR`` (``root://``).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from agcframe.errors import AgcframeError, InputError, ServerError, describe_exception, missing_extra
from agcframe.io.tokens import bearer_token, token_places

__all__ = [
    "DEFAULT_REMOTE_TIMEOUT_S",
    "REMOTE_TIMEOUT_ENV",
    "close_remote_handle",
    "is_timeout",
    "remote_error",
    "remote_options",
    "remote_timeout",
    "server_of",
]

#: seconds a remote server may take to answer before a read fails;
#: the environment variable sets it for the run's processes and its local workers
REMOTE_TIMEOUT_ENV = "AGCFRAME_REMOTE_TIMEOUT_S"
DEFAULT_REMOTE_TIMEOUT_S = 30

#: the XRootD client's settings agcframe changes (environment variables of the client, which override them):
#: it checks timeouts every second, not every 15 s, and after a failed connection tries again within 2 s,
#: not 120 s, so a restarted server is used again at the next retry of a chunk
XROOTD_CLIENT_DEFAULTS = {"XRD_TIMEOUTRESOLUTION": "1", "XRD_CONNECTIONWINDOW": "2"}

#: tries of each s3fs operation (s3fs's default is 5): a silent endpoint then fails within about
#: 2 × the timeout per request, and a chunk that fails is tried again by agcframe (with a pause)
S3FS_TRIES = 2

#: the fsspec filesystem (module) a URL scheme needs, and the agcframe extra that installs it
SCHEME_EXTRAS = {"root": ("fsspec_xrootd", "xrootd"), "s3": ("s3fs", "s3")}

#: what a person does about an S3 store that refused a reader (a token server's hint names the token, _token_hint)
_S3_REFUSAL_HINT = "check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials) and the endpoint (AWS_ENDPOINT_URL)"

#: what an XRootD server says when it refuses a reader: authentication failed (no token, an expired one), or
#: the authorization of the path did not pass (kXR_NotAuthorized, 3010: a token for another path)
_XROOTD_REFUSALS = ("Auth failed", "[3010]")

#: HTTP statuses of a refused reader
_HTTP_REFUSALS = (401, 403)

log = logging.getLogger(__name__)


def scheme_of(path: str) -> str:
    """The scheme of a URL, lower case (``root``, ``https``, ``s3``)."""
    return path.partition("://")[0].lower()


def server_of(path: str) -> str:
    """``scheme://host:port`` of a URL (the bucket of an ``s3://`` one), for messages."""
    scheme, _, rest = path.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def remote_options(path: str) -> dict[str, Any]:
    """uproot's options for the remote file ``path``: its timeout in the form of the scheme's filesystem.

    uproot hands them on to fsspec, which keys its filesystem instances by
    them, so every open of one server shares one instance (and connections).
    """
    timeout, scheme = remote_timeout(), scheme_of(path)
    if scheme == "s3":
        import fsspec

        # botocore's timeouts and one try per request; s3fs tries each operation S3FS_TRIES times (also when throttled)
        options = {"config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout, "retries": {"total_max_attempts": 1}}}
        try:
            filesystem = fsspec.filesystem("s3", **options)  # the instance fsspec keeps for these options: uproot's
        except ImportError:
            raise missing_extra("s3fs", "s3", f"input file {path}") from None
        filesystem.retries = S3FS_TRIES
        return options
    if scheme == "root":
        for name, value in XROOTD_CLIENT_DEFAULTS.items():  # read when the client starts; the user's settings win
            os.environ.setdefault(name, value)
    options: dict[str, Any] = {"timeout": timeout}
    token = bearer_token() if scheme == "https" else None  # never over plain http://
    if token is not None:
        options["headers"] = {"Authorization": f"Bearer {token.value}"}  # request headers of fsspec's HTTP filesystem
    return options


def remote_timeout() -> int:
    """Whole seconds a remote server may take to answer: ``AGCFRAME_REMOTE_TIMEOUT_S`` rounded up, else 30.

    Whole, because the XRootD client takes only whole seconds.
    """
    value = os.environ.get(REMOTE_TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value else DEFAULT_REMOTE_TIMEOUT_S
    except ValueError:
        raise InputError(f"{REMOTE_TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise InputError(f"{REMOTE_TIMEOUT_ENV}={value!r} must be a positive number of seconds")
    return math.ceil(seconds)


def is_timeout(exc: BaseException) -> bool:
    """A timeout of any of the libraries under uproot (socket, asyncio, aiohttp, botocore, fsspec; XRootD's "Operation expired")."""
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__ or "Operation expired" in str(exc)


def remote_error(path: str, exc: BaseException) -> AgcframeError | None:
    """The error for a person of the remote file ``path`` failing with ``exc``, or ``None`` if it is not the server's.

    - the scheme's filesystem is not installed: which extra to install;
    - the server refused the reader (``PermissionError``, HTTP 401 or 403,
      XRootD's failed authentication or authorization) or has no such file
      (``FileNotFoundError``): an :class:`InputError`, never retried, naming
      the server, the file, what the server said and what to check;
    - it did not answer in time, or the connection failed (other ``OSError``):
      a :class:`ServerError`, which a chunk retries.
    """
    scheme = scheme_of(path)
    if isinstance(exc, ImportError) and scheme in SCHEME_EXTRAS:
        module, extra = SCHEME_EXTRAS[scheme]
        return missing_extra(module, extra, f"input file {path}")
    if _is_refusal(scheme, exc):
        hint = _S3_REFUSAL_HINT if scheme == "s3" else _token_hint(scheme)
        return InputError(f"input file {path}: {server_of(path)} refused to serve it ({describe_exception(exc)}); {hint}")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"input file {path} does not exist on {server_of(path)} ({describe_exception(exc)}); check the fileset paths")
    if is_timeout(exc):
        return ServerError(
            f"input file {path}: its server did not answer within {remote_timeout():g} s "
            f"({describe_exception(exc)}); check the server, or set {REMOTE_TIMEOUT_ENV} for a slower one"
        )
    if isinstance(exc, OSError) or _is_connection_failure(scheme, exc):
        return ServerError(
            f"input file {path} cannot be read from {server_of(path)} ({describe_exception(exc)}); "
            "check that the server is up and serves the file"
        )
    return None


def _is_refusal(scheme: str, exc: BaseException) -> bool:
    """The server answered that this reader may not read the file."""
    if isinstance(exc, PermissionError):
        return True
    if scheme == "root":
        return isinstance(exc, OSError) and any(said in str(exc) for said in _XROOTD_REFUSALS)
    return _is_aiohttp(exc) and getattr(exc, "status", None) in _HTTP_REFUSALS


def _token_hint(scheme: str) -> str:
    """What to check about the bearer token (where it was found, or where it was looked for; never its value)."""
    token = bearer_token()
    found = f"the token from {token.source}" if token is not None else f"no bearer token was found ({token_places()})"
    sent = "" if scheme in ("https", "root") else f"; tokens are sent over root:// and https:// only, not {scheme}://"
    return f"check the bearer token: {found}; it may be missing, expired or for other paths{sent}"


def _is_connection_failure(scheme: str, exc: BaseException) -> bool:
    """A failure of the server or the connection that is not an ``OSError``: botocore's, or an HTTP error status (aiohttp's)."""
    if scheme == "s3":
        from botocore.exceptions import ConnectionError as BotocoreConnectionError

        return isinstance(exc, BotocoreConnectionError)
    return _is_aiohttp(exc)


def _is_aiohttp(exc: BaseException) -> bool:
    """An error of aiohttp, under fsspec's HTTP filesystem (its response errors are not ``OSError``)."""
    return type(exc).__module__.startswith("aiohttp")


def close_remote_handle(path: str) -> None:
    """Close and forget the XRootD handle fsspec-xrootd keeps of ``path``, so that its next read opens it afresh.

    After a server restarts, an open handle stays broken: fsspec-xrootd keeps
    its handles in a cache of its filesystem. Errors of closing a broken
    handle are ignored. Other schemes keep no handle between reads.
    """
    if scheme_of(path) != "root":
        return
    import fsspec

    filesystem, stripped = fsspec.core.url_to_fs(path, **remote_options(path))  # the instance uproot opened it with
    handles = getattr(filesystem, "_readonly_filehandle_cache", None)
    if handles is not None:
        try:
            handles.close(filesystem.unstrip_protocol(stripped), 1)
        except Exception:  # the handle of a dead connection cannot close cleanly; it is gone from the cache
            log.debug("closing the broken XRootD handle of %s failed", path, exc_info=True)
