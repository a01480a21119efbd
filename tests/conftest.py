from __future__ import annotations

import getpass
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agcframe.tools.generate import GenerationSettings, generate_dataset

#: events per file of the benchmark dataset (tests/benchmarks); small by default, for the smoke run
BENCHMARK_EVENTS_PER_FILE_ENV = "AGCFRAME_BENCHMARK_EVENTS_PER_FILE"

#: real AGC data kept in the repository (sources and licences: tests/data/README.md)
REAL_DATA = Path(__file__).resolve().parent / "data" / "agc"
REAL_FILE = REAL_DATA / "data" / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
REAL_FILESET = REAL_DATA / "nanoaod_inputs.json"
REFERENCE = REAL_DATA / "reference"

#: the temporary directory's entries when the session started (checked again when it ends)
_TEMPORARY_AT_START = pytest.StashKey[set[str]]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Benchmarks that are measured (``--benchmark-enable``) run in this one process, not on pytest-xdist's workers."""
    if config.getoption("benchmark_enable", False):
        config.option.numprocesses = 0
        config.option.dist = "no"


#: the test files that take longest (minutes): scheduled first, so that the workers finish together
SLOWEST_FILES = (
    "plugins/test_executors.py",
    "analyses/agc_ttbar/test_ml_run.py",
    "stats/test_fitting.py",
    "io/test_xrootd.py",
    "engine/test_coffea_processor.py",
    "optimize/test_optimize.py",
    "test_docs.py",
    "plugins/test_external_dask.py",
    "test_repository.py",
    "benchmarks/test_whole_commands.py",
    "engine/test_cache_keys.py",
    "engine/test_integrity.py",
    "test_workflow.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest files first (pytest-xdist hands whole files to the workers in this order), the others as collected."""
    tests = Path(__file__).resolve().parent
    rank = {tests / name: position for position, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path, len(SLOWEST_FILES)))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # pytest-xdist's controller checks for all its workers
        session.config.stash[_TEMPORARY_AT_START] = set(os.listdir(tempfile.gettempdir()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves nothing in the temporary directory but pytest's own ``pytest-of-<user>``."""
    before = session.config.stash.get(_TEMPORARY_AT_START, None)
    if before is None:
        return
    # pytest's own folder stays (its tmp_path retention); multiprocessing removes its pymp-* folder at this process's exit
    pymp = multiprocessing.current_process()._config.get("tempdir")  # type: ignore[attr-defined]  # util.get_temp_dir's
    ours = {f"pytest-of-{getpass.getuser()}", *([Path(pymp).name] if pymp else [])}
    left = sorted(set(os.listdir(tempfile.gettempdir())) - before - ours)
    if left:
        session.config.get_terminal_writer().line(f"the tests left {left} in {tempfile.gettempdir()}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def small_fileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every AGC sample, 2 files of 1500 events each."""
    return generate_dataset(
        tmp_path_factory.mktemp("generated") / "dataset",
        GenerationSettings(seed=7, events_per_file=1500, files_per_sample=2),
    )


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[None]:
    """Keep the embedded-dataset cache out of the user's home (session-wide, before any other fixture).

    JAX's compiled programs are kept in one folder of the session that every
    pytest-xdist worker shares (the fits of different test files compile the
    same programs), unless the environment names one. So are the numba
    kernels, built once before any test: the default processor is numba's, and
    a test of a command's output should not depend on whether its run was the
    first on its worker (which says that it builds them).
    """
    import fcntl

    from agcframe.analyses.agc_ttbar.numba.compiled import ensure_built

    session = tmp_path_factory.getbasetemp()
    if hasattr(pytestconfig, "workerinput"):  # a worker's folder is inside the session's
        session = session.parent
    cache = tmp_path_factory.getbasetemp() / "cache"
    kernels = session / "numba-kernels"
    kernels.mkdir(exist_ok=True)
    cache.mkdir(exist_ok=True)
    (cache / "numba-kernels").symlink_to(kernels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGCFRAME_CACHE_DIR", str(cache))
        if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
            patch.setenv("JAX_COMPILATION_CACHE_DIR", str(session / "jax-cache"))
        with open(session / "numba-kernels.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker builds, the others find them built
            ensure_built()
        yield


@pytest.fixture(scope="session")
def real_histograms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AGC's reference histograms of real CMS data, 5 files per sample, as histograms.root."""
    from agcframe.analyses.agc_ttbar.analysis import AgcTtbar
    from agcframe.io.histogram_json import histograms_from_json, read_json, write_histograms

    path = tmp_path_factory.mktemp("real") / "histograms.root"
    document = read_json(REFERENCE / "histos_5_file_per_process.json")
    write_histograms(histograms_from_json(document, REAL_FILESET, 5, AgcTtbar()), path)
    return path


@pytest.fixture(scope="session")
def benchmark_fileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All nine AGC samples, one file each, ``AGCFRAME_BENCHMARK_EVENTS_PER_FILE`` events (default 2000).

    The default test command runs every benchmark once on this small dataset as a
    smoke test (``--benchmark-disable``); the README's performance section uses 60000.
    """
    events = int(os.environ.get(BENCHMARK_EVENTS_PER_FILE_ENV, "2000"))
    return generate_dataset(
        tmp_path_factory.mktemp("benchmark-data") / f"n{events}",
        GenerationSettings(seed=11, events_per_file=events, files_per_sample=1),
    )
