"""Start-up: each command imports only the libraries of the plugins it uses (the times are in benchmarks/test_whole_commands.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: libraries of backends a command may not need, and what each costs when imported for nothing
HEAVY = ("servicex", "cabinetry", "pyhf", "jax", "coffea", "dask", "distributed", "docker", "matplotlib", "mplhep", "iminuit")
#: what the numba processor, the uproot source and the hist histogrammer need
ANALYSIS = ("awkward", "uproot", "hist")
#: numba's JIT: a run of the numba processor calls its selection kernel compiled ahead of time
JIT = ("numba", "llvmlite")

IMPORTED = """
import json, sys
from agcframe.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def imported_by(*args: str, cwd: Path) -> set[str]:
    """The top-level modules a process has imported when ``agcframe ARGS`` ends."""
    done = subprocess.run([sys.executable, "-c", IMPORTED, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [("--help",), ("plugins",), ("run", "--help")], ids=" ".join)
def test_help_and_plugins_import_no_backend(args: tuple[str, ...], tmp_path: Path) -> None:
    imported = imported_by(*args, cwd=tmp_path)
    assert not imported & {*HEAVY, *ANALYSIS, *JIT}, sorted(imported & {*HEAVY, *ANALYSIS, *JIT})


def test_run_without_fit_imports_only_its_plugins(small_fileset: Path, tmp_path: Path) -> None:
    imported = imported_by(
        "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(small_fileset), "--output", str(tmp_path / "out"),
        cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "out" / "histograms.root").is_file()
    assert set(ANALYSIS) <= imported
    assert not imported & {*HEAVY, *JIT}, sorted(imported & {*HEAVY, *JIT})


def test_tree_metadata_is_parsed_without_garbage_collections() -> None:
    """The collector is paused while a tree's 947 branches are parsed (it cost a third of planning), then restored."""
    import gc

    from agcframe.io import inputs
    from conftest import REAL_FILE

    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    inputs.forget_open_trees()
    gc.callbacks.append(count)
    try:
        with inputs.open_tree(str(REAL_FILE)) as tree:
            gc.callbacks.remove(count)
            assert len(tree.keys()) == 947
    finally:
        if count in gc.callbacks:
            gc.callbacks.remove(count)
    assert len(collections) <= 1 and gc.isenabled()  # the one the first allocation after the pause starts; unpaused, ~60


def test_trees_evicted_from_the_open_ones_are_collected(tmp_path: Path) -> None:
    """With the collector paused while trees are parsed, a full collection runs every few trees dropped from the open ones."""
    import gc

    from agcframe.io import inputs
    from conftest import REAL_FILE

    paths = [tmp_path / f"file{index}.root" for index in range(inputs.OPEN_TREES + 2 * inputs.EVICTIONS_PER_COLLECTION)]
    for path in paths:
        path.symlink_to(REAL_FILE)
    full: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    inputs.forget_open_trees()
    gc.callbacks.append(count)
    try:
        for path in paths:
            with inputs.open_tree(str(path)):
                pass
    finally:
        gc.callbacks.remove(count)
        inputs.forget_open_trees()
    assert len(full) >= 2


def test_the_command_leaves_its_objects_to_the_operating_system(small_fileset: Path, tmp_path: Path) -> None:
    """``agcframe`` freezes the collector before exiting, so that Python's last collection does not free the trees one by one."""
    script = (
        "import atexit, gc, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr)); "
        "sys.argv[0] = 'agcframe'; from agcframe.cli import command; command()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(small_fileset), "--output", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frozen = [line for line in done.stderr.splitlines() if line.startswith("frozen")]
    assert frozen and int(frozen[0].split()[1]) > 10_000, done.stderr[-2000:]
