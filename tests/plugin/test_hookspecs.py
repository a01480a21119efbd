"""Every hook is prefixed, typed and documented."""

from __future__ import annotations

import inspect
import typing

import pytest

from agcframe.plugin import hookspecs, specs
from agcframe.plugin.manager import SLOTS

HOOKS = [getattr(hookspecs, name) for name in hookspecs.__all__ if name.startswith("agcframe_")]


def test_every_slot_has_one_hook() -> None:
    assert sorted(h.__name__ for h in HOOKS) == sorted(SLOTS.values())


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_hook_is_documented_and_typed(hook: typing.Callable[..., object]) -> None:
    doc = inspect.getdoc(hook)
    assert doc and len(doc.splitlines()) >= 4, f"{hook.__name__} needs a contract docstring"
    assert ":returns:" in doc and "Called by" in doc
    hints = typing.get_type_hints(hook, vars(specs))
    assert "return" in hints
    (spec_type,) = typing.get_args(hints["return"])
    assert issubclass(spec_type, specs.PluginSpec)
    assert SLOTS[spec_type.slot] == hook.__name__
    assert getattr(hook, "agcframe_spec", None) is not None, "must carry the agcframe hookspec marker"


@pytest.mark.parametrize("protocol", [specs.Source, specs.Processor, specs.Histogrammer, specs.Executor, specs.Inference])
def test_backend_contracts_are_documented(protocol: type) -> None:
    members = [m for name, m in vars(protocol).items() if inspect.isfunction(m) and not name.startswith("_")]
    assert members
    for member in members:
        assert inspect.getdoc(member), f"{protocol.__name__}.{member.__name__} lacks a docstring"


def test_spec_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError, match="identifier"):
        specs.ExecutorSpec(name="two words", backend=object)
