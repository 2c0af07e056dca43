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
strided one, computed by FFT and a polyphase decomposition), not the layers' nominal claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .nn.base import LipschitzModule, _torch_module_bound, nominal_lipschitz
from .nn.residual import LipResidual
from .normalizers import _resolve_padding, conv_count_bound

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

NUMERIC_MARGIN = 1e-9
"""Relative margin added to every float64 operator norm (covers the SVD's backward error, a few
1e-16 times the matrix size)."""


@dataclass
class LayerBound:
    """One layer's entry in a :func:`lipschitz_report`."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    bound: float
    nominal: float | None
    method: str


# ----------------------------------------------------------------------------- operator norms


def linear_operator_norm(weight: Tensor) -> float:
    """Spectral norm of a weight matrix: float64 SVD, times ``1 + NUMERIC_MARGIN``."""
    w = weight.detach().to("cpu", torch.float64)
    if w.numel() == 0:
        return 0.0
    return float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)) * (1 + NUMERIC_MARGIN)


def _axis_plan(size: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int], extra: int = 0):
    """Torus length and, per tap, the (phase, shift) of the polyphase decomposition."""
    out = (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"input size {size} is too small for kernel {kernel} (dilation {dilation})")
    # reads of true index -p_l..H-1+p_r must land in the zero region [H, N) when outside [0, H)
    n = max(size + max(pad), stride * out)
    n = -(-n // stride) * stride + stride * extra  # a multiple of the stride
    taps = []
    for j in range(kernel):
        offset = dilation * j - pad[0]  # output n reads input stride * n + offset
        phase = offset % stride
        taps.append((phase, (offset - phase) // stride))
    return n // stride, taps


def conv_operator_norm(
    weight: Tensor,
    input_size: Sequence[int],
    stride: Sequence[int] | int = 1,
    padding: Sequence[int] | int | str = 0,
    dilation: Sequence[int] | int = 1,
    groups: int = 1,
) -> float:
    r"""Guaranteed upper bound on the :math:`\ell_2` operator norm of a zero-padded convolution
    (``torch.nn.functional.conv1d/conv2d`` semantics) on inputs of spatial size ``input_size``.

    The convolution equals *crop* ∘ (circular convolution on a torus of length
    :math:`N \ge H + \max(p_l, p_r)`, a multiple of the stride, where every padded read falls on
    the zeros of the embedding) ∘ *zero embedding*; the embedding is
    an isometry and the crop a contraction, so its norm is at most the circular one. Splitting the
    torus input into its :math:`s_1 s_2` stride phases turns the strided circular convolution
    into a stride-1 one on the :math:`N/s` torus with :math:`C_{in} s_1 s_2` channels, which the
    DFT block-diagonalizes: the norm is :math:`\max_\omega \sigma_{\max}(\hat K(\omega))`
    (Sedghi, Gupta & Long, arXiv:1805.10408), computed in float64. The bound tends to the exact
    norm as the input grows; it is exact for circular convolutions.
    """
    w = weight.detach().to("cpu", torch.float64).numpy()
    spatial = w.ndim - 2
    if spatial not in (1, 2):
        raise ValueError(f"conv_operator_norm handles 1-D and 2-D kernels, got {w.ndim - 2}-D")
    if len(input_size) != spatial:
        raise ValueError(f"input_size {tuple(input_size)} must have {spatial} entries")

    def expand(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * spatial

    stride, dilation = expand(stride), expand(dilation)
    pads = _resolve_padding(padding, w.shape[2:], dilation, stride)
    if spatial == 1:  # treat as 2-D with a height-1 axis
        w = w[:, :, None, :]
        input_size, stride, dilation, pads = (1, *input_size), (1, *stride), (1, *dilation), [(0, 0), *pads]
    out_per_group = w.shape[0] // groups
    best = 0.0
    for g in range(groups):
        kernel = w[g * out_per_group:(g + 1) * out_per_group]
        best = max(best, _circular_norm(kernel, input_size, stride, dilation, pads))
    return best * (1 + NUMERIC_MARGIN)


def _circular_norm(kernel, input_size, stride, dilation, pads) -> float:
    """Minimum over a few valid torus sizes (each gives an upper bound)."""
    return min(_circular_norm_on(kernel, input_size, stride, dilation, pads, e) for e in range(3))


def _circular_norm_on(kernel, input_size, stride, dilation, pads, extra: int) -> float:
    c_out, c_in, k1, k2 = kernel.shape
    m1, taps1 = _axis_plan(input_size[0], k1, stride[0], dilation[0], pads[0], extra if input_size[0] > 1 else 0)
    m2, taps2 = _axis_plan(input_size[1], k2, stride[1], dilation[1], pads[1], extra)
    s1, s2 = stride
    freq1 = np.exp(2j * np.pi * np.arange(m1) / m1)
    freq2 = np.exp(2j * np.pi * np.arange(m2) / m2)
    symbol = np.zeros((m1, m2, c_out, s1 * s2 * c_in), dtype=np.complex128)
    for j1, (r1, q1) in enumerate(taps1):
        for j2, (r2, q2) in enumerate(taps2):
            phase = np.outer(freq1**q1, freq2**q2)  # e^{2 pi i (w1 q1 / m1 + w2 q2 / m2)}
            block = (r1 * s2 + r2) * c_in
            symbol[:, :, :, block:block + c_in] += phase[:, :, None, None] * kernel[:, :, j1, j2]
    return float(np.linalg.svd(symbol, compute_uv=False)[..., 0].max())


def conv_operator_norm_lower(module: nn.Module, input_shape: Sequence[int], iterations: int = 50) -> float:
    """Lower estimate of a conv module's operator norm on inputs of ``input_shape`` (no batch
    axis): float64 power iteration on :math:`A^\\top A` through autograd, with the module's own
    padding, stride and dilation (any finite number of steps gives a lower bound)."""
    weight = _effective_weight(module).to("cpu", torch.float64)
    x = torch.randn(1, *input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = 0.0
    for _ in range(iterations):
        x = (x / x.norm()).requires_grad_(True)
        y = _linear_part(module, weight, x)
        sigma = float(y.detach().norm())
        (grad,) = torch.autograd.grad(0.5 * y.pow(2).sum(), x)
        x = grad.detach()
    return sigma


def _linear_part(conv: nn.Module, weight: Tensor, x: Tensor) -> Tensor:
    """The conv without its bias, with ``weight`` (same settings as ``conv``)."""
    if isinstance(conv, nn.ConvTranspose2d):
        return nn.functional.conv_transpose2d(
            x, weight, None, conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation
        )
    return nn.Conv2d._conv_forward(conv, x, weight, None) if isinstance(conv, nn.Conv2d) else \
        nn.Conv1d._conv_forward(conv, x, weight, None)


# ----------------------------------------------------------------------------- the model walk


def _effective_weight(module: nn.Module) -> Tensor:
    """The weight the module's forward uses (lipot layers: the constrained weight)."""
    with torch.no_grad():
        if hasattr(module, "_constrained_weight"):
            return module._constrained_weight().detach()
        return module.weight.detach()


