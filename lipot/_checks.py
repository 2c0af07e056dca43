"""Argument validation shared by every lipot module.

Each helper raises ``ValueError`` (or ``TypeError`` for a wrong type) with a message that names the
argument, says what was received and what to do instead, so that a bad setting never turns into a
silently wrong Lipschitz bound.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def positive_float(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
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
