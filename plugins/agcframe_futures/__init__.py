"""Executor plugin ``futures``: a local pool of worker processes (``--workers N``)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from agcframe import hookimpl
from agcframe.data import WorkItem
from agcframe.specs import ExecutorSpec

__all__ = ["FuturesExecutor"]

Result = TypeVar("Result")


class FuturesExecutor:
    """Runs items on ``workers`` processes with :class:`concurrent.futures.ProcessPoolExecutor`.

    Workers start with ``forkserver``: forking the main process, which runs a
    progress-bar thread, could deadlock.
    """

    def run(self, task: Callable[[WorkItem], Result], items: Sequence[WorkItem], *, workers: int) -> Iterator[tuple[int, Result]]:
        if not items:
            return
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
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


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="futures", backend=FuturesExecutor, description="local process pool (--workers N)")
