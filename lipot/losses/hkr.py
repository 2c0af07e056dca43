"""Kantorovich-Rubinstein, hinge and hinge-KR losses (binary, multiclass, soft and
log-sum-exp HKR), the temperature-scaled cross-entropies and the categorical hinge, as
functions and ``torch.nn`` modules with deel-torchlip's names and arguments (conventions in
:mod:`lipot.losses`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from .. import _checks
from .. import distributed as _dist
from .._checks import positive_float
from ._common import (
    binary_sign,
    check_input,
    checks_enabled,
    multiclass_sign,
    reduce_loss,
    true_class_mask,
    check_alpha,
    check_reduction,
    with_multi_gpu,
)

__all__ = [
    "weighted_kr",
    "kr_loss",
    "neg_kr_loss",
    "hinge_margin_loss",
    "hkr_loss",
    "kr_multiclass_loss",
    "hinge_multiclass_loss",
    "hkr_multiclass_loss",
    "soft_hkr_multiclass_loss",
    "lse_hkr_multiclass_loss",
    "tau_cross_entropy_loss",
    "tau_bce_with_logits_loss",
    "categorical_hinge_loss",
]


# ----------------------------------------------------------------------------- KR / hinge


def _kr_weights(sign: Tensor) -> Tensor:
    r"""Per-entry weights :math:`w` with :math:`\frac1N\sum_i w_{ic} f_{ic} = \mathrm{mean}_{P_c}
    f_c - \mathrm{mean}_{N_c} f_c` for each column ``c`` (0 for a column missing a class)."""
    cdtype = torch.promote_types(sign.dtype, torch.float32)  # exact counts even for half inputs
    pos = (sign > 0).to(cdtype)
    counts = torch.cat([torch.full((1,), float(sign.shape[0]), dtype=cdtype, device=sign.device), pos.sum(0)])
    if _dist.active():  # global-batch counts (DDP): the weights are those of the union of the ranks' batches
        counts = _dist.all_sum(counts)
    n, n_pos = counts[0], counts[1:]
    n_neg = n - n_pos
    valid = (n_pos > 0) & (n_neg > 0)
    if checks_enabled() and not bool(valid.any()):
        raise ValueError(
            "the KR term needs both classes in the batch (positive and negative labels); use "
            "larger or shuffled batches (and drop_last=True)"
        )
    w_pos = n / n_pos.clamp(min=1)
    w_neg = n / n_neg.clamp(min=1)
    weights = torch.where(sign > 0, w_pos, -w_neg)
    return (weights * valid.to(cdtype) / valid.sum().clamp(min=1).to(cdtype)).to(sign.dtype)


def _kr_per_sample(input: Tensor, sign: Tensor) -> Tensor:
    flat = input.reshape(input.shape[0], -1)
    return (_kr_weights(sign.reshape(flat.shape)) * flat).sum(-1)


def weighted_kr(fx: Tensor, fy: Tensor, weights_x: Tensor, weights_y: Tensor,
                totals: tuple[Tensor, Tensor] | None = None) -> Tensor:
    r"""KR value between two weighted samples, along the last dimension:

    .. math::
        \mathrm{KR} = \frac{\sum_i a_i f(x_i)}{\sum_i a_i} - \frac{\sum_j b_j f(y_j)}{\sum_j b_j}
        \;\le\; W_1 \quad\text{(in expectation, for 1-Lipschitz } f\text{)}.

    ``fx``, ``weights_x``: ``(..., n)``; ``fy``, ``weights_y``: ``(..., m)`` (a leading batch of
    critics gives one value each). ``totals`` replaces the weight sums (the global sums of a
    distributed batch). A row with zero total weight contributes 0.
    """
    tiny = torch.finfo(fx.dtype).tiny
    sx, sy = (weights_x.sum(-1), weights_y.sum(-1)) if totals is None else totals
    return (fx * weights_x).sum(-1) / sx.clamp_min(tiny) - (fy * weights_y).sum(-1) / sy.clamp_min(tiny)


@with_multi_gpu
def kr_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""KR estimate :math:`\mathrm{mean}_{y>0} f - \mathrm{mean}_{y\le0} f` (to **maximize**).

    ``input``: critic values ``(N,)`` or ``(N, 1)``; ``target``: labels +-1 or {0, 1}. With
    ``reduction='none'`` the per-sample values average to the estimate. A multilabel ``(N, C)``
    input with an ``(N, C)`` target gives the average over the columns of their KR estimates
    (as deel-torchlip; a column whose batch lacks one of the two labels is left out). For a 1-Lipschitz ``f``
    its expectation is a lower bound on :math:`W_1(P, N)` (Kantorovich-Rubinstein duality).
    """
    return reduce_loss(_kr_per_sample(input, binary_sign(input, target)), reduction)


