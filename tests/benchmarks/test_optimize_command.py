"""``agcframe optimize`` on the embedded dataset, as a whole command: its wall time, and one step's time after compilation.

The bars: a step (objective and gradient) at most 0.2 s, the whole command at
most 60 s. Each round starts with an empty JAX compilation cache
(``JAX_COMPILATION_CACHE_DIR``), as a user's first optimisation does; the
column cache is filled first, as after the README's first run. Each round's
``optimize.json`` gives the median step time (``step_s``) and the compilation
(``compile_s``), kept in ``extra_info``. The default test command runs it
once, with two steps and the test session's compilation cache, as a smoke test.
"""

from __future__ import annotations

import json
import statistics
from itertools import count
from pathlib import Path
from typing import Any

from agcframe.engine.pipeline import default_fileset
from test_cli import agcframe_cli


def test_whole_optimize_command(benchmark: Any, tmp_path: Path) -> None:
    default_fileset()
    steps = "2" if benchmark.disabled else "60"
    rounds = count()
    documents: list[dict[str, Any]] = []
    assert agcframe_cli("run", "--no-fit", "--plugin", "processor=numba", cwd=tmp_path).returncode == 0

    def optimize() -> None:
        round_ = next(rounds)
        output = tmp_path / f"optimize-{round_}"
        # measured: an empty compilation cache each round; the smoke run keeps the session's (the optimize tests fill it)
        environment = {} if benchmark.disabled else {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / f"jax-{round_}")}
        done = agcframe_cli("optimize", "--steps", steps, "--output", str(output), cwd=tmp_path, env=environment)
        assert done.returncode == 0, done.stderr
        documents.append(json.loads((output / "optimize.json").read_text()))

    benchmark.pedantic(optimize, rounds=1 if benchmark.disabled else 3, iterations=1)
    benchmark.extra_info["step_s"] = statistics.median(document["timing"]["step_s"] for document in documents)
    benchmark.extra_info["compile_s"] = statistics.median(document["timing"]["compile_s"] for document in documents)
    benchmark.extra_info["steps"] = statistics.median(len(document["trajectory"]) - 1 for document in documents)
    assert all(document["best"]["objective"] < document["initial"]["objective"] for document in documents)
