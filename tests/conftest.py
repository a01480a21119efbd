from __future__ import annotations

from pathlib import Path

import pytest

from agcframe.generate import GenerationSettings, generate_dataset

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "agc"
REAL_FILE = SHARED / "data" / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
REAL_FILESET = SHARED / "nanoaod_inputs.json"
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def small_fileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every AGC sample, 2 files of 1500 events each."""
    return generate_dataset(
        tmp_path_factory.mktemp("generated") / "dataset",
        GenerationSettings(seed=7, events_per_file=1500, files_per_sample=2),
    )


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the embedded-dataset cache out of the user's home."""
    monkeypatch.setenv("AGCFRAME_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
