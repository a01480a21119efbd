"""Executor plugin ``iterative``: every work item in turn, in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from agcframe import hookimpl
from agcframe.specs import ExecutorSpec

__all__ = ["IterativeExecutor"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class IterativeExecutor:
    """Runs the items one after the other; the reference for every other executor."""

    def run(self, task: Callable[[Item], Result], items: Sequence[Item], *, workers: int) -> Iterator[tuple[int, Result]]:
        for index, item in enumerate(items):
            yield index, task(item)


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="iterative", backend=IterativeExecutor, description="one item after another, in process")