@with_multi_gpu
def neg_kr_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """``-kr_loss``: minimize it to maximize the KR estimate."""
    return -kr_loss(input, target, reduction)


def _hinge(input: Tensor, sign: Tensor, min_margin: float) -> Tensor:
    return F.relu(0.5 * positive_float("min_margin", min_margin) - sign * input)


def hinge_margin_loss(
    input: Tensor, target: Tensor, min_margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Binary hinge :math:`\max(0, m/2 - y f(x))` (minimize): pushes the two classes at least
    ``min_margin`` apart (each at distance :math:`m/2` of the boundary), deel-torchlip's form.
    A multilabel ``(N, C)`` input with an ``(N, C)`` target averages the columns' hinges."""
    sign = binary_sign(input, target)
    return reduce_loss(_hinge(input, sign, min_margin).reshape(input.shape[0], -1).mean(-1), reduction)


@with_multi_gpu
def hkr_loss(
    input: Tensor, target: Tensor, alpha: float, min_margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Binary HKR :math:`\alpha\,\mathrm{hinge} - (1-\alpha)\,\mathrm{KR}` (minimize),
    :math:`0\le\alpha\le1`. See the module docstring for the conventions; multilabel
    ``(N, C)`` inputs as :func:`kr_loss` and :func:`hinge_margin_loss`."""
    alpha = check_alpha(alpha)
    sign = binary_sign(input, target)
    hinge = _hinge(input, sign, min_margin).reshape(input.shape[0], -1).mean(-1)
    kr = _kr_per_sample(input, sign)
    return reduce_loss(alpha * hinge - (1.0 - alpha) * kr, reduction)


@with_multi_gpu
def kr_multiclass_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""Average over classes of the one-vs-rest KR estimates (to **maximize**):
    :math:`\frac1C\sum_c \mathrm{mean}_{y=c} f_c - \mathrm{mean}_{y\ne c} f_c`. A class missing
    from the batch (or present in every sample) is left out of the average."""
    sign = multiclass_sign(input, target)
    return reduce_loss((_kr_weights(sign) * input).sum(-1), reduction)


def _hinge_multiclass(input: Tensor, sign: Tensor, min_margin: float) -> Tensor:
    hinge = _hinge(input, sign, min_margin)
    hinge = torch.where(sign > 0, hinge * (input.shape[-1] - 1.0), hinge)
    return hinge.mean(-1)


def hinge_multiclass_loss(
    input: Tensor, target: Tensor, min_margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""One-vs-rest hinge: :math:`\frac1C\big[(C-1)\max(0, m/2 - f_y) + \sum_{j\ne y}
    \max(0, m/2 + f_j)\big]` (minimize)."""
    sign = multiclass_sign(input, target)
    return reduce_loss(_hinge_multiclass(input, sign, min_margin), reduction)


@with_multi_gpu
def hkr_multiclass_loss(
    input: Tensor, target: Tensor, alpha: float, min_margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Multiclass HKR :math:`\alpha\,\mathrm{hinge} - (1-\alpha)\,\mathrm{KR}` (minimize)."""
    alpha = check_alpha(alpha)
    sign = multiclass_sign(input, target)
    hinge = _hinge_multiclass(input, sign, min_margin)
    kr = (_kr_weights(sign) * input).sum(-1)
    return reduce_loss(alpha * hinge - (1.0 - alpha) * kr, reduction)


# ----------------------------------------------------------------------------- soft / lse HKR


def soft_hkr_multiclass_loss(
    input: Tensor,
    target: Tensor,
    alpha: float,
    min_margin: float,
    temperature: Tensor | float,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft HKR: with weights :math:`s_y = 1` and :math:`s_j = \mathrm{softmax}_{j\ne y}(\tau f_j)`,

    .. math::
        \ell = \sum_c s_c\big[(1-\alpha)(-\sigma_c f_c) + \alpha\max(0, m/2 - \sigma_c f_c)\big],
        \qquad \sigma_y = 1,\ \sigma_{j\ne y} = -1,

    so the hinge and KR terms focus on the closest wrong classes. ``temperature`` is the
    :math:`\tau` actually used (:class:`lipot.SoftHKRMulticlassLoss` adapts it); it gets no gradient.
    """
    alpha = check_alpha(alpha)
    sign = multiclass_sign(input, target)
    true = true_class_mask(sign)
    if not isinstance(temperature, Tensor):
        temperature = positive_float("temperature", temperature)
    tau = torch.as_tensor(temperature, dtype=input.dtype, device=input.device).detach()
    others = torch.where(true, torch.finfo(input.dtype).min, tau * input.detach())
    weights = torch.where(true, 1.0, torch.softmax(others, dim=-1)).detach()
    signed = sign * input
    per_class = (1.0 - alpha) * (-signed) + alpha * _hinge(signed, 1.0, min_margin)
    return reduce_loss((weights * per_class).sum(-1), reduction)


def lse_hkr_multiclass_loss(
    input: Tensor,
    target: Tensor,
    alpha: float = 1.0,
    min_margin: float = 1.0,
    temperature: float = 1.0,
    penalty: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    r"""HKR on the true logit against a log-sum-exp of the others: with :math:`z = \tau f`,
    :math:`t = \log(C-1)/(p\,m/2)` and :math:`s = \frac1t\log\sum_{j\ne y} e^{t z_j}`
    (:math:`\max_j z_j \le s \le \max_j z_j + p\,m/2`),

    .. math::
        \ell = (1-\alpha)\,(s - z_y) + \alpha\,[\max(0, m/2 - z_y) + \max(0, m/2 + s)].

    Needs at least 3 classes (use :func:`hkr_loss` for two).
    """
    alpha = check_alpha(alpha)
    sign = multiclass_sign(input, target)
    true = true_class_mask(sign)
    c = input.shape[-1]
    if c < 3:
        raise ValueError(f"lse_hkr_multiclass_loss needs >= 3 classes, got {c}; use hkr_loss")
    min_margin = positive_float("min_margin", min_margin)
    z = input * positive_float("temperature", temperature)
    t = math.log(c - 1) / (positive_float("penalty", penalty) * 0.5 * min_margin)
    pos = (z * true).sum(-1)
    lse_neg = torch.logsumexp(torch.where(true, -math.inf, t * z), dim=-1) / t
    hinge = F.relu(0.5 * min_margin - pos) + F.relu(0.5 * min_margin + lse_neg)
    return reduce_loss((1.0 - alpha) * (lse_neg - pos) + alpha * hinge, reduction)


# ----------------------------------------------------------------------------- others


def tau_cross_entropy_loss(
    input: Tensor, target: Tensor, tau: float, reduction: str = "mean", **kwargs
) -> Tensor:
    r""":math:`\mathrm{CE}(\tau f, y)/\tau`: cross-entropy at temperature :math:`1/\tau` for
    networks with a small logit range (Béthune et al., arXiv:2104.05097). ``target``: class
    indices or class probabilities of ``input``'s shape."""
    check_input(input)
    tau = positive_float("tau", tau)
    if target.shape == input.shape:
        target = target.to(input.dtype)
    elif input.dim() != 2 or tuple(target.shape) != (input.shape[0],):
        raise ValueError(f"target must be class indices ({input.shape[0]},) or class probabilities "
                         f"{tuple(input.shape)} for input (N, C) {tuple(input.shape)}, got {tuple(target.shape)}")
    else:
        target = _checks.integral_indices("target", target)
        target = _checks.class_indices("target", target, input.shape[1]) if checks_enabled() else target
    reduction = check_reduction(reduction)
    if _dist.active():
        _no_class_weight(kwargs)
        return reduce_loss(F.cross_entropy(input * tau, target, reduction="none", **kwargs) / tau, reduction)
    return F.cross_entropy(input * tau, target, reduction=reduction, **kwargs) / tau


def _no_class_weight(kwargs: dict) -> None:
    if kwargs.get("weight") is not None or kwargs.get("pos_weight") is not None:
        raise ValueError("class weights (weight= / pos_weight=) are not supported inside "
                         "lipot.distributed.global_batch(); their mean is weighted per batch")


def tau_bce_with_logits_loss(
    input: Tensor, target: Tensor, tau: float, reduction: str = "mean", **kwargs
) -> Tensor:
    r""":math:`\mathrm{BCE}(\tau f, [y > 0])/\tau` for binary labels +-1 or {0, 1}."""
    sign = binary_sign(input, target)
    tau = positive_float("tau", tau)
    reduction = check_reduction(reduction)
    if _dist.active():
        _no_class_weight(kwargs)
        return reduce_loss(F.binary_cross_entropy_with_logits(
            input * tau, (sign > 0).to(input.dtype), reduction="none", **kwargs) / tau, reduction)
    return F.binary_cross_entropy_with_logits(
        input * tau, (sign > 0).to(input.dtype), reduction=reduction, **kwargs
    ) / tau


def categorical_hinge_loss(
    input: Tensor, target: Tensor, min_margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r""":math:`\max(0, m - (f_y - \max_{j\ne y} f_j))` (minimize)."""
    sign = multiclass_sign(input, target)
    true = true_class_mask(sign)
    pos = (input * true).sum(-1)
    neg = torch.where(true, -math.inf, input).amax(-1)
    return reduce_loss(F.relu(positive_float("min_margin", min_margin) - (pos - neg)), reduction)
