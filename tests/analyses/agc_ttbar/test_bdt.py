"""The AGC's BDTs evaluated by agcframe's compiled kernel agree with XGBoost's own predict_proba."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agcframe.analyses.agc_ttbar import bdt
from agcframe.errors import InputError

xgboost = pytest.importorskip("xgboost", reason="xgboost is a test dependency (pip install -e '.[test]')")

#: (low, high) of each of the 20 ML features, as the AGC histograms them
FEATURE_RANGES = [(0, 6)] * 4 + [(50, 300), (50, 300), (50, 550), (50, 550)] + [(25, 300)] * 4 + [(0, 1)] * 4 + [(-1, 1)] * 4


def _features(rows: int, seed: int) -> np.ndarray:
    """Feature rows over (and a little beyond) the AGC's ranges, a few NaN (XGBoost's missing value)."""
    generator = np.random.default_rng(seed)
    low, high = np.array(FEATURE_RANGES, dtype=float).T
    values = generator.uniform(low - 0.1 * (high - low), high + 0.1 * (high - low), size=(rows, 20)).astype(np.float32)
    values[generator.random(values.shape) < 0.002] = np.nan
    return values


@pytest.mark.parametrize("name", ["even", "odd"])
def test_scores_agree_with_xgboost(name: str) -> None:
    features = _features(20_000, seed=3 if name == "even" else 4)
    # XGBClassifier.predict_proba(...)[:, 1] is the booster's prediction (without needing scikit-learn);
    # the models' best iteration is their last tree, so both use all 251
    booster = xgboost.Booster(model_file=str(Path(bdt.__file__).parent / "models" / f"model_{name}.json"))
    assert int(booster.attr("best_iteration")) + 1 == booster.num_boosted_rounds()
    expected = booster.predict(xgboost.DMatrix(features, missing=np.nan))
    scores = bdt.predict_proba(bdt.agc_model(name), features)
    assert scores.dtype == np.float32 and scores.shape == expected.shape
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    assert 0.05 < np.std(scores)  # the features reach many leaves: not a constant score
    assert np.array_equal(np.argsort(scores, kind="stable")[-50:], np.argsort(expected, kind="stable")[-50:])


def test_the_two_models_differ() -> None:
    features = _features(1000, seed=5)
    assert not np.allclose(bdt.predict_proba(bdt.agc_model("even"), features), bdt.predict_proba(bdt.agc_model("odd"), features))


def test_a_model_of_another_kind_is_one_clear_error(tmp_path: Path) -> None:
    document = json.loads((Path(bdt.__file__).parent / "models" / "model_even.json").read_text())
    document["learner"]["objective"]["name"] = "reg:squarederror"
    path = tmp_path / "regression.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"BDT model .*regression.json: objective reg:squarederror is not supported"):
        bdt.load_forest(path)
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(InputError, match=r"BDT model .*broken.json is not an XGBoost JSON model"):
        bdt.load_forest(tmp_path / "broken.json")
