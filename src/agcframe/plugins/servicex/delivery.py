"""Choosing a ServiceX backend and delivering a ``ServiceXSpec`` through the servicex client.

Both backends go through the same client code: every sample of the spec
becomes a :class:`servicex.query_core.Query` (as ``servicex.deliver`` builds
them), and one :class:`servicex.dataset_group.DatasetGroup` submits, polls,
downloads and caches them all. Only the adapters differ: the client's REST and
S3 adapters for an endpoint, :mod:`.local`'s for the local backend.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from servicex import ServiceXSpec
from servicex.configuration import Configuration
from servicex.dataset_group import DatasetGroup
from servicex.minio_adapter import MinioAdapter
from servicex.models import TransformedResults
from servicex.query_cache import QueryCache
from servicex.query_core import Query, ServiceXException
from servicex.servicex_adapter import AuthorizationError, ServiceXAdapter
from servicex.servicex_client import ServiceXClient

from agcframe.data import is_remote
from agcframe.errors import AgcframeError, InputError, describe_exception

from .local import LocalObjectStore, LocalServiceX

__all__ = ["LOCAL", "Backend", "ServiceXError", "connect", "deliver"]

log = logging.getLogger(__name__)

#: the ``--servicex-endpoint`` value that selects the local backend
LOCAL = "local"
#: seconds to wait for an endpoint's TCP handshake before calling it unreachable
CONNECT_TIMEOUT = 5.0


class ServiceXError(AgcframeError):
    """ServiceX cannot be reached, refuses us, or is not configured."""


@dataclass
class Backend:
    """Where transforms run: a ServiceX endpoint, or :class:`~.local.LocalServiceX` in this process."""

    name: str
    adapter: ServiceXAdapter
    config: Configuration
    cache: QueryCache
    #: the local bucket; ``None`` means the object store that each transform's status names
    object_store: MinioAdapter | None = None
    #: seconds between the client's status and result polls
    polling_interval: float = 5.0

    @property
    def is_local(self) -> bool:
        return isinstance(self.adapter, LocalServiceX)


def local_backend(cache_dir: Path) -> Backend:
    """The in-process backend, caching transforms and results under ``cache_dir``."""
    config = Configuration(api_endpoints=[], cache_path=str(cache_dir))
    adapter = LocalServiceX(cache_dir / "transformer-output")
    return Backend(LOCAL, adapter, config, QueryCache(config), LocalObjectStore(adapter.storage), polling_interval=0.05)


def connect(endpoint: str | None, config_path: Path | None, cache_dir: Path) -> Backend:
    """The backend ``endpoint`` names: ``local``, a name in ``servicex.yaml``, or a URL.

    Without ``endpoint``, the default endpoint of ``servicex.yaml`` (searched
    from the working directory up, then in the home directory; or
    ``config_path``) if there is one, else the local backend.
    """
    if endpoint == LOCAL:
        return local_backend(cache_dir)
    is_url = endpoint is not None and "://" in endpoint
    try:
        client = ServiceXClient(
            backend=None if is_url else endpoint,
            url=endpoint if is_url else None,
            config_path=str(config_path) if config_path else None,
        )
    except NameError as exc:  # the client's "no servicex.yaml" error
        if endpoint is None and config_path is None:
            log.info("no ServiceX endpoint configured (no servicex.yaml found); using the local backend")
            return local_backend(cache_dir)
        where = f"in {config_path}" if config_path else "(no servicex.yaml in this directory, its parents or home)"
        raise ServiceXError(
            f"no ServiceX endpoint configured: cannot find a ServiceX configuration {where}; "
            "write a servicex.yaml with api_endpoints (see docs/facilities.md), pass --servicex-endpoint URL, "
            f"or use --servicex-endpoint {LOCAL}"
        ) from exc
    except ValueError as exc:  # unknown endpoint name; the client lists the valid ones
        raise ServiceXError(f"ServiceX endpoint {endpoint!r} is not configured: {str(exc).strip()}") from exc
    _check_reachable(client.servicex.url)
    return Backend(endpoint or "default", client.servicex, client.config, client.query_cache)


def _check_reachable(url: str) -> None:
    """Fail fast on an endpoint that accepts no connection (the client would retry for minutes)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise ServiceXError(
            f"ServiceX endpoint {url} is unreachable ({describe_exception(exc)}); "
            f"check the endpoint in servicex.yaml or --servicex-endpoint, or use --servicex-endpoint {LOCAL}"
        ) from exc


