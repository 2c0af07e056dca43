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
from ._common import check_input, check_alpha, check_multi_gpu, check_reduction, global_batch_if
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
    r"""Module form of :func:`lipot.functional.kr_loss`: the KR *estimate*
    :math:`\mathbb{E}_{y>0} f - \mathbb{E}_{y\le 0} f`, a value to **maximize** (a metric).

    Warns once if its output requires a gradient: minimizing it trains the critic the wrong
    way; minimize :class:`NegKRLoss` or :class:`HKRLoss` instead.

    Args:
        multi_gpu: batch statistics over the union of the ranks' batches (DDP; as deel-torchlip).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        true_values: not supported (deel-torchlip deprecated it): labels > 0 are the positive class.
        warn: ``False`` silences the warning (e.g. when you maximize it yourself).

    Example:
        >>> f = torch.tensor([2.0, 1.0, -1.0, 0.0])        # critic values
        >>> y = torch.tensor([1, 1, -1, -1])               # labels +-1 (or 0/1)
        >>> lipot.KRLoss()(f, y)                           # mean(2, 1) - mean(-1, 0)
        tensor(2.)
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
    r"""Module form of :func:`lipot.functional.neg_kr_loss`: minus the KR estimate, to
    **minimize** when training a critic on the KR term alone.

    Args:
        multi_gpu: batch statistics over the union of the ranks' batches (DDP; as deel-torchlip).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        true_values: not supported (deel-torchlip deprecated it): labels > 0 are the positive class.

    Example:
        >>> f = torch.tensor([2.0, 1.0, -1.0, 0.0])
        >>> lipot.NegKRLoss()(f, torch.tensor([1, 1, -1, -1]))
        tensor(-2.)
    """

    def __init__(self, multi_gpu: bool = False, reduction: str = "mean", true_values=None) -> None:
        super().__init__(reduction, multi_gpu)
        _no_true_values(true_values)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return neg_kr_loss(input, target, self.reduction)


class HingeMarginLoss(_Loss):
    r"""Module form of :func:`lipot.functional.hinge_margin_loss`: the binary hinge
    :math:`\max(0, m/2 - y f(x))` (minimize).

    Args:
        min_margin: the margin :math:`m` between the classes (each at :math:`m/2` of the boundary).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> f = torch.tensor([2.0, 0.25, -1.0])
        >>> lipot.HingeMarginLoss(min_margin=1.0, reduction="none")(f, torch.tensor([1, 1, -1]))
        tensor([0.0000, 0.2500, 0.0000])
    """

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_margin_loss(input, target, self.min_margin, self.reduction)


class HKRLoss(_Loss):
    r"""Module form of :func:`lipot.functional.hkr_loss`: the binary hinge-KR loss
    :math:`\alpha\,\mathrm{hinge}_m - (1-\alpha)\,\mathrm{KR}` (minimize; it increases the KR
    term).

    Args:
        alpha: hinge weight in [0, 1] (deel-torchlip's ``alpha``; 0: pure KR, 1: pure hinge).
        min_margin: the hinge margin :math:`m`.
        multi_gpu: batch statistics over the union of the ranks' batches (DDP; as deel-torchlip).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        true_values: not supported (deel-torchlip deprecated it): labels > 0 are the positive class.

    Example:
        >>> f = torch.tensor([2.0, 0.25, -1.0, 0.0])
        >>> y = torch.tensor([1, 1, -1, -1])
        >>> lipot.HKRLoss(alpha=0.5, min_margin=1.0)(f, y)    # 0.5 * mean hinge - 0.5 * KR
        tensor(-0.7188)
    """

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
    r"""Module form of :func:`lipot.functional.kr_multiclass_loss`: the mean over classes of
    the one-vs-rest KR estimates (to **maximize**; a metric).

    Args:
        multi_gpu: batch statistics over the union of the ranks' batches (DDP).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> lipot.KRMulticlassLoss()(logits, torch.tensor([0, 1]))
        tensor(1.5000)
    """

    def __init__(self, multi_gpu: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction, multi_gpu)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return kr_multiclass_loss(input, target, self.reduction)


class HingeMulticlassLoss(_Loss):
    r"""Module form of :func:`lipot.functional.hinge_multiclass_loss`: one-vs-rest hinges
    :math:`\max(0, m/2 - s_j f_j)`, :math:`s_j = \pm 1` for the true and the other classes
    (minimize).

    Args:
        min_margin: the margin :math:`m`.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
        >>> lipot.HingeMulticlassLoss(min_margin=1.0, reduction="none")(logits, torch.tensor([0, 1]))
        tensor([0.0000, 0.2500])
    """

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hinge_multiclass_loss(input, target, self.min_margin, self.reduction)


class HKRMulticlassLoss(_Loss):
    r"""Module form of :func:`lipot.functional.hkr_multiclass_loss`:
    :math:`\alpha\,\mathrm{hinge}_m - (1-\alpha)\,\mathrm{KR}` over one-vs-rest classes
    (minimize).

    Args:
        alpha: hinge weight in [0, 1].
        min_margin: the hinge margin :math:`m`.
        multi_gpu: batch statistics over the union of the ranks' batches (DDP).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
        >>> lipot.HKRMulticlassLoss(alpha=0.9, min_margin=1.0)(logits, torch.tensor([0, 1]))
        tensor(-0.0875)
    """

    def __init__(self, alpha: float, min_margin: float = 1.0, multi_gpu: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction, multi_gpu)
        self.alpha = check_alpha(alpha)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        with self._batch():
            return hkr_multiclass_loss(input, target, self.alpha, self.min_margin, self.reduction)


class SoftHKRMulticlassLoss(_Loss):
    r"""Soft HKR (:func:`lipot.functional.soft_hkr_multiclass_loss`) with an adaptive temperature
    :math:`\tau = \mathrm{clamp}(T\,m / \mathrm{clamp}(\mu, m, 2\cdot10^4), 0.005, 250)`, where
    :math:`\mu` is a running mean of :math:`|f|` (update
    :math:`\mu \leftarrow a\mu + (1-a)\,\mathrm{mean}|f|` in training mode only, clamped to
    [0.005, 1000]). :math:`\mu` is the buffer ``current_mean``: saved in ``state_dict``.

    Args:
        alpha: hinge weight in [0, 1].
        min_margin: margin ``m``.
        alpha_mean: running-mean factor ``a`` in [0, 1).
        temperature: ``T``.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> loss = lipot.SoftHKRMulticlassLoss(alpha=0.9, min_margin=1.0)
        >>> logits = torch.tensor([[3.0, -1.0], [0.0, 1.0]])      # mean |f| = 1.25
        >>> loss(logits, torch.tensor([0, 1])).shape
        torch.Size([])
        >>> round(float(loss.current_mean), 4)                   # 0.99 * 1 + 0.01 * 1.25
        1.0025
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
        check_input(input)
        return soft_hkr_multiclass_loss(
            input, target, self.alpha, self.min_margin, self._temperature(input), self.reduction
        )


class LseHKRMulticlassLoss(_Loss):
    r"""Module form of :func:`lipot.functional.lse_hkr_multiclass_loss`: HKR on the true
    logit against a log-sum-exp of the others (minimize).

    Args:
        alpha: hinge weight in [0, 1].
        temperature: the logit scale :math:`\tau`.
        penalty: how far above the largest other logit the log-sum-exp may be, in units of
            :math:`m/2`.
        min_margin: the hinge margin :math:`m`.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> logits = torch.tensor([[2.0, -1.0, 0.0], [0.0, 1.0, -2.0]])
        >>> loss = lipot.LseHKRMulticlassLoss(alpha=0.9, temperature=1.0, min_margin=1.0)
        >>> loss(logits, torch.tensor([0, 1])).shape
        torch.Size([])
    """

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
    r"""Module form of :func:`lipot.functional.tau_cross_entropy_loss`:
    :math:`\mathrm{CE}(\tau f, y)/\tau`, the cross-entropy at temperature :math:`1/\tau` for
    networks with a small logit range.

    Args:
        tau: the logit scale :math:`\tau > 0`.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        **kwargs: passed to ``torch.nn.functional.cross_entropy`` (``weight``, ``label_smoothing``).

    Example:
        >>> logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
        >>> loss = lipot.TauCrossEntropyLoss(tau=10.0)
        >>> bool(loss(logits, torch.tensor([0, 1])) < torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])))
        True
    """

    def __init__(self, tau: float, reduction: str = "mean", **kwargs) -> None:
        super().__init__(reduction)
        self.tau = positive_float("tau", tau)
        self.kwargs = kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tau_cross_entropy_loss(input, target, self.tau, self.reduction, **self.kwargs)


class TauBCEWithLogitsLoss(_Loss):
    r"""Module form of :func:`lipot.functional.tau_bce_with_logits_loss`:
    :math:`\mathrm{BCE}(\tau f, [y > 0])/\tau` for binary labels +-1 or {0, 1}.

    Args:
        tau: the logit scale :math:`\tau > 0`.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        **kwargs: passed to ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Example:
        >>> f = torch.tensor([0.2, -0.1])
        >>> lipot.TauBCEWithLogitsLoss(tau=1.0, reduction="none")(f, torch.tensor([1, -1]))
        tensor([0.5981, 0.6444])
    """

    def __init__(self, tau: float, reduction: str = "mean", **kwargs) -> None:
        super().__init__(reduction)
        self.tau = positive_float("tau", tau)
        self.kwargs = kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tau_bce_with_logits_loss(input, target, self.tau, self.reduction, **self.kwargs)


class CategoricalHingeLoss(_Loss):
    r"""Module form of :func:`lipot.functional.categorical_hinge_loss`:
    :math:`\max(0, m - (f_y - \max_{j\ne y} f_j))` (minimize).

    Args:
        min_margin: the margin :math:`m` between the true logit and the largest other one.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> logits = torch.tensor([[2.0, -1.0], [0.0, 0.5]])
        >>> lipot.CategoricalHingeLoss(min_margin=1.0, reduction="none")(logits, torch.tensor([0, 1]))
        tensor([0.0000, 0.5000])
    """

    def __init__(self, min_margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.min_margin = positive_float("min_margin", min_margin)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return categorical_hinge_loss(input, target, self.min_margin, self.reduction)
