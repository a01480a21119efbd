"""The pyhf model of a workspace: checked against pyhf's schema once per skeleton in a process; templates rebinned as hist rebins them."""

from __future__ import annotations

import uuid
from typing import Any

import hist
import numpy as np
import pyhf
import pytest

from agcframe.stats.model import model_and_data, rebinned, schema_skeleton


def _workspace(channel: str, signal: list[Any], observed: list[Any]) -> dict[str, Any]:
    return {
        "channels": [
            {
                "name": channel,
                "samples": [
                    {"name": "signal", "data": signal, "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "background", "data": [5.0] * len(signal), "modifiers": []},
                ],
            }
        ],
        "observations": [{"name": channel, "data": observed}],
        "measurements": [{"name": "measurement", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


@pytest.fixture
def schema_checks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The workspaces pyhf checks against its workspace schema (pyhf's own check, counted; not its measurement checks)."""
    checked: list[dict[str, Any]] = []
    validate = pyhf.schema.validate

    def counted(spec: dict[str, Any], schema_name: str, *args: Any, **kwargs: Any) -> Any:
        if schema_name == "workspace.json":
            checked.append(spec)
        return validate(spec, schema_name, *args, **kwargs)

    monkeypatch.setattr(pyhf.schema, "validate", counted)
    return checked


def test_a_rerun_with_new_numbers_is_not_checked_again(schema_checks: list[dict[str, Any]]) -> None:
    channel = f"channel-{uuid.uuid4().hex}"  # a skeleton no other test has checked in this process
    first, second = _workspace(channel, [1.0, 2.0], [7.0, 8.0]), _workspace(channel, [3.5, 0.25], [9.0, 4.0])
    model_and_data(first)
    model, data = model_and_data(second)
    assert len(schema_checks) == 1
    assert list(data[:2]) == [9.0, 4.0] and model.config.poi_name == "mu"


@pytest.mark.parametrize(
    ("signal", "observed"),
    [([1.0, "2"], [7.0, 8.0]), ([1.0, 2.0], [7.0, None]), ([1.0, 2.0, 3.0], [7.0, 8.0, 9.0])],
    ids=["a-string-for-a-number", "null-for-a-number", "one-bin-more"],
)
def test_another_skeleton_is_checked(schema_checks: list[dict[str, Any]], signal: list[Any], observed: list[Any]) -> None:
    channel = f"channel-{uuid.uuid4().hex}"
    model_and_data(_workspace(channel, [1.0, 2.0], [7.0, 8.0]))
    other = _workspace(channel, signal, observed)
    assert schema_skeleton(other) != schema_skeleton(_workspace(channel, [1.0, 2.0], [7.0, 8.0]))
    if len(signal) == 3:
        model_and_data(other)
    else:
        with pytest.raises(pyhf.exceptions.InvalidSpecification):
            model_and_data(other)
    assert len(schema_checks) == 2


@pytest.mark.parametrize(
    "edges",
    [list(np.arange(110.0, 551.0, 40.0)), [50.0, 110.0, 550.0], [90.0, 130.0, 210.0, 530.0], [50.0, 550.0], [70.0, 90.0]],
    ids=["agc", "two-bins", "uneven", "one-bin", "cut-above"],
)
def test_rebinned_is_hist_slicing_and_rebinning_bit_for_bit(edges: list[float]) -> None:
    """Every bin, flow included, is hist's own sum (in its order) of a weighted histogram with a rounding-prone axis."""
    rng = np.random.default_rng(3)
    h = hist.Hist(hist.axis.Regular(25, 50, 550, name="xaxis", label="HT [GeV]"), storage=hist.storage.Weight())
    h.fill(rng.uniform(0, 600, 20_000), weight=rng.lognormal(-3, 2, 20_000))
    ours = rebinned(h, edges)
    theirs = h[hist.loc(edges[0]) : hist.loc(edges[-1])][hist.rebin(edges=edges)]
    for field in ("value", "variance"):
        assert np.array_equal(ours.view(flow=True)[field], theirs.view(flow=True)[field])
    assert ours.axes[0] == theirs.axes[0]


@pytest.mark.parametrize("edges", [[110.0, 155.0, 190.0], [190.0, 110.0], [110.0]], ids=["not-an-edge", "decreasing", "one-edge"])
def test_rebinned_refuses_edges_that_are_not_the_histograms(edges: list[float]) -> None:
    h = hist.Hist(hist.axis.Regular(25, 50, 550), storage=hist.storage.Weight())
    with pytest.raises(ValueError, match="are not increasing edges"):
        rebinned(h, edges)
