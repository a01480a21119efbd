"""The REANA workflow: a real snakemake run of workflows/Snakefile, its Gherkin tests, reana-client validate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from agcframe.config import RunConfig
from agcframe.engine.pipeline import default_fileset, run
from histograms import assert_bit_identical

ROOT = Path(__file__).resolve().parents[1]
FEATURES = sorted((ROOT / "workflows" / "tests").glob("*.feature"))


def _with_this_python_on_path() -> dict[str, str]:
    """The environment with this interpreter's scripts (agcframe, snakemake) first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def workflow_fileset() -> Path:
    """The embedded dataset (one file per sample): enough events for the fit to converge."""
    return default_fileset()


@pytest.fixture(scope="module")
def workflow_run(workflow_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snakemake run of the whole workflow, the ML stage and the fit included; its working directory."""
    workdir = tmp_path_factory.mktemp("snakemake")
    result = subprocess.run(
        [
            sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflows" / "Snakefile"), "--cores", "2",
            "--directory", str(workdir), "--config", f"fileset={workflow_fileset}", "ranking=false", "ml=true",
        ],
        capture_output=True, text=True, check=False, env=_with_this_python_on_path(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_snakemake_histograms_bit_identical_to_agcframe_run(workflow_run: Path, workflow_fileset: Path, tmp_path: Path) -> None:
    run(RunConfig(fileset=str(workflow_fileset), output=str(tmp_path), fit=False, ml=True))
    for name in ("histograms.root", "histograms_ml.root"):
        assert_bit_identical(workflow_run / "results" / name, tmp_path / name)
    assert (workflow_run / "results" / "fit" / "plots" / "ml" / "Feature0_postfit.png").is_file()
    # one job per file: 9 samples, one file each, each merged on its own
    assert len(list((workflow_run / "results" / "partials").glob("*/*.pkl"))) == 9
    assert len(list((workflow_run / "results" / "samples").glob("*.pkl"))) == 9


_CONTAINS = re.compile(r'the workspace should (?:contain|include) "([^"]+)"')
_FILE_CONTAINS = re.compile(r'the file "([^"]+)" should contain "((?:[^"\\]|\\.)*)"')


@pytest.mark.parametrize("feature", FEATURES, ids=lambda path: path.name)
def test_reana_feature_files_hold_for_the_local_run(workflow_run: Path, feature: Path) -> None:
    """The output checks of the Gherkin tests that REANA runs, applied to the local run's workspace."""
    text = feature.read_text()
    checks = 0
    for path in _CONTAINS.findall(text):
        assert (workflow_run / path).exists(), f"{feature.name}: {path}"
        checks += 1
    for path, needle in _FILE_CONTAINS.findall(text):
        assert needle.replace('\\"', '"') in (workflow_run / path).read_text(), f"{feature.name}: {path} lacks {needle}"
        checks += 1
    assert checks or "duration" in text


@pytest.fixture(scope="session")
def reana_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """reana-client in a virtual environment of its own (it pins jsonschema < 4; pyhf needs >= 4.15)."""
    environment = tmp_path_factory.mktemp("reana-venv")
    venv.create(environment, with_pip=True)
    subprocess.run(
        [str(environment / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         "-r", str(ROOT / "workflows" / "reana-client-requirements.txt")],
        check=True,
    )  # fmt: skip
    return environment / "bin" / "reana-client"


def test_reana_client_validates_reana_yaml(reana_client: Path) -> None:
    result = subprocess.run(
        [str(reana_client), "validate", "-f", "reana.yaml"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid REANA specification file" in result.stdout
    assert "Workflow operations appear valid" in result.stdout
