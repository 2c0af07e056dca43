"""Argument validation shared by every lipot module: numbers, counts, fractions, labels
(binary codings and class indices) and files.

Each helper raises ``ValueError`` (or ``TypeError`` for a wrong type) with a message that names the
argument, says what was received and what to do instead, so that a bad setting never turns into a
silently wrong Lipschitz bound.
"""

from __future__ import annotations

import warnings

import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ._transforms import is_compiling


def positive_float(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def nonnegative_float(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number >= 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return out


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def int_tuple(name: str, value: Any, n: int) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into a tuple of ``n`` ints >= 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value,) * n
    elif isinstance(value, Sequence) and len(value) == n and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        out = tuple(value)
    else:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < 0 for v in out):
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return out


def fraction(name: str, value: Any, *, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float in the unit interval, or raise naming ``name``: ``[0, 1]`` by
    default, with the open ends given (``low_open``: 0 excluded; ``high_open``: 1 excluded)."""
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}") from None
    above = out > 0.0 if low_open else out >= 0.0
    below = out < 1.0 if high_open else out <= 1.0
    if not (above and below):  # (NaN fails both)
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return out


# ----------------------------------------------------------------------------- labels


def binary_labels(name: str, labels: torch.Tensor) -> torch.Tensor:
    """Check binary labels: all in {-1, +1} or all in {0, 1} (so that ``labels > 0`` is the
    positive class). Returns ``labels``."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(labels).__name__}")
    if is_compiling():
        return labels
    values = torch.unique(labels)
    allowed = [torch.tensor(v, dtype=values.dtype, device=values.device) for v in (-1, 0, 1)]
    signs = bool(((values == allowed[0]) | (values == allowed[2])).all())
    bits = bool(((values == allowed[1]) | (values == allowed[2])).all())
    if not (signs or bits):
        raise ValueError(
            f"{name} must be binary labels in {{-1, +1}} or {{0, 1}}, got values "
            f"{values[:6].tolist()}; map them to one of these codings"
        )
    return labels


def integral_indices(name: str, labels: torch.Tensor) -> torch.Tensor:
    """Floating-point class indices with integer values (``tensor([0., 2., 1.])``, as
    deel-torchlip accepts them) cast to int64; other tensors are returned unchanged. A value
    that is not an integer raises, naming ``name``."""
    if not isinstance(labels, torch.Tensor) or not labels.is_floating_point():
        return labels
    if labels.numel() and not is_compiling():
        bad = ~torch.isfinite(labels) | (labels != labels.round())
        if bool(bad.any()):
            raise ValueError(
                f"{name}: floating-point class indices must hold integer values, got "
                f"{float(labels[bad][0])!r}; pass integer class indices (or one-hot rows)"
            )
    return labels.long()


def class_indices(name: str, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Check class indices: an integer tensor with values in ``[0, num_classes)``."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.numel() and not is_compiling():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes}) (the model has {num_classes} "
                f"outputs), got values from {low} to {high}"
            )
    return labels


# ----------------------------------------------------------------------------- files


def existing_file(name: str, path: Any) -> Path:
    """Return ``path`` as a Path to an existing regular file, or raise naming it."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{name}: {p} is a directory, expected a file")
    if not p.is_file():
        raise FileNotFoundError(f"{name}: {p} does not exist")
    return p


def writable_file(name: str, path: Any) -> Path:
    """Return ``path`` as a Path that a file can be written to (its folder is created), or raise
    naming it: not a directory, and the folder writable."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{name}: {p} is a directory; give a file name inside it")
    folder = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: cannot write to the folder {folder}")
    return p



def renamed(fn: str, old: str, new: str, old_value, new_value):
    """``new_value``, or ``old_value`` passed under the former keyword ``old`` (with a
    ``DeprecationWarning`` naming ``new``): ``tol`` is lipot's name for every tolerance, ``eps``
    only ever a radius."""
    if old_value is None:
        return new_value
    warnings.warn(f"{fn}({old}=...) is renamed {new}=... (lipot calls tolerances tol; eps is a radius)",
                  DeprecationWarning, stacklevel=3)
    return old_value
