"""Executor plugin ``iterative``: every work item in turn, in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agcframe import hookimpl
from agcframe.data import WorkItem
from agcframe.reduce import tree_reduce
from agcframe.specs import ExecutorSpec

__all__ = ["IterativeExecutor"]


class IterativeExecutor:
    """Runs the items one after the other; the reference for every other executor."""

    def run(
        self,
        items: Sequence[WorkItem],
        task: Callable[[WorkItem], Any],
        merge: Callable[[Any, Any], Any],
        *,
        workers: int,
        on_done: Callable[[WorkItem], None],
    ) -> Any:
        partials = []
        for item in items:
            partials.append(task(item))
            on_done(item)
        return tree_reduce(partials, merge)


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="iterative", backend=IterativeExecutor, description="one item after another, in process")
