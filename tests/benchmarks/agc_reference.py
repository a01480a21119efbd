"""The AGC reference analysis as physicists run it: a coffea processor under ``coffea.processor.Runner``.

Written after the AGC notebook's ``TtbarAnalysis`` (``ttbar_analysis_pipeline``
with ServiceX, ML and Dask off), step for step: NanoEvents with ``NanoAODSchema``;
for each systematic (nominal, the jet kinematic ones, each b-tag weight, the
W+jets scale) the object and event selection of ANALYSIS.md again, regions as a
``PackedSelection``; the weight variations evaluated with correctionlib; one ``hist.Hist``
(observable x region x process x variation) filled per chunk and merged by
the Runner, then written to ROOT with uproot as ``{region}_{process}_{variation}``.
The resolution smearing draws from numpy's global generator as the AGC does:
only the nominal histograms are comparable bin for bin with agcframe's.

The benchmark runs it as a whole command, side by side with ``agcframe run``::

    python tests/benchmarks/agc_reference.py FILESET OUTPUT.root [--chunksize N] [--executor futures --workers N]

FILESET is an AGC-format fileset (``agcframe generate``'s ``fileset.json``).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import awkward as ak
import correctionlib
import hist
import numpy as np
import uproot
from correctionlib import schemav2
from coffea import processor
from coffea.analysis_tools import PackedSelection
from coffea.nanoevents import NanoAODSchema

LUMINOSITY = 3378.0  # 1/pb
CROSS_SECTIONS = {"ttbar": 729.84, "single_top_s_chan": 3.2944, "single_top_t_chan": 234.79365, "single_top_tW": 75.842, "wjets": 15487.164}


def event_systematics() -> correctionlib.CorrectionSet:
    """The b-tag and W+jets scale weight factors as a correctionlib set, as the AGC evaluates them."""
    def formula(expression: str) -> dict[str, object]:
        return {"nodetype": "formula", "expression": expression, "parser": "TFormula", "variables": ["pt"]}

    weights = {  # TFormula calls the first variable x
        "btag_var": {"up": "1+0.075*(x/50)", "down": "1-0.075*(x/50)"},
        "scale_var": {"up": "1.025+0*x", "down": "0.975+0*x"},
    }
    correction = schemav2.Correction(
        name="event_systematics",
        version=1,
        inputs=[
            schemav2.Variable(name="syst", type="string"),
            schemav2.Variable(name="direction", type="string"),
            schemav2.Variable(name="pt", type="real"),
        ],
        output=schemav2.Variable(name="weight", type="real"),
        data={
            "nodetype": "category",
            "input": "syst",
            "content": [
                {
                    "key": syst,
                    "value": {
                        "nodetype": "category",
                        "input": "direction",
                        "content": [{"key": direction, "value": formula(expression)} for direction, expression in by_direction.items()],
                    },
                }
                for syst, by_direction in weights.items()
            ],
        },
    )
    return schemav2.CorrectionSet(schema_version=2, corrections=[correction]).to_evaluator()


class TtbarAnalysis(processor.ProcessorABC):
    def __init__(self) -> None:
        self.histogram = (
            hist.Hist.new.Reg(25, 50, 550, name="observable")
            .StrCat(["4j1b", "4j2b"], name="region")
            .StrCat([], name="process", growth=True)
            .StrCat([], name="variation", growth=True)
            .Weight()
        )
        self.cset = event_systematics()

    def process(self, events):  # type: ignore[no-untyped-def]
        histogram = self.histogram.copy()
        process, variation = events.metadata["process"], events.metadata["variation"]
        xsec_weight = events.metadata["xsec"] * LUMINOSITY / events.metadata["nevts"]
        counts = ak.num(events.Jet)
        jet_pt_factors = {
            "pt_scale_up": 1.03,
            "pt_res_up": ak.unflatten(np.random.normal(1.0, 0.05, int(ak.sum(counts))).astype(np.float32), counts),
        }
        event_systs = [f"btag_var_{i}" for i in range(4)] + (["scale_var"] if process == "wjets" else [])
        syst_variations = ["nominal", *jet_pt_factors, *event_systs] if variation == "nominal" else ["nominal"]
        for syst_var in syst_variations:  # the AGC selects again for every systematic
            electrons, muons, jets = events.Electron, events.Muon, events.Jet
            if syst_var in jet_pt_factors:
                jets = ak.with_field(jets, jets.pt * jet_pt_factors[syst_var], "pt")
            electrons = electrons[(electrons.pt > 30) & (abs(electrons.eta) < 2.1) & (electrons.cutBased == 4) & (electrons.sip3d < 4)]
            muons = muons[
                (muons.pt > 30) & (abs(muons.eta) < 2.1) & muons.tightId & (muons.sip3d < 4) & (muons.pfRelIso04_all < 0.15)
            ]
            jets = jets[(jets.pt > 30) & (abs(jets.eta) < 2.4) & jets.isTightLeptonVeto]
            selections = PackedSelection(dtype="uint64")
            selections.add("exactly_1l", (ak.num(electrons) + ak.num(muons)) == 1)
            selections.add("atleast_4j", ak.num(jets) >= 4)
            selections.add("exactly_1b", ak.sum(jets.btagCSVV2 > 0.5, axis=1) == 1)
            selections.add("atleast_2b", ak.sum(jets.btagCSVV2 > 0.5, axis=1) >= 2)
            selections.add("4j1b", selections.all("exactly_1l", "atleast_4j", "exactly_1b"))
            selections.add("4j2b", selections.all("exactly_1l", "atleast_4j", "atleast_2b"))
            for region in ("4j1b", "4j2b"):
                region_jets = jets[selections.all(region)]
                region_weights = np.ones(len(region_jets)) * xsec_weight
                if region == "4j1b":
                    observable = ak.sum(region_jets.pt, axis=-1)
                else:
                    trijet = ak.combinations(region_jets, 3, fields=["j1", "j2", "j3"])
                    trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3
                    trijet["max_btag"] = np.maximum(trijet.j1.btagCSVV2, np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
                    trijet = trijet[trijet.max_btag > 0.5]
                    observable = ak.flatten(trijet.p4[ak.argmax(trijet.p4.pt, axis=1, keepdims=True)].mass)
                if syst_var in event_systs:
                    i_jet = int(syst_var.rsplit("_", 1)[-1]) if syst_var.startswith("btag_var") else 0
                    name = "btag_var" if syst_var.startswith("btag_var") else syst_var
                    for direction in ("up", "down"):
                        factor = self.cset["event_systematics"].evaluate(name, direction, region_jets.pt[:, i_jet])
                        histogram.fill(
                            observable=observable, region=region, process=process, variation=f"{syst_var}_{direction}",
                            weight=region_weights * factor,
                        )  # fmt: skip
                else:
                    name = syst_var if variation == "nominal" else variation
                    histogram.fill(observable=observable, region=region, process=process, variation=name, weight=region_weights)
        return {"nevents": {events.metadata["dataset"]: len(events)}, "hist": histogram}

    def postprocess(self, accumulator):  # type: ignore[no-untyped-def]
        return accumulator


def coffea_fileset(path: Path) -> dict[str, dict[str, object]]:
    """The AGC fileset JSON as the Runner takes it, with the metadata the processor reads."""
    fileset = {}
    for process, variations in json.loads(path.read_text()).items():
        for variation, sample in variations.items():
            files = [str((path.parent / f["path"]) if "://" not in f["path"] else f["path"]) for f in sample["files"]]
            metadata = {"process": process, "variation": variation, "nevts": sample["nevts_total"], "xsec": CROSS_SECTIONS[process]}
            fileset[f"{process}__{variation}"] = {"files": files, "metadata": metadata}
    return fileset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fileset", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--executor", choices=["iterative", "futures"], default="iterative")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # NanoAODSchema's notes on missing cross-references
    executor = processor.FuturesExecutor(workers=args.workers) if args.executor == "futures" else processor.IterativeExecutor()
    run = processor.Runner(executor=executor, schema=NanoAODSchema, chunksize=args.chunksize, savemetrics=True)
    output, metrics = run(coffea_fileset(args.fileset), processor_instance=TtbarAnalysis(), treename="Events")
    histogram = output["hist"]
    with uproot.recreate(args.output) as file:
        for region in ("4j1b", "4j2b"):
            for process in histogram.axes["process"]:
                for variation in histogram.axes["variation"]:
                    view = histogram[:, region, process, variation]
                    if view.sum().value != 0:
                        file[f"{region}_{process}_{variation}"] = view
    print(f"processed {sum(output['nevents'].values())} events in {metrics['chunks']} chunks; wrote {args.output}")


if __name__ == "__main__":
    main()
