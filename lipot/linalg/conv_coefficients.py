r"""Convolution correction coefficients: how much a convolution (or its padding) can amplify
the norm of its input, from the kernel size, stride, padding and dilation alone.

* :func:`conv_count_bound`: :math:`\lVert \mathrm{conv}_W\rVert \le B \lVert R(W)\rVert` with
  :math:`B = \sqrt{\max_i c_i}`, :math:`c_i` the (window, tap) reads of input pixel :math:`i`
  (deel-torchlip's reshaped-kernel scheme; attained by orthonormal tall kernels);
* :func:`padding_copy_bound`: the norm of reflect / replicate padding (pixel copies);
* :func:`conv_coefficient`, :func:`deel_conv_coefficient`: the factors the layers apply.

Pure Python on the settings (no tensors); :mod:`lipot.linalg.normalizers` re-exports the public names.
"""

from __future__ import annotations

import math
from typing import Sequence

from .. import _checks

__all__ = [
    "conv_count_bound",
    "conv_coefficient",
    "padding_copy_bound",
    "deel_conv_coefficient",
]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _source_index(pos: int, length: int, mode: str) -> int | None:
    """Which input pixel sits at padded coordinate ``pos`` (relative to the unpadded origin)."""
    if 0 <= pos < length:
        return pos
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(pos, 0), length - 1)
    if mode == "reflect":
        return -pos if pos < 0 else 2 * (length - 1) - pos
    return pos % length  # circular


def _max_incidence_1d(
    length: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int], mode: str
) -> int:
    """Largest number of (output window, kernel tap) pairs that read one input pixel."""
    span = dilation * (kernel - 1) + 1
    n_out = (length + pad[0] + pad[1] - span) // stride + 1
    counts = [0] * length
    for j in range(max(n_out, 0)):
        for t in range(kernel):
            src = _source_index(j * stride + t * dilation - pad[0], length, mode)
            if src is not None:
                counts[src] += 1
    return max(counts)


def _min_length(pad: tuple[int, int], mode: str, kernel: int, dilation: int) -> int:
    need = max(1, dilation * (kernel - 1) + 1 - pad[0] - pad[1])
    if mode == "reflect":
        need = max(need, max(pad) + 1)  # torch requires pad < input size
    elif mode == "circular":
        need = max(need, max(pad))  # torch requires pad <= input size
    return need


def resolve_padding(padding, kernel_size, dilation, stride) -> list[tuple[int, int]]:
    n = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' requires stride=1 (torch does not support it)")
            out = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return out
        raise ValueError(f"padding must be an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
    pads = _checks.int_tuple("padding", padding, n)
    return [(p, p) for p in pads]


def _spatial_dims(dims: int | None, *args) -> int:
    """Number of spatial dimensions: ``dims`` if given, else the length of the first sequence
    argument, else 2 (as ``torch.nn.Conv2d`` for int arguments)."""
    if dims is not None:
        return _checks.positive_int("dims", dims)
    for arg in args:
        if isinstance(arg, Sequence) and not isinstance(arg, str):
            return len(arg)
    return 2


def _max_incidence(kernel_size, stride, padding, dilation, padding_mode, input_size, dims,
                   copies: bool) -> float:
    """sqrt of the largest per-pixel count, a product over the spatial axes: (window, tap)
    reads of the convolution, or with ``copies`` the copies made by the padding alone."""
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    n = _spatial_dims(dims, kernel_size, stride, padding, dilation, input_size)
    ks = _checks.int_tuple("kernel_size", kernel_size, n)
    if any(k < 1 for k in ks):
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size!r}")
    st = _checks.int_tuple("stride", stride, n)
    dl = _checks.int_tuple("dilation", dilation, n)
    if any(s < 1 for s in st) or any(d < 1 for d in dl):
        raise ValueError(f"stride and dilation must be >= 1, got {stride!r}, {dilation!r}")
    pads = resolve_padding(padding, ks, dl, st)
    sizes = None if input_size is None else _checks.int_tuple("input_size", input_size, n)
    total = 1
    for d in range(n):
        k, s, dil = (1, 1, 1) if copies else (ks[d], st[d], dl[d])
        if sizes is not None:
            lengths = [sizes[d]]
        else:
            lo = _min_length(pads[d], padding_mode, k, dil)
            reach = pads[d][0] + pads[d][1] + dil * (k - 1) + s
            lengths = range(lo, lo + 4 * reach + 8)
        total *= max(_max_incidence_1d(L, k, s, dil, pads[d], padding_mode) for L in lengths)
    return math.sqrt(total)


