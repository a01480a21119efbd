"""A third-party executor: runs the work items in reverse order.

Results must not depend on the order of work, so this executor must give the
same histograms as ``iterative``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agcframe import hookimpl
from agcframe.data import WorkItem
from agcframe.reduce import tree_reduce
from agcframe.specs import ExecutorSpec


class ReversedExecutor:
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
        for item in reversed(items):
            partials.append(task(item))
            on_done(item)
        return tree_reduce(partials, merge)


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="reversed", backend=ReversedExecutor, description="work items in reverse order")
