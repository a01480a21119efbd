"""Source plugin ``servicex``: the analysis columns of preselected events, delivered by ServiceX.

The backend lives in :mod:`agcframe.plugins.servicex.source`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agcframe import hookimpl
from agcframe.plugin.specs import DeferredBackend, PluginOption, SourceSpec


@hookimpl
def agcframe_sources() -> Iterable[SourceSpec]:
    yield SourceSpec(
        name="servicex",
        backend=DeferredBackend("agcframe.plugins.servicex.source:ServiceXSource", extra="servicex"),
        description="the analysis columns of preselected events, delivered by ServiceX (or its local backend)",
        takes_analysis=True,
        options=(
            PluginOption("endpoint", "'local', a name in servicex.yaml, or a URL (default: servicex.yaml, else local)"),
            PluginOption("config", "path of the servicex.yaml to read", Path),
            PluginOption("ignore_cache", "transform again instead of reusing cached results", bool),
        ),
    )
