"""Generation speed of the embedded dataset's generator (all nine samples, one file each)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agcframe.tools.generate import GenerationSettings, generate_dataset, generated_events
from conftest import BENCHMARK_EVENTS_PER_FILE_ENV


def test_generation(benchmark: Any, tmp_path: Path) -> None:
    events_per_file = int(os.environ.get(BENCHMARK_EVENTS_PER_FILE_ENV, "2000"))
    settings = GenerationSettings(seed=11, events_per_file=events_per_file)
    fileset = benchmark.pedantic(generate_dataset, args=(tmp_path / "data", settings), rounds=1, iterations=1)
    assert fileset.exists()
    events = generated_events(settings)
    benchmark.extra_info["events"] = events
    if benchmark.stats is not None:  # None with --benchmark-disable
        benchmark.extra_info["events_per_s"] = events / benchmark.stats.stats.median
