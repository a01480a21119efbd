"""Source plugin ``uproot``: files by path or any URL uproot opens, in entry-range chunks."""

from __future__ import annotations

import os
from collections.abc import Sequence

from agcframe.data import Dataset, WorkItem, file_work_items, is_remote
from agcframe.io.inputs import checked_entries

__all__ = ["UprootSource"]


class UprootSource:
    """Opens each file once to learn its entry count, then cuts it into chunks."""

    treename = "Events"
    #: each file is planned on its own, so planning runs on the executor's workers
    plans_files_apart = True

    def plan(self, datasets: Sequence[Dataset], chunksize: int) -> list[WorkItem]:
        items = []
        for dataset in datasets:
            for file_index, entry in enumerate(dataset.files):
                num_entries = checked_entries(entry.path, self.treename, nevts=entry.nevts)
                size = None if is_remote(entry.path) else os.path.getsize(entry.path)
                items.extend(
                    file_work_items(dataset, entry.path, file_index, num_entries, chunksize, treename=self.treename, size_bytes=size)
                )
        return items
