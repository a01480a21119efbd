"""Source plugin ``servicex``: the analysis columns of preselected events, delivered by ServiceX.

Every dataset of the run becomes one ``Sample`` of a ``ServiceXSpec`` (its
files as a ``FileList``, an UprootRaw query of the analysis' :class:`~agcframe.plugin.analysis.ColumnRequest`);
the delivered ROOT files are cut into work items like the ``uproot`` source
cuts the originals. Histograms equal those of ``--plugin source=uproot`` bit for
bit: the preselection keeps every event any histogram can contain, and the
sample normalisation comes from the fileset, not from the delivered files.

Options: ``--servicex-endpoint`` (``local``, a name in ``servicex.yaml``, or a
URL; default: servicex.yaml's default endpoint, else ``local``),
``--servicex-config`` (path of servicex.yaml), ``--servicex-ignore-cache``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servicex import Delivery, General, OutputFormat, Sample, ServiceXSpec, dataset
from servicex.minio_adapter import _sanitize_filename
from servicex.uproot_raw.uproot_raw import TreeSubQuery, UprootRawQuery

from agcframe.cache import cache_directory
from agcframe.data import Dataset, FileEntry, WorkItem, file_work_items, is_remote
from agcframe.errors import ConfigError, InputError
from agcframe.io.inputs import checked_entries, open_tree
from agcframe.plugin.analysis import Analysis, ColumnRequest

from .delivery import connect, deliver

__all__ = ["ServiceXSource", "uproot_raw_query"]


def uproot_raw_query(request: ColumnRequest, treename: str = "Events") -> UprootRawQuery:
    """The UprootRaw query of ``request``: its branches of the events passing its cut."""
    return UprootRawQuery(
        TreeSubQuery(treename=treename, filter_name=list(request.branches), cut=request.cut, fail_on_missing_trees=True)
    )


class ServiceXSource:
    """Delivers each dataset through ServiceX, then chunks the delivered files.

    What it delivers is the ``analysis``' :class:`~agcframe.plugin.analysis.ColumnRequest`
    at the run's ``parameters`` (a request, and so its cache entry, per set of cuts).
    """

    treename = "Events"

    def __init__(
        self,
        analysis: Analysis,
        parameters: Any,
        endpoint: str | None = None,
        config: Path | None = None,
        ignore_cache: bool = False,
    ) -> None:
        request = getattr(analysis, "column_request", None)
        if request is None:
            raise ConfigError(
                f"analysis '{analysis.name}' does not say which columns to deliver (it has no column_request), "
                "so the servicex source cannot run it; use --plugin source=uproot"
            )
        self.request: ColumnRequest = request(parameters)
        self.backend = connect(endpoint, config, cache_directory() / "servicex")
        self.ignore_cache = ignore_cache
        self._delivered = {"files_in": 0, "files_delivered": 0, "events_in": 0, "events_delivered": 0, "bytes_delivered": 0}
        #: sizes of the input files; ``None`` for a remote one
        self._input_sizes: list[int | None] = []

    def spec(self, datasets: Sequence[Dataset]) -> ServiceXSpec:
        """The ServiceX request for ``datasets``: one sample per dataset, named ``process__variation``."""
        return ServiceXSpec(
            General=General(OutputFormat=OutputFormat.root_ttree, Delivery=Delivery.LocalCache),
            Sample=[
                Sample(
                    Name=f"{ds.process}__{ds.variation}",
                    Dataset=dataset.FileList([entry.path for entry in ds.files]),
                    Query=uproot_raw_query(self.request, self.treename),
                    IgnoreLocalCache=self.ignore_cache,
                )
                for ds in datasets
            ],
        )

    def plan(self, datasets: Sequence[Dataset], chunksize: int) -> list[WorkItem]:
        for ds in datasets:
            for entry in ds.files:
                self._check_original(entry)
        spec = self.spec(datasets)
        delivered = deliver(spec, self.backend, show_progress=sys.stderr.isatty())
        items = []
        for ds, sample in zip(datasets, spec.Sample):
            outputs = _in_input_order([entry.path for entry in ds.files], delivered[sample.Name])
            self._count_inputs(ds, outputs)
            for file_index, path in enumerate(outputs):
                with open_tree(path, self.treename) as tree:
                    num_entries = tree.num_entries
                self._delivered["events_delivered"] += num_entries
                items.extend(
                    file_work_items(
                        ds, path, file_index, num_entries, chunksize, treename=self.treename, size_bytes=os.path.getsize(path)
                    )
                )
        return items

    def _check_original(self, entry: FileEntry) -> None:
        """A local original whose metadata disagrees with itself or the fileset is an error before it is transformed.

        ServiceX rewrites the files, so the processor never sees the original's
        metadata. Remote originals are ServiceX's to read (this client may not
        be able to), and one that cannot be opened is reported by its transform.
        """
        if is_remote(entry.path):
            return
        try:
            with open_tree(entry.path, self.treename):
                pass
        except InputError:
            return
        checked_entries(entry.path, self.treename, self.request.required, entry.nevts)

    def _count_inputs(self, ds: Dataset, outputs: Sequence[str]) -> None:
        self._delivered["files_in"] += len(ds.files)
        self._delivered["files_delivered"] += len(outputs)
        self._delivered["events_in"] += sum(entry.nevts if is_remote(entry.path) and entry.nevts is not None else _entries(entry.path) for entry in ds.files)
        self._input_sizes.extend(None if is_remote(entry.path) else os.path.getsize(entry.path) for entry in ds.files)
        self._delivered["bytes_delivered"] += sum(os.path.getsize(path) for path in outputs)

    def delivery_metrics(self) -> dict[str, Any]:
        """Files, events and bytes asked for and delivered.

        ``events_in`` counts the entries of local inputs and the fileset's
        ``nevts`` of remote ones; ``bytes_in`` is ``None`` when an input is remote.
        """
        delivered = self._delivered
        bytes_in = None if None in self._input_sizes else sum(size for size in self._input_sizes if size is not None)
        return {
            "backend": self.backend.name,
            **delivered,
            "bytes_in": bytes_in,
            "event_fraction": delivered["events_delivered"] / delivered["events_in"] if delivered["events_in"] else None,
            "byte_fraction": delivered["bytes_delivered"] / bytes_in if bytes_in else None,
        }


def _entries(path: str) -> int:
    with open_tree(path) as tree:
        return int(tree.num_entries)


def _in_input_order(inputs: Sequence[str], outputs: Sequence[str]) -> list[str]:
    """``outputs`` in the order of the inputs they were made from (ServiceX names an output after its input).

    Falls back to name order when the names do not tell (e.g. inputs that share a file name).
    """
    tails = [_sanitize_filename(os.path.basename(path)) for path in inputs]
    positions = []
    for output in outputs:
        matches = [index for index, tail in enumerate(tails) if Path(output).name.endswith(tail)]
        if len(matches) != 1:
            return sorted(outputs)
        positions.append(matches[0])
    return [output for _, output in sorted(zip(positions, outputs))]
