"""Registering plugins (agcframe's own directly, third-party ones through the ``agcframe`` entry-point group) and choosing them by name."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from agcframe.plugin import hookspecs
from agcframe.errors import ConfigError, PluginError
from agcframe.plugin.specs import PluginSpec

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PROCESSING_SLOTS",
    "SLOTS",
    "PluginManager",
    "RegisteredSpec",
    "check_option_targets",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agcframe"
BUILTIN_DISTRIBUTION = "agcframe"
#: agcframe's built-in plugins by name, registered directly as pytest and conda register theirs;
#: the entry-point group is for third-party plugins
BUILTIN_PLUGINS = {
    "agc_ttbar": "agcframe.analyses.agc_ttbar",
    "uproot": "agcframe.plugins.uproot",
    "servicex": "agcframe.plugins.servicex",
    "coffea": "agcframe.analyses.agc_ttbar.coffea",
    "numba": "agcframe.analyses.agc_ttbar.numba",
    "hist": "agcframe.plugins.hist",
    "iterative": "agcframe.plugins.iterative",
    "futures": "agcframe.plugins.futures",
    "dask": "agcframe.plugins.dask",
    "cabinetry": "agcframe.plugins.cabinetry",
    "pyhf": "agcframe.plugins.pyhf",
}
DISABLE_AUTOLOAD_ENV = "AGCFRAME_DISABLE_PLUGIN_AUTOLOAD"

#: CLI slot name -> the hook that declares its plugins
SLOTS: Mapping[str, str] = {
    "analysis": "agcframe_analyses",
    "source": "agcframe_sources",
    "processor": "agcframe_processors",
    "histogrammer": "agcframe_histogrammers",
    "executor": "agcframe_executors",
    "inference": "agcframe_inferences",
}
#: the slots that turn files into histograms (all but inference)
PROCESSING_SLOTS = ("analysis", "source", "processor", "histogrammer", "executor")


@dataclass(frozen=True)
class RegisteredSpec:
    """A spec together with the distribution that provided it."""

    spec: PluginSpec[Any]
    distribution: str
    version: str

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``values`` against the options the spec declares and convert them to their types.

        Raises :class:`ConfigError` naming the plugin and the option.
        """
        declared = {option.name: option for option in self.spec.options}
        bound = {}
        for name, value in values.items():
            if name not in declared:
                choices = ", ".join(declared) or "none"
                raise ConfigError(
                    f"{self.spec.slot} plugin '{self.spec.name}' has no option {name!r}; its options: {choices}"
                )
            option = declared[name]
            if option.type is bool and not isinstance(value, bool):
                raise ConfigError(f"option {option.flag(self.spec.name)} must be true or false, not {value!r}")
            try:
                bound[name] = option.type(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"option {option.flag(self.spec.name)} must be a {option.type.__name__}, not {value!r}"
                ) from None
        return bound


