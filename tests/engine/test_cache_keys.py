"""No cache outlives a change: a cut edited in a copy of the package, run and resumed, gives a clean run's histograms.

A physicist edits the default of ``jet_pt_min`` (30 -> 35 GeV) in their copy of agcframe and
runs again with the same cache directory. numba's disk cache, the compiled
kernel and the checkpoints were all made from the old code: none may be used.
The numba processor's histograms (main and ``--ml``, through numba's JIT and
through the kernel compiled ahead of time) must equal the coffea processor's,
which reads the cut when it runs and caches nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from histograms import assert_bit_identical, read_histograms
from runs import wait_for_checkpoints
from test_cli import agcframe_cli

import agcframe
from agcframe.analyses.agc_ttbar.numba import compiled
from agcframe.engine.checkpoints import checkpoint_directory

NO_COMPILER = {"CC": "/nonexistent/cc"}  # numba.pycc cannot build: the JIT runs the kernels
OUTPUTS = ("histograms.root", "histograms_ml.root")


@pytest.fixture(scope="module")
def edited_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the agcframe package with the jet pt cut at 35 GeV; the folder to put on PYTHONPATH."""
    root = tmp_path_factory.mktemp("edited")
    shutil.copytree(Path(agcframe.__file__).parent, root / "agcframe", ignore=shutil.ignore_patterns("__pycache__"))
    definition = root / "agcframe" / "analyses" / "agc_ttbar" / "parameters.py"
    text = definition.read_text()
    assert text.count('AnalysisParameter("jet_pt_min", 30.0,') == 1
    definition.write_text(text.replace('AnalysisParameter("jet_pt_min", 30.0,', 'AnalysisParameter("jet_pt_min", 35.0,'))
    return root


def _python_path(package: Path) -> str:
    return os.pathsep.join(filter(None, (str(package), os.environ.get("PYTHONPATH"))))


def _command(fileset: Path, output: Path, processor: str, *, ml: bool = True) -> list[str]:
    return ["run", "--fileset", str(fileset), "--output", str(output), "--no-fit", "--plugin", f"processor={processor}", *(["--ml"] if ml else [])]


def _run(
    fileset: Path, output: Path, cache: Path, *flags: str, processor: str = "numba", ml: bool = True, package: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """``agcframe run --no-fit [--ml]`` with ``processor``, the given code (``package``) and cache; its stderr."""
    environment = {"AGCFRAME_CACHE_DIR": str(cache), **(env or {})}
    if package is not None:
        environment["PYTHONPATH"] = _python_path(package)
    done = agcframe_cli(*_command(fileset, output, processor, ml=ml), *flags, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def _assert_same_outputs(left: Path, right: Path) -> None:
    for name in OUTPUTS:
        if (right / name).exists():
            assert_bit_identical(left / name, right / name)


def test_an_edited_cut_is_run_by_the_jit_and_the_compiled_kernel(small_fileset: Path, edited_package: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _run(small_fileset, tmp_path / "original", cache, env=NO_COMPILER)  # numba's disk cache of the original code
    _run(small_fileset, tmp_path / "edited-jit", cache, package=edited_package, env=NO_COMPILER)
    _run(small_fileset, tmp_path / "edited-compiled", cache, package=edited_package)
    _run(small_fileset, tmp_path / "edited-coffea", cache, processor="coffea", package=edited_package)
    assert len(list((cache / "numba-kernels").rglob(f"{compiled.MODULE}*"))) == 1  # the edited code's compiled kernel
    for run in ("edited-jit", "edited-compiled"):
        _assert_same_outputs(tmp_path / run, tmp_path / "edited-coffea")
    original, edited = (read_histograms(tmp_path / run / "histograms_ml.root") for run in ("original", "edited-coffea"))
    assert any(original[name][0].tobytes() != edited[name][0].tobytes() for name in original)  # the cut changed the histograms


def test_a_resume_after_an_edit_reuses_no_checkpoint_and_says_why(small_fileset: Path, edited_package: Path, tmp_path: Path) -> None:
    """A run of the edited code is killed after some checkpoints; the original code resumes it and computes every chunk (no --ml here: the test above has it)."""
    cache, output = tmp_path / "cache", tmp_path / "resumed"
    environment = {**os.environ, "AGCFRAME_CACHE_DIR": str(cache), "PYTHONPATH": _python_path(edited_package)}
    command = [sys.executable, "-m", "agcframe", *_command(small_fileset, output, "coffea", ml=False), "--chunksize", "250"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    wait_for_checkpoints(checkpoint_directory(output), 5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    message = _run(small_fileset, output, cache, "--chunksize", "250", "--resume", processor="coffea", ml=False)
    assert "changed: code.analysis, code.histogrammer, code.processor, parameters.jet_pt_min)" in " ".join(message.split()), message
    assert json.loads((output / "metrics.json").read_text())["chunks_resumed"] == 0
    _run(small_fileset, tmp_path / "clean", cache, "--chunksize", "250", processor="coffea", ml=False)
    _assert_same_outputs(output, tmp_path / "clean")


def test_the_kernel_is_compiled_from_a_folder_that_holds_a_folder_named_agcframe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As from the parent folder of a clone: the build's ``python -m`` must not import that folder as agcframe.

    Here the folder is even a package (a clone's folder is not), so that it would be imported whatever the installation.
    """
    (tmp_path / "work" / "agcframe").mkdir(parents=True)
    (tmp_path / "work" / "agcframe" / "__init__.py").write_text('raise ImportError("this folder is not agcframe")\n')
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("AGCFRAME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert compiled.ensure_built.__wrapped__()
    assert compiled.module_path().is_file() and str(tmp_path / "cache") in str(compiled.module_path())
    assert sys.modules["agcframe"].__file__ == agcframe.__file__
