"""agcframe: a plugin-based, reproducible framework for the AGC CMS ttbar analysis.

The library API mirrors the CLI::

    import agcframe
    result = agcframe.run(agcframe.RunConfig(n_files_max=1, fit=False))
    fit = agcframe.fit("agc-output/histograms.root")
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

import pluggy

__all__ = [
    "AgcframeError",
    "FitOptions",
    "FitResult",
    "PluginManager",
    "RunConfig",
    "RunResult",
    "__version__",
    "fit",
    "hookimpl",
    "load_histograms",
    "load_ml_histograms",
    "plot",
    "run",
]

#: Marker for plugin hook implementations: ``@agcframe.hookimpl``.
hookimpl = pluggy.HookimplMarker("agcframe")

try:
    __version__ = importlib.metadata.version("agcframe")
except importlib.metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from agcframe.config import RunConfig
    from agcframe.data import FitOptions, FitResult
    from agcframe.errors import AgcframeError
    from agcframe.io.histogram_file import load_histograms, load_ml_histograms
    from agcframe.engine.pipeline import RunResult, fit, plot, run
    from agcframe.plugin.manager import PluginManager

#: public name -> the module that defines it, imported on first use (PEP 562) so
#: that ``import agcframe`` and the command line start without the analysis libraries
_LAZY = {
    "AgcframeError": "errors",
    "FitOptions": "data",
    "FitResult": "data",
    "PluginManager": "plugin.manager",
    "RunConfig": "config",
    "RunResult": "engine.pipeline",
    "fit": "engine.pipeline",
    "load_histograms": "io.histogram_file",
    "load_ml_histograms": "io.histogram_file",
    "plot": "engine.pipeline",
    "run": "engine.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'agcframe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
