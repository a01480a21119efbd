"""The ML stage on one core: whole runs with and without ``--ml`` for both processors, the BDT kernel against XGBoost,
and the whole per-event choice.

``extra_info`` holds events (or rows) per second; compare them within one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import agcframe
from agcframe.analyses.agc_ttbar import bdt, ml
from analyses.agc_ttbar.test_bdt import _features
from analyses.agc_ttbar.test_ml import _selected_4j2b_events

xgboost = pytest.importorskip("xgboost", reason="xgboost is a test dependency (pip install -e '.[test]')")

ROWS = 100_000


@pytest.mark.parametrize("with_ml", [False, True], ids=["without-ml", "ml"])
@pytest.mark.parametrize("processor", ["coffea", "numba"])
def test_run_rate(benchmark: Any, processor: str, with_ml: bool, benchmark_fileset: Path, tmp_path: Path) -> None:
    """``agcframe run --no-fit [--ml]`` on one worker; events/s over the processing time (median of the rounds)."""
    config = agcframe.RunConfig(
        fileset=str(benchmark_fileset), output=str(tmp_path), fit=False, ml=with_ml, plugins={"processor": processor},
        column_cache=False,
    )
    agcframe.run(config)  # numba's cache, XGBoost's model loaded
    runs: list[dict[str, Any]] = []
    benchmark.pedantic(lambda: runs.append(agcframe.run(config).metrics), rounds=3, iterations=1)
    median = sorted(runs, key=lambda metrics: metrics["events_per_s"])[len(runs) // 2]
    benchmark.extra_info.update(events=median["events"], events_per_s=median["events_per_s"], wall_time_s=median["wall_time_s"])


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return _features(ROWS, seed=9)


def test_bdt_kernel(benchmark: Any, rows: np.ndarray) -> None:
    model = bdt.agc_model("even")
    bdt.predict_proba(model, rows[:10])  # numba's cache
    benchmark.pedantic(lambda: bdt.predict_proba(model, rows), rounds=3, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = ROWS / benchmark.stats.stats.median


def test_xgboost_one_thread(benchmark: Any, rows: np.ndarray) -> None:
    """XGBoost's own prediction, one thread (``inplace_predict``: a DMatrix would cache its predictions between rounds)."""
    booster = xgboost.Booster(model_file=str(Path(bdt.__file__).parent / "models" / "model_even.json"), params={"nthread": 1})
    assert np.array_equal(booster.inplace_predict(rows, missing=np.nan), bdt.predict_proba(bdt.agc_model("even"), rows))
    benchmark.pedantic(lambda: booster.inplace_predict(rows, missing=np.nan), rounds=3, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = ROWS / benchmark.stats.stats.median


def test_best_assignments(benchmark: Any, benchmark_fileset: Path) -> None:
    """Permutations, features, scores and the choice for the nominal 4j2b events of the ttbar file."""
    events = _selected_4j2b_events(benchmark_fileset.parent / "ttbar__nominal__0000.root", limit=5000)
    counts = [len(event["jets"]["pt"]) for event in events]
    flat = [np.concatenate([event["jets"][name] for event in events]) for name in ("pt", "eta", "phi", "mass", "btagCSVV2", "qgl")]
    arguments = (np.concatenate([[0], np.cumsum(counts)]), *flat, np.stack([e["lepton"] for e in events]), np.array([e["event"] for e in events]))
    ml.best_assignments(*arguments)  # numba's cache
    benchmark.pedantic(lambda: ml.best_assignments(*arguments), rounds=3, iterations=1)
    assignments = sum(len(ml.permutations(min(count, ml.MAX_N_JETS))) for count in counts)
    if benchmark.stats is not None:
        benchmark.extra_info.update(
            events_per_s=len(events) / benchmark.stats.stats.median, assignments_per_s=assignments / benchmark.stats.stats.median
        )
