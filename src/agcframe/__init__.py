"""agcframe: a plugin-based, reproducible framework for the AGC CMS ttbar analysis.

The library API mirrors the CLI::

    import agcframe
    result = agcframe.run(agcframe.RunConfig(n_files_max=1, fit=False))
    fit = agcframe.fit("agc-output/histograms.root")
"""

from __future__ import annotations

import importlib.metadata

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
    "run",
]

#: Marker for plugin hook implementations: ``@agcframe.hookimpl``.
hookimpl = pluggy.HookimplMarker("agcframe")

try:
    __version__ = importlib.metadata.version("agcframe")
except importlib.metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

from .config import RunConfig  # noqa: E402
from .data import FitOptions, FitResult  # noqa: E402
from .errors import AgcframeError  # noqa: E402
from .pipeline import RunResult, fit, run  # noqa: E402
from .plugin_manager import PluginManager  # noqa: E402
