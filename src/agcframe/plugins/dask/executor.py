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

from agcframe.errors import PluginError

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
        Address of a running scheduler (``tcp://host:8786``; a dask-jobqueue or
        dask-gateway cluster's ``scheduler_address``). Without it a
        LocalCluster with ``workers`` single-threaded worker processes is
        started for the run and closed after it.
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
                    silence_logs=logging.ERROR,
                )
            )
            return stack.enter_context(Client(cluster))
        try:
            return stack.enter_context(Client(self.scheduler_address, timeout=CONNECT_TIMEOUT))
        except OSError as exc:
            raise PluginError(
                f"cannot reach the Dask scheduler at {self.scheduler_address} ({type(exc).__name__}); "
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
