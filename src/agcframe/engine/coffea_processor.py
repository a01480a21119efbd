"""A coffea ``ProcessorABC``, run as coffea's ``Runner`` runs it, with everything agcframe adds.

``agcframe run --processor MODULE:CLASS`` (or ``RunConfig(processor=instance)``)
runs any coffea processor unchanged: every work item's events reach its
``process`` as coffea's Runner builds them (NanoEvents, ``events.metadata``
with the dataset's name and the fileset's metadata), and the outputs are
accumulated with coffea's ``accumulate``, in item order.

A processor reads its columns lazily, inside ``process``. After its first chunk,
a worker process knows which branches it read (coffea's access log) and reads
them in bulk, in the work item's read phase, for its next chunks: that read can
then run ahead of the computing (remote files) and is timed and counted as
reading in ``metrics.json``. Branches it reads only for some datasets are read
for all of them once seen; a branch a file lacks is not read.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agcframe.cache import source_digest
from agcframe.data import WorkItem
from agcframe.errors import AgcframeError, AnalysisError, ConfigError, InputError, ServerError
from agcframe.io.inputs import nanoevents, open_tree

__all__ = ["CoffeaAccumulator", "CoffeaProcessorRun", "import_target", "load_processor", "processor_digest", "processor_schema"]

#: branches a processor read in its chunks in this process, by processor class
_learned_branches: dict[str, frozenset[str]] = {}


def import_target(target: str, what: str, flag: str) -> Any:
    """The attribute ``target`` (``package.module:Name`` or ``path/to/file.py:Name``) names; :class:`ConfigError` otherwise.

    A module is looked for in the working directory too, as ``python -m`` would
    (a file's in its directory).
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{flag} {target!r} must be MODULE:{what.upper()} (e.g. my_analysis:MyProcessor, or my_analysis.py:MyProcessor)")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConfigError(f"{flag} {target!r}: file {path} does not exist")
            directory, module_name = str(path.resolve().parent), path.stem
        else:
            directory = str(Path.cwd())
        if directory not in sys.path:
            sys.path.insert(0, directory)
        module = importlib.import_module(module_name)
    except AgcframeError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{flag} {target!r}: no module named {exc.name!r}; install it, or run from the directory that holds it") from None
    except Exception as exc:
        raise ConfigError(f"{flag} {target!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{flag} {target!r}: module {module_name} has no {what} {attribute!r}") from None


def load_processor(target: Any, options: Mapping[str, Any]) -> Any:
    """The processor a run configuration names: an instance as it is, or ``MODULE:CLASS`` started with ``options``.

    Raises :class:`ConfigError` for a class that is not a coffea ``ProcessorABC``, or whose
    constructor refuses the options (naming them), and for a processor that cannot be
    pickled to the workers.
    """
    from coffea.processor import ProcessorABC

    if isinstance(target, str):
        cls = import_target(target, "class", "--processor")
        if not (isinstance(cls, type) and issubclass(cls, ProcessorABC)):
            raise ConfigError(f"--processor {target!r} is not a coffea processor.ProcessorABC subclass")
        try:
            inspect.signature(cls).bind(**options)
        except TypeError as exc:
            raise ConfigError(f"--processor-option: {cls.__name__}({', '.join(f'{k}=...' for k in options)}) does not fit its constructor: {exc}") from None
        try:
            processor = cls(**options)
        except Exception as exc:
            raise ConfigError(f"processor {cls.__name__} failed to start: {type(exc).__name__}: {exc}") from exc
    else:
        if options:
            raise ConfigError("processor_options are for a processor given as MODULE:CLASS; an instance is already started")
        processor = target
        if not isinstance(processor, ProcessorABC):
            raise ConfigError(f"processor {type(processor).__name__} is not a coffea processor.ProcessorABC (give an instance of one, or MODULE:CLASS)")
    _ship_by_value(type(processor).__module__)
    try:
        _pickled(processor)
    except Exception as exc:
        raise ConfigError(
            f"processor {type(processor).__name__} cannot be pickled to the workers ({type(exc).__name__}: {exc}); "
            "keep only picklable state in it (no open files, locks or sockets), or make that in process()"
        ) from None
    return processor


def _ship_by_value(module: str) -> None:
    """Pickle the classes and functions of ``module`` by value, unless an installed distribution provides it.

    The workers then need not import the user's module (a file in the working
    directory, a test's module): coffea's Runner ships a processor with cloudpickle the same way.
    """
    import cloudpickle

    top = module.partition(".")[0]
    if module != "__main__" and module in sys.modules and top not in importlib.metadata.packages_distributions():
        cloudpickle.register_pickle_by_value(sys.modules[module])


def _pickled(processor: Any) -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps(processor))


