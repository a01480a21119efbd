"""The generator's file options: the full real branch list, compression, independent files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from agcframe.analyses.agc_ttbar.analysis import BRANCHES
from agcframe.errors import ConfigError
from agcframe.tools.generate import GenerationSettings, generate_dataset
from conftest import REAL_FILE
from test_cli import agcframe_cli


def test_all_branches_have_the_real_names_and_types(tmp_path: Path) -> None:
    """As docs/embedded-dataset.md generates them: ``agcframe generate --all-branches``."""
    done = agcframe_cli("generate", "--output", str(tmp_path / "data"), "--events-per-file", "300", "--all-branches")
    assert done.returncode == 0, done.stderr
    with uproot.open(tmp_path / "data" / "ttbar__nominal__0000.root") as generated, uproot.open(REAL_FILE) as real:
        ours, theirs = generated["Events"], real["Events"]
        types = {name: ours[name].typename for name in ours.keys()}
        expected = {name: theirs[name].typename for name in theirs.keys()}
        assert len(expected) == 947 and set(types) == set(expected)
        # uproot writes every counter as int32 where CMS writes uint32
        differ = {name for name in expected if types[name] != expected[name]}
        assert differ == {name for name in expected if name.startswith("n") and expected[name] == "uint32_t"}
        used = sum(ours[name].compressed_bytes for name in (*BRANCHES, "nJet", "nElectron", "nMuon"))
        # the analysis reads a few percent of a file, as with real data
        assert used / sum(ours[name].compressed_bytes for name in ours.keys()) < 0.1


@pytest.mark.parametrize(("spelling", "expected"), [("lzma:9", uproot.LZMA(9)), ("zstd:5", uproot.ZSTD(5)), ("none", None)])
def test_compression_is_configurable(tmp_path: Path, spelling: str, expected: object) -> None:
    generate_dataset(tmp_path / "data", GenerationSettings(events_per_file=200, compression=spelling))
    with uproot.open(tmp_path / "data" / "wjets__nominal__0000.root") as file:
        assert repr(file.file.compression) == repr(expected)


def test_default_compression_is_that_of_the_real_files(small_fileset: Path) -> None:
    with uproot.open(small_fileset.parent / "ttbar__nominal__0000.root") as generated, uproot.open(REAL_FILE) as real:
        assert repr(generated.file.compression) == repr(real.file.compression) == repr(uproot.ZLIB(1))


def test_a_wrong_compression_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="compression 'gzip:1' is not ALGORITHM:LEVEL with ALGORITHM one of zlib"):
        GenerationSettings(compression="gzip:1")


def test_files_of_a_sample_use_independent_streams(small_fileset: Path) -> None:
    pts = []
    for index in range(2):
        with uproot.open(small_fileset.parent / f"ttbar__nominal__{index:04d}.root") as file:
            pts.append(file["Events"]["Jet_pt"].array(entry_stop=100))
    assert not np.array_equal(np.asarray(pts[0][0]), np.asarray(pts[1][0]))
