"""A fit's figures drawn in a second Python process, while this one goes on with the fit stage.

Drawing the figures is a third of a whole ``agcframe run`` and needs nothing
the ranking's refits compute. The plot process starts with the fit stage and
imports matplotlib, mplhep and cabinetry on another core while this process
builds and fits the model; it then draws what it is sent (the data/MC figures,
pulls and correlations as soon as the fit is known) while this process
computes the ranking.

The two talk through pipes: this process sends pickled jobs (which figures, and
their plain-data arguments: a :class:`~agcframe.data.FitResult`, a workspace,
:class:`~agcframe.stats.plots.PlotLabels`, a directory) on the plot process'
standard input; the plot process sends back each figure as it is saved (for
the "plots" progress bar), the paths it wrote and agcframe's own log records (a
figure it could not draw), which are logged here. The libraries' messages go
to the fit's log file, as in this process.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from agcframe.progress import advancing, progress_bar
from agcframe.stats import plots
from agcframe.stats.fitlog import fit_log

__all__ = ["FIGURES", "PlotProcess"]

log = logging.getLogger("agcframe.stats.plot_process")  # not __name__: the plot process runs this module as __main__

#: the plot process' numerical libraries in one thread: OpenBLAS's idle threads spin, taking the core the fit's
#: ranking runs on (with two threads, the ranking beside the figures took 4 s instead of 3)
QUIET_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
#: what the plot process draws, by the name a job gives
FIGURES = {"fit": plots.draw_fit_plots, "ml_validation": plots.draw_ml_validation_plots}


class PlotProcess:
    """The plot process of one fit stage: :meth:`draw` sends it figures, :meth:`close` waits for them.

    Where it ends abnormally (killed, out of memory), :meth:`close` draws the
    figures it did not draw in this process.

    Parameters
    ----------
    log_file
        The fit's log file (``fit.log``), where the plot process' libraries write.
    """

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.written: list[Path] = []
        #: figures saved so far
        self.figures = 0
        self._jobs: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._jobs_done = 0
        self._records: list[logging.LogRecord] = []
        level = str(logging.getLogger("agcframe").getEffectiveLevel())
        # the modules this process imports, importable there too (a notebook may have extended sys.path)
        environment = {**os.environ, **QUIET_THREADS, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        with log_file.open("ab") as stderr:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agcframe.stats.plot_process", str(log_file), level],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=environment,
            )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name="agcframe-plot-process", daemon=True)
        self._reader.start()

    def draw(self, job: str, /, *args: Any, **kwargs: Any) -> None:
        """Have the plot process call ``FIGURES[job](*args, **kwargs)`` after what it was sent before."""
        assert self._process.stdin is not None
        self._jobs.append((job, args, kwargs))
        try:
            pickle.dump((job, args, kwargs), self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except BrokenPipeError:  # it ended early; close() draws what it did not
            pass

    def close(self) -> list[Path]:
        """Wait until every figure sent is drawn; log what the plot process logged; the paths written.

        A plot process that ended abnormally is a warning, and the figures it did
        not draw are drawn here (their libraries' messages into the log file).
        """
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        with progress_bar("plots", total=None, unit="figures") as advance:
            shown = 0
            while self._reader.is_alive():
                self._reader.join(timeout=0.1)
                advance(self.figures - shown)
                shown = self.figures
            code = self._process.wait()
            for record in self._records:
                logging.getLogger(record.name).handle(record)
            if code != 0:
                log.warning("the plot process ended with exit code %d (see %s): its figures are drawn here", code, self.log_file)
                with fit_log(self.log_file.parent, self.log_file.name):
                    for job, args, kwargs in self._jobs[self._jobs_done :]:
                        self.written.extend(_drawn(job, args, kwargs))
        return self.written

    def kill(self) -> None:
        """Stop the plot process (the fit stage failed)."""
        self._process.kill()
        self._process.wait()
        self._reader.join()

    def __enter__(self) -> PlotProcess:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.kill()

    def _read(self) -> None:
        assert self._process.stdout is not None
        while True:
            try:
                kind, value = pickle.load(self._process.stdout)
            except (EOFError, pickle.UnpicklingError):
                return
            if kind == "figure":
                self.figures += 1
            elif kind == "drawn":
                self.written.extend(value)
                self._jobs_done += 1
            else:
                self._records.append(value)


class _Relay(logging.Handler):
    """Sends agcframe's log records to the process that started this one."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args, record.exc_info, record.exc_text = record.getMessage(), None, None, None
        _send(self.stream, "log", record)


def _drawn(job: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Path]:
    """The paths ``FIGURES[job]`` drew; a job that fails is a warning (a figure is a convenience: the fit's other outputs stay)."""
    try:
        return FIGURES[job](*args, **kwargs)
    except Exception as exc:
        log.warning("the %s figures were not drawn: %s: %s", job, type(exc).__name__, exc)
        return []


def _send(stream: IO[bytes], kind: str, value: object) -> None:
    pickle.dump((kind, value), stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def main(log_file: str, level: str) -> None:
    """The plot process: draw each job of standard input until it closes."""
    import matplotlib

    matplotlib.use("Agg")
    import cabinetry  # noqa: F401  (imported before the first job arrives: that is the point)
    import matplotlib.pyplot  # noqa: F401
    import mplhep  # noqa: F401

    replies = os.fdopen(os.dup(1), "wb")  # fit_log moves standard output into the log file
    jobs = sys.stdin.buffer
    own = logging.getLogger("agcframe")
    own.setLevel(int(level))
    own.addHandler(_Relay(replies))
    own.propagate = False  # no last-resort copy on standard error, which is the log file
    path = Path(log_file)
    with fit_log(path.parent, path.name), advancing(lambda: _send(replies, "figure", None)):
        while True:
            try:
                job, args, kwargs = pickle.load(jobs)
            except EOFError:
                break
            _send(replies, "drawn", _drawn(job, args, kwargs))
    replies.close()
    os._exit(0)  # everything is written and flushed; the interpreter's teardown (matplotlib, cabinetry) would take ~0.7 s


if __name__ == "__main__":
    main(*sys.argv[1:])
