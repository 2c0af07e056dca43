r"""Certified-margin losses of the certified-robustness records, on **per-pair** certificates.

For logits :math:`z = W h(x) + b` with a body :math:`h` that is :math:`L`-Lipschitz, the margin
:math:`z_i - z_j` is :math:`K_{ij}`-Lipschitz with

.. math::
    K_{ij} = L\,\lVert w_i - w_j\rVert \qquad (:func:`pairwise_lipschitz`),

so class :math:`c` is certified at radius :math:`\varepsilon` iff
:math:`z_c - z_j > \varepsilon K_{cj}` for every :math:`j \ne c`, i.e. iff
:math:`\min_{j\ne c} (z_c - z_j)/K_{cj} > \varepsilon` (:func:`pairwise_radius`: the radius
:func:`lipot.certify.certified_radius` gives with ``last_layer_weight=W``, tested). Without a
last layer (``pair_lipschitz=None``) the whole logit map is taken as :math:`L`-Lipschitz and
:math:`K_{ij} = \sqrt2 L`.

Losses (minimize; ``target`` as class indices or one-hot, validated like the HKR family):

* :func:`offset_cross_entropy_loss` -- :math:`T\,\mathrm{CE}((z - u\,e_y)/T, y)` (Prach &
  Lampert, AOL, arXiv:2208.03160);
* :func:`margin_cross_entropy_loss` -- Lipschitz-margin training:
  :math:`T\,\mathrm{CE}((z + \varepsilon K_{y\cdot})/T, y)` (Tsuzuku et al., LMT,
  arXiv:1802.04034), the cross-entropy of the worst-case logits inside the ball;
* :func:`gloro_trades_loss` -- GloRo's TRADES form (Leino et al., arXiv:2102.08452): a
  :math:`\bot` logit :math:`z_\bot = \max_{i\ne j}(z_i + \varepsilon K_{ji})`, :math:`j =
  \arg\max z`, and :math:`\mathrm{CE}(z, y) + \lambda\,\mathrm{KL}([\mathrm{softmax}(z), 0]
  \,\Vert\, \mathrm{softmax}([z, z_\bot]))`. The KL has the closed form
  :math:`\log(1 + e^{z_\bot}/\sum_i e^{z_i}) = \mathrm{softplus}(z_\bot - \mathrm{LSE}(z))`
  (every ratio :math:`p_i/q_i` is the same);
* :func:`emma_loss` -- EMMA (Hu et al., LiResNet, arXiv:2301.12549): the LMT logits with a
  per-class *adaptive* radius :math:`\varepsilon_j = \varepsilon\,\mathrm{clip}(\mathrm{sg}
  [(z_y - z_j)/(\varepsilon K_{yj})], \rho, 1)` (``sg``: no gradient), so a sample is pushed
  only as far as its current margin allows;
* :func:`logit_annealing_loss` -- Logit Annealing (Lai et al., BRONet, arXiv:2505.15174) on the
  EMMA logits: :math:`T\,(1 - p_y)^\gamma\,\mathrm{CE}_T` with :math:`\mathrm{CE}_T =
  \mathrm{CE}((\tilde z - u\,e_y)/T, y)` and :math:`p_y = e^{-\mathrm{CE}_T}`: well-classified
  samples stop pulling the margin, which leaves capacity for the others.

The modules take the classifier's last linear layer as ``head`` and recompute
:math:`K = L\,\lVert w_i - w_j\rVert` from its (constrained) weight at every call, differentiably,
so the loss trains exactly the certificate :func:`lipot.certify.certified_accuracy` reports.
Their ``eps`` attribute may be changed between steps (the radius ramp of
:func:`lipot.training.fit`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import _checks
from .._checks import positive_float
from ._common import multiclass_sign, reduce_loss, true_class_mask, check_reduction

__all__ = [
    "pairwise_lipschitz",
    "pairwise_radius",
    "offset_cross_entropy_loss",
    "margin_cross_entropy_loss",
    "gloro_trades_loss",
    "emma_loss",
    "logit_annealing_loss",
    "OffsetCrossEntropyLoss",
    "MarginCrossEntropyLoss",
    "GloroTradesLoss",
    "EMMALoss",
    "LogitAnnealingLoss",
]


# ----------------------------------------------------------------------------- helpers


def pairwise_lipschitz(weight: Tensor, body_lipschitz: float = 1.0) -> Tensor:
    r""":math:`K_{ij} = L\,\lVert w_i - w_j\rVert` for the rows :math:`w_i` of ``weight``
    ``(C, d)``: the Lipschitz constant of the margin :math:`z_i - z_j` of ``z = W h(x) + b``
    when :math:`h` is :math:`L`-Lipschitz. ``(C, C)``, zero diagonal, differentiable w.r.t.
    ``weight`` (a zero difference gets a zero gradient). Memory :math:`C^2 d`."""
    if not isinstance(weight, Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError("weight must be a floating-point (C, d) tensor (the last layer's weight)")
    lipschitz = positive_float("body_lipschitz", body_lipschitz)
    squared = (weight[:, None, :] - weight[None, :, :]).square().sum(-1)
    positive = squared > 0
    # sqrt with a zero (not NaN) gradient on the diagonal
    norms = torch.where(positive, squared.clamp_min(torch.finfo(weight.dtype).tiny).sqrt(), 0.0)
    return lipschitz * norms


def _class_indices(input: Tensor, target: Tensor) -> Tensor:
    """Validated class indices from indices (integer-valued floats included) or one-hot
    ``target`` (same rules as the HKR family)."""
    if isinstance(target, Tensor) and target.dim() == 1:
        target = _checks.integral_indices("target", target)
    if isinstance(target, Tensor) and target.dim() == 1 and not target.is_floating_point():
        multiclass_sign(input, target)
        return target
    return true_class_mask(multiclass_sign(input, target)).to(torch.int64).argmax(-1)


def _pair_matrix(input: Tensor, pair_lipschitz: Tensor | None) -> Tensor:
    c = input.shape[1]
    if pair_lipschitz is None:
        k = torch.full((c, c), math.sqrt(2.0), dtype=input.dtype, device=input.device)
        return k.fill_diagonal_(0.0)
    if not isinstance(pair_lipschitz, Tensor) or tuple(pair_lipschitz.shape) != (c, c):
        raise ValueError(
            f"pair_lipschitz must be a ({c}, {c}) tensor for {c} logits (see pairwise_lipschitz), "
            f"got {getattr(pair_lipschitz, 'shape', type(pair_lipschitz).__name__)}"
        )
    return pair_lipschitz.to(input.dtype)


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_eps(eps: float) -> float:
    return _non_negative("eps", eps)


def _check_fraction(min_fraction: float) -> float:
    return _checks.fraction("min_fraction", min_fraction)


def pairwise_radius(input: Tensor, pair_lipschitz: Tensor | None = None, target: Tensor | None = None) -> Tensor:
    r"""Per-pair certified radius of class :math:`c` (``target``, or the predicted class):
    :math:`\min_{j\ne c} (z_c - z_j)/K_{cj}` (negative when :math:`c` is not predicted).
    With ``target=None`` it equals :func:`lipot.certify.certified_radius`."""
    k = _pair_matrix(input, pair_lipschitz)
    c = input.argmax(1) if target is None else _class_indices(input, target)
    gaps = input.gather(1, c[:, None]) - input
    ratio = gaps / k[c]
    return ratio.masked_fill(F.one_hot(c, input.shape[1]).bool(), math.inf).amin(1)


def _worst_logits(input: Tensor, target: Tensor, eps: float, pair_lipschitz: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(z + eps K[y], y)``: each other logit raised by its worst case inside the ball."""
    y = _class_indices(input, target)
    return input + eps * _pair_matrix(input, pair_lipschitz)[y], y


