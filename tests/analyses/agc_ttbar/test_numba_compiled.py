"""The selection kernel compiled ahead of time: the JIT kernel's results, a fallback where it cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agcframe.data import WorkItem
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.analyses.agc_ttbar.numba import compiled, kernels
from agcframe.analyses.agc_ttbar.parameters import DEFAULTS
from agcframe.analyses.agc_ttbar.numba.processor import NumbaProcessor, selection_inputs
from agcframe.plugins.uproot.source import UprootSource
from conftest import REAL_FILE
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()


def _inputs(path: str, entries: int, variation: str = "nominal") -> tuple[Any, ...]:
    item = WorkItem("ttbar", variation, 1.0, path, 0, 0, entries)
    processor = NumbaProcessor()
    return selection_inputs(item, processor.read(item), 7, processor.cuts)[1]


def _assert_same(left: tuple[np.ndarray, ...], right: tuple[np.ndarray, ...]) -> None:
    assert len(left) == len(right) == 3
    for a, b in zip(left, right, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def generated_inputs(small_fileset: Path) -> tuple[Any, ...]:
    item = UprootSource().plan(select_datasets(load_fileset(small_fileset, AGC), AGC, 1), 100_000)[0]
    return _inputs(item.path, item.entry_stop)


def test_the_module_is_built_once_and_loaded() -> None:
    assert compiled.ensure_built()
    assert compiled.module_path().is_file()
    compiled.warm_up()
    assert compiled._compiled_module() is not None


def test_compiled_equals_jit_on_generated_and_real_events(generated_inputs: tuple[Any, ...]) -> None:
    compiled.warm_up()
    assert compiled._compiled_module() is not None
    real = _inputs(str(REAL_FILE), 200)
    other_cuts = compiled.cut_array({**DEFAULTS, "jet_pt_min": 35.0, "btag_threshold": 0.45, "control_region_btags": 0, "jet_id_mask": 2})
    for arguments in (generated_inputs, real, (*generated_inputs[:-2], 1, generated_inputs[-1]), (*generated_inputs[:-1], other_cuts)):
        _assert_same(compiled.select_events(*arguments), kernels.select_events(*arguments))
    region = compiled.select_events(*generated_inputs)[0]
    assert (region == compiled.REGION_4J1B).sum() > 0 and (region == compiled.REGION_4J2B).sum() > 0


def test_other_dtypes_run_the_jit_kernel(generated_inputs: tuple[Any, ...]) -> None:
    """A compiled module does not check dtypes (it would crash on uint8 jet IDs); the arrays are checked before."""
    jet_id = compiled.SELECT_EVENTS_DTYPES.index(np.dtype(np.int32), 5)
    assert generated_inputs[jet_id].max() < 256
    narrow = list(generated_inputs)
    narrow[jet_id] = generated_inputs[jet_id].astype(np.uint8)
    strided = list(generated_inputs)
    strided[1] = np.repeat(generated_inputs[1], 2)[::2]  # electron pt, not contiguous
    for arguments in (narrow, strided):
        _assert_same(compiled.select_events(*arguments), kernels.select_events(*generated_inputs))


def test_without_a_c_compiler_runs_the_jit_kernel(small_fileset: Path, tmp_path: Path) -> None:
    """No module is built (nor half of one) and the run gives the same histograms, through numba's JIT."""
    import agcframe
    from histograms import assert_bit_identical

    numba = {"processor": "numba"}
    reference = agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path / "compiled"), fit=False, plugins=numba))
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "AGCFRAME_CACHE_DIR": str(tmp_path / "cache")}
    script = (
        "import sys, agcframe; from agcframe.analyses.agc_ttbar.numba import compiled, kernels; "
        "agcframe.run(agcframe.RunConfig(fileset=sys.argv[1], output=sys.argv[2], fit=False, plugins={'processor': 'numba'})); "
        "print(compiled._compiled_module() is None, sum(kernels.select_events.stats.cache_misses.values()) + "
        "sum(kernels.select_events.stats.cache_hits.values()) > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(small_fileset), str(tmp_path / "jit")], env=env, capture_output=True, text=True, check=True
    )  # fmt: skip
    assert done.stdout.split() == ["True", "True"]
    kernel_directory = tmp_path / "cache" / "numba-kernels"
    assert [path.name for path in kernel_directory.rglob("*") if path.is_file()] == []
    assert_bit_identical(Path(reference.output) / "histograms.root", tmp_path / "jit" / "histograms.root")


def test_a_fresh_build_leaves_nothing_in_the_temporary_directory(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "AGCFRAME_CACHE_DIR": str(tmp_path / "cache")}
    script = "from agcframe.analyses.agc_ttbar.numba import compiled; assert compiled.ensure_built()"
    subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert list((tmp_path / "cache" / "numba-kernels").rglob("*.so"))
    assert sorted(path.name for path in temporary.iterdir()) == []
