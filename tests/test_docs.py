"""The documentation: MkDocs builds it with warnings as errors, and every command in it is run by a test or needs a facility.

Every ``bash`` or ``console`` block of README.md and ``docs/`` carries a marker on the line before it:

* ``<!-- run -->``: this test runs its ``agcframe`` commands, in order, in a directory of the page's own,
  which holds ``tests/`` of the repository, ``data/`` (a small generated dataset: ``data/fileset.json``)
  and the page's ``<!-- file: NAME -->`` blocks;
* ``<!-- tested by: tests/a.py tests/b.py -->``: those tests run the commands: the subcommand and every
  flag of each ``agcframe`` command are in those files;
* ``<!-- needs: WHAT -->``: it needs what the test machines lack (a facility, a registry, a fresh machine).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_cli import agcframe_cli

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*?) -->\n)?```(?P<language>bash|console)\n(?P<body>.*?)```", re.S)
FILE = re.compile(r"<!-- file: (?P<name>\S+) -->\n```\w+\n(?P<body>.*?)```", re.S)
#: the README's front page stays short: what it is, the set-up, a first run, and links
README_MAX_LINES = 250


@dataclass(frozen=True)
class Block:
    page: Path
    marker: str
    commands: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}: {self.commands[0] if self.commands else '(empty block)'}"


def _commands(language: str, body: str) -> tuple[str, ...]:
    """The commands of a block: ``$ `` lines of a console block, else every line that is not a comment, continuations joined."""
    lines = body.replace("\\\n", " ").splitlines()
    if language == "console":
        return tuple(line[2:].strip() for line in lines if line.startswith("$ "))
    return tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))


def _blocks(page: Path) -> list[Block]:
    return [
        Block(page, (match["marker"] or "").strip(), _commands(match["language"], match["body"]))
        for match in BLOCK.finditer(page.read_text())
    ]


BLOCKS = [block for page in PAGES for block in _blocks(page)]


def _agcframe_words(command: str) -> list[str]:
    """The subcommand and flags of an ``agcframe`` command (its comment dropped)."""
    words = shlex.split(command, comments=True)[1:]
    subcommand = next((word for word in words if not word.startswith("-")), None)
    return ([subcommand] if subcommand else []) + [word.split("=")[0] for word in words if word.startswith("--")]


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "coffea-processor" / "index.html").is_file()


def test_the_readme_is_a_front_page_that_links_every_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    for guide in (ROOT / "docs").glob("*.md"):
        if guide.name != "index.md":
            assert f"docs/{guide.name}" in readme, f"the README does not link docs/{guide.name}"


def test_every_command_block_is_run_by_a_test_or_needs_a_facility() -> None:
    for block in BLOCKS:
        kind = block.marker.partition(":")[0]
        assert kind in ("run", "tested by", "needs"), f"{block.where}: mark the block <!-- run -->, <!-- tested by: FILES --> or <!-- needs: WHAT -->"
        if kind == "needs":
            assert block.marker.partition(":")[2].strip(), f"{block.where}: say what it needs"
        if kind == "tested by":
            files = block.marker.partition(":")[2].split()
            assert files, f"{block.where}: name the tests"
            text = "".join((ROOT / name).read_text() for name in files)
            for command in block.commands:
                if command.startswith("agcframe "):
                    missing = [word for word in _agcframe_words(command) if word not in text]
                    assert not missing, f"{block.where}: {command!r}: {missing} appear in none of {files}"


def _run_blocks(page: Path) -> list[Block]:
    return [block for block in _blocks(page) if block.marker == "run"]


@pytest.mark.parametrize("page", [page for page in PAGES if _run_blocks(page)], ids=lambda page: page.name)
def test_the_commands_of_a_page_run(page: Path, small_fileset: Path, tmp_path: Path) -> None:
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    (tmp_path / "data").symlink_to(small_fileset.parent)
    for match in FILE.finditer(page.read_text()):
        (tmp_path / match["name"]).write_text(match["body"])
    for block in _run_blocks(page):
        for command in block.commands:
            words = shlex.split(command, comments=True)
            assert words[0] == "agcframe", f"{page.name}: a <!-- run --> block runs agcframe commands only, not {command!r}"
            done = agcframe_cli(*words[1:], cwd=tmp_path)
            assert done.returncode == 0, f"{page.name}: {command}\n{done.stderr[-3000:]}"
            assert "error" not in done.stderr.lower(), f"{page.name}: {command}\n{done.stderr[-3000:]}"
