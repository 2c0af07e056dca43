r"""Robustness certificates computed from *verified* Lipschitz bounds.

A classifier whose logit map is :math:`L`-Lipschitz in :math:`\ell_2` cannot change its decision
within a ball of radius :math:`r(x)` around :math:`x` (Tsuzuku, Sato & Sugiyama,
arXiv:1802.04034; Leino, Wang & Fredrikson, GloRo, arXiv:2102.08452):

* binary (one logit, sign = class): :math:`r = |f(x)|/L`;
* multiclass, whole logit map :math:`L`-Lipschitz: :math:`r = (f_{(1)} - f_{(2)})/(\sqrt2\,L)`,
  because :math:`f_y - f_j = (e_y - e_j)^\top f` is :math:`\sqrt2 L`-Lipschitz;
* multiclass, each logit :math:`L`-Lipschitz on its own (independently normalized rows, e.g.
  ``FrobeniusLinear(disjoint_neurons=True)``): :math:`r = (f_{(1)} - f_{(2)})/(2L)`;
* per pair, last layer :math:`W` on an :math:`L_b`-Lipschitz body: :math:`r = \min_{j\ne y}
  (f_y - f_j)/(\lVert w_y - w_j\rVert L_b)` (always valid, and never smaller than the
  :math:`\sqrt2` form with :math:`L = \lVert W\rVert_2 L_b`).

:math:`L` must bound the network as it is, so :func:`lipschitz_bound` computes it from the
actual weights: the product of each layer's exact operator norm (float64 SVD for linear layers;
for convolutions, the exact norm of a circular convolution that contains the zero-padded,
strided one, or of the circular convolution itself, computed by FFT and a polyphase
decomposition in :mod:`lipot.linalg.operator_norms`), not the layers' nominal claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .. import _checks
from .leaf_bounds import leaf_bound
from ..nn.base import evaluating, nominal_lipschitz
from ..linalg.plain_call import check_plain_call
from ..nn.residual import LipResidual
from ..linalg.operator_norms import effective_weight, conv_operator_norm, conv_operator_norm_lower, linear_operator_norm

__all__ = [
    "LayerBound",
    "lipschitz_bound",
    "lipschitz_report",
    "linear_operator_norm",
    "conv_operator_norm",
    "conv_operator_norm_lower",
    "certified_radius",
    "certified_accuracy",
    "CertifiedAccuracy",
]


@dataclass
class LayerBound:
    """One layer's entry in a :func:`lipschitz_report`."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    bound: float
    nominal: float | None
    method: str


# ----------------------------------------------------------------------------- the model walk


def _nominal_or_none(module: nn.Module) -> float | None:
    try:
        return nominal_lipschitz(module)
    except ValueError:
        return None


