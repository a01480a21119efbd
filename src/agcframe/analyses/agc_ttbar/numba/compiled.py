"""The selection kernel's interface, and the kernel compiled ahead of time so that a run does not start numba's JIT.

Loading a kernel from numba's disk cache takes about a second in a fresh
process (numba initialises its CPU target and imports the packages of its
``numba_extensions`` entry points); the same kernel compiled ahead of time by
``numba.pycc`` is a plain extension module that imports in milliseconds.

:func:`ensure_built` compiles it once per machine, in a subprocess (a few
seconds, with the C compiler ``numba.pycc`` uses), into
``<agcframe cache>/numba-kernels/<key>/``, where the key hashes agcframe's
sources (the kernels fold in the analysis' constants; its parameters, the cuts,
are an argument) and the versions of numba, numpy and Python; later runs import it.
:func:`select_events` calls it when the arrays have NanoAOD's dtypes, and
:func:`agcframe.analyses.agc_ttbar.numba.kernels.select_events` (the same code, JIT-compiled)
otherwise, or where it could not be built (no C compiler, a read-only cache, a
numba without ``pycc``; a warning says so): the results are the same.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.analyses.agc_ttbar.parameters import DEFAULTS, Parameters
from agcframe.cache import cache_directory, source_digest
from agcframe.progress import progress_bar

__all__ = [
    "CUTS", "N_VARIATIONS", "REGION_4J1B", "REGION_4J2B", "REGION_NONE", "SELECT_EVENTS_DTYPES", "cut_array", "empty_arguments",
    "ensure_built", "module_path", "select_events", "warm_up",
]  # fmt: skip

log = logging.getLogger(__name__)

#: select_events' region codes
REGION_NONE, REGION_4J1B, REGION_4J2B = 0, 1, 2
#: the jet-pt variations of a nominal sample, in the rows of select_events' outputs
N_VARIATIONS = 1 + len(agc.JET_KINEMATIC_SYSTEMATICS)

#: the analysis parameters the kernels read, in the order of their ``cuts`` argument (:func:`cut_array`)
CUTS = tuple(DEFAULTS)

MODULE = "agcframe_numba_kernels"
_OFFSETS, _F32, _I32, _U32 = np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.uint32)
#: the dtypes of select_events' array arguments in NanoAOD (then come two ints, seed and variations, and the cuts)
SELECT_EVENTS_DTYPES = (
    _OFFSETS, _F32, _F32, _I32, _F32,  # electrons: offsets, pt, eta, cutBased, sip3d
    _OFFSETS, _F32, _F32, np.dtype(np.bool_), _F32, _F32,  # muons: offsets, pt, eta, tightId, sip3d, pfRelIso04_all
    _OFFSETS, _F32, _F32, _F32, _F32, _F32, _I32,  # jets: offsets, pt, eta, phi, mass, btagCSVV2, jetId
    _U32, _U32, np.dtype(np.uint64),  # run, luminosityBlock, event
)  # fmt: skip


@functools.cache
def _key() -> str:
    """The hash of the sources and versions (read once per process: start-up asks twice)."""
    digest = hashlib.sha256(source_digest(__name__).encode())
    digest.update(f"{version('numba')} {version('numpy')} {sys.version} {platform.machine()}".encode())
    return digest.hexdigest()[:16]


def module_path() -> Path:
    """Where the compiled module of the current sources is (or will be) kept."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return cache_directory() / "numba-kernels" / _key() / f"{MODULE}{suffix}"


