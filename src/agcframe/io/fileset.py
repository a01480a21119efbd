"""Reading filesets and choosing the first N files per sample.

The AGC format is ``{process: {variation: {"nevts_total": int, "files": [{"path":
str, "nevts": int}, ...]}}}``, with the processes and samples the run's analysis
declares (:attr:`~agcframe.plugin.analysis.Analysis.samples`; for the AGC's
ttbar, ``nominal``, ``scaledown``, ``scaleup``, ``ME_var`` and ``PS_var``).
``nevts_total`` is optional; a file's ``nevts`` may be ``null`` where the
sample gives ``nevts_total``, and the sample is then used whole. A sample's
``metadata`` (an object) is what a coffea processor finds in ``events.metadata``
besides the dataset's name, process, variation, ``nevts`` and ``xsec``. Relative paths
are resolved against the fileset's directory, so a generated dataset can be
moved as a whole. Keys agcframe does not read are named in a warning.

coffea's ``dataset_tools`` form, as the AGC notebook writes it, is read too:
``{"ttbar__nominal": {"files": {"path.root": "Events"}, "metadata": {"process":
"ttbar", "variation": "nominal", "nevts": int, "xsec": float}}}`` (``files`` may
also be a list of paths, or map paths to ``{"object_path": "Events", ...}``).
Its ``nevts`` counts the events of all the dataset's files together, so such a
dataset is used whole; all of its metadata reaches a coffea processor.

A coffea processor's run (``agcframe run --processor``) reads any samples:
without an analysis to check them against, a coffea-form dataset without
``process`` is its own process (variation ``nominal``), and unknown keys are
not named.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from agcframe.data import Dataset, FileEntry, is_remote
from agcframe.errors import InputError
from agcframe.engine.outputs import write_json
from agcframe.plugin.analysis import Analysis, sample_weight

__all__ = ["FilesetSummary", "load_fileset", "select_datasets", "summarize", "write_fileset"]

log = logging.getLogger(__name__)

#: the keys of a sample ({process: {variation: sample}}) and of one of its files, in the AGC form
SAMPLE_KEYS = ("files", "nevts_total", "metadata")
FILE_KEYS = ("path", "nevts")
#: the keys of a dataset, of its metadata and of one of its files (a mapping), in coffea's form
COFFEA_DATASET_KEYS = ("files", "metadata", "form")
COFFEA_METADATA_KEYS = ("process", "variation", "nevts", "xsec")
COFFEA_FILE_KEYS = ("object_path", "steps", "num_entries", "uuid")


def load_fileset(path: str | Path, analysis: Analysis | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Load and check an AGC-format fileset JSON file of ``analysis``' samples (``None``: of any samples).

    Raises :class:`InputError` naming the file and key when it is missing,
    is not JSON, does not have the AGC structure or lists a sample the analysis does not declare.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"fileset {path} does not exist; pass an AGC-format fileset JSON") from None
    except OSError as exc:
        raise InputError(f"fileset {path} cannot be read: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"fileset {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if _is_coffea_form(document):
        document = _from_coffea_form(path, document, analysis)
    _check_structure(path, document, analysis)
    base = path.resolve().parent
    for variations in document.values():
        for sample in variations.values():
            for entry in sample["files"]:
                entry["path"] = _resolve(entry["path"], base)
    return document


def _resolve(file_path: str, base: Path) -> str:
    if is_remote(file_path) or Path(file_path).is_absolute():
        return file_path
    return str(base / file_path)


def _is_coffea_form(document: object) -> bool:
    """Datasets with ``metadata``: coffea's form (one without is then named as such, not read as the AGC form)."""
    return isinstance(document, dict) and any(isinstance(dataset, dict) and "metadata" in dataset for dataset in document.values())


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_sample_name(where: str, process: object, variation: object, analysis: Analysis | None) -> None:
    """``process`` is a process of ``analysis`` and ``variation`` one of its samples (any names without one); else one line starting with ``where``."""
    if analysis is None:
        if not isinstance(process, str) or not isinstance(variation, str):
            raise InputError(f"{where}: process {process!r} and variation {variation!r} must be strings")
        return
    if not isinstance(process, str) or process not in analysis.samples:
        raise InputError(
            f"{where}: process {process!r} is not a process of analysis '{analysis.name}' ({', '.join(analysis.samples)}); "
            "declare it in the analysis' samples, or choose another --analysis"
        )
    variations = analysis.samples[process].variations
    if not isinstance(variation, str) or variation not in variations:
        raise InputError(
            f"{where}: variation {variation!r} of {process} is not a sample of it in analysis '{analysis.name}' ({', '.join(variations)})"
        )


