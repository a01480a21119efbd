"""Executor plugin ``futures``: a local pool of worker processes (``--workers N``)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from agcframe import hookimpl
from agcframe.errors import ConfigError
from agcframe.plugin.specs import ExecutorSpec

__all__ = ["FuturesExecutor"]

Item = TypeVar("Item")
Result = TypeVar("Result")

#: the longest path of a Unix socket (``sun_path`` less its terminating NUL)
UNIX_SOCKET_PATH_MAX = 107


class FuturesExecutor:
    """Runs items on ``workers`` processes with :class:`concurrent.futures.ProcessPoolExecutor`.

    Workers start with ``forkserver``: forking the main process, which runs a
    progress-bar thread, could deadlock. Inside :meth:`session` every ``run``
    uses one pool, so the processes that planned the files process them.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    @contextlib.contextmanager
    def session(self, *, workers: int) -> Iterator[None]:
        with self._new_pool(workers) as pool:
            self._pool = pool
            try:
                yield
            finally:
                self._pool = None

    @staticmethod
    def _new_pool(workers: int) -> ProcessPoolExecutor:
        _check_socket_directory()
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))

    def run(self, task: Callable[[Item], Result], items: Sequence[Item], *, workers: int) -> Iterator[tuple[int, Result]]:
        if not items:
            return
        with contextlib.ExitStack() as stack:
            pool = self._pool or stack.enter_context(self._new_pool(workers))
            futures: dict[Future[Result], int] = {pool.submit(task, item): index for index, item in enumerate(items)}
            try:
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()


def _check_socket_directory() -> None:
    """The forkserver listens on a Unix socket in the temporary directory (``pymp-XXXXXXXX/listener-XXXXXXXX``): fail in one line where its path would be too long."""
    directory = tempfile.gettempdir()
    socket = os.path.join(directory, "pymp-" + 8 * "x", "listener-" + 8 * "x")
    if len(os.fsencode(socket)) > UNIX_SOCKET_PATH_MAX:
        raise ConfigError(
            f"the temporary directory {directory} is too long for the worker processes' socket "
            f"({len(os.fsencode(socket))} bytes, at most {UNIX_SOCKET_PATH_MAX}); set TMPDIR to a shorter directory, "
            "or run with --plugin executor=iterative"
        )


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="futures", backend=FuturesExecutor, description="local process pool (--workers N)")
