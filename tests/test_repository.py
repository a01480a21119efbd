"""The repository stands alone: nothing in it reads files from outside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: text files a clone carries: code, tests, workflow, docs
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".feature", ".txt", ".json", ""}
SKIPPED_DIRECTORIES = {".git", "__pycache__", ".snakemake", "agc-output", "build"}


def _repository_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRECTORIES or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.stat().st_size < 1_000_000:
            files.append(path)
    return files


def test_nothing_reads_outside_the_repository() -> None:
    """Code, tests, workflows and the README use the copies under tests/data, never a sibling ``shared`` folder."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in _repository_files()
        if "../shared" in path.read_text(errors="ignore") or '"shared" / "agc"' in path.read_text(errors="ignore")
    ]
    assert offenders == [str(Path(__file__).relative_to(ROOT))]  # this test names what it looks for


def test_the_real_data_the_tests_use_are_in_the_repository() -> None:
    from conftest import REAL_FILE, REAL_FILESET, REFERENCE

    for path in (REAL_FILE, REAL_FILESET, *(REFERENCE / f"histos_{n}_file_per_process.json" for n in (1, 2, 5, 10))):
        assert path.is_file() and ROOT in path.resolve().parents
    assert "licence" in (ROOT / "tests" / "data" / "README.md").read_text().lower()


def test_a_clone_with_nothing_beside_it_runs_the_tests_of_the_real_data(tmp_path: Path) -> None:
    """``git clone`` into an empty directory: the tests that read the real data pass there, with the clone's own code."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: there is nothing to clone")
    clone = tmp_path / "empty" / "agcframe"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["agcframe"]
    environment = {**os.environ, "PYTHONPATH": str(clone / "src")}
    located = subprocess.run(
        [sys.executable, "-c", "import agcframe, agcframe.analyses.agc_ttbar.numba; print(agcframe.__file__, agcframe.analyses.agc_ttbar.numba.__file__)"],
        cwd=clone, env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert all(str(clone) in path for path in located.stdout.split()), located.stdout
    tests = [  # those that read the copied real data (the suite runs each of them again)
        "tests/test_repository.py", "tests/io/test_histogram_json.py",
        "tests/analyses/agc_ttbar/test_numba_processor.py::test_same_histograms_on_the_real_cms_file",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-k", "not clone and not wheel", *tests],
        cwd=clone, env=environment, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and " skipped" not in done.stdout, done.stdout[-500:]


def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    """``pip install .`` puts exactly one package into site-packages: agcframe, built-in plugins and the AGC analysis inside it.

    Built from a copy of what the build reads, so that setuptools' build folder is not left in the repository.
    """
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("agcframe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        entry_points = archive.read(next(name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt"))).decode()
    assert tops == {"agcframe"}
    assert "[agcframe]" not in entry_points  # the built-in plugins are registered directly, not as entry points
