"""Built-in plugins registered directly, third-party ones through entry points, selection by name, and the errors around it."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import types
from collections.abc import Iterable

import pytest

from agcframe import hookimpl
from agcframe.errors import PluginError
from agcframe.plugin.manager import PluginManager
from agcframe.plugin.specs import ExecutorSpec

BUILTINS = {
    "source": ["servicex", "uproot"],
    "processor": ["coffea", "numba"],
    "histogrammer": ["hist"],
    "executor": ["dask", "futures", "iterative"],
    "inference": ["cabinetry", "pyhf"],
}


def _executor_plugin(name: str) -> types.ModuleType:
    module = types.ModuleType(f"plugin_{name}")

    @hookimpl
    def agcframe_executors() -> Iterable[ExecutorSpec]:
        yield ExecutorSpec(name=name, backend=object)

    module.agcframe_executors = agcframe_executors  # type: ignore[attr-defined]
    return module


def test_builtins_are_registered_directly_and_installed_with_agcframe() -> None:
    assert not [entry for entry in importlib.metadata.entry_points(group="agcframe") if entry.dist and entry.dist.name == "agcframe"]
    described = PluginManager().describe()
    for slot, names in BUILTINS.items():
        entries = {e["name"]: e for e in described[slot]}
        for name in names:
            assert entries[name]["distribution"] == "agcframe"
            assert entries[name]["version"] == importlib.metadata.version("agcframe")


def test_select_by_name() -> None:
    manager = PluginManager()
    registered = manager.get("executor", "iterative")
    assert registered.spec.name == "iterative"
    assert hasattr(registered.spec.backend(), "run")


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(PluginError, match=r"unknown executor plugin 'nope'; available: .*iterative"):
        PluginManager().get("executor", "nope")


def test_unknown_slot_lists_the_slots() -> None:
    with pytest.raises(PluginError, match="slots are: analysis, source, processor, histogrammer, executor, inference"):
        PluginManager().get("exekutor", "iterative")


def test_duplicate_names_name_both_distributions() -> None:
    manager = PluginManager()
    manager.register(_executor_plugin("iterative"), name="impostor", distribution="impostor-dist")
    with pytest.raises(PluginError, match="named 'iterative': one from .*, one from .*") as excinfo:
        manager.specs("executor")
    assert "agcframe" in str(excinfo.value) and "impostor-dist" in str(excinfo.value)


def test_broken_entry_point_warns_and_the_rest_works(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    broken = importlib.metadata.EntryPoint(name="broken", value="agcframe_no_such_module", group="agcframe")
    real = importlib.metadata.entry_points

    def entry_points(**kwargs: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(**kwargs), broken]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with caplog.at_level(logging.WARNING):
        manager = PluginManager()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'broken = agcframe_no_such_module'" in warnings[0] and "ModuleNotFoundError" in warnings[0]
    assert manager.get("executor", "iterative")


def test_disable_autoload_keeps_only_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = importlib.metadata.EntryPoint(name="foreign", value="plugin_foreign", group="agcframe")
    monkeypatch.setitem(sys.modules, "plugin_foreign", _executor_plugin("foreign"))
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [*real(**kw), foreign])
    assert "foreign" in PluginManager().specs("executor")
    monkeypatch.setenv("AGCFRAME_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = PluginManager()
    assert "foreign" not in manager.specs("executor")
    assert {slot: list(manager.specs(slot)) for slot in BUILTINS} == BUILTINS


def test_plugin_raising_in_hook_is_named() -> None:
    module = types.ModuleType("plugin_raises")

    @hookimpl
    def agcframe_executors() -> Iterable[ExecutorSpec]:
        raise RuntimeError("boom")

    module.agcframe_executors = agcframe_executors  # type: ignore[attr-defined]
    manager = PluginManager(autoload=False)
    manager.register(module, name="raises", distribution="raises-dist")
    with pytest.raises(PluginError, match="plugin 'raises' \\(raises-dist\\) raised in agcframe_executors: RuntimeError: boom"):
        manager.specs("executor")
