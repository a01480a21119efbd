"""A corruption campaign: seeded damage to a generated file never gives a silent wrong result, a crash or a hang.

Five kinds of damage (a bit flip, an 8-bit burst, a zeroed block, a truncation,
a duplicated block), each aimed at the analysis branches' baskets, at keys
(basket and tree key headers) and at the tree's metadata record, plus a flip of
the tree's entry count; every case runs through both processors as a whole
``agcframe run --no-fit``. A case may end with an error (exit 2) or with
histograms bit-identical to the clean run (damage to bytes the analysis never
reads); it may not exit 0 with other histograms, crash, die by a signal or hang.

The default run takes one case per (kind, target); ``AGCFRAME_CORRUPTION_CASES=N``
runs N seeded cases per processor instead (e.g. 160).
"""

from __future__ import annotations

import collections
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import uproot

from agcframe.analyses.agc_ttbar.analysis import SELECTION_BRANCHES

KINDS = ("bit flip", "8-bit burst", "zeroed block", "truncation", "duplicated block")
TARGETS = ("baskets", "keys", "metadata")
SEED = 2026
TIMEOUT_S = 300


@dataclass(frozen=True)
class Case:
    kind: str
    target: str
    offset: int


def _regions(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of each target in ``path``: basket payloads, key headers, the tree's metadata record."""
    data = path.read_bytes()
    with uproot.open(path) as file:
        key = file.key("Events")
        tree = file["Events"]
        regions: dict[str, list[tuple[int, int]]] = {"baskets": [], "keys": [(key.fSeekKey, key.fSeekKey + key.fKeylen)]}
        for name in SELECTION_BRANCHES:
            branch = tree[name]
            for seek, nbytes in zip(branch.member("fBasketSeek")[: branch.num_baskets], branch.member("fBasketBytes")[: branch.num_baskets]):
                keylen = struct.unpack(">H", data[seek + 16 : seek + 18])[0]
                regions["keys"].append((int(seek), int(seek) + keylen))
                regions["baskets"].append((int(seek) + keylen, int(seek) + int(nbytes)))
        regions["metadata"] = [(key.fSeekKey + key.fKeylen, key.fSeekKey + key.fNbytes)]
    return {target: [(start, stop) for start, stop in ranges if stop > start] for target, ranges in regions.items()}


def _cases(path: Path, count: int | None) -> list[Case]:
    rng = np.random.default_rng(SEED)
    regions = _regions(path)
    combinations = [(kind, target) for kind in KINDS for target in TARGETS]
    chosen = combinations if count is None else [combinations[i % len(combinations)] for i in range(count)]
    cases = []
    for kind, target in chosen:
        start, stop = regions[target][rng.integers(len(regions[target]))]
        cases.append(Case(kind, target, int(rng.integers(start, stop))))
    return cases


def _damaged(clean: bytes, case: Case, rng: np.random.Generator) -> bytes:
    data = bytearray(clean)
    at = case.offset
    if case.kind == "bit flip":
        data[at] ^= 1 << int(rng.integers(8))
    elif case.kind == "8-bit burst":
        data[at] ^= 0xFF
    elif case.kind == "zeroed block":
        data[at : at + 64] = bytes(len(data[at : at + 64]))
    elif case.kind == "truncation":
        del data[at:]
    elif case.kind == "duplicated block":
        block = data[max(at - 256, 0) : at]
        data[at : at + len(block)] = block
    return bytes(data)


def _histograms(path: Path) -> dict[str, bytes]:
    with uproot.open(path) as file:
        return {name: file[name].values(flow=True).tobytes() + file[name].variances(flow=True).tobytes() for name in file.keys(cycle=False)}


def _run(fileset: Path, processor: str, output: Path) -> tuple[str, str]:
    """``(outcome, detail)`` of one ``agcframe run``: ``ran`` (exit 0), ``error`` (exit 2), ``crash`` or ``hang``."""
    command = [sys.executable, "-m", "agcframe", "run", "--no-fit", "--plugin", f"processor={processor}", "--fileset", str(fileset),
               "--output", str(output)]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "hang", f"no end after {TIMEOUT_S} s"
    if done.returncode == 0:
        return "ran", ""
    if done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("agcframe: error: "):
        return "error", done.stderr.strip().splitlines()[-1]
    return "crash", f"exit {done.returncode}: {done.stderr.strip()[-500:]}"


@pytest.mark.parametrize("processor", ["numba", "coffea"])
def test_no_corruption_gives_a_silent_wrong_result(small_fileset: Path, tmp_path: Path, processor: str) -> None:
    source_fileset = json.loads(small_fileset.read_text())
    sample = source_fileset["ttbar"]["nominal"]
    original = small_fileset.parent / sample["files"][0]["path"]
    victim = tmp_path / "ttbar__nominal__0000.root"
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"nevts_total": sample["files"][0]["nevts"], "files": [
        {"path": victim.name, "nevts": sample["files"][0]["nevts"]}]}}}))  # fmt: skip
    clean = original.read_bytes()
    victim.write_bytes(clean)
    outcome, detail = _run(fileset, processor, tmp_path / "clean")
    assert outcome == "ran", detail
    expected = _histograms(tmp_path / "clean" / "histograms.root")

    count = int(os.environ["AGCFRAME_CORRUPTION_CASES"]) if os.environ.get("AGCFRAME_CORRUPTION_CASES") else None
    cases = _cases(victim, count)
    with uproot.open(victim) as file:
        entries_at = clean.index(struct.pack(">q", file["Events"].num_entries), file.key("Events").fSeekKey)
    cases.append(Case("bit flip", "fEntries", entries_at + 7))  # the low byte of the tree's entry count
    rng = np.random.default_rng(SEED + 1)
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    bad = []
    for number, case in enumerate(cases):
        victim.write_bytes(_damaged(clean, case, rng))
        outcome, detail = _run(fileset, processor, tmp_path / f"case{number}")
        if outcome == "ran":
            outcome = "identical" if _histograms(tmp_path / f"case{number}" / "histograms.root") == expected else "WRONG"
        counts[(case.kind, case.target, outcome)] += 1
        if outcome in ("WRONG", "crash", "hang"):
            bad.append(f"{case} -> {outcome} {detail}")
    summary = {f"{kind} / {target}": {o: n for (k, t, o), n in counts.items() if (k, t) == (kind, target)} for kind, target, _ in counts}
    print(f"\ncorruption campaign, {processor} processor, {len(cases)} cases:\n{json.dumps(summary, indent=1)}")
    assert not bad, "\n".join(bad)
    assert counts[("bit flip", "fEntries", "error")] == 1