def _from_coffea_form(path: Path, document: dict[str, Any], analysis: Analysis | None) -> dict[str, dict[str, dict[str, Any]]]:
    """The AGC form of a coffea ``dataset_tools`` fileset: per-file ``nevts`` unknown (``None``), the dataset's total kept."""
    converted: dict[str, dict[str, dict[str, Any]]] = {}
    for name, dataset in document.items():
        where = f"fileset {path}: dataset {name!r}"

        def fail(what: str) -> NoReturn:
            raise InputError(f"{where}: {what}")

        if not isinstance(dataset, dict) or not {"files", "metadata"} <= set(dataset):
            fail("must have 'files' and 'metadata' (coffea's fileset form, as the AGC notebook writes it)")
        _warn_unknown(path, f"dataset {name!r}", dataset, COFFEA_DATASET_KEYS)
        metadata = dataset["metadata"]
        if not isinstance(metadata, dict):
            fail("metadata must be an object")
        if analysis is None:
            metadata = {"process": name, "variation": "nominal", **metadata}
        missing = [key for key in ("process", "variation", "nevts") if key not in metadata]
        if missing:
            raise InputError(
                f"{where} has no {', '.join(repr(key) for key in missing)} in its metadata; "
                "coffea-form filesets need metadata process, variation and nevts (the AGC notebook's)"
            )
        if analysis is not None:
            _warn_unknown(path, f"dataset {name!r} metadata", metadata, COFFEA_METADATA_KEYS)
        process, variation, nevts = metadata["process"], metadata["variation"], metadata["nevts"]
        _check_sample_name(where, process, variation, analysis)
        if not _is_count(nevts) or nevts <= 0:
            fail(f"metadata nevts must be a positive integer, not {nevts!r}")
        xsec = metadata.get("xsec")
        declared = analysis.samples[process].cross_section if analysis is not None else xsec
        if xsec is not None and (
            declared is None or not isinstance(xsec, (int, float)) or isinstance(xsec, bool)
            or not math.isclose(float(xsec), declared, rel_tol=1e-6)
        ):  # fmt: skip
            stated = "real data, which is not normalised" if declared is None else f"{declared} pb, with which agcframe normalises"
            fail(f"metadata xsec {xsec!r} differs from the cross section of {process} in analysis '{analysis.name}' ({stated}); drop it or correct it")
        files = dataset["files"]
        if isinstance(files, dict):
            for file_path, tree in files.items():
                if isinstance(tree, dict):
                    _warn_unknown(path, f"dataset {name!r} file {file_path}", tree, COFFEA_FILE_KEYS)
            trees = {file_path: tree.get("object_path") if isinstance(tree, dict) else tree for file_path, tree in files.items()}
        elif isinstance(files, list) and all(isinstance(file_path, str) for file_path in files):
            trees = {file_path: "Events" for file_path in files}
        else:
            fail("files must map paths to tree names, or list paths")
        for file_path, tree in trees.items():
            if tree != "Events":
                fail(f"file {file_path} names the tree {tree!r}; agcframe reads NanoAOD's 'Events'")
        if variation in converted.get(process, {}):
            fail(f"a second dataset of {process}/{variation}")
        converted.setdefault(process, {})[variation] = {
            "nevts_total": nevts,
            "files": [{"path": file_path, "nevts": None} for file_path in trees],
            "metadata": {"dataset": name, **metadata},
        }
    return converted


def _check_structure(path: Path, document: object, analysis: Analysis | None) -> None:
    def fail(where: str, what: str) -> NoReturn:
        raise InputError(f"fileset {path}: {where} {what}; expected the AGC fileset format")

    if not isinstance(document, dict) or not document:
        fail("top level", "must be a non-empty object {process: {variation: ...}}")
    for process, variations in document.items():
        _check_sample_name(f"fileset {path}", process, "nominal", analysis)
        if not isinstance(variations, dict) or not variations:
            fail(f"[{process!r}]", "must be a non-empty object {variation: ...}")
        for variation, sample in variations.items():
            key = f"[{process!r}][{variation!r}]"
            _check_sample_name(f"fileset {path}", process, variation, analysis)
            if not isinstance(sample, dict) or not isinstance(sample.get("files"), list):
                fail(key, "must have a 'files' list")
            if analysis is not None:
                _warn_unknown(path, key, sample, SAMPLE_KEYS)
            if not isinstance(sample.get("metadata", {}), dict):
                fail(f"{key}['metadata']", "must be an object")
            if "nevts_total" in sample and (not _is_count(sample["nevts_total"]) or sample["nevts_total"] < 0):
                fail(f"{key}['nevts_total']", f"must be a non-negative integer, not {sample['nevts_total']!r}")
            for i, entry in enumerate(sample["files"]):
                where = f"{key}['files'][{i}]"
                if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                    fail(where, "must have a string 'path'")
                nevts = entry.get("nevts")
                total_only = "nevts" in entry and nevts is None and "nevts_total" in sample
                if not total_only and (not _is_count(nevts) or nevts < 0):
                    unknown = _unknown(entry, FILE_KEYS)
                    besides = f" (it has {', '.join(map(repr, unknown))})" if unknown else ""
                    fail(where, f"must have a non-negative integer 'nevts'{besides}")
                if analysis is not None:
                    _warn_unknown(path, where, entry, FILE_KEYS)


