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
ANALYSIS = ("numba", "awkward", "uproot", "hist")

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
    assert not imported & {*HEAVY, *ANALYSIS}, sorted(imported & {*HEAVY, *ANALYSIS})


def test_run_without_fit_imports_only_its_plugins(small_fileset: Path, tmp_path: Path) -> None:
    imported = imported_by(
        "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(small_fileset), "--output", str(tmp_path / "out"),
        cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "out" / "histograms.root").is_file()
    assert set(ANALYSIS) <= imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
