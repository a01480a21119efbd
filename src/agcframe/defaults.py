"""Defaults the command line shows, apart from the modules that use them.

The command line reads them to build its options; keeping them here means that
``agcframe --help`` does not import the generator and its libraries.
"""

from __future__ import annotations

__all__ = ["DEFAULT_COMPRESSION", "DEFAULT_EVENTS_PER_FILE", "DEFAULT_PROCESSOR_SCHEMA", "DEFAULT_SEED", "EVENTS_FACTOR", "OPTIMIZE_OBJECTIVES"]

#: seed of the jet resolution smearing and of the embedded dataset
DEFAULT_SEED = 42
#: events per generated file (the ttbar samples get more, see EVENTS_FACTOR)
DEFAULT_EVENTS_PER_FILE = 20_000
#: events generated per file relative to ``events_per_file``: the ttbar templates' low-HT and
#: high-HT tails (a few per mille of the region) need the statistics to have no empty fit bin
EVENTS_FACTOR = {"ttbar": 2}
#: the compression of the real AGC files
DEFAULT_COMPRESSION = "zlib:1"
#: the coffea NanoEvents schema of a coffea processor's events (``--processor-schema``), as coffea's Runner is mostly run
DEFAULT_PROCESSOR_SCHEMA = "NanoAODSchema"
#: the objectives ``agcframe optimize`` can minimise, with what they are (:mod:`agcframe.optimize.likelihood`)
OPTIMIZE_OBJECTIVES = {
    "poi_uncertainty": "expected uncertainty on the POI (Asimov data, from the Hessian)",
    "upper_limit": "expected 95% CL CLs upper limit on the POI (asymptotic, background-only Asimov data)",
}
