"""The fit stage's log file: MINUIT's own output and the libraries' messages go to ``fit.log``, not to the terminal.

MINUIT (C++) prints its warnings (``W VariableMetricBuilder ...``) on file
descriptor 1, so the block's standard output is redirected into the file at
the descriptor level; the libraries' loggers (pyhf, cabinetry, matplotlib,
JAX) and Python warnings are routed into it as well. agcframe's own messages
still reach the terminal, and are copied into the file.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FIT_LOG", "LIBRARY_LOGGERS", "at_terminal", "fit_log"]

FIT_LOG = "fit.log"
#: loggers whose records go only to fit.log inside the block
LIBRARY_LOGGERS = ("pyhf", "cabinetry", "matplotlib", "jax", "absl", "iminuit", "mplhep", "py.warnings", "agcframe.stats.fitting.attempts")
#: the standard output each open :func:`fit_log` block replaced (a duplicate of its descriptor), innermost last
_terminals: list[int] = []


def _flush_c_stdout() -> None:
    ctypes.CDLL(None).fflush(None)


@contextmanager
def fit_log(directory: Path, name: str = FIT_LOG) -> Iterator[Path]:
    """Inside the block, write MINUIT's output, library logs and warnings to ``directory/name`` (``fit.log``)."""
    path = directory / name
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
        if name.startswith("agcframe"):
            logger.setLevel(logging.INFO)
    own = logging.getLogger("agcframe")
    own.addHandler(handler)
    logging.captureWarnings(True)
    sys.stdout.flush()
    _flush_c_stdout()
    stdout = os.dup(1)
    os.dup2(handler.stream.fileno(), 1)
    _terminals.append(stdout)
    try:
        yield path
    finally:
        _terminals.pop()
        sys.stdout.flush()
        _flush_c_stdout()
        os.dup2(stdout, 1)
        os.close(stdout)
        logging.captureWarnings(False)
        own.removeHandler(handler)
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()


@contextmanager
def at_terminal() -> Iterator[None]:
    """Inside a :func:`fit_log` block, give the block's standard output back to what it replaced (the terminal) for a moment.

    For what the user waits for while the fit goes on: the fit's numbers, printed before its ranking.
    """
    if not _terminals:
        yield
        return
    sys.stdout.flush()
    _flush_c_stdout()
    logged = os.dup(1)
    os.dup2(_terminals[-1], 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(logged, 1)
        os.close(logged)
