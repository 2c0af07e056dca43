r"""A 1-Lipschitz residual connection: a learnable convex combination."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import LipschitzModule, nominal_lipschitz, trace_export
from .export import vanilla_export

__all__ = ["LipResidual"]


class LipResidual(nn.Module, LipschitzModule):
    r"""Convex combination :math:`k\,(\alpha x + (1-\alpha) y)`, :math:`\alpha =
    \mathrm{sigmoid}(a)` with a learnable :math:`a` (initially 0, :math:`\alpha = 1/2`).

    Two ways to use it:

    * ``LipResidual(block)``: ``forward(x) = k (alpha x + (1 - alpha) block(x))``. If ``block``
      is 1-Lipschitz this is :math:`k(\alpha + (1-\alpha))= k`-Lipschitz. ``block`` must keep the
      shape and claim a bound <= 1 (checked with :func:`lipot.nn.nominal_lipschitz`).
    * ``LipResidual()`` (deel-torchlip's form): ``forward(x, y)``; with ``y = f(x)`` computed by a
      1-Lipschitz ``f`` the same bound holds, and as a map of the pair :math:`(x, y)` it is
      :math:`k\sqrt{\alpha^2+(1-\alpha)^2} \le k`-Lipschitz.

    Args:
        block: optional 1-Lipschitz module.
        k_coef_lip: Lipschitz factor.

    Example:
        >>> block = lipot.LipResidual(lipot.SpectralLinear(8, 8))   # (x + f(x)) / 2, 1-Lipschitz
        >>> block(torch.randn(3, 8)).shape
        torch.Size([3, 8])
        >>> lipot.lipschitz_bound(block, (8,)) <= 1 + 1e-5
        True
    """

    def __init__(self, block: nn.Module | None = None, k_coef_lip: float = 1.0) -> None:
        nn.Module.__init__(self)
        self._init_lipschitz(k_coef_lip)
        if block is not None:
            bound = nominal_lipschitz(block)
            if bound > 1.0:
                raise ValueError(
                    f"LipResidual: block must be 1-Lipschitz but claims a bound of {bound:g}; set "
                    "its k_coef_lip to 1 and put the factor on the LipResidual instead"
                )
        self.block = block
        self.alpha = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            if self.block is None:
                raise ValueError("LipResidual() without a block needs forward(x, y)")
            y = self.block(x)
        alpha = torch.sigmoid(self.alpha)
        out = alpha * x + (1 - alpha) * y
        return out if self.k_coef_lip == 1.0 else out * self.k_coef_lip

    def vanilla_export(self) -> nn.Module:
        if self.block is None:
            return trace_export(self)
        exported = trace_export(self, concrete_args={"y": None})
        exported.block = vanilla_export(self.block)
        return exported
