"""Executor plugin ``dask``: dask.distributed, on a LocalCluster or an existing scheduler.

Dask recomputes the chunks of a worker that dies; results still merge in item
order in the main process, so they are bit-identical to ``iterative``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from agcframe.errors import PluginError, describe_exception

__all__ = ["DaskExecutor"]

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
CONNECT_TIMEOUT = "10s"


class DaskExecutor:
    """Runs items as dask.distributed futures.

    Parameters
    ----------
    scheduler_address
        Address of a running scheduler (``tcp://host:8786``, ``tls://host:8786``;
        a dask-jobqueue cluster's ``scheduler_address``). A client of this
        process already connected to it (``distributed.default_client()``, as
        Dask Gateway's ``cluster.get_client()`` makes) is used as it is, with
        its security; otherwise a client is connected, a ``tls://`` one with
        the certificates of Dask's configuration (``distributed.comm.tls``).
        Without an address a LocalCluster with ``workers`` single-threaded
        worker processes is started for the run and closed after it.
    """

    def __init__(self, scheduler_address: str | None = None) -> None:
        self.scheduler_address = scheduler_address
        self._session_client: Any = None

    @contextlib.contextmanager
    def session(self, *, workers: int) -> Iterator[None]:
        """One client (and LocalCluster) for every ``run`` inside: the workers that planned the files process them."""
        with contextlib.ExitStack() as stack:
            self._session_client = self._client(workers, stack)
            try:
                yield
            finally:
                self._session_client = None

    def _client(self, workers: int, stack: contextlib.ExitStack) -> Any:
        client = self._connect(workers, stack)
        log.info("dask: %s, dashboard %s", client.scheduler.address, client.dashboard_link)
        return client

    def _connect(self, workers: int, stack: contextlib.ExitStack) -> Any:
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler_address is None:
            # the cluster's scratch space (by default the temporary directory's dask-scratch-space, left behind) goes with it
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="agcframe-dask-"))
            stack.enter_context(dask.config.set({"temporary-directory": scratch}))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    # the workers' own stderr is the terminal: a task's error comes back to the run as its
                    # exception, and what is left at ERROR is shutdown noise (a heartbeat that met the
                    # closing scheduler), so only CRITICAL gets through
                    silence_logs=logging.CRITICAL,
                )
            )
            return stack.enter_context(Client(cluster))
        connected = _connected_client(self.scheduler_address)
        if connected is not None:
            return connected  # the caller's (Dask Gateway's get_client()), with its own security; the caller closes it
        if self.scheduler_address.startswith("tls://"):
            _require_tls_configuration(self.scheduler_address)
        try:
            return stack.enter_context(Client(self.scheduler_address, timeout=CONNECT_TIMEOUT))
        except OSError as exc:
            raise PluginError(
                f"cannot reach the Dask scheduler at {self.scheduler_address} ({describe_exception(exc)}); "
                "check --dask-scheduler-address or start one with 'dask scheduler'"
            ) from None

    def run(self, task: Callable[[Item], Result], items: Sequence[Item], *, workers: int) -> Iterator[tuple[int, Result]]:
        if not items:
            return
        from distributed import as_completed

        with contextlib.ExitStack() as stack:
            client = self._session_client or self._client(workers, stack)
            futures = client.map(task, list(items), pure=False)
            index_of = {future.key: index for index, future in enumerate(futures)}
            try:
                for future, result in as_completed(futures, with_results=True):
                    yield index_of[future.key], result
            finally:
                client.cancel(futures)


def _connected_client(address: str) -> Any:
    """This process's current client (:func:`distributed.default_client`) if it is connected to ``address``, else ``None``."""
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:  # no client in this process
        return None
    return client if client.status == "running" and client.scheduler.address == address else None


def _require_tls_configuration(address: str) -> None:
    """A ``tls://`` scheduler needs the CA, certificate and key of Dask's configuration; else one line saying where they go."""
    from distributed.security import Security

    security = Security()  # what a Client reads: distributed.comm.tls in Dask's configuration files and DASK_* variables
    if not (security.tls_ca_file and security.tls_client_cert):
        raise PluginError(
            f"the Dask scheduler at {address} speaks TLS, and Dask's configuration has no client certificate: set "
            "distributed.comm.tls.ca-file, .client.cert and .client.key (DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT, DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY), "
            "or connect a Client with its security first (Dask Gateway's cluster.get_client())"
        )