@contextlib.contextmanager
def _client_logs_quiet() -> Iterator[None]:
    """The client logs each failure over several lines (and httpx each request); agcframe reports it in one."""
    loggers = [logging.getLogger(name) for name in ("servicex", "asyncio", "httpx")]
    levels = [logger.level for logger in loggers]
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def deliver(spec: ServiceXSpec, backend: Backend, *, show_progress: bool = False) -> dict[str, list[str]]:
    """Deliver every sample of ``spec``; return the local paths of its output files by sample name.

    Raises :class:`ServiceXError` for authorisation and connection failures and
    :class:`~agcframe.errors.InputError` naming the sample (and, on the local
    backend, the file and reason) for a transform with failed files.
    """
    queries = [_query(sample, spec, backend) for sample in spec.Sample]
    with _client_logs_quiet():
        try:
            results = DatasetGroup(queries).as_files(return_exceptions=True, display_progress=show_progress)
        except AuthorizationError as exc:  # the group's authorisation check before any submission
            raise _refused(backend, exc) from exc
    delivered = {}
    for query, result in zip(queries, results):
        if isinstance(result, BaseException):
            raise _delivery_error(query, result, backend)
        assert isinstance(result, TransformedResults)
        if query.current_status is not None and query.current_status.files_failed:
            # the client only logs this (and returns the files that did transform)
            raise _transform_failed(query, backend)
        delivered[query.title] = sorted(result.file_list)
    return delivered


def _query(sample: object, spec: ServiceXSpec, backend: Backend) -> Query:
    query = Query(
        dataset_identifier=sample.dataset_identifier,  # type: ignore[attr-defined]
        title=sample.Name,  # type: ignore[attr-defined]
        codegen=sample.Query.default_codegen,  # type: ignore[attr-defined]
        sx_adapter=backend.adapter,
        config=backend.config,
        query_cache=backend.cache,
        servicex_polling_interval=backend.polling_interval,  # type: ignore[arg-type]
        minio_polling_interval=backend.polling_interval,  # type: ignore[arg-type]
        result_format=spec.General.OutputFormat.to_ResultFormat(),
        ignore_cache=sample.IgnoreLocalCache,  # type: ignore[attr-defined]
        query_string_generator=sample.Query,  # type: ignore[attr-defined]
        fail_if_incomplete=True,
    )
    if backend.object_store is not None:
        query.minio = backend.object_store
    if not query.ignore_cache and _inputs_changed_since_cached(query):
        query.ignore_cache = True
    return query


def _inputs_changed_since_cached(query: Query) -> bool:
    """Whether a local input file was modified after the cached transform of this request was submitted."""
    record = query.cache.get_transform_by_hash(query.transform_request.compute_hash())
    if record is None:
        return False
    submitted = record.submit_time.timestamp()
    files = query.transform_request.file_list or []
    return any(not is_remote(path) and os.path.exists(path) and os.path.getmtime(path) > submitted for path in files)


def _refused(backend: Backend, exc: AuthorizationError) -> ServiceXError:
    return ServiceXError(
        f"ServiceX ({backend.name}) refused agcframe: {str(exc).strip()}; "
        "renew the token in servicex.yaml (or the file BEARER_TOKEN_FILE names)"
    )


def _transform_failed(query: Query, backend: Backend) -> InputError:
    where = f"ServiceX ({backend.name})"
    failures = backend.adapter.failed.get(query.request_id, []) if backend.is_local else []  # type: ignore[attr-defined]
    if failures:
        return InputError(
            f"{where}: transform of sample {query.title} failed for {len(failures)} file(s), "
            f"first {failures[0].path}: {failures[0].reason}; fix or remove the input file, or run with --skip-bad-files"
        )
    status = query.current_status
    counts = f" for {status.files_failed} of {status.files} files" if status is not None else ""
    return InputError(
        f"{where}: transform of sample {query.title} (request {query.request_id}) failed{counts}; "
        "see the transform's logs at the endpoint"
    )


def _delivery_error(query: Query, exc: BaseException, backend: Backend) -> AgcframeError:
    where = f"ServiceX ({backend.name})"
    if isinstance(exc, AgcframeError):
        return exc
    if isinstance(exc, AuthorizationError):
        return _refused(backend, exc)
    if isinstance(exc, ServiceXException):
        return _transform_failed(query, backend)
    return ServiceXError(f"{where}: delivery of sample {query.title} failed: {describe_exception(exc)}")
