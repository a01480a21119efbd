"""The layout keeps physics out of the framework: no core module and no generic plugin imports the AGC analysis.

The ``servicex`` source is generic: it delivers what the analysis' ``column_request`` asks for.
"""

from __future__ import annotations

import ast
from pathlib import Path

from agcframe.plugin.manager import PluginManager

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agcframe"
ANALYSES = "agcframe.analyses"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports too), relative imports resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            imported.add(module)
            imported.update(f"{module}.{alias.name}" for alias in node.names)
    return imported


def _analysis_specific_modules() -> set[str]:
    """The packages of built-in plugins that declare the analyses they implement (the processors)."""
    manager = PluginManager(autoload=False)
    manager.load_builtins()
    packages = set()
    for slot in ("source", "processor", "histogrammer", "executor", "inference"):
        for registered in manager.specs(slot).values():
            if registered.spec.analyses:
                backend = registered.spec.backend
                target = getattr(backend, "target", None) or backend.__module__
                packages.add(target.partition(":")[0].rpartition(".")[0])
    return packages


def test_no_core_module_and_no_generic_plugin_imports_an_analysis() -> None:
    specific = _analysis_specific_modules()
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module.startswith(ANALYSES) or any(module == package or module.startswith(f"{package}.") for package in specific):
            continue
        found = sorted(name for name in _imports(path) if name.startswith(ANALYSES))
        if found:
            offenders[module] = found
    assert not offenders, offenders
    assert all(package.startswith(ANALYSES) for package in specific), specific  # only the analysis' own processors


def test_the_walk_sees_an_import_of_the_analysis() -> None:
    """The check above can fail: an AGC-importing module is found, at module and at function level."""
    imports = _imports(PACKAGE / "analyses" / "agc_ttbar" / "coffea" / "processor.py")
    assert "agcframe.analyses.agc_ttbar.analysis" in imports
    assert "agcframe.analyses.agc_ttbar.fills" in imports