def _conv_bound(module: nn.Module, shape: tuple[int, ...]) -> tuple[float, str]:
    weight = _effective_weight(module)
    transposed = isinstance(module, nn.ConvTranspose2d)
    if transposed:
        # the adjoint of conv2d(weight) acting on the transposed conv's output size
        with torch.no_grad():
            out = module(torch.zeros(1, *shape, device=weight.device, dtype=weight.dtype))
        size = tuple(out.shape[2:])  # conv_transpose2d(W) is the adjoint of conv2d(W) on this size
        if module.groups != 1:
            raise ValueError("lipschitz_bound: grouped ConvTranspose2d is not supported")
    else:
        size = tuple(shape[1:])
    if module.padding_mode == "zeros":
        bound = conv_operator_norm(weight, size, module.stride, module.padding, module.dilation, module.groups)
        return bound, "conv FFT/polyphase (float64)"
    # reflect / replicate / circular: ||conv|| <= sqrt(max incidence) * ||reshaped kernel||
    count = conv_count_bound(
        module.kernel_size, module.stride, getattr(module, "_padding_arg", module.padding),
        module.dilation, module.padding_mode, input_size=size,
    )
    per_group = weight.shape[0] // module.groups
    norms = [
        linear_operator_norm(weight[g * per_group:(g + 1) * per_group]) for g in range(module.groups)
    ]
    return count * max(norms), f"count bound x kernel SVD ({module.padding_mode} padding)"


def _batchnorm_bound(module: nn.modules.batchnorm._BatchNorm) -> float:
    if module.training or module.running_var is None:
        raise ValueError(
            f"{type(module).__name__} is only bounded in eval mode with running statistics"
        )
    scale = 1.0 / torch.sqrt(module.running_var.detach().double() + module.eps)
    if module.weight is not None:
        scale = scale * module.weight.detach().double().abs()
    return float(scale.max()) * (1 + NUMERIC_MARGIN)


def _nominal_or_none(module: nn.Module) -> float | None:
    try:
        return nominal_lipschitz(module)
    except ValueError:
        return None


