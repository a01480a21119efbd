"""Peak memory at a fixed chunk size does not grow with the number of events.

Each run is a fresh ``agcframe run`` process (peak resident memory is a
process-lifetime maximum); metrics.json reports it. Ten times the events come
from linking every file of the benchmark dataset ten times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CHUNKSIZE = 10_000
COPIES = 10


def _linked_fileset(fileset: Path, directory: Path, copies: int) -> Path:
    """``fileset`` with every file listed ``copies`` times, each copy a symbolic link of its own name."""
    document = json.loads(fileset.read_text())
    directory.mkdir()
    for variations in document.values():
        for sample in variations.values():
            files = []
            for entry in sample["files"]:
                source = (fileset.parent / entry["path"]).resolve()
                for copy in range(copies):
                    link = directory / f"{source.stem}__copy{copy}.root"
                    link.symlink_to(source)
                    files.append({**entry, "path": link.name})
            sample["files"] = files
            sample["nevts_total"] *= copies
    path = directory / "fileset.json"
    path.write_text(json.dumps(document))
    return path


def _run(fileset: Path, output: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "agcframe", "run", "--fileset", str(fileset), "--output", str(output), "--no-fit",
        "--chunksize", str(CHUNKSIZE), "--plugin", "processor=numba", "--no-column-cache",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return json.loads((output / "metrics.json").read_text())


def test_peak_memory_does_not_grow_with_events(benchmark: Any, benchmark_fileset: Path, tmp_path: Path) -> None:
    """numba processor, 10k-event chunks: ten times the events raise peak memory by less than 1.3 times."""
    _run(benchmark_fileset, tmp_path / "compile")  # the kernel is compiled once, outside the comparison
    small = _run(benchmark_fileset, tmp_path / "small")
    large_fileset = _linked_fileset(benchmark_fileset, tmp_path / "linked", COPIES)
    large = benchmark.pedantic(lambda: _run(large_fileset, tmp_path / "large"), rounds=1, iterations=1)
    assert large["events"] == COPIES * small["events"]
    ratio = large["peak_memory_bytes"] / small["peak_memory_bytes"]
    benchmark.extra_info.update(
        events=large["events"], small_peak_memory_bytes=small["peak_memory_bytes"],
        large_peak_memory_bytes=large["peak_memory_bytes"], peak_memory_ratio=ratio,
    )  # fmt: skip
    assert ratio < 1.3
