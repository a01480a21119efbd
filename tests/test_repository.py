"""The repository stands alone: nothing in it reads files from outside it."""

from __future__ import annotations

from pathlib import Path

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
