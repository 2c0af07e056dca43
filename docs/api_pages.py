"""Writes the per-module pages of the API reference (called by ``conf.py`` at every build)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import lipot

SKIP = {"lipot.export", "lipot.cli.__main__"}  # a deprecated path; the entry point
# The packages that gather names for users: a name one of them lists is documented there
# (``lipot.functional.group_sort``, ``lipot.training.fit``), not in the module that defines it
# (``lipot.nn.functional``, ``lipot.training.loop``). Every other name outside ``lipot.__all__`` is
# documented in its home module.
FACADES = ["lipot.functional", "lipot.training", "lipot.data", "lipot.certify"]


def public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(lipot.__path__, "lipot."):
        if not any(part.startswith("_") for part in info.name.split(".")) and info.name not in SKIP:
            names.append(info.name)
    return sorted(names)


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def _is_documented_object(obj) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj)


def documented_at(obj) -> str:
    """Where a class or function is documented: ``lipot`` if in ``lipot.__all__``, else the first
    facade that lists it, else its home module."""
    for place in ["lipot", *FACADES]:
        module = importlib.import_module(place)
        if any(getattr(module, n) is obj for n in getattr(module, "__all__", ())):
            return place
    return obj.__module__


def own_names(module) -> list[str]:
    """Names of ``module.__all__`` documented on its page: its classes and functions documented
    there (:func:`documented_at`) and its constants."""
    names = []
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if _is_documented_object(obj) and documented_at(obj) != module.__name__:
            continue
        names.append(name)
    return names


def page(name: str, children: list[str]) -> str:
    module = importlib.import_module(name)
    lines = [f"``{name}``", "=" * (len(name) + 4), "", f".. automodule:: {name}", "   :no-members:", ""]
    for attr in own_names(module):
        obj = getattr(module, attr)
        if _directive(obj) == "autodata":  # a constant: its value (autodoc would show its type's docstring)
            value = repr(obj)
            lines += [f".. py:data:: {attr}", f"   :module: {name}"] + ([f"   :value: {value}"] if len(value) <= 80 else []) + [""]
            continue
        lines += [f".. {_directive(obj)}:: {name}.{attr}"]
        if inspect.isclass(obj):
            lines += ["   :members:"]
        lines += [""]
    if children:
        lines += [".. toctree::", "   :maxdepth: 1", ""] + [f"   {c}" for c in children] + [""]
    return "\n".join(lines)


def write_pages(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    modules = public_modules()
    for name in modules:
        children = [m for m in modules if m.rpartition(".")[0] == name]
        text = page(name, children)
        target = folder / f"{name}.rst"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    top = [m for m in modules if m.count(".") == 1]
    index = ["Modules", "=======", "", "Every public module, with the names it defines that are not in ``lipot``'s own",
             "namespace above.", "", ".. toctree::", "   :maxdepth: 1", ""] + [f"   {m}" for m in top] + [""]
    (folder / "index.rst").write_text("\n".join(index))


def import_path(path: str):
    """The object at a dotted ``path`` (``lipot.nn.ConePotential``, ``lipot.W1Result.ci``), or
    ``None``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def canonical_path(path: str) -> str | None:
    """Where the object at ``path`` is documented, when ``path`` names it by another route
    (``lipot.nn.ConePotential`` -> ``lipot.ConePotential``; ``lipot.certify.certified_accuracy``
    -> ``lipot.certified_accuracy``); ``None`` when ``path`` names nothing."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):  # the longest prefix that is a class or function
        obj = import_path(".".join(parts[:cut]))
        if obj is None:
            continue
        if inspect.ismodule(obj):
            return ".".join(parts) if cut == len(parts) else None
        if _is_documented_object(obj) and getattr(obj, "__module__", "").startswith("lipot"):
            return ".".join([documented_at(obj), obj.__name__, *parts[cut:]])
    return None


def resolve_missing(app, env, node, contnode):
    """``missing-reference`` handler: a reference to a lipot object by a path other than the
    documented one resolves to the documented one. A reference to nothing stays broken."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        candidates.append(f"{module}.{target}")
        if cls:
            candidates.append(f"{module}.{cls}.{target}")
    # the module that defines the documented object: a docstring names its neighbours plainly
    documented = f"{module}.{cls}" if module and cls else node["refdoc"].rpartition("/")[2]
    obj = import_path(documented) if documented.startswith("lipot") else None
    home = getattr(obj, "__module__", None)
    if home and home.startswith("lipot"):
        candidates.append(f"{home}.{target}")
    domain = env.get_domain("py")
    if "." not in target:  # a plain name: the one documented object of that name, if unique
        matches = domain.find_obj(env, module, cls, target, None, 1)
        if len(matches) == 1:
            return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", matches[0][0], node, contnode)
    for candidate in candidates:
        canonical = canonical_path(candidate) if candidate.startswith("lipot") else None
        if canonical:  # (the documented path itself was tried by Sphinx and missed: no match)
            for reftype in (node["reftype"], "obj"):
                found = domain.resolve_xref(env, node["refdoc"], app.builder, reftype, canonical, node, contnode)
                if found is not None:
                    return found
    return None
