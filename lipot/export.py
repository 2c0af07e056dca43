"""``lipot.export``: :func:`vanilla_export` / :func:`vanilla_model` (the code lives in
:mod:`lipot.nn.export`, beside the layers it converts)."""

from __future__ import annotations

from .nn.export import vanilla_export, vanilla_model

__all__ = ["vanilla_export", "vanilla_model"]