def processor_schema(schema: Any) -> type:
    """The coffea NanoEvents schema a run configuration names: a class, a name in ``coffea.nanoevents``, or ``MODULE:CLASS``."""
    from coffea import nanoevents
    from coffea.nanoevents.schemas import BaseSchema

    if isinstance(schema, type):
        chosen = schema
    elif ":" in schema:
        chosen = import_target(schema, "schema", "--processor-schema")
    else:
        chosen = getattr(nanoevents, schema, None)
    if not (isinstance(chosen, type) and issubclass(chosen, BaseSchema)):
        known = sorted(name for name in dir(nanoevents) if name.endswith("Schema"))
        raise ConfigError(f"--processor-schema {schema!r} is not a coffea NanoEvents schema; choose one of {', '.join(known)}, or MODULE:CLASS")
    return chosen


def processor_digest(processor: Any, options: Mapping[str, Any] | None) -> dict[str, str]:
    """What decides a processor's outputs besides its events: its class, its package's code, and its constructor's ``options``.

    For an instance (``options`` ``None``), its state: the digest of its pickle,
    by reference to its classes, so that it is the same in the next process.
    """
    cls = type(processor)
    if options is not None:
        state = repr(sorted((str(key), repr(value)) for key, value in options.items()))
    else:
        try:
            state = hashlib.sha256(pickle.dumps(processor)).hexdigest()[:16]
        except Exception:  # only cloudpickle can: its bytes need not repeat, so a resume may compute again
            state = hashlib.sha256(_pickled(processor)).hexdigest()[:16]
    return {"class": _class_name(processor), "code": _code_digest(cls.__module__), "state": state}


def _code_digest(module: str) -> str:
    """:func:`source_digest` of the module's package; the module's own file where the package has none (a namespace package)."""
    digest = source_digest(module)
    path = getattr(sys.modules.get(module), "__file__", None)
    if digest == "unknown" and path:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return digest


@dataclass(frozen=True)
class CoffeaProcessorRun:
    """Reads a work item's events as coffea's Runner does and runs the processor's ``process`` on them; picklable.

    ``metadata`` is each dataset's ``events.metadata`` (its name, process,
    variation, ``nevts``, ``xsec`` and the fileset's metadata), by (process, variation).
    """

    processor: Any
    schema: type
    metadata: Mapping[tuple[str, str], Mapping[str, Any]]

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore_run, (_pickled(self.processor), self.schema, self.metadata)

    def read(self, item: WorkItem) -> tuple[Any, list[Any]]:
        """The item's NanoEvents (virtual arrays), with the branches this process saw the processor read already read now."""
        metadata = {  # coffea's Runner's, then the dataset's (its name, process, variation, nevts, xsec, the fileset's)
            "filename": item.path,
            "treename": item.treename,
            "entrystart": item.entry_start,
            "entrystop": item.entry_stop,
            "fileuuid": "",
            **self.metadata[item.process, item.variation],
        }
        preload = _learned_branches.get(_class_name(self.processor))
        accessed: list[Any] = []
        with open_tree(item.path, item.treename) as tree:
            try:
                return nanoevents(item, tree, self.schema, preload=preload or (), metadata=metadata, access_log=accessed), accessed
            except (OSError, ServerError):
                raise
            except Exception as exc:
                raise InputError(
                    f"{item.describe()}: coffea cannot build {self.schema.__name__} events of it: {type(exc).__name__}: {exc}; "
                    "choose the schema of these files with --processor-schema"
                ) from exc

    def compute(self, item: WorkItem, data: tuple[Any, list[Any]], seed: int) -> Any:
        """The processor's ``process`` output for the item; one line naming the class and the chunk if it raises.

        ``seed`` is not the processor's business: it draws its random numbers as it likes.
        """
        import uproot

        events, accessed = data
        name = type(self.processor).__name__
        with open_tree(item.path, item.treename):  # the columns it reads now count as the file's bytes
            try:
                output = self.processor.process(events)
            except (OSError, ServerError):
                raise  # a read that failed: retried like any other
            except uproot.KeyInFileError as exc:
                raise InputError(f"{item.describe()}: processor {name} reads {exc.key!r}, which the file does not have") from exc
            except Exception as exc:
                raise AnalysisError(f"processor {name} raised on {item.describe()}: {type(exc).__name__}: {exc}") from exc
        key = _class_name(self.processor)
        _learned_branches[key] = _learned_branches.get(key, frozenset()) | {entry.branch for entry in accessed}
        if output is None:
            raise AnalysisError(f"processor {name} returned nothing for {item.describe()}; process() must return its output (a dict of histograms)")
        return output


def _class_name(processor: Any) -> str:
    return f"{type(processor).__module__}:{type(processor).__qualname__}"


def _restore_run(processor: bytes, schema: type, metadata: Mapping[tuple[str, str], Mapping[str, Any]]) -> CoffeaProcessorRun:
    return CoffeaProcessorRun(pickle.loads(processor), schema, metadata)


class CoffeaAccumulator:
    """coffea's ``accumulate`` as an agcframe accumulator: a chunk's output is its partial result, merged in item order."""

    def fill(self, output: Any) -> Any:
        return output

    def merge(self, left: Any, right: Any) -> Any:
        from coffea.processor import accumulate

        return accumulate([left, right])
