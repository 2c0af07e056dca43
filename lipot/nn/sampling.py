"""Invertible down/up-sampling (pixel unshuffle / shuffle): permutations of the entries, hence
isometries; times ``k_coef_lip`` they are ``k_coef_lip``-Lipschitz and gradient-norm preserving."""

from __future__ import annotations

from torch import Tensor

from .. import _checks
from . import functional as LF
from .base import TracedLipschitzModule

__all__ = ["InvertibleDownSampling", "InvertibleUpSampling"]


class _Sampling(TracedLipschitzModule):
    def __init__(self, kernel_size: int, k_coef_lip: float = 1.0) -> None:
        super().__init__(k_coef_lip)
        self.kernel_size = _checks.positive_int("kernel_size", kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, k_coef_lip={self.k_coef_lip:g}"


class InvertibleDownSampling(_Sampling):
    """``(N, C, H, W) -> (N, C*k*k, H/k, W/k)`` by ``pixel_unshuffle``, times ``k_coef_lip``.

    Args:
        kernel_size: the factor ``k``; H and W must be divisible by it (checked at forward).
        k_coef_lip: Lipschitz factor.

    Example:
        >>> down = lipot.InvertibleDownSampling(2)             # 1x4x4 -> 4x2x2, a permutation
        >>> x = torch.randn(1, 1, 4, 4)
        >>> y = down(x)
        >>> y.shape, bool(torch.equal(lipot.InvertibleUpSampling(2)(y), x))
        (torch.Size([1, 4, 2, 2]), True)
    """

    def forward(self, input: Tensor) -> Tensor:
        out = LF.invertible_downsample(input, self.kernel_size)
        return out if self.k_coef_lip == 1.0 else out * self.k_coef_lip


class InvertibleUpSampling(_Sampling):
    """``(N, C*k*k, H, W) -> (N, C, H*k, W*k)`` by ``pixel_shuffle``, times ``k_coef_lip``.

    Args:
        kernel_size: the factor ``k``; the channels must be divisible by ``k*k``.
        k_coef_lip: Lipschitz factor.

    Example:
        >>> up = lipot.InvertibleUpSampling(2)                 # 4x2x2 -> 1x4x4, a permutation
        >>> up(torch.randn(1, 4, 2, 2)).shape
        torch.Size([1, 1, 4, 4])
    """

    def forward(self, input: Tensor) -> Tensor:
        out = LF.invertible_upsample(input, self.kernel_size)
        return out if self.k_coef_lip == 1.0 else out * self.k_coef_lip
