"""The AGC's BDTs: XGBoost models read from their JSON and evaluated in compiled code, without XGBoost.

The AGC's ML stage scores every jet–parton assignment of every 4j2b event with
a binary XGBoost classifier (``models/model_even.json``, ``model_odd.json``).
A model is read once into flat arrays (per node: split feature, threshold,
children, the default direction for a missing value; a leaf keeps its value
where a split keeps its threshold) and evaluated by a numba kernel that walks
each tree as XGBoost does: float32 features, ``value < threshold`` goes left,
NaN goes the default way, the leaves summed in float32 in tree order onto the
base margin, then the logistic function in float32. The scores agree with
``XGBClassifier.predict_proba(...)[:, 1]`` to 1e-6 (``tests/analyses/agc_ttbar/test_bdt.py``).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from agcframe.analyses.agc_ttbar.analysis import bdt_model_path
from agcframe.cache import key_numba_caches, source_digest
from agcframe.errors import InputError

__all__ = ["Forest", "agc_model", "load_forest", "predict_proba"]


@dataclass(frozen=True)
class Forest:
    """A binary-logistic tree ensemble as flat arrays; node ``i`` of tree ``t`` is at ``roots[t] + i``."""

    roots: np.ndarray  # int64, the first node of each tree
    left: np.ndarray  # int64, the left child (an index into these arrays), -1 for a leaf
    right: np.ndarray  # int64, the right child
    feature: np.ndarray  # int64, the split feature
    threshold: np.ndarray  # float32, the split threshold; a leaf's value
    default_left: np.ndarray  # bool, where a missing (NaN) value goes
    base_margin: float
    num_features: int


def load_forest(path: str | Path) -> Forest:
    """Read an XGBoost model saved as JSON (``save_model``) by a binary-logistic classifier.

    Raises :class:`InputError` naming the file for anything else (another
    objective, categorical splits, vector leaves, several trees per round).
    """
    try:
        learner = json.loads(Path(path).read_text())["learner"]
        objective = learner["objective"]["name"]
        parameters = learner["learner_model_param"]
        model = learner["gradient_booster"]["model"]
        trees = model["trees"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"BDT model {path} is not an XGBoost JSON model ({type(exc).__name__}: {exc})") from None
    unsupported = (
        f"objective {objective}" if objective != "binary:logistic"
        else "vector leaves" if model["gbtree_model_param"].get("size_leaf_vector", "0") not in ("0", "1")
        else "several trees per round" if model["gbtree_model_param"].get("num_parallel_tree", "1") != "1"
        else "categorical splits" if any(any(tree["split_type"]) for tree in trees)
        else None
    )  # fmt: skip
    if unsupported:
        raise InputError(f"BDT model {path}: {unsupported} is not supported; agcframe evaluates binary-logistic tree models")
    sizes = [len(tree["left_children"]) for tree in trees]
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def children(key: str) -> np.ndarray:
        return np.concatenate([np.where(np.asarray(tree[key]) < 0, -1, np.asarray(tree[key]) + root) for tree, root in zip(trees, roots)]).astype(np.int64)

    base_score = float(parameters["base_score"].strip("[]"))
    return Forest(
        roots=roots,
        left=children("left_children"),
        right=children("right_children"),
        feature=np.concatenate([tree["split_indices"] for tree in trees]).astype(np.int64),
        threshold=np.concatenate([tree["split_conditions"] for tree in trees]).astype(np.float32),
        default_left=np.concatenate([tree["default_left"] for tree in trees]).astype(np.bool_),
        base_margin=-math.log(1.0 / base_score - 1.0),  # XGBoost's base score is a probability for this objective
        num_features=int(parameters["num_feature"]),
    )


@functools.cache
def agc_model(name: str) -> Forest:
    """The AGC's model ``"even"`` or ``"odd"`` (:func:`~agcframe.analyses.agc_ttbar.analysis.bdt_model_path`), read for the compiled kernel."""
    return load_forest(bdt_model_path(name))


def predict_proba(forest: Forest, features: np.ndarray) -> np.ndarray:
    """The probability of the signal class (``predict_proba(features)[:, 1]``) for each row of ``features``, as float32."""
    values = np.ascontiguousarray(features, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != forest.num_features:
        raise ValueError(f"features must be (n, {forest.num_features}), not {values.shape}")
    return _probabilities(
        values, forest.roots, forest.left, forest.right, forest.feature, forest.threshold, forest.default_left, np.float32(forest.base_margin)
    )


@numba.njit(cache=True, nogil=True)
def _leaf_value(row, root, left, right, feature, threshold, default_left):  # type: ignore[no-untyped-def]
    """The leaf of the tree at ``root`` that the feature ``row`` reaches, as XGBoost walks it."""
    node = root
    while left[node] >= 0:
        value = row[feature[node]]
        if np.isnan(value):
            node = left[node] if default_left[node] else right[node]
        elif value < threshold[node]:
            node = left[node]
        else:
            node = right[node]
    return threshold[node]


@numba.njit(cache=True, nogil=True)
def _probabilities(values, roots, left, right, feature, threshold, default_left, base_margin):  # type: ignore[no-untyped-def]
    # tree by tree over all rows, so that a tree's nodes stay in cache; each row still sums its leaves in tree order
    margins = np.full(values.shape[0], base_margin, dtype=np.float32)
    for root in roots:
        for row in range(values.shape[0]):
            margins[row] += _leaf_value(values[row], root, left, right, feature, threshold, default_left)
    one = np.float32(1.0)
    return one / (one + np.exp(-margins))


key_numba_caches(globals(), source_digest(__name__))  # the compiled code folds in constants of other modules
