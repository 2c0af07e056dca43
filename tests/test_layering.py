"""The architecture stays visible: a module imports only from lower layers (walked with ``ast``,
lazy imports inside functions included).

Layers, bottom to top: argument checks, distributed helpers and exact OT; the linear algebra
(``lipot.linalg``) and the data (``lipot.data``); the layers (``lipot.nn``); losses, models and
export; the functional forms and the certificates (``lipot.certify``); audit and W1 estimation;
the training stack (``lipot.training``); the command line; the package facade.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lipot"

LEVELS = {
    "_transforms": 0, "_migration": 0, "_checks": 0.5, "distributed": 0, "ot": 0,
    "data": 2,  # readers, toy pairs, the funnel and network benchmark pairs
    "linalg": 2,  # Björck, normalizers, convolution coefficients, operator norms, plain calls
    "nn": 3,
    "losses": 4, "models": 4, "export": 4,
    "functional": 5, "certify": 5.5,
    "audit": 6, "wasserstein": 6,
    "training": 7,  # the loop, checkpoints, schedules, recipes
    "cli": 8,
    "__init__": 9,
}
FORBIDDEN_BELOW_NN = {"losses", "distributed", "training", "wasserstein", "certify", "audit"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """lipot modules imported by ``name`` (``from . import x`` resolved to ``lipot.x``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lipot":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "lipot")
    return {_owner(t) for t in found} - {name}


def _owner(target: str) -> str:
    while target not in MODULES and "." in target:
        target = target.rpartition(".")[0]
    return target


def _level(module: str) -> int:
    parts = module.split(".")
    return LEVELS["__init__"] if len(parts) == 1 else LEVELS[parts[1]]


def _closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in _imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_every_module_has_a_layer():
    assert {m.split(".")[1] for m in MODULES if "." in m} <= set(LEVELS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_from_lower_layers(name):
    top = name.split(".")[1] if "." in name else "__init__"
    for dep in _imports(name):
        dep_top = dep.split(".")[1] if "." in dep else "__init__"
        if dep_top == top:  # inside one package (lipot.nn.conv -> lipot.nn.base)
            continue
        assert _level(dep) < _level(name), f"{name} (layer {_level(name)}) imports {dep} (layer {_level(dep)})"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("lipot.nn")))
def test_layers_never_reach_losses_training_or_estimators(name):
    reached = {d.split(".")[1] for d in _closure(name) if "." in d}
    assert not reached & FORBIDDEN_BELOW_NN, sorted(reached & FORBIDDEN_BELOW_NN)


def test_no_lazy_imports_inside_the_layers():
    """Function-level imports hid an import cycle once; the layers import at the top only."""
    for name, path in MODULES.items():
        if not name.startswith("lipot.nn"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.level]
                assert not inner, f"{name}.{node.name} imports inside a function"
