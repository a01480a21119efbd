"""Errors meant for people: one line that names what is wrong and what to do."""

from __future__ import annotations

__all__ = ["AgcframeError", "ConfigError", "InputError", "PluginError"]


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


class PluginError(AgcframeError):
    """A plugin is unknown, ambiguous, or raised while running."""