def _unknown(entry: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    return [name for name in entry if name not in known]


def _warn_unknown(path: Path, where: str, entry: dict[str, Any], known: tuple[str, ...]) -> None:
    """Warn of the keys of ``entry`` agcframe does not read: a misspelt key would otherwise be ignored."""
    unknown = _unknown(entry, known)
    if unknown:
        log.warning(
            "fileset %s: %s has %s, which agcframe does not read (it reads %s)",
            path, where, ", ".join(map(repr, unknown)), ", ".join(map(repr, known)),
        )  # fmt: skip


def select_datasets(
    fileset: dict[str, dict[str, dict[str, Any]]], analysis: Analysis, n_files_max: int = -1
) -> list[Dataset]:
    """The first ``n_files_max`` files (-1: all) of every (process, variation) of a fileset of ``analysis``.

    The normalisation of each dataset (``xsec * lumi / nevts``; 1 for real
    data, and for a process the analysis does not declare) uses the ``nevts``
    of the files taken, as ANALYSIS.md prescribes. A dataset's metadata has the
    analysis' cross section of its process as ``xsec``, unless the fileset gives one.
    """
    if n_files_max == 0 or n_files_max < -1:
        raise InputError(f"--n-files-max must be -1 (all files) or a positive number, not {n_files_max}")
    datasets = []
    for process, variations in fileset.items():
        for variation, sample in variations.items():
            entries = sample["files"] if n_files_max == -1 else sample["files"][:n_files_max]
            files = tuple(FileEntry(e["path"], e["nevts"]) for e in entries)
            if any(f.nevts is None for f in files):
                if len(files) < len(sample["files"]):
                    raise InputError(
                        f"sample {process}/{variation} gives nevts for all its {len(sample['files'])} files together "
                        f"(coffea's fileset form), so --n-files-max {n_files_max} cannot renormalise part of it; "
                        "list only the files to run, with their nevts, in the fileset"
                    )
                nevts = int(sample["nevts_total"])
            else:
                nevts = sum(f.nevts for f in files if f.nevts is not None)
            if not files or nevts == 0:
                raise InputError(f"sample {process}/{variation} has no events in its first files")
            declared = analysis.samples.get(process)
            weight = sample_weight(analysis, process, nevts) if declared is not None else 1.0
            xsec = {"xsec": declared.cross_section} if declared is not None and declared.cross_section is not None else {}
            metadata = {"dataset": f"{process}__{variation}", **xsec, **sample.get("metadata", {})}
            metadata.update(process=process, variation=variation, nevts=nevts)
            datasets.append(Dataset(process, variation, files, nevts, weight, metadata))
    return datasets


def write_fileset(datasets: list[Dataset], path: str | Path) -> None:
    """Write the selected ``datasets`` as an AGC-format fileset (absolute paths), atomically.

    Running over the written fileset gives the same datasets, normalisations
    included, as the selection it was written from.
    """
    document: dict[str, dict[str, dict[str, Any]]] = {}
    for d in datasets:
        document.setdefault(d.process, {})[d.variation] = {
            "nevts_total": d.nevts,
            "files": [{"path": _resolve(f.path, Path.cwd()), "nevts": f.nevts} for f in d.files],
        }
    write_json(Path(path), document)


@dataclass(frozen=True)
class FilesetSummary:
    """File and event counts of a selection, per sample and in total."""

    samples: dict[str, dict[str, int]]

    @property
    def files(self) -> int:
        return sum(s["files"] for s in self.samples.values())

    @property
    def events(self) -> int:
        return sum(s["events"] for s in self.samples.values())

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "events": self.events, "samples": self.samples}


def summarize(datasets: list[Dataset]) -> FilesetSummary:
    """Count files and events of the selected datasets."""
    return FilesetSummary(
        {f"{d.process}/{d.variation}": {"files": len(d.files), "events": d.nevts} for d in datasets}
    )
