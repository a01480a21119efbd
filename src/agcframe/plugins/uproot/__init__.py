"""Source plugin ``uproot``: files by path or any URL uproot opens, in entry-range chunks.

The backend lives in :mod:`agcframe.plugins.uproot.source`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.plugin.specs import DeferredBackend, SourceSpec


@hookimpl
def agcframe_sources() -> Iterable[SourceSpec]:
    yield SourceSpec(
        name="uproot",
        backend=DeferredBackend("agcframe.plugins.uproot.source:UprootSource"),
        description="local paths, root://, https:// and s3:// files read with uproot",
    )
