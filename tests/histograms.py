"""Reading a histograms.root back for comparisons in tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot


def read_histograms(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Histogram name -> (values, variances), both with flow bins."""
    with uproot.open(path) as file:
        return {
            key.split(";")[0]: (file[key].values(flow=True), file[key].variances(flow=True))
            for key in file.keys(cycle=False)
        }


def assert_bit_identical(left: Path, right: Path) -> None:
    a, b = read_histograms(left), read_histograms(right)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name][0].tobytes() == b[name][0].tobytes(), name
        assert a[name][1].tobytes() == b[name][1].tobytes(), name