def conv_count_bound(
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
    input_size: int | Sequence[int] | None = None,
    dims: int | None = None,
) -> float:
    r"""Upper bound :math:`B` with :math:`\lVert \mathrm{conv}_W\rVert_2 \le B\,\lVert R(W)\rVert_2`,
    where :math:`R(W)` is the kernel reshaped to ``(out_channels, in_channels * prod(kernel))``.

    For an input :math:`x`, :math:`\lVert Tx\rVert^2 = \sum_p \lVert R(W)\,\mathrm{patch}_p\rVert^2
    \le \lVert R(W)\rVert^2 \sum_i c_i x_i^2`, where :math:`c_i` counts the (output window, kernel
    tap) pairs that read input pixel :math:`i` through the padding (a pixel copied by reflect,
    replicate or circular padding counts once per copy read). Hence :math:`B = \sqrt{\max_i c_i}`;
    counts factor over the spatial dimensions. The bound is **attained** when :math:`R(W)` has
    orthonormal columns (e.g. 1 input and 9 output channels for a 3×3 kernel), so it cannot be
    improved without looking at the weights.

    With ``input_size=None`` the maximum is taken over every input size (the bound then holds for
    any input); with an ``input_size`` it is the valid, possibly smaller, bound for that size
    only. For zero padding and large inputs it equals deel-torchlip's
    :math:`\sqrt{\prod_d \lceil k_d / s_d\rceil}` (dilation 1). Int arguments apply to every
    spatial dimension; their number is ``dims``, or the length of any tuple argument, or 2.

    Note: deel-lip's "input-size-aware" coefficient uses the *average* count and is not a valid
    bound (a 3×3 conv with an orthonormal tall kernel has norm exactly 3 but deel-lip scales it
    as if it were ~2.5 on 4×4 inputs); lipot does not implement it.
    """
    return _max_incidence(kernel_size, stride, padding, dilation, padding_mode, input_size, dims, False)


def conv_coefficient(
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
    input_size: int | Sequence[int] | None = None,
    dims: int | None = None,
) -> float:
    """The factor lipot multiplies a kernel with ``||R(W)|| <= 1`` by: ``1 / conv_count_bound``."""
    bound = conv_count_bound(kernel_size, stride, padding, dilation, padding_mode, input_size, dims)
    return 1.0 / bound


def padding_copy_bound(
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
    input_size: int | Sequence[int] | None = None,
    dims: int | None = None,
) -> float:
    r"""Operator norm of the padding step :math:`E` of a reflect / replicate padded layer:
    :math:`\sqrt{\max_i c_i}`, :math:`c_i` the number of copies of input pixel :math:`i` in
    the padded tensor (1 for zeros; circular padding is not a copy bound's business: the
    orthogonal and AOL layers treat it as a torus).

    A layer that applies a valid (unpadded) convolution of norm :math:`\le 1` to :math:`E x`
    has norm :math:`\le \lVert E\rVert`, so dividing it by this bound makes it 1-Lipschitz.
    Like :func:`conv_count_bound`, the maximum is over every input size unless ``input_size``
    is given.
    """
    if padding_mode in ("zeros", "circular"):
        return 1.0
    return _max_incidence(kernel_size, stride, padding, dilation, padding_mode, input_size, dims, True)


def deel_conv_coefficient(
    kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1, dims: int | None = None
) -> float:
    r"""deel-torchlip's generic coefficient :math:`1/\sqrt{\prod_d \lceil k_d/s_d\rceil}`.

    Valid for zero padding without dilation (it equals :func:`conv_coefficient` there for
    inputs larger than the kernel); provided for comparison and migration checks.
    """
    n = _spatial_dims(dims, kernel_size, stride)
    ks = _checks.int_tuple("kernel_size", kernel_size, n)
    st = _checks.int_tuple("stride", stride, n)
    return 1.0 / math.sqrt(math.prod(math.ceil(k / s) for k, s in zip(ks, st)))