class PluginManager:
    """Loads plugins, collects their specs per slot and selects one by name.

    Parameters
    ----------
    autoload
        Register agcframe's built-in plugins and every entry point of the
        ``agcframe`` group. ``False`` registers nothing (register plugins
        yourself); ``None`` (default) registers both unless
        ``AGCFRAME_DISABLE_PLUGIN_AUTOLOAD=1``, in which case only the
        built-in plugins are registered.
    """

    def __init__(self, autoload: bool | None = None) -> None:
        self._pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self._pm.add_hookspecs(hookspecs)
        self._distributions: dict[str, tuple[str, str]] = {}
        self._collected: dict[str, dict[str, RegisteredSpec]] = {}
        if autoload is False:
            return
        self.load_builtins()
        if autoload or os.environ.get(DISABLE_AUTOLOAD_ENV, "") in ("", "0"):
            self.load_entry_points()

    def load_builtins(self) -> None:
        """Register agcframe's built-in plugins (:data:`BUILTIN_PLUGINS`)."""
        import agcframe

        for name, module in BUILTIN_PLUGINS.items():
            if not self._pm.has_plugin(name):
                self.register(importlib.import_module(module), name=name, distribution=BUILTIN_DISTRIBUTION, version=agcframe.__version__)

    def load_entry_points(self) -> None:
        """Register every plugin of the entry-point group.

        A plugin that fails to import is skipped with one warning naming its
        entry point; all others keep working. An entry point whose name is
        taken (a built-in plugin's) is registered as ``distribution:name``, so
        that specs of the same name are reported as a clash naming both.
        """
        for entry_point in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
        ):
            dist = entry_point.dist
            dist_name = dist.name if dist is not None else "unknown"
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken third-party plugin must not break the tool
                log.warning(
                    "skipping plugin entry point '%s = %s' of %s: %s: %s",
                    entry_point.name,
                    entry_point.value,
                    dist_name,
                    type(exc).__name__,
                    exc,
                )
                continue
            if self._pm.is_registered(plugin):
                continue
            name = entry_point.name if not self._pm.has_plugin(entry_point.name) else f"{dist_name}:{entry_point.name}"
            version = dist.version if dist is not None else "unknown"
            self.register(plugin, name=name, distribution=dist_name, version=version)

    def register(
        self,
        plugin: ModuleType | object,
        *,
        name: str | None = None,
        distribution: str = "unknown",
        version: str = "unknown",
    ) -> None:
        """Register a plugin object (module or instance with ``@hookimpl`` functions)."""
        registered = self._pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered")
        self._distributions[registered] = (distribution, version)
        self._collected.clear()

    def specs(self, slot: str) -> dict[str, RegisteredSpec]:
        """All specs of ``slot`` by plugin name.

        Raises :class:`PluginError` for an unknown slot (listing the slots) or
        when two plugins declare the same name (naming both distributions).
        """
        if slot not in SLOTS:
            raise PluginError(f"unknown plugin slot {slot!r}; slots are: {', '.join(SLOTS)}")
        if slot not in self._collected:
            self._collected[slot] = self._collect(slot)
        return self._collected[slot]

    def _collect(self, slot: str) -> dict[str, RegisteredSpec]:
        hook = getattr(self._pm.hook, SLOTS[slot])
        found: dict[str, RegisteredSpec] = {}
        for impl in hook.get_hookimpls():
            distribution, version = self._distributions.get(impl.plugin_name, ("unknown", "unknown"))
            try:
                specs = list(impl.function() or ())
            except Exception as exc:
                raise PluginError(
                    f"plugin '{impl.plugin_name}' ({distribution}) raised in {SLOTS[slot]}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            for spec in specs:
                if not isinstance(spec, PluginSpec) or spec.slot != slot:
                    raise PluginError(
                        f"plugin '{impl.plugin_name}' ({distribution}) returned {spec!r} from "
                        f"{SLOTS[slot]}; expected {slot} specs"
                    )
                if spec.name in found:
                    other = found[spec.name].distribution
                    raise PluginError(
                        f"two {slot} plugins are named {spec.name!r}: one from {other}, one from "
                        f"{distribution}; uninstall one of them"
                    )
                found[spec.name] = RegisteredSpec(spec, distribution, version)
        return dict(sorted(found.items()))

    def get(self, slot: str, name: str) -> RegisteredSpec:
        """The spec named ``name`` in ``slot``; an unknown name lists the choices."""
        choices = self.specs(slot)
        if name not in choices:
            available = ", ".join(choices) or "none installed"
            raise PluginError(f"unknown {slot} plugin {name!r}; available: {available}")
        return choices[name]

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        """Slots -> plugins with distribution and version (``agcframe plugins --json``)."""
        return {
            slot: [
                {
                    "name": name,
                    "distribution": registered.distribution,
                    "version": registered.version,
                    "description": registered.spec.description,
                    "options": [option.flag(name) for option in registered.spec.options],
                }
                for name, registered in self.specs(slot).items()
            ]
            for slot in SLOTS
        }


def check_option_targets(selected: Mapping[str, RegisteredSpec], plugin_options: Mapping[str, Any]) -> None:
    """Options may only be given for plugins the run uses; say which ``--plugin`` is missing."""
    used = {registered.spec.name for registered in selected.values()}
    for name in plugin_options:
        if name not in used:
            raise ConfigError(
                f"options were given for plugin '{name}', which this run does not use; "
                f"select it with --plugin SLOT={name} or drop its options"
            )
