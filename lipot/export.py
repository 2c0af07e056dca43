"""Deprecated path: :func:`lipot.vanilla_export` and :func:`lipot.vanilla_model` live in
:mod:`lipot.nn.export` and are documented under ``lipot``. ``from lipot.export import ...`` still
works, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from .nn import export as _home

__all__: list[str] = []


def __getattr__(name: str):
    if name in _home.__all__:
        warnings.warn(f"lipot.export.{name} moved: use lipot.{name}", DeprecationWarning, stacklevel=2)
        return getattr(_home, name)
    raise AttributeError(f"module 'lipot.export' has no attribute {name!r}")