def _leaf_bound(module: nn.Module, shape: tuple[int, ...]) -> tuple[float, str]:
    if isinstance(module, nn.Linear):
        return linear_operator_norm(_effective_weight(module)), "SVD (float64)"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
        return _conv_bound(module, shape)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _batchnorm_bound(module), "diagonal scale"
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d)):
        return 1.0, "identity in eval mode"
    if isinstance(module, LipschitzModule):
        # lipot's weight-free (or analytically bounded) modules: activations, pooling, sampling,
        # centering, HouseHolder, LPReLU -- their bound holds for every parameter value.
        return module.lipschitz_bound(), "analytic (lipot)"
    has_state = next(module.parameters(recurse=False), None) is not None or next(module.children(), None) is not None
    bound = None if has_state else _torch_module_bound(module)
    if bound is None:
        raise ValueError(
            f"lipschitz_bound: cannot bound {type(module).__name__}. Supported: Linear/Conv1d/"
            "Conv2d/ConvTranspose2d (lipot or torch), BatchNorm (eval), lipot activations, "
            "pooling and sampling, LipResidual, and the torch.nn modules with a known constant, "
            "inside nn.Sequential or lipot.Sequential. Compute the bound of other structures "
            "part by part and multiply."
        )
    return bound, "analytic (torch.nn)"


def _walk(module: nn.Module, shape: tuple[int, ...], name: str, report: list[LayerBound]):
    """Bound ``module`` on inputs of ``shape`` (without batch); returns (bound, output shape)."""
    if isinstance(module, nn.Sequential):
        if type(module).forward is not nn.Sequential.forward:
            raise ValueError(
                f"lipschitz_bound: {type(module).__name__} subclasses Sequential with its own "
                "forward; lipot can only bound a plain chain of modules"
            )
        bound = 1.0
        for child_name, child in module.named_children():
            child_bound, shape = _walk(child, shape, f"{name}.{child_name}" if name else child_name, report)
            bound *= child_bound
        return bound, shape
    if isinstance(module, LipResidual) and module.block is not None:
        inner, out_shape = _walk(module.block, shape, f"{name}.block", report)
        alpha = float(torch.sigmoid(module.alpha.detach().double()))
        bound = module.k_coef_lip * (alpha + (1 - alpha) * inner)
        report.append(LayerBound(name, "LipResidual", shape, bound, _nominal_or_none(module), "convex combination"))
        return bound, out_shape
    bound, method = _leaf_bound(module, shape)
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
    hence an upper bound for the actual padding and stride), a count bound times the kernel norm
    for other padding modes, ``max |gamma|/sqrt(var + eps)`` for eval-mode batch norm, and the
    analytic constants of weight-free layers. ``nn.Sequential``, ``lipot.Sequential`` and
    ``LipResidual`` are walked; anything else raises ``ValueError`` (never a guess).
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


def _predicted_correct(logits: Tensor, labels: Tensor) -> Tensor:
    """Correct predictions; labels: +-1 / {0, 1} for one logit, indices or one-hot otherwise."""
    n = logits.shape[0]
    if logits.dim() == 1 or logits.shape[1] == 1:
        if labels.numel() != n:
            raise ValueError(f"labels: expected {n} binary labels, got shape {tuple(labels.shape)}")
        return (logits.reshape(-1) > 0) == (labels.reshape(-1) > 0)
    if labels.dim() == 2 and tuple(labels.shape) == tuple(logits.shape):
        labels = labels.argmax(1)
    elif labels.dim() != 1 or labels.shape[0] != n or labels.is_floating_point():
        raise ValueError(
            f"labels: expected class indices ({n},) or one-hot {tuple(logits.shape)}, got "
            f"{tuple(labels.shape)} {labels.dtype}"
        )
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
    """
    eps_list = [float(e) for e in (eps if isinstance(eps, (list, tuple)) else [eps])]
    if any(not math.isfinite(e) or e < 0 for e in eps_list):
        raise ValueError(f"eps must be finite and >= 0, got {eps_list}")
    body, last = _split_last_linear(model) if (per_pair and lipschitz is None) else (None, None)
    param = next(iter(model.parameters()), None)
    device = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    was_training = model.training
    model.eval()
    radii, correct = [], []
    bound = None
    try:
        for x, y in _batches(data):
            x, y = x.to(device), y.to(device)
            if bound is None:
                shape = tuple(x.shape[1:])
                if lipschitz is not None:
                    bound, method, weight = float(lipschitz), "given", None
                elif body is not None:
                    bound = lipschitz_bound(nn.Sequential(*body), shape)
                    method, weight = "per-pair (verified body bound)", _effective_weight(last)
                else:
                    bound, method, weight = lipschitz_bound(model, shape), "verified bound", None
            with torch.no_grad():
                logits = model(x)
            radii.append(certified_radius(logits.float(), bound, weight, independent_rows).cpu())
            correct.append(_predicted_correct(logits, y).cpu())
    finally:
        model.train(was_training)
    if bound is None:
        raise ValueError("data is empty")
    radii_t, correct_t = torch.cat(radii), torch.cat(correct)
    n = correct_t.numel()
    certified = {e: float((correct_t & (radii_t > e)).float().mean()) for e in eps_list}
    return CertifiedAccuracy(n, float(correct_t.float().mean()), certified, bound, method, radii_t, correct_t)
