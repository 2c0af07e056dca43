r"""Training schedules of the certified-robustness recipes: a radius ramp for the certified-margin
losses and a learning-rate decay to a small final value.

* :class:`RadiusRamp` -- the training radius grows linearly from 0 to
  :math:`\text{overshoot}\cdot\varepsilon` over the first ``epochs`` epochs, then stays
  there. Starting at 0 lets the network learn to classify before it is asked for margins;
  overshooting (GloRo trains at :math:`1.1\,\varepsilon`, Leino et al., arXiv:2102.08452)
  leaves slack for the test points.
* :func:`lr_decay` -- cosine (Loshchilov & Hutter, arXiv:1608.03983) or exponential decay of
  the learning rate to ``final_lr`` at the last epoch (the records decay to about
  :math:`10^{-6}`), as a torch scheduler stepped once per epoch by :func:`lipot.training.fit`
  (its state is checkpointed, so a resumed run continues the same curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["RadiusRamp", "lr_decay", "LR_DECAYS"]

LR_DECAYS = ("cosine", "exponential")


@dataclass(frozen=True)
class RadiusRamp:
    """Training radius as a function of the (fractional) number of epochs done ``t``:
    ``eps * overshoot * min(1, t / epochs)``.

    Args:
        eps: the radius to certify at test time.
        overshoot: factor of the final training radius (``>= 1`` is usual; GloRo uses 1.1).
        epochs: number of epochs over which the radius grows (0: constant from the start).
    """

    eps: float
    overshoot: float = 1.1
    epochs: float = 10.0

    def __post_init__(self) -> None:
        for name, low in (("eps", 0.0), ("overshoot", 0.0)):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value <= low:
                raise ValueError(f"{name} must be a finite number > {low:g}, got {getattr(self, name)!r}")
        epochs = float(self.epochs)
        if not math.isfinite(epochs) or epochs < 0:
            raise ValueError(f"epochs must be a finite number >= 0, got {self.epochs!r}")

    def __call__(self, epochs_done: float) -> float:
        target = self.eps * self.overshoot
        if self.epochs == 0:
            return target
        return target * min(1.0, max(0.0, epochs_done) / self.epochs)


def lr_decay(optimizer: torch.optim.Optimizer, epochs: int, kind: str = "cosine",
             final_lr: float = 1e-6) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-epoch scheduler taking every parameter group's learning rate from its current value
    to ``final_lr`` after ``epochs`` steps: ``"cosine"`` (``CosineAnnealingLR``) or
    ``"exponential"`` (``ExponentialLR`` with :math:`\\gamma = (\\text{final}/\\text{lr})^{1/\\text{epochs}}`)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    final_lr = float(final_lr)
    if not math.isfinite(final_lr) or final_lr <= 0:
        raise ValueError(f"final_lr must be a finite number > 0, got {final_lr!r}")
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=final_lr)
    if kind == "exponential":
        lr = optimizer.param_groups[0]["lr"]
        if final_lr > lr:
            raise ValueError(f"final_lr={final_lr:g} is above the learning rate {lr:g}")
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=(final_lr / lr) ** (1.0 / epochs))
    raise ValueError(f"kind must be one of {LR_DECAYS}, got {kind!r}")
