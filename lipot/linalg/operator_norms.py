r"""Exact and guaranteed operator norms of linear and convolution layers (float64).

* :func:`linear_operator_norm`: float64 SVD.
* :func:`conv_operator_norm`: a zero-padded convolution (any stride, dilation, groups) is a crop
  of a circular convolution on a larger torus, whose norm the DFT gives exactly (Sedghi, Gupta &
  Long, arXiv:1805.10408); strides by a polyphase split. With ``padding_mode="circular"`` the
  torus is the input itself and the norm is exact.
* :func:`conv_operator_norm_lower`: a power-iteration lower estimate, for tests and audits.

Every upper bound is multiplied by ``1 + NUMERIC_MARGIN`` to cover the SVD's (or the eigensolver's) backward error.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .conv_coefficients import resolve_padding
from .plain_call import hooked_weight

__all__ = [
    "NUMERIC_MARGIN",
    "linear_operator_norm",
    "conv_operator_norm",
    "conv_operator_norm_lower",
    "circular_tiles",
]

NUMERIC_MARGIN = 1e-9
"""Relative margin added to every float64 operator norm (covers the SVD's backward error, a few
1e-16 times the matrix size)."""


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


def circular_tiles(size: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int]) -> bool:
    """Whether a circularly padded convolution along one axis of length ``size`` is a crop of
    the polyphase circular operator on the input torus itself: the stride divides ``size`` and
    the ``out`` outputs satisfy ``out * stride <= size`` (their stride windows do not wrap)."""
    out = (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1
    return size % stride == 0 and 1 <= out and out * stride <= size


def _torus_plan(size: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int]):
    """Polyphase plan of a circular convolution on the input torus (see :func:`circular_tiles`)."""
    taps = []
    for j in range(kernel):
        offset = dilation * j - pad[0]
        phase = offset % stride
        taps.append((phase, (offset - phase) // stride))
    return size // stride, taps


def conv_operator_norm(
    weight: Tensor,
    input_size: Sequence[int],
    stride: Sequence[int] | int = 1,
    padding: Sequence[int] | int | str = 0,
    dilation: Sequence[int] | int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> float:
    r"""Guaranteed upper bound on the :math:`\ell_2` operator norm of a zero-padded (or
    circularly padded) convolution (``torch.nn.functional.conv1d/conv2d`` semantics, or
    ``torch.nn.Conv*d`` with ``padding_mode``) on inputs of spatial size ``input_size``.

    The convolution equals *crop* ∘ (circular convolution on a torus of length
    :math:`N \ge H + \max(p_l, p_r)`, a multiple of the stride, where every padded read falls on
    the zeros of the embedding) ∘ *zero embedding*; the embedding is
    an isometry and the crop a contraction, so its norm is at most the circular one. Splitting the
    torus input into its :math:`s_1 s_2` stride phases turns the strided circular convolution
    into a stride-1 one on the :math:`N/s` torus with :math:`C_{in} s_1 s_2` channels, which the
    DFT block-diagonalizes: the norm is :math:`\max_\omega \sigma_{\max}(\hat K(\omega))`
    (Sedghi, Gupta & Long, arXiv:1805.10408), computed in float64. The bound tends to the exact
    norm as the input grows.

    With ``padding_mode="circular"`` the torus is the input itself: exact when the outputs tile
    it (``out * stride == size``), a crop of it otherwise; an input size on which the stride
    windows would wrap around (:func:`circular_tiles` false) raises ``ValueError``.
    """
    if padding_mode not in ("zeros", "circular"):
        raise ValueError(f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}")
    w = weight.detach().to("cpu", torch.float64).numpy()
    spatial = w.ndim - 2
    if spatial not in (1, 2):
        raise ValueError(f"conv_operator_norm handles 1-D and 2-D kernels, got {w.ndim - 2}-D")
    if len(input_size) != spatial:
        raise ValueError(f"input_size {tuple(input_size)} must have {spatial} entries")

    def expand(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * spatial

    stride, dilation = expand(stride), expand(dilation)
    pads = resolve_padding(padding, w.shape[2:], dilation, stride)
    if spatial == 1:  # treat as 2-D with a height-1 axis
        w = w[:, :, None, :]
        input_size, stride, dilation, pads = (1, *input_size), (1, *stride), (1, *dilation), [(0, 0), *pads]
    out_per_group = w.shape[0] // groups
    best = 0.0
    for g in range(groups):
        kernel = w[g * out_per_group:(g + 1) * out_per_group]
        best = max(best, _circular_norm(kernel, input_size, stride, dilation, pads, padding_mode))
    return best * (1 + NUMERIC_MARGIN)


def _circular_norm(kernel, input_size, stride, dilation, pads, padding_mode) -> float:
    """Circular: on the input torus. Zeros: minimum over a few valid embedding tori (each
    gives an upper bound)."""
    axes = range(2)
    if padding_mode == "circular":
        args = [(input_size[d], kernel.shape[2 + d], stride[d], dilation[d], pads[d]) for d in axes]
        if not all(circular_tiles(*a) for a in args):
            raise ValueError(
                f"circular convolution with stride {tuple(stride)} and padding {tuple(pads)}: its "
                f"windows wrap around an input of size {tuple(input_size)}; no exact norm"
            )
        return _symbol_norm(kernel, [_torus_plan(*a) for a in args], stride)
    return min(
        _symbol_norm(kernel, [
            _axis_plan(input_size[d], kernel.shape[2 + d], stride[d], dilation[d], pads[d],
                       extra if input_size[d] > 1 else 0) for d in axes
        ], stride)
        for extra in range(3)
    )


def _symbol_norm(kernel, plans, stride) -> float:
    """max over the torus frequencies of the largest singular value of the polyphase symbol."""
    c_out, c_in = kernel.shape[:2]
    (m1, taps1), (m2, taps2) = plans
    s1, s2 = stride
    freq1 = np.exp(2j * np.pi * np.arange(m1) / m1)
    freq2 = np.exp(2j * np.pi * np.arange(m2) / m2)
    symbol = np.zeros((m1, m2, c_out, s1 * s2 * c_in), dtype=np.complex128)
    for j1, (r1, q1) in enumerate(taps1):
        for j2, (r2, q2) in enumerate(taps2):
            phase = np.outer(freq1**q1, freq2**q2)  # e^{2 pi i (w1 q1 / m1 + w2 q2 / m2)}
            block = (r1 * s2 + r2) * c_in
            symbol[:, :, :, block:block + c_in] += phase[:, :, None, None] * kernel[:, :, j1, j2]
    return _largest_singular_value(symbol)


def _largest_singular_value(blocks: np.ndarray) -> float:
    r"""max over a stack of complex matrices of :math:`\sigma_{\max}`, as
    :math:`\sqrt{\lambda_{\max}}` of the smaller Gram matrix (:math:`AA^H` or :math:`A^HA`) in
    float64: a Hermitian eigensolver on the smaller side is several times faster than a
    singular value decomposition. Forming the Gram matrix and the eigensolver are backward stable,
    so the relative error of the result is about the inner dimension times float64's epsilon
    (below 1e-12 for any kernel here), far inside ``NUMERIC_MARGIN``."""
    rows, cols = blocks.shape[-2:]
    gram = blocks @ blocks.conj().swapaxes(-1, -2) if rows <= cols else blocks.conj().swapaxes(-1, -2) @ blocks
    return float(np.sqrt(max(float(np.linalg.eigvalsh(gram)[..., -1].max()), 0.0)))


def conv_operator_norm_lower(module: nn.Module, input_shape: Sequence[int], iterations: int = 50) -> float:
    """Lower estimate of a conv module's operator norm on inputs of ``input_shape`` (no batch
    axis): float64 power iteration on :math:`A^\\top A` through autograd, with the module's own
    padding, stride and dilation (any finite number of steps gives a lower bound)."""
    weight = effective_weight(module).to("cpu", torch.float64)
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


def effective_weight(module: nn.Module) -> Tensor:
    """The weight the module's forward uses (lipot layers: the constrained weight; a
    ``spectral_norm`` / ``weight_norm`` hook: the weight it computes in eval mode)."""
    with torch.no_grad():
        if hasattr(module, "_constrained_weight"):
            return module._constrained_weight().detach()
        hooked = hooked_weight(module)
        return module.weight.detach() if hooked is None else hooked
