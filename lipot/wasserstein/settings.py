"""Checks of :class:`~lipot.wasserstein.estimator.W1Estimator`'s settings: a setting that would
break the estimate raises, naming it."""

from __future__ import annotations

from torch import nn

from .. import _checks

__all__ = ["check_settings", "KINDS"]

KINDS = ("linear", "cone", "envelope", "gnp")
"""The critic kinds ``W1Estimator(critic=...)`` takes by name."""


def check_settings(critic, epochs, batch_size, lr, lr_patience, hidden, cones, patience, smoothing, tol,
                    min_epoch_steps, val_fraction, selection_fraction, folds) -> tuple[int, ...] | None:
    """Refuse a setting that would break the estimate, naming it; returns ``hidden`` as a tuple."""
    if critic is not None and not isinstance(critic, nn.Module) and critic not in KINDS:
        raise ValueError(f"critic must be None, one of {', '.join(map(repr, KINDS))} or a torch module, "
                         f"got {critic!r}")
    for name, v in (("val_fraction", val_fraction), ("selection_fraction", selection_fraction)):
        _checks.fraction(name, v, low_open=True, high_open=True)
    if val_fraction + selection_fraction >= 0.9:
        raise ValueError("val_fraction + selection_fraction must leave at least 10 % for training")
    for name, v in (("epochs", epochs), ("patience", patience), ("folds", folds), ("lr_patience", lr_patience),
                    ("min_epoch_steps", min_epoch_steps)) + tuple((name, v) for name, v in
                                                                (("batch_size", batch_size), ("cones", cones))
                                                                if v is not None):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    _checks.positive_float("lr", lr)
    _checks.fraction("smoothing", smoothing, high_open=True)
    if tol is not None:
        _checks.fraction("tol", tol, high_open=True)
    if hidden is not None:
        hidden = tuple(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 4 or h % 4 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of widths divisible by 4 (GroupSortNorm), "
                             f"got {hidden!r}")
        if critic is not None and critic != "gnp":
            raise ValueError("hidden sets the default dense critic's widths; it cannot apply to "
                             f"critic={critic!r}")
    return hidden
