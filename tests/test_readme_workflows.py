"""The README's workflows in sequence: no step loses a file an earlier step wrote, unless it replaces it on purpose.

After every step the output directory is compared with what it held before:
a file may be rewritten (same name) or, where the step supersedes an earlier
command's output (a rerun supersedes the earlier run and its fit, a fit only
an earlier fit), removed; any other file gone is lost data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import agcframe
from agcframe import RunConfig
from agcframe.data import FitOptions
from test_cli import agcframe_cli

RUN_FILES = {"histograms.root", "metrics.json", "provenance.json"}
FIT_FILES = {"fit_results.json", "workspace.json", "cabinetry_config.yml", "templates", "fit.log"}


def _contents(directory: Path) -> dict[str, str]:
    """Every top-level entry of ``directory`` with a digest of its bytes (a folder: its file names)."""
    contents = {}
    for entry in directory.iterdir():
        if entry.is_dir():
            contents[entry.name] = "/".join(sorted(p.name for p in entry.rglob("*")))
        else:
            contents[entry.name] = hashlib.sha256(entry.read_bytes()).hexdigest()
    return contents


class Steps:
    """What each output directory held after the last step, to check the next step against."""

    def __init__(self) -> None:
        self.held: dict[Path, dict[str, str]] = {}

    def check(self, directory: Path, removed: set[str] = frozenset(), *, kept: set[str] = frozenset()) -> dict[str, str]:
        """Exactly ``removed`` is gone since the last step, and ``kept`` is byte for byte as it was; returns the contents."""
        after = _contents(directory)
        before = self.held.get(directory, {})
        assert set(before) - set(after) == set(removed), f"lost {sorted(set(before) - set(after) - set(removed))}"
        for name in kept:
            assert after[name] == before[name], f"{name} was rewritten"
        self.held[directory] = after
        return after


def _ok(*args: str, cwd: Path) -> None:
    result = agcframe_cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr


def test_the_readme_cli_workflow_keeps_every_file_the_run_wrote(small_fileset: Path, tmp_path: Path) -> None:
    steps = Steps()
    results = tmp_path / "results"
    default = tmp_path / "agc-output"

    _ok("run", "--fileset", str(small_fileset), "--no-fit", cwd=tmp_path)  # the issue's own sequence
    assert RUN_FILES <= set(steps.check(default))
    _ok("fit", "agc-output/histograms.root", "--no-plots", "--no-ranking", cwd=tmp_path)
    assert FIT_FILES <= set(steps.check(default, kept=RUN_FILES))

    _ok("run", "--fileset", str(small_fileset), "--plugin", "executor=iterative", "--output", "results/", "--no-fit", cwd=tmp_path)
    assert RUN_FILES <= set(steps.check(results))
    _ok("fit", "results/histograms.root", "--output", "results/", "--no-plots", "--no-ranking", cwd=tmp_path)
    assert FIT_FILES <= set(steps.check(results, kept=RUN_FILES))
    steps.check(default, kept=set(steps.held[default]))  # a fit into results/ leaves the default output alone
    # a second fit replaces the first fit's files, and only those: pyhf writes no cabinetry files, so they go
    _ok("fit", "results/histograms.root", "--output", "results/", "--plugin", "inference=pyhf", "--significance", "--no-ranking", "--no-plots", cwd=tmp_path)
    assert "significance" in json.loads((results / "fit_results.json").read_text())
    steps.check(results, removed={"cabinetry_config.yml", "templates"}, kept=RUN_FILES)

    _ok("export-json", "results/histograms.root", "histos.json", cwd=tmp_path)
    _ok("validate", "results/histograms.root", "--reference", "histos.json", cwd=tmp_path)
    steps.check(results, kept=set(steps.held[results]))

    # a rerun supersedes the run and the fit it had: the fit's files no longer describe its histograms
    _ok("run", "--fileset", str(small_fileset), "--output", "results/", "--no-fit", cwd=tmp_path)
    steps.check(results, removed=FIT_FILES - {"cabinetry_config.yml", "templates"})


def test_the_readme_api_workflow_keeps_the_histograms_the_fit_reads(small_fileset: Path, tmp_path: Path) -> None:
    steps = Steps()
    output = tmp_path / "agc-output"
    result = agcframe.run(RunConfig(fileset=str(small_fileset), fit=False, output=str(output)))
    steps.check(output)
    fit = agcframe.fit(result.output / "histograms.root", result.output, options=FitOptions(), plots=False)
    assert fit.parameter("ttbar_norm") is not None
    steps.check(output, kept=RUN_FILES)
    histograms = agcframe.load_histograms(output / "histograms.root")
    assert histograms[:, "4j2b", "ttbar", "nominal"].sum().value == result.histograms[:, "4j2b", "ttbar", "nominal"].sum().value
    manifest = json.loads((output / ".agcframe-outputs.json").read_text())["commands"]
    assert set(manifest["run"]) == RUN_FILES and "fit_results.json" in manifest["fit"]
