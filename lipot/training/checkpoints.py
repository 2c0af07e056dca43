"""Training checkpoints: atomic writes, and reads that name the file when it is empty, truncated,
not a checkpoint, or written for another model."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .. import _checks

__all__ = ["save_checkpoint", "load_checkpoint", "load_model_state"]

_CHECKPOINT_KEYS = frozenset({"model"})  # what every lipot checkpoint holds
RESUME_KEYS = frozenset({"model", "optimizer", "loss", "rng", "epoch", "history"})  # what fit() resumes from


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``: a crash never
    leaves a half-written checkpoint."""
    path = _checks.writable_file("checkpoint", path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left behind when the save failed


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (plain tensors and Python values)."""
    path = _checks.existing_file("checkpoint", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - garbage bytes fail in many ways (EOFError, struct.error, ...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"checkpoint {path} cannot be read ({reason}): it is empty, truncated or "
                         "not a file written by lipot / torch.save") from None
    if not isinstance(state, dict) or not _CHECKPOINT_KEYS <= set(state):
        found = sorted(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {path} is not a lipot training checkpoint (expected the keys "
                         f"{sorted(_CHECKPOINT_KEYS)}, found {found}); a plain state_dict loads with "
                         "model.load_state_dict(torch.load(path))")
    return state


def load_model_state(model: nn.Module, state: dict[str, Any], path) -> None:
    """``model.load_state_dict`` with an error naming the checkpoint when the shapes or keys
    belong to another architecture."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        detail = str(err).strip().splitlines()
        raise ValueError(f"checkpoint {path} was written for a different model ("
                         f"{detail[1].strip() if len(detail) > 1 else detail[0]}); build the same "
                         "architecture, or write to another --out / checkpoint file") from None
