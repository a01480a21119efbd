"""Executor plugin ``dask``: dask.distributed, on a LocalCluster or an existing scheduler.

The backend lives in :mod:`agcframe.plugins.dask.executor`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.plugin.specs import DeferredBackend, ExecutorSpec, PluginOption


@hookimpl
def agcframe_executors() -> Iterable[ExecutorSpec]:
    yield ExecutorSpec(
        name="dask",
        backend=DeferredBackend("agcframe.plugins.dask.executor:DaskExecutor"),
        description="dask.distributed: LocalCluster (--workers N) or an existing scheduler",
        options=(PluginOption("scheduler_address", "address of a running Dask scheduler, e.g. tcp://host:8786"),),
    )
