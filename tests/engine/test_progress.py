"""Every step longer than about two seconds shows a progress bar on a terminal, and nothing of it elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from test_cli import agcframe_cli

#: rich's own switch for "this output is a terminal" (https://rich.readthedocs.io/en/latest/console.html)
TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "120"}


def _bars(stderr: str) -> set[str]:
    """The labels of the progress bars drawn in ``stderr`` (a label, then the bar)."""
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stderr).replace("\r", "\n")
    return {match.group(1) for match in re.finditer(r"^([a-z][a-z ]*[a-z]) +━", plain, flags=re.MULTILINE)}


def test_generation_the_numba_build_and_processing_show_progress(tmp_path: Path) -> None:
    generated = agcframe_cli("generate", "--output", str(tmp_path / "data"), "--events-per-file", "300", env=TERMINAL)
    assert generated.returncode == 0, generated.stderr
    assert "generating data" in _bars(generated.stderr)
    fresh_cache = {**TERMINAL, "AGCFRAME_CACHE_DIR": str(tmp_path / "cache")}  # the numba kernels are built again
    ran = agcframe_cli(
        "run", "--fileset", str(tmp_path / "data" / "fileset.json"), "--plugin", "processor=numba", "--no-fit",
        "--output", str(tmp_path / "out"), env=fresh_cache,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert {"compiling the numba kernels", "processing"} <= _bars(ran.stderr)


def test_the_fit_stage_shows_progress_and_a_pipe_gets_none(real_histograms: Path, tmp_path: Path) -> None:
    arguments = ("fit", str(real_histograms), "--output")
    fitted = agcframe_cli(*arguments, str(tmp_path / "terminal"), env=TERMINAL)
    assert fitted.returncode == 0, fitted.stderr
    assert {"impacts", "plots"} <= _bars(fitted.stderr)  # the limit scan and the significance draw theirs with the same progress_bar
    piped = agcframe_cli(*arguments, str(tmp_path / "pipe"))
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
