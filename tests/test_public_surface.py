"""One public surface: every name of ``lipot.__all__`` is one object under one name, no submodule is
star-exported, deel-torchlip spellings warn, and no module reaches into another module's private
names (walked with ``ast``).

A private *module* (``lipot._checks``, ``lipot.audit._common``) is the package's own toolbox: other
modules of the package may import it and its plain names. What they may not do is import or read a
``_name`` defined inside another module.
"""

from __future__ import annotations

import ast
import inspect
import types
import warnings
from pathlib import Path

import pytest

import lipot

ROOT = Path(__file__).resolve().parents[1] / "lipot"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_module(package: Path, name: str) -> bool:
    """``name`` is a module or subpackage of ``package`` (the folder)."""
    return (package / f"{name}.py").exists() or (package / name / "__init__.py").exists()


def _target_folder(path: Path, node: ast.ImportFrom) -> Path | None:
    """The folder of the package that ``from <node.module> import ...`` imports from, for
    relative imports inside lipot (``None`` for other packages)."""
    if not node.level:
        return None
    folder = path.parent
    for _ in range(node.level - 1):
        folder = folder.parent
    for part in (node.module or "").split(".") if node.module else []:
        folder = folder / part
    return folder


def _violations(path: Path, text: str | None = None) -> list[str]:
    """Private names of other modules that the module at ``path`` (source ``text``, default
    the file's) imports or reads."""
    tree = ast.parse(path.read_text() if text is None else text)
    found, module_aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            folder = _target_folder(path, node)
            for alias in node.names:
                if _is_module(folder, alias.name):  # a module, private or not, may be imported
                    module_aliases.add(alias.asname or alias.name)
                    continue
                if _is_private(alias.name):
                    found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}")
        elif isinstance(node, ast.Import):
            module_aliases.update(a.asname or a.name for a in node.names if a.name.startswith("lipot"))
    for node in ast.walk(tree):  # LF._helper(...) where LF is another lipot module
        if (isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_walk_finds_what_it_must():
    """The checker itself, on a synthetic module: a private import and a private attribute are found."""
    src = ("from ..certify import _hidden\nfrom . import functional as LF\nLF._tracing()\n"
           "from .. import _checks\n_checks.finite_tensor\n")
    found = _violations(ROOT / "nn" / "probe.py", src)
    assert found == ["line 1: from ..certify import _hidden", "line 3: LF._tracing"]


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_private_name_of_another(path):
    assert not _violations(path), _violations(path)


def test_all_holds_no_module_and_no_alias():
    objects = {name: getattr(lipot, name) for name in lipot.__all__}
    assert len(objects) == len(set(lipot.__all__)), "a name is listed twice"
    modules = sorted(name for name, obj in objects.items() if isinstance(obj, types.ModuleType))
    assert not modules, f"submodules in lipot.__all__: {modules}"
    by_id: dict[int, list[str]] = {}
    for name, obj in objects.items():
        by_id.setdefault(id(obj), []).append(name)
    aliases = [names for names in by_id.values() if len(names) > 1]
    assert not aliases, f"one object under several names: {aliases}"
    for name, obj in objects.items():  # each name is its object's own name
        assert getattr(obj, "__name__", name) == name, (name, obj)


def test_star_import_does_not_shadow_packages():
    namespace: dict = {}
    exec("from lipot import *", namespace)
    for shadow in ("ot", "torch", "nn", "functional", "data", "distributed", "training"):
        assert shadow not in namespace, shadow


def test_every_public_name_is_documented_where_it_lives():
    """Each name of ``lipot.__all__`` has a docstring and is listed in its home module's ``__all__``."""
    import importlib

    for name in lipot.__all__:
        obj = getattr(lipot, name)
        assert inspect.getdoc(obj), f"lipot.{name} has no docstring"
        home = importlib.import_module(obj.__module__)
        assert name in getattr(home, "__all__", ()), f"lipot.{name} is not in {obj.__module__}.__all__"


def test_the_record_losses_are_at_the_top():
    for name in ("EMMALoss", "GloroTradesLoss", "LogitAnnealingLoss", "MarginCrossEntropyLoss", "HKRLoss"):
        assert name in lipot.__all__


@pytest.mark.parametrize("module, old, new", [
    ("lipot", "LipschitzPReLU", "LPReLU"),
    ("lipot", "ScaledAdaptativeL2NormPool2d", "ScaledAdaptiveL2NormPool2d"),
    ("lipot.nn", "LipschitzPReLU", "LPReLU"),
    ("lipot.nn", "ScaledAdaptativeL2NormPool2d", "ScaledAdaptiveL2NormPool2d"),
])
def test_deel_spellings_warn_and_name_the_lipot_name(module, old, new):
    import importlib

    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"use {module}.{new}"):
        obj = getattr(mod, old)
    assert obj is getattr(mod, new)
    assert old not in getattr(mod, "__all__")


def test_the_old_export_path_warns():
    with pytest.warns(DeprecationWarning, match="use lipot.vanilla_export"):
        from lipot.export import vanilla_export
    assert vanilla_export is lipot.vanilla_export


def test_an_unknown_name_is_a_plain_attribute_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
            lipot.nothing_here  # noqa: B018


@pytest.mark.parametrize("old, new", sorted(lipot._MOVED.items()))
def test_the_former_module_paths_are_the_moved_modules(old, new):
    import importlib

    moved = importlib.import_module(f"lipot.{new}")
    assert importlib.import_module(f"lipot.{old}") is moved
    assert getattr(lipot, old) is moved
    namespace: dict = {}
    exec(f"from lipot.{old} import __name__ as found", namespace)
    assert namespace["found"] == f"lipot.{new}"
