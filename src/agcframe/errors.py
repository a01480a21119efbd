"""Errors meant for people: one line that names what is wrong and what to do."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["AgcframeError", "AnalysisError", "ConfigError", "InputError", "PluginError", "ServerError", "describe_exception", "import_extra", "missing_extra"]


class AgcframeError(Exception):
    """Base class of every error agcframe reports to a user.

    The message is a single line naming the file, key or plugin at fault and
    what to do about it. The CLI prints it without a traceback and exits 2.
    """

    exit_code = 2


class ConfigError(AgcframeError):
    """A configuration key or value is wrong."""


class InputError(AgcframeError):
    """An input file or fileset cannot be used (missing, unreadable, malformed)."""


class ServerError(InputError):
    """The server of a remote input file (``root://``, ``https://``) cannot be reached or did not answer.

    Unlike other input errors it may pass: a chunk that meets it is retried.
    """


class PluginError(AgcframeError):
    """A plugin is unknown, ambiguous, or raised while running."""


class AnalysisError(PluginError):
    """A processor's output does not fit the analysis definition (a region it does not declare).

    The code is at fault, not an input: it is never retried and never skipped with ``--skip-bad-files``.
    """


def describe_exception(exc: BaseException) -> str:
    """``Type: first line of the message``, for one-line reports of a library's exception."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def import_extra(module: str, extra: str, needed_by: str, alternative: str = "") -> ModuleType:
    """Import ``module``, which comes with agcframe's optional ``extra``; without it, one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, extra, needed_by, alternative) from None


def missing_extra(module: str, extra: str, needed_by: str, alternative: str = "") -> PluginError:
    """The error for ``needed_by`` lacking ``module`` of agcframe's optional ``extra``: what to install, or ``alternative``."""
    instead = f", or {alternative}" if alternative else ""
    return PluginError(f"{needed_by} needs {module}, which is not installed: pip install 'agcframe[{extra}]'{instead}")
