"""The ``torch.nn`` modules of the HKR-family losses (functions in :mod:`lipot.losses.hkr`), with
deel-torchlip's names and arguments, ``multi_gpu`` included (global-batch statistics through
:func:`lipot.distributed.global_batch`)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from .. import _checks
from .. import distributed as _dist
from .._checks import positive_float
from ._common import _check_input, check_alpha, check_multi_gpu, check_reduction, global_batch_if
from .hkr import (
    categorical_hinge_loss,
    hinge_margin_loss,
    hinge_multiclass_loss,
    hkr_loss,
    hkr_multiclass_loss,
    kr_loss,
    kr_multiclass_loss,
    lse_hkr_multiclass_loss,
    neg_kr_loss,
    soft_hkr_multiclass_loss,
    tau_bce_with_logits_loss,
    tau_cross_entropy_loss,
)

__all__ = [
    "KRLoss",
    "NegKRLoss",
    "HingeMarginLoss",
    "HKRLoss",
    "KRMulticlassLoss",
    "HingeMulticlassLoss",
    "HKRMulticlassLoss",
    "SoftHKRMulticlassLoss",
    "LseHKRMulticlassLoss",
    "TauCrossEntropyLoss",
    "TauBCEWithLogitsLoss",
    "CategoricalHingeLoss",
]


class _Loss(nn.Module):
    """Base of the loss modules: ``reduction``, and deel-torchlip's ``multi_gpu`` flag (batch
    statistics over the union of the ranks' batches: the forward runs inside
    :func:`lipot.distributed.global_batch`)."""

    def __init__(self, reduction: str = "mean", multi_gpu: bool = False) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.multi_gpu = check_multi_gpu(multi_gpu)

    def _batch(self):
        return global_batch_if(self.multi_gpu)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + (", multi_gpu=True" if self.multi_gpu else "")


def _no_true_values(true_values) -> None:
    if true_values is not None:
        raise ValueError("true_values is not supported (deel-torchlip deprecated it too): labels > 0 "
                         "are the positive class, labels <= 0 the negative one; drop the argument")


class KRLoss(_Loss):
    """Module form of :func:`kr_loss`: the KR *estimate*, to maximize (a metric).

    Warns once if its output requires a gradient: minimizing it trains the critic the wrong
    way; minimize :class:`NegKRLoss` or :class:`HKRLoss` instead. ``warn=False`` silences it
    (e.g. when you maximize it yourself).
    """

    def __init__(self, multi_gpu: bool = False, reduction: str = "mean", true_values=None,
                 warn: bool = True) -> None:
        super().__init__(reduction, multi_gpu)
        _no_true_values(true_values)
        self.warn = warn

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            out = kr_loss(input, target, self.reduction)
        if self.warn and out.requires_grad:
            warnings.warn(
                "KRLoss returns the KR estimate, a value to MAXIMIZE; minimizing it decreases it. "
                "Train with NegKRLoss or HKRLoss (or pass warn=False if you maximize it).",
                UserWarning,
                stacklevel=2,
            )
            self.warn = False
        return out


class NegKRLoss(_Loss):
    """Module form of :func:`neg_kr_loss` (minimize)."""

    def __init__(self, multi_gpu: bool = False, reduction: str = "mean", true_values=None) -> None:
        super().__init__(reduction, multi_gpu)
        _no_true_values(true_values)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return neg_kr_loss(input, target, self.reduction)


class HingeMarginLoss(_Loss):
    """Module form of :func:`hinge_margin_loss`."""

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_margin_loss(input, target, self.min_margin, self.reduction)


class HKRLoss(_Loss):
    """Module form of :func:`hkr_loss` (minimize; increases the KR term)."""

    def __init__(self, alpha: float, min_margin: float = 1.0, multi_gpu: bool = False,
                 reduction: str = "mean", true_values=None) -> None:
        super().__init__(reduction, multi_gpu)
        _no_true_values(true_values)
        self.alpha = check_alpha(alpha)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return hkr_loss(input, target, self.alpha, self.min_margin, self.reduction)


class KRMulticlassLoss(_Loss):
    """Module form of :func:`kr_multiclass_loss` (the estimate: maximize; a metric)."""

    def __init__(self, multi_gpu: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction, multi_gpu)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return kr_multiclass_loss(input, target, self.reduction)


class HingeMulticlassLoss(_Loss):
    """Module form of :func:`hinge_multiclass_loss`."""

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_multiclass_loss(input, target, self.min_margin, self.reduction)


class HKRMulticlassLoss(_Loss):
    """Module form of :func:`hkr_multiclass_loss` (minimize)."""

    def __init__(self, alpha: float, min_margin: float = 1.0, multi_gpu: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction, multi_gpu)
        self.alpha = check_alpha(alpha)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return hkr_multiclass_loss(input, target, self.alpha, self.min_margin, self.reduction)


class SoftHKRMulticlassLoss(_Loss):
    r"""Soft HKR (:func:`soft_hkr_multiclass_loss`) with an adaptive temperature
    :math:`\tau = \mathrm{clamp}(T\,m / \mathrm{clamp}(\mu, m, 2\cdot10^4), 0.005, 250)`, where
    :math:`\mu` is a running mean of :math:`|f|` (update
    :math:`\mu \leftarrow a\mu + (1-a)\,\mathrm{mean}|f|` in training mode only, clamped to
    [0.005, 1000]). :math:`\mu` is the buffer ``current_mean``: saved in ``state_dict``.

    Args:
        alpha: hinge weight in [0, 1].
        min_margin: margin ``m``.
        alpha_mean: running-mean factor ``a`` in [0, 1).
        temperature: ``T``.
        reduction: 'mean', 'sum' or 'none'.
    """

    def __init__(
        self,
        alpha: float = 0.9,
        min_margin: float = 1.0,
        alpha_mean: float = 0.99,
        temperature: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.alpha = check_alpha(alpha)
        self.min_margin = positive_float("min_margin", min_margin)
        self.alpha_mean = _checks.fraction("alpha_mean", alpha_mean, high_open=True)
        self.temperature = positive_float("temperature", temperature)
        self.register_buffer("current_mean", torch.tensor(self.min_margin))

    def _temperature(self, input: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                if _dist.active():  # global mean of |f| over the ranks' batches: same state on every rank
                    sums = _dist.all_sum(torch.stack([input.detach().abs().sum().double(),
                                                      torch.tensor(float(input.numel()), dtype=torch.float64,
                                                                   device=input.device)]))
                    batch_mean = (sums[0] / sums[1]).to(self.current_mean)
                else:
                    batch_mean = input.detach().abs().mean().to(self.current_mean)
                updated = self.alpha_mean * self.current_mean + (1 - self.alpha_mean) * batch_mean
                self.current_mean.copy_(updated.clamp(0.005, 1000.0))
        mean = self.current_mean.clamp(self.min_margin, 20000.0)
        return (self.temperature * self.min_margin / mean).clamp(0.005, 250.0)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        _check_input(input)
        return soft_hkr_multiclass_loss(
            input, target, self.alpha, self.min_margin, self._temperature(input), self.reduction
        )


class LseHKRMulticlassLoss(_Loss):
    """Module form of :func:`lse_hkr_multiclass_loss`."""

    def __init__(
        self,
        alpha: float = 1.0,
        temperature: float = 1.0,
        penalty: float = 1.0,
        min_margin: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.alpha = check_alpha(alpha)
        self.temperature = positive_float("temperature", temperature)
        self.penalty = positive_float("penalty", penalty)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return lse_hkr_multiclass_loss(
            input, target, self.alpha, self.min_margin, self.temperature, self.penalty,
            self.reduction,
        )


class TauCrossEntropyLoss(_Loss):
    """Module form of :func:`tau_cross_entropy_loss`."""

    def __init__(self, tau: float, reduction: str = "mean", **kwargs) -> None:
        super().__init__(reduction)
        self.tau = positive_float("tau", tau)
        self.kwargs = kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tau_cross_entropy_loss(input, target, self.tau, self.reduction, **self.kwargs)


class TauBCEWithLogitsLoss(_Loss):
    """Module form of :func:`tau_bce_with_logits_loss`."""

    def __init__(self, tau: float, reduction: str = "mean", **kwargs) -> None:
        super().__init__(reduction)
        self.tau = positive_float("tau", tau)
        self.kwargs = kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tau_bce_with_logits_loss(input, target, self.tau, self.reduction, **self.kwargs)


class CategoricalHingeLoss(_Loss):
    """Module form of :func:`categorical_hinge_loss`."""

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return categorical_hinge_loss(input, target, self.min_margin, self.reduction)
