r"""Lipschitz pooling: scaled average pooling and L2-norm pooling (fixed and adaptive).

Average pooling over a window :math:`w` is :math:`\frac1{|w|}\sum_{i\in w}x_i`, of norm
:math:`1/\sqrt{|w|}` on non-overlapping windows; multiplied by :math:`\sqrt{|w|}` it becomes the
1-Lipschitz :math:`\sum_{i\in w}x_i/\sqrt{|w|}`. L2-norm pooling :math:`\sqrt{\sum_{i\in w}x_i^2}`
is 1-Lipschitz and norm preserving on non-overlapping windows. Overlapping windows or partial
windows (``ceil_mode``) would break these bounds for average pooling and are rejected.
"""

from __future__ import annotations

import math

from torch import Tensor

from .. import _checks
from . import functional as LF
from .base import TracedLipschitzModule

__all__ = [
    "ScaledAvgPool2d",
    "ScaledAdaptiveAvgPool2d",
    "ScaledL2NormPool2d",
    "ScaledAdaptiveL2NormPool2d",
]


def _pair(name: str, value) -> tuple[int, int]:
    out = _checks.int_tuple(name, value, 2)
    if min(out) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return out


def _check_stride(name: str, kernel: tuple[int, int], stride) -> None:
    if stride is not None and _pair("stride", stride) != kernel:
        raise ValueError(
            f"{name}: stride={stride!r} must equal kernel_size={kernel} (or be None): "
            "overlapping windows are not 1-Lipschitz after scaling"
        )


def _output_pair(value) -> tuple[int | None, int | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2) or not all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1) for v in value
    ):
        raise ValueError(f"output_size must be an int >= 1 or a pair of them (or None), got {value!r}")
    return tuple(value)


class _Pool(TracedLipschitzModule):
    """Base of the pooling layers."""


class ScaledAvgPool2d(_Pool):
    r"""Non-overlapping average pooling scaled to be ``k_coef_lip``-Lipschitz:
    :math:`k \sum_{i\in w} x_i / \sqrt{|w|}`.

    Args:
        kernel_size: window size.
        stride: must be ``None`` or equal to ``kernel_size``.
        padding: must be 0.
        ceil_mode: must be False (partial windows would be scaled wrongly).
        count_include_pad: accepted for compatibility (no padding is used).
        divisor_override: if given, torch divides by it; the factor is adjusted so the output is
            still :math:`k\sum_{i\in w}x_i/\sqrt{|w|}`.
        k_coef_lip: Lipschitz factor.

    Example:
        >>> pool = lipot.ScaledAvgPool2d(2)                   # average times 2 (the window's sqrt size)
        >>> pool(torch.ones(1, 1, 4, 4))
        tensor([[[[2., 2.],
                  [2., 2.]]]])
    """

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        k_coef_lip: float = 1.0,
    ) -> None:
        super().__init__(k_coef_lip)
        self.kernel_size = _pair("kernel_size", kernel_size)
        _check_stride("ScaledAvgPool2d", self.kernel_size, stride)
        if _checks.int_tuple("padding", padding, 2) != (0, 0):
            raise ValueError(f"ScaledAvgPool2d: padding must be 0, got {padding!r}")
        if ceil_mode:
            raise ValueError(
                "ScaledAvgPool2d: ceil_mode=True makes partial windows whose average, once scaled, "
                "is not 1-Lipschitz; crop or pad the input instead"
            )
        self.divisor_override = (
            None if divisor_override is None else _checks.positive_int("divisor_override", divisor_override)
        )
        self.count_include_pad = count_include_pad

    def _factor(self) -> float:
        area = self.kernel_size[0] * self.kernel_size[1]
        divisor = area if self.divisor_override is None else self.divisor_override
        return self.k_coef_lip * divisor / math.sqrt(area)

    def forward(self, input: Tensor) -> Tensor:
        return LF.scaled_avg_pool2d(
            input, self.kernel_size, self._factor(), False, self.divisor_override
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, k_coef_lip={self.k_coef_lip:g}"


class _AdaptivePool(_Pool):
    """Adaptive pooling over equal, non-overlapping windows (output size divides input size)."""

    def __init__(self, output_size=(1, 1), k_coef_lip: float = 1.0) -> None:
        super().__init__(k_coef_lip)
        self.output_size = _output_pair(output_size)

    def forward(self, input: Tensor) -> Tensor:
        out = self._pool(input, self.output_size)
        return out if self.k_coef_lip == 1.0 else out * self.k_coef_lip

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, k_coef_lip={self.k_coef_lip:g}"


class ScaledAdaptiveAvgPool2d(_AdaptivePool):
    r"""Adaptive average pooling times :math:`k\sqrt{|w|}`; the output size must divide the input
    size (equal, non-overlapping windows; checked at forward). ``(1, 1)`` is global pooling
    :math:`k\sum_i x_i/\sqrt{HW}`.

    Args:
        output_size: int or pair (``None`` entries keep that dimension).
        k_coef_lip: Lipschitz factor.

    Example:
        >>> pool = lipot.ScaledAdaptiveAvgPool2d()            # global average times sqrt(H W)
        >>> pool(torch.ones(1, 2, 4, 4)).flatten()
        tensor([4., 4.])
    """

    _pool = staticmethod(LF.scaled_adaptive_avg_pool2d)


class ScaledL2NormPool2d(_Pool):
    r"""L2-norm pooling :math:`k\sqrt{\sum_{i\in w}x_i^2}` over non-overlapping windows
    (``k_coef_lip``-Lipschitz, norm preserving up to ``k``; zero gradient at all-zero windows).

    Args:
        kernel_size: window size.
        stride: must be ``None`` or equal to ``kernel_size``.
        ceil_mode: keep partial windows at the border (still 1-Lipschitz).
        k_coef_lip: Lipschitz factor.

    Example:
        >>> pool = lipot.ScaledL2NormPool2d(2)                # the L2 norm of each 2x2 window
        >>> pool(torch.full((1, 1, 2, 2), 3.0))
        tensor([[[[6.]]]])
    """

    def __init__(self, kernel_size, stride=None, ceil_mode: bool = False, k_coef_lip: float = 1.0) -> None:
        super().__init__(k_coef_lip)
        self.kernel_size = _pair("kernel_size", kernel_size)
        _check_stride("ScaledL2NormPool2d", self.kernel_size, stride)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, input: Tensor) -> Tensor:
        out = LF.l2_norm_pool2d(input, self.kernel_size, self.kernel_size, self.ceil_mode)
        return out if self.k_coef_lip == 1.0 else out * self.k_coef_lip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, k_coef_lip={self.k_coef_lip:g}"


class ScaledAdaptiveL2NormPool2d(_AdaptivePool):
    r"""Adaptive L2-norm pooling; the output size must divide the input size. ``(1, 1)`` gives the
    norm of each channel.

    Args:
        output_size: int or pair (``None`` entries keep that dimension).
        k_coef_lip: Lipschitz factor.

    Example:
        >>> pool = lipot.ScaledAdaptiveL2NormPool2d()         # the L2 norm of each channel
        >>> pool(torch.full((1, 2, 2, 2), 3.0)).flatten()
        tensor([6., 6.])
    """

    _pool = staticmethod(LF.scaled_adaptive_l2_norm_pool2d)

