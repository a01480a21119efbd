"""A third-party executor: runs the work items in reverse order.

Results must not depend on the order of work, so this executor must give the
same histograms as ``iterative``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from agcframe import hookimpl
from agcframe.data import WorkItem
from agcframe.plugin.specs import ExecutorSpec


class ReversedExecutor:
    def run(self, task: Callable[[WorkItem], Any], items: Sequence[WorkItem], *, workers: int) -> Iterator[tuple[int, Any]]:
        for index in reversed(range(len(items))):
            yield index, task(items[index])


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(name="reversed", backend=ReversedExecutor, description="work items in reverse order")
