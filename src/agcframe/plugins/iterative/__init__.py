"""Executor plugin ``iterative``: every work item in turn, in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from agcframe import hookimpl
from agcframe.plugin.specs import ExecutorSpec

__all__ = ["IterativeExecutor"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class IterativeExecutor:
    """Runs the items one after the other; the reference for every other executor.

    A task with a ``prefetch(item)`` method (agcframe's chunk task) is told its
    ``read_ahead`` next items before it runs the current one, so it can read
    them ahead, and ``prefetch(None)`` when the run ends or stops.
    """

    def run(self, task: Callable[[Item], Result], items: Sequence[Item], *, workers: int) -> Iterator[tuple[int, Result]]:
        prefetch = getattr(task, "prefetch", None)
        depth = getattr(task, "read_ahead", 0) if prefetch is not None else 0
        try:
            for index, item in enumerate(items):
                for upcoming in items[index + 1 : index + 1 + depth]:
                    prefetch(upcoming)  # type: ignore[misc]
                yield index, task(item)
        finally:
            if prefetch is not None:
                prefetch(None)


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="iterative", backend=IterativeExecutor, description="one item after another, in process")