# ----------------------------------------------------------------------------- functional


def offset_cross_entropy_loss(input: Tensor, target: Tensor, offset: float = math.sqrt(2.0),
                              temperature: float = 0.25, reduction: str = "mean") -> Tensor:
    r""":math:`T\,\mathrm{CE}((z - u\,e_y)/T, y)`: the true logit must beat the others by about
    ``offset`` :math:`u` (Prach & Lampert, arXiv:2208.03160; their MNIST/CIFAR setting
    :math:`u = \sqrt2\,\varepsilon`-scale, :math:`T = 1/4`)."""
    y = _class_indices(input, target)
    u = _non_negative("offset", offset)
    t = positive_float("temperature", temperature)
    shifted = (input - u * F.one_hot(y, input.shape[1]).to(input.dtype)) / t
    return reduce_loss(t * F.cross_entropy(shifted, y, reduction="none"), check_reduction(reduction))


def margin_cross_entropy_loss(input: Tensor, target: Tensor, eps: float, pair_lipschitz: Tensor | None = None,
                              temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    r"""Lipschitz-margin training: :math:`T\,\mathrm{CE}((z + \varepsilon K_{y\cdot})/T, y)`
    (Tsuzuku et al., arXiv:1802.04034)."""
    worst, y = _worst_logits(input, target, _check_eps(eps), pair_lipschitz)
    t = positive_float("temperature", temperature)
    return reduce_loss(t * F.cross_entropy(worst / t, y, reduction="none"), check_reduction(reduction))


def _bot_logit(input: Tensor, eps: float, k: Tensor) -> Tensor:
    r""":math:`\max_{i\ne j}(z_i + \varepsilon K_{ji})` with :math:`j = \arg\max z`."""
    j = input.argmax(1)
    raised = (input + eps * k[j]).masked_fill(F.one_hot(j, input.shape[1]).bool(), -math.inf)
    return raised.amax(1)


def gloro_trades_loss(input: Tensor, target: Tensor, eps: float, pair_lipschitz: Tensor | None = None,
                      lam: float = 1.5, reduction: str = "mean") -> Tensor:
    r"""GloRo's TRADES loss: :math:`\mathrm{CE}(z, y) + \lambda\,\mathrm{softplus}(z_\bot -
    \mathrm{LSE}(z))` (the KL term in closed form, see the module docstring; Leino et al.,
    arXiv:2102.08452, who use :math:`\lambda` from 1.2 to 3 on MNIST)."""
    y = _class_indices(input, target)
    eps = _check_eps(eps)
    lam = _non_negative("lam", lam)
    bot = _bot_logit(input, eps, _pair_matrix(input, pair_lipschitz))
    kl = F.softplus(bot - torch.logsumexp(input, 1))
    return reduce_loss(F.cross_entropy(input, y, reduction="none") + lam * kl, check_reduction(reduction))


def _emma_logits(input: Tensor, target: Tensor, eps: float, pair_lipschitz: Tensor | None,
                 min_fraction: float) -> tuple[Tensor, Tensor]:
    y = _class_indices(input, target)
    eps = _check_eps(eps)
    rho = _check_fraction(min_fraction)
    k = _pair_matrix(input, pair_lipschitz)[y]
    gaps = input.gather(1, y[:, None]) - input  # z_y - z_j
    with torch.no_grad():
        fraction = (gaps / (eps * k).clamp_min(1e-12)).clamp(rho, 1.0)
    return input + fraction * eps * k, y


def emma_loss(input: Tensor, target: Tensor, eps: float, pair_lipschitz: Tensor | None = None,
              min_fraction: float = 0.01, reduction: str = "mean") -> Tensor:
    r"""EMMA: :math:`\mathrm{CE}(z + \varepsilon_j K_{yj}, y)` with the detached adaptive radius
    :math:`\varepsilon_j = \varepsilon\,\mathrm{clip}((z_y - z_j)/(\varepsilon K_{yj}),`
    ``min_fraction``:math:`, 1)` (Hu et al., arXiv:2301.12549)."""
    worst, y = _emma_logits(input, target, eps, pair_lipschitz, min_fraction)
    return reduce_loss(F.cross_entropy(worst, y, reduction="none"), check_reduction(reduction))


def logit_annealing_loss(input: Tensor, target: Tensor, eps: float, pair_lipschitz: Tensor | None = None,
                         offset: float = 2.0, temperature: float = 0.75, gamma: float = 5.0,
                         min_fraction: float = 0.01, reduction: str = "mean") -> Tensor:
    r"""Logit Annealing on the EMMA logits :math:`\tilde z`:
    :math:`T\,(1 - p_y)^\gamma\,\mathrm{CE}((\tilde z - u\,e_y)/T, y)`,
    :math:`p_y = \exp(-\mathrm{CE}(\dots))` (Lai et al., arXiv:2505.15174; their defaults
    :math:`u = 2`, :math:`T = 0.75`, :math:`\gamma = 5`)."""
    worst, y = _emma_logits(input, target, eps, pair_lipschitz, min_fraction)
    gamma = _non_negative("gamma", gamma)
    per_sample = offset_cross_entropy_loss(worst, y, offset, temperature, reduction="none")
    t = float(temperature)
    ce = per_sample / t
    return reduce_loss((1.0 - torch.exp(-ce)) ** gamma * per_sample, check_reduction(reduction))


# ----------------------------------------------------------------------------- modules


_PAIR_ARGS = r"""        eps: training radius :math:`\varepsilon` (may change between steps, e.g. by a radius ramp).
        head: the classifier's last linear layer (a module with a ``(C, d)`` ``weight``, read at
            every call, so :math:`K_{ij} = L\lVert w_i - w_j\rVert` follows training), or ``None``
            when the whole logit map is ``body_lipschitz``-Lipschitz (:math:`K_{ij} = \sqrt2 L`).
        body_lipschitz: a verified bound :math:`L` of the network before ``head`` (1 for lipot's
            1-Lipschitz bodies; see :func:`lipot.lipschitz_bound`).
"""
_PAIR_EXAMPLE = """        >>> body = lipot.SpectralLinear(4, 8)                  # 1-Lipschitz body
        >>> head = lipot.SpectralLinear(8, 3, eps_bjorck=None)  # the last layer, read by the loss
        >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
"""


class _PairLoss(nn.Module):
    """Common part of the per-pair loss modules: ``eps``, the head and the body bound (their
    arguments are documented on each module)."""

    def __init__(self, eps: float, head: nn.Module | None = None, body_lipschitz: float = 1.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.eps = _check_eps(eps)
        if head is not None and not isinstance(getattr(head, "weight", None), Tensor):
            raise TypeError("head must be the last linear layer (a module with a weight tensor) or None")
        self.__dict__["head"] = head  # not a submodule: its weights belong to the model
        self.body_lipschitz = positive_float("body_lipschitz", body_lipschitz)
        self.reduction = check_reduction(reduction)

    def pair_lipschitz(self) -> Tensor | None:
        """:math:`K` from the head's current weight (``None`` without a head)."""
        if self.head is None:
            return None
        return pairwise_lipschitz(self.head.weight, self.body_lipschitz)

    def _k(self, input: Tensor) -> Tensor:
        if self.head is None:
            return _pair_matrix(input, None) * self.body_lipschitz
        return self.pair_lipschitz()

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}, body_lipschitz={self.body_lipschitz:g}, reduction={self.reduction!r}"


class OffsetCrossEntropyLoss(nn.Module):
    r"""Module form of :func:`lipot.functional.offset_cross_entropy_loss`:
    :math:`T\,\mathrm{CE}((z - u\,e_y)/T, y)`, the cross-entropy of AOL (Prach & Lampert,
    arXiv:2208.03160): the true logit must beat the others by about the offset :math:`u`.

    Args:
        offset: the offset :math:`u \ge 0`.
        temperature: the temperature :math:`T > 0`.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
        >>> logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
        >>> loss = lipot.OffsetCrossEntropyLoss(offset=1.0, temperature=0.25)
        >>> loss(logits, torch.tensor([0, 1]))   # sample 1: margin 3 > 1; sample 2: margin 1 = u
        tensor(0.0867)
    """

    def __init__(self, offset: float = math.sqrt(2.0), temperature: float = 0.25, reduction: str = "mean") -> None:
        super().__init__()
        self.offset = _non_negative("offset", offset)
        self.temperature = positive_float("temperature", temperature)
        self.reduction = check_reduction(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return offset_cross_entropy_loss(input, target, self.offset, self.temperature, self.reduction)


class MarginCrossEntropyLoss(_PairLoss):
    __doc__ = (
        r"""Module form of :func:`lipot.functional.margin_cross_entropy_loss`: Lipschitz-margin
    training, :math:`T\,\mathrm{CE}((z + \varepsilon K_{y\cdot})/T, y)`, the cross-entropy of the
    worst-case logits inside the ball of radius :math:`\varepsilon` (Tsuzuku et al.,
    arXiv:1802.04034).

    Args:
"""
        + _PAIR_ARGS
        + r"""        temperature: the temperature :math:`T > 0`.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
"""
        + _PAIR_EXAMPLE
        + r"""        >>> loss = lipot.MarginCrossEntropyLoss(eps=0.5, head=head)
        >>> loss(head(body(x)), y).backward()                  # trains the certificate itself
        >>> all(p.grad is not None for p in head.parameters())
        True
    """
    )

    def __init__(self, eps: float, head: nn.Module | None = None, body_lipschitz: float = 1.0,
                 temperature: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(eps, head, body_lipschitz, reduction)
        self.temperature = positive_float("temperature", temperature)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return margin_cross_entropy_loss(input, target, self.eps, self._k(input), self.temperature, self.reduction)


class GloroTradesLoss(_PairLoss):
    __doc__ = (
        r"""Module form of :func:`lipot.functional.gloro_trades_loss`: GloRo's TRADES loss
    :math:`\mathrm{CE}(z, y) + \lambda\,\mathrm{softplus}(z_\bot - \mathrm{LSE}(z))` with the
    :math:`\bot` logit :math:`z_\bot = \max_{i\ne j}(z_i + \varepsilon K_{ji})`, :math:`j = \arg\max z`
    (Leino et al., arXiv:2102.08452).

    Args:
"""
        + _PAIR_ARGS
        + r"""        lam: the weight :math:`\lambda \ge 0` of the KL term (GloRo uses 1.2 to 3 on MNIST).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
"""
        + _PAIR_EXAMPLE
        + r"""        >>> loss = lipot.GloroTradesLoss(eps=0.5, head=head, lam=1.5)
        >>> bool(loss(head(body(x)), y) > torch.nn.functional.cross_entropy(head(body(x)), y))
        True
    """
    )

    def __init__(self, eps: float, head: nn.Module | None = None, body_lipschitz: float = 1.0,
                 lam: float = 1.5, reduction: str = "mean") -> None:
        super().__init__(eps, head, body_lipschitz, reduction)
        self.lam = _non_negative("lam", lam)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return gloro_trades_loss(input, target, self.eps, self._k(input), self.lam, self.reduction)


class EMMALoss(_PairLoss):
    __doc__ = (
        r"""Module form of :func:`lipot.functional.emma_loss`: the Lipschitz-margin logits with a
    per-class adaptive radius :math:`\varepsilon_j = \varepsilon\,\mathrm{clip}((z_y - z_j)/
    (\varepsilon K_{yj}), \rho, 1)` (no gradient through it), so that a sample is pushed only as
    far as its current margin allows (Hu et al., LiResNet, arXiv:2301.12549). lipot's
    ``emma`` recipe trains with it.

    Args:
"""
        + _PAIR_ARGS
        + r"""        min_fraction: the smallest fraction :math:`\rho \in (0, 1]` of the radius used.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
"""
        + _PAIR_EXAMPLE
        + r"""        >>> loss = lipot.EMMALoss(eps=1.58, head=head)
        >>> loss.eps = 0.5                                    # a radius ramp changes it between steps
        >>> loss(head(body(x)), y).shape
        torch.Size([])
    """
    )

    def __init__(self, eps: float, head: nn.Module | None = None, body_lipschitz: float = 1.0,
                 min_fraction: float = 0.01, reduction: str = "mean") -> None:
        super().__init__(eps, head, body_lipschitz, reduction)
        self.min_fraction = _check_fraction(min_fraction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return emma_loss(input, target, self.eps, self._k(input), self.min_fraction, self.reduction)


class LogitAnnealingLoss(_PairLoss):
    __doc__ = (
        r"""Module form of :func:`lipot.functional.logit_annealing_loss`: Logit Annealing on the
    EMMA logits :math:`\tilde z`, :math:`T\,(1 - p_y)^\gamma\,\mathrm{CE}((\tilde z - u\,e_y)/T, y)`
    with :math:`p_y = \exp(-\mathrm{CE}(\dots))` (Lai et al., BRONet, arXiv:2505.15174): well
    classified samples stop pulling the margin.

    Args:
"""
        + _PAIR_ARGS
        + r"""        offset: the offset :math:`u \ge 0`.
        temperature: the temperature :math:`T > 0`.
        gamma: the annealing exponent :math:`\gamma \ge 0`.
        min_fraction: the smallest fraction of the radius (as :class:`EMMALoss`).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.

    Example:
"""
        + _PAIR_EXAMPLE
        + r"""        >>> loss = lipot.LogitAnnealingLoss(eps=0.5, head=head)
        >>> bool(loss(head(body(x)), y) >= 0)
        True
    """
    )

    def __init__(self, eps: float, head: nn.Module | None = None, body_lipschitz: float = 1.0,
                 offset: float = 2.0, temperature: float = 0.75, gamma: float = 5.0,
                 min_fraction: float = 0.01, reduction: str = "mean") -> None:
        super().__init__(eps, head, body_lipschitz, reduction)
        self.offset = _non_negative("offset", offset)
        self.temperature = positive_float("temperature", temperature)
        self.gamma = _non_negative("gamma", gamma)
        self.min_fraction = _check_fraction(min_fraction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return logit_annealing_loss(input, target, self.eps, self._k(input), self.offset, self.temperature,
                                    self.gamma, self.min_fraction, self.reduction)