@functools.cache
def ensure_built() -> bool:
    """Build the compiled module if it is not there; whether it is there now (tried once per process).

    The build runs in a subprocess whose output goes to the log; the module
    is moved into place whole, so concurrent builds cannot leave half a file.
    """
    path = module_path()
    if path.is_file():
        return True
    log.info("compiling the numba kernels once, ahead of time (a few seconds)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as build_dir, progress_bar("compiling the numba kernels", 1, "module") as built_one:
            # numba's build (distutils) makes its own temporary folders: inside build_dir, removed with it. It runs
            # in build_dir, where no folder named agcframe can stand in for this agcframe (the working directory
            # comes first on the path of ``python -m``), which the path then names first.
            package_parent = str(Path(__file__).resolve().parents[4])
            python_path = os.pathsep.join(filter(None, (package_parent, os.environ.get("PYTHONPATH"))))
            result = subprocess.run(
                [sys.executable, "-m", __name__, build_dir],
                capture_output=True, text=True, check=False, cwd=build_dir,
                env={**os.environ, "TMPDIR": build_dir, "PYTHONPATH": python_path},
            )  # fmt: skip
            built = Path(build_dir) / path.name
            if result.returncode != 0 or not built.is_file():
                last_line = (result.stderr.strip().splitlines() or ["no error output"])[-1]
                log.warning("the numba kernels could not be compiled ahead of time (%s); numba's JIT runs them, with the same results", last_line)
                log.debug("the ahead-of-time build's output:\n%s", result.stderr[-4000:])
                return False
            os.replace(built, path)
            built_one()
    except OSError as error:  # a read-only cache
        log.warning("the numba kernels could not be compiled ahead of time into %s (%s); numba's JIT runs them, with the same results", path.parent, error)
        return False
    return True


def warm_up() -> None:
    """Build the compiled module (once per machine) and load it, or load the JIT kernel: start-up, before any chunk."""
    ensure_built()
    select_events(*empty_arguments())


def cut_array(parameters: Parameters) -> np.ndarray:
    """The kernels' ``cuts`` argument: the values of :data:`CUTS` in ``parameters``, as float64."""
    return np.array([float(parameters[name]) for name in CUTS], np.float64)


def empty_arguments() -> tuple[Any, ...]:
    """select_events' arguments for no events, with NanoAOD's dtypes and the AGC's cuts."""
    arrays = [np.zeros(1 if dtype == _OFFSETS else 0, dtype) for dtype in SELECT_EVENTS_DTYPES]
    return (*arrays, 0, N_VARIATIONS, cut_array(DEFAULTS))


@functools.cache
def _compiled_module() -> ModuleType | None:
    path = module_path()
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def select_events(*args: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`agcframe.analyses.agc_ttbar.numba.kernels.select_events`, compiled ahead of time where the arrays allow it.

    A compiled module does not check its arguments' dtypes, so they are
    checked here (C-contiguous arrays of :data:`SELECT_EVENTS_DTYPES`).
    """
    module = _compiled_module()
    if module is not None and _matches(args[: len(SELECT_EVENTS_DTYPES)], SELECT_EVENTS_DTYPES):
        return module.select_events(*args)  # type: ignore[no-any-return]
    from .kernels import select_events as jit_select_events

    return jit_select_events(*args)  # type: ignore[no-any-return]


def _matches(arrays: tuple[Any, ...], dtypes: tuple[np.dtype, ...]) -> bool:
    return all(
        isinstance(array, np.ndarray) and array.ndim == 1 and array.dtype == dtype and array.flags.c_contiguous
        for array, dtype in zip(arrays, dtypes, strict=True)
    )


def _build(output_dir: str) -> None:
    """Compile the module into ``output_dir`` (run by :func:`ensure_built` in a subprocess)."""
    import numba
    from numba.pycc import CC

    from .kernels import select_events as jit_select_events

    arrays = [numba.from_dtype(dtype)[::1] for dtype in SELECT_EVENTS_DTYPES]
    outputs = numba.types.Tuple((numba.int8[:, ::1], numba.float32[:, ::1], numba.float32[:, ::1]))
    compiler = CC(MODULE)
    compiler.output_dir = output_dir
    compiler.export("select_events", outputs(*arrays, numba.int64, numba.int64, numba.float64[::1]))(jit_select_events.py_func)
    compiler.compile()


if __name__ == "__main__":
    _build(sys.argv[1])