def _walk(module: nn.Module, shape: tuple[int, ...], name: str, report: list[LayerBound]):
    """Bound ``module`` on inputs of ``shape`` (without batch); returns (bound, output shape)."""
    if isinstance(module, nn.Sequential):
        if type(module).forward is not nn.Sequential.forward:
            raise ValueError(
                f"lipschitz_bound: {type(module).__name__} subclasses Sequential with its own "
                "forward; lipot can only bound a plain chain of modules"
            )
        check_plain_call(module)
        bound = 1.0
        for child_name, child in module.named_children():
            child_bound, shape = _walk(child, shape, f"{name}.{child_name}" if name else child_name, report)
            bound *= child_bound
        return bound, shape
    if isinstance(module, LipResidual) and module.block is not None:
        check_plain_call(module)
        inner, out_shape = _walk(module.block, shape, f"{name}.block", report)
        alpha = float(torch.sigmoid(module.alpha.detach().double()))
        bound = module.k_coef_lip * (alpha + (1 - alpha) * inner)
        report.append(LayerBound(name, "LipResidual", shape, bound, _nominal_or_none(module), "convex combination"))
        return bound, out_shape
    bound, method = leaf_bound(module, shape)
    kind = parametrize.type_before_parametrizations(module).__name__
    report.append(LayerBound(name, kind, shape, bound, _nominal_or_none(module), method))
    reference = next(iter(module.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    with torch.no_grad():
        out = module(torch.zeros(1, *shape, device=device, dtype=dtype))
    return bound, tuple(out.shape[1:])


def lipschitz_report(model: nn.Module, input_shape: Sequence[int]) -> tuple[float, list[LayerBound]]:
    """:func:`lipschitz_bound` and the per-layer entries it multiplied."""
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(
            f"input_shape must be the shape of one sample without the batch axis, e.g. (1, 28, 28); "
            f"got {tuple(input_shape)}"
        )
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        report: list[LayerBound] = []
        bound, _ = _walk(model, shape, "", report)
    finally:
        for m, mode in modes.items():
            m.train(mode)
    return bound, report


def lipschitz_bound(model: nn.Module, input_shape: Sequence[int]) -> float:
    r"""Verified upper bound on the :math:`\ell_2` Lipschitz constant of ``model`` (in eval
    mode) on inputs of ``input_shape`` (one sample, no batch axis), from its current weights.

    It is the product of per-layer bounds: exact float64 spectral norms for linear layers,
    :func:`conv_operator_norm` for zero-padded convolutions (exact for the circular embedding,
    hence an upper bound for the actual padding and stride), the exact FFT norm on the input
    torus for circular padding whose stride windows tile the input (else a count bound times the
    kernel norm), the smaller of that count bound and (norm of the padding's copies) × (valid
    convolution's FFT norm) for reflect / replicate padding, ``max |gamma|/sqrt(var + eps)`` for eval-mode batch norm, and the
    analytic constants of weight-free layers. ``nn.Sequential``, ``lipot.Sequential`` and
    ``LipResidual`` are walked; anything else raises ``ValueError`` (never a guess).

    Args:
        model: the network: lipot layers, the ``torch.nn`` layers lipot can bound (linear,
            convolutions, eval-mode batch norm, pointwise activations, pooling, reshapes), and
            ``nn.Sequential`` / ``lipot.Sequential`` / ``LipResidual`` containers of them.
        input_shape: the shape of one input, without the batch axis (``(784,)``, ``(1, 28, 28)``):
            convolution bounds depend on the input size.

    Example:
        >>> model = torch.nn.Sequential(lipot.SpectralLinear(8, 16), lipot.GroupSort2(),
        ...                             torch.nn.Linear(16, 2))
        >>> bound = lipot.lipschitz_bound(model, (8,))        # float64 SVD of the plain last layer
        >>> s = torch.linalg.matrix_norm(model[2].weight.detach().double(), ord=2)
        >>> abs(bound - float(s)) < 1e-3                     # the first layers are 1-Lipschitz
        True
    """
    return lipschitz_report(model, input_shape)[0]


# ----------------------------------------------------------------------------- certificates


def certified_radius(
    logits: Tensor,
    lipschitz: float,
    last_layer_weight: Tensor | None = None,
    independent_rows: bool = False,
) -> Tensor:
    r"""Certified :math:`\ell_2` radius of the *predicted* class for each sample.

    Args:
        logits: ``(N,)`` or ``(N, 1)`` for a binary classifier (class = sign), ``(N, C)`` else.
        lipschitz: :math:`L`, a verified bound of the logit map -- or, with ``last_layer_weight``,
            of the body that feeds the last linear layer.
        last_layer_weight: ``(C, d)`` weight :math:`W` of the last linear layer; gives the
            per-pair radius :math:`\min_{j\ne y}(f_y - f_j)/(\lVert w_y - w_j\rVert L)`.
        independent_rows: each logit is :math:`L`-Lipschitz on its own but the logit map is not
            known to be (e.g. ``FrobeniusLinear(disjoint_neurons=True)`` last layer): divide the
            top-2 gap by :math:`2L` instead of :math:`\sqrt2 L`.

    Returns:
        radii ``(N,)`` (float64 is not needed: same dtype as ``logits``).

    Example:
        >>> logits = torch.tensor([[3.0, 1.0], [0.0, 0.5]])
        >>> lipot.certified_radius(logits, lipschitz=1.0)     # top-2 gap / (sqrt(2) L)
        tensor([1.4142, 0.3536])
    """
    lipschitz = float(lipschitz)
    if not math.isfinite(lipschitz) or lipschitz <= 0:
        raise ValueError(f"lipschitz must be a finite number > 0, got {lipschitz!r}")
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point tensor")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or Inf")
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        if last_layer_weight is not None:
            w = last_layer_weight.detach().to(logits)
            return logits.reshape(-1).abs() / (w.norm() * lipschitz)
        return logits.reshape(-1).abs() / lipschitz
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N,), (N, 1) or (N, C), got {tuple(logits.shape)}")
    if last_layer_weight is not None:
        return _per_pair_radius(logits, last_layer_weight.detach().to(logits), lipschitz)
    top2 = logits.topk(2, dim=1).values
    divisor = 2.0 if independent_rows else math.sqrt(2.0)
    return (top2[:, 0] - top2[:, 1]) / (divisor * lipschitz)


def _per_pair_radius(logits: Tensor, weight: Tensor, lipschitz: float) -> Tensor:
    if weight.dim() != 2 or weight.shape[0] != logits.shape[1]:
        raise ValueError(
            f"last_layer_weight must be (C, d) with C = {logits.shape[1]} logits, got "
            f"{tuple(weight.shape)}"
        )
    pred = logits.argmax(1)
    w64 = weight.double()
    pair_norms = torch.cdist(w64, w64).to(logits)  # ||w_i - w_j||, (C, C)
    gaps = logits.gather(1, pred[:, None]) - logits  # f_y - f_j
    norms = pair_norms[pred]  # (N, C)
    ratio = gaps / (norms * lipschitz)
    ratio = ratio.masked_fill(torch.nn.functional.one_hot(pred, logits.shape[1]).bool(), math.inf)
    return ratio.min(1).values


@dataclass
class CertifiedAccuracy:
    """Result of :func:`certified_accuracy`."""

    n: int
    accuracy: float
    certified: dict[float, float]
    lipschitz: float
    method: str
    radii: Tensor = field(repr=False)
    correct: Tensor = field(repr=False)


