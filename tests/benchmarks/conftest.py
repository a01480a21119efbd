"""Benchmarks share one generated dataset; its size comes from the environment.

The default test command runs every benchmark once on a small dataset as a
smoke test (``--benchmark-disable``). For real numbers see the README's
performance section: ``AGCFRAME_BENCHMARK_EVENTS_PER_FILE=60000`` and
``--benchmark-enable``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agcframe.generate import GenerationSettings, generate_dataset

EVENTS_PER_FILE_ENV = "AGCFRAME_BENCHMARK_EVENTS_PER_FILE"


@pytest.fixture(scope="session")
def benchmark_fileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All nine AGC samples, one file each, ``AGCFRAME_BENCHMARK_EVENTS_PER_FILE`` events (default 2000)."""
    events = int(os.environ.get(EVENTS_PER_FILE_ENV, "2000"))
    return generate_dataset(
        tmp_path_factory.mktemp("benchmark-data") / f"n{events}",
        GenerationSettings(seed=11, events_per_file=events, files_per_sample=1),
    )