def _batches(data) -> Iterable[tuple[Tensor, Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"data: {x.shape[0]} inputs but {y.shape[0]} labels")
        return ((x[i:i + 1024], y[i:i + 1024]) for i in range(0, x.shape[0], 1024))
    return data


def _split_last_linear(model: nn.Module):
    """(body modules, last Linear) when ``model`` is a Sequential ending with a Linear layer."""
    if isinstance(model, nn.Sequential) and len(model) > 1 and isinstance(model[-1], nn.Linear):
        return list(model.children())[:-1], model[-1]
    return None, None


def predicted_correct(logits: Tensor, labels: Tensor, check: bool = True) -> Tensor:
    """Correct predictions; labels: +-1 / {0, 1} for one logit, indices or one-hot otherwise
    (``check``: validate the label values against the model's outputs)."""
    n = logits.shape[0]
    if logits.dim() == 1 or logits.shape[1] == 1:
        if labels.numel() != n:
            raise ValueError(f"labels: expected {n} binary labels, got shape {tuple(labels.shape)}")
        if check:
            _checks.binary_labels("labels (one-logit model)", labels)
        return (logits.reshape(-1) > 0) == (labels.reshape(-1) > 0)
    if labels.dim() == 2 and tuple(labels.shape) == tuple(logits.shape):
        if check:
            _checks.binary_labels("one-hot labels", labels)
        labels = labels.argmax(1)
    elif labels.dim() != 1 or labels.shape[0] != n or labels.is_floating_point():
        raise ValueError(
            f"labels: expected class indices ({n},) or one-hot {tuple(logits.shape)}, got "
            f"{tuple(labels.shape)} {labels.dtype}"
        )
    elif check:
        _checks.class_indices("labels", labels, logits.shape[1])
    return logits.argmax(1) == labels


def certified_accuracy(
    model: nn.Module,
    data,
    eps: float | Sequence[float],
    lipschitz: float | None = None,
    per_pair: bool = True,
    independent_rows: bool = False,
    device: torch.device | str | None = None,
) -> CertifiedAccuracy:
    r"""Clean accuracy and certified accuracy at each :math:`\varepsilon` (a sample counts if it is
    correctly classified and its certified radius is :math:`> \varepsilon`).

    Args:
        model: the classifier (put in eval mode for the evaluation, then restored).
        data: ``(x, y)`` tensors or an iterable of ``(x, y)`` batches (e.g. a DataLoader). Binary
            labels +-1 / {0, 1} with one logit; multiclass labels as indices or one-hot.
        eps: one radius or a list.
        lipschitz: a bound of the whole model to use; ``None`` computes :func:`lipschitz_bound`
            (and, with ``per_pair`` and a Sequential ending with a Linear layer, the bound of the
            body for the per-pair certificate).
        per_pair: use the per-pair certificate when possible (tighter, always valid).
        independent_rows: see :func:`certified_radius` (only without ``per_pair``).

    Example:
        >>> model = lipot.Sequential(lipot.SpectralLinear(4, 8), lipot.GroupSort2(), lipot.SpectralLinear(8, 3))
        >>> x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
        >>> result = lipot.certified_accuracy(model, (x, y), eps=[0.1, 0.5])
        >>> result.lipschitz <= 1 + 1e-5, sorted(result.certified)
        (True, [0.1, 0.5])
        >>> result.certified[0.5] <= result.certified[0.1] <= result.accuracy
        True
    """
    eps_list = [float(e) for e in (eps if isinstance(eps, (list, tuple)) else [eps])]
    if any(not math.isfinite(e) or e < 0 for e in eps_list):
        raise ValueError(f"eps must be finite and >= 0, got {eps_list}")
    body, last = _split_last_linear(model) if (per_pair and lipschitz is None) else (None, None)
    param = next(iter(model.parameters()), None)
    device = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    radii, correct = [], []
    bound = None
    with evaluating(model):
        for x, y in _batches(data):
            x, y = x.to(device), y.to(device)
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise ValueError(f"data: the inputs of batch {len(radii)} contain NaN or Inf values; "
                                 "clean them (e.g. torch.nan_to_num) or drop those samples")
            if bound is None:
                shape = tuple(x.shape[1:])
                if lipschitz is not None:
                    bound, method, weight = float(lipschitz), "given", None
                elif body is not None:
                    bound = lipschitz_bound(nn.Sequential(*body), shape)
                    method, weight = "per-pair (verified body bound)", effective_weight(last)
                else:
                    bound, method, weight = lipschitz_bound(model, shape), "verified bound", None
            with torch.no_grad():
                logits = model(x)
            radii.append(certified_radius(logits.float(), bound, weight, independent_rows).cpu())
            correct.append(predicted_correct(logits, y).cpu())
    if bound is None:
        raise ValueError("data is empty")
    radii_t, correct_t = torch.cat(radii), torch.cat(correct)
    n = correct_t.numel()
    certified = {e: float((correct_t & (radii_t > e)).float().mean()) for e in eps_list}
    return CertifiedAccuracy(n, float(correct_t.float().mean()), certified, bound, method, radii_t, correct_t)
