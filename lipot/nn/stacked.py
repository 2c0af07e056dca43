r"""K independent :class:`~lipot.nn.SpectralLinear` layers evaluated as one batched layer.

:class:`StackedSpectralLinear` holds the weights of ``K`` layers ``in_features -> out_features``
stacked into one raw parameter of shape ``(K * out_features, in_features)``, normalized by the
same :class:`~lipot.nn.parametrization.LipschitzWeight` as ``SpectralLinear`` with
``groups=K``: every block of ``out_features`` rows is orthonormalized on its own (power
iteration with one persistent vector per block, Björck steps, in-place projection of the raw
weight in training mode, polar-factor backward). Member ``k`` computes

.. math::
    y_k = k_{lip}\,\mathrm{polar}(W_k)\,x_k + b_k ,

so each member is exactly what a ``SpectralLinear`` with raw weight :math:`W_k` computes, and is
:math:`k_{lip}`-Lipschitz on its own input. (The stacked map ``x -> (y_1, ..., y_K)`` from a
shared input is not; it is a batch of K separate functions.) One batched matrix product
replaces K small ones: this is how :mod:`lipot.wasserstein` trains the K cross-fitting critics
at the cost of about one.

Gradients do not mix members: the loss of member ``k`` only reaches block ``k``, and Adam
(element-wise) then updates each block as it would update a separate layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import _checks
from ..linalg.normalizers import DEFAULT_EPS_BJORCK
from ..linalg.tangent_linear import tangent_linear
from .linear import SpectralLinear
from .weight_layer import LipschitzWeightLayer, lipschitz_weight

__all__ = ["StackedSpectralLinear"]


class StackedSpectralLinear(LipschitzWeightLayer, nn.Module):
    """``members`` independent ``SpectralLinear(in_features, out_features)`` layers, batched.

    Args:
        members: number of stacked layers ``K``.
        in_features, out_features, bias: as ``torch.nn.Linear`` (per member).
        k_coef_lip: Lipschitz factor of every member.
        eps_bjorck: Björck target accuracy (as ``SpectralLinear``).

    Input: ``(B, in_features)`` (the same samples for every member) or
    ``(K, B, in_features)`` (member ``k`` reads ``input[k]``). Output: ``(K, B, out_features)``;
    one unbatched sample ``(in_features,)`` gives ``(K, out_features)``.

    Example:
        >>> layer = lipot.StackedSpectralLinear(3, 16, 8)    # 3 independent 16 -> 8 maps, one weight
        >>> layer(torch.randn(3, 5, 16)).shape               # (K, batch, in) -> (K, batch, out)
        torch.Size([3, 5, 8])
    """

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True,
                 k_coef_lip: float = 1.0, eps_bjorck: float = DEFAULT_EPS_BJORCK) -> None:
        nn.Module.__init__(self)
        self.members = _checks.positive_int("members", members)
        self.in_features = _checks.positive_int("in_features", in_features)
        self.out_features = _checks.positive_int("out_features", out_features)
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(members, out_features)) if bias else None
        self.eps_bjorck = eps_bjorck
        self._init_weight(k_coef_lip, method="bjorck", groups=members, eps_bjorck=eps_bjorck)

    def extra_repr(self) -> str:
        return (f"members={self.members}, in_features={self.in_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")

    def forward(self, input: Tensor) -> Tensor:
        single = input.dim() == 1  # one unbatched sample, as nn.Linear takes: (K, out_features)
        if single:
            input = input.unsqueeze(0)
        if input.dim() == 2 and input.shape[1] != self.in_features:
            raise ValueError(f"{self.layer_name}: input has {input.shape[1]} features, "
                             f"expected in_features={self.in_features}")
        if input.dim() == 3 and (input.shape[0] != self.members or input.shape[2] != self.in_features):
            raise ValueError(f"{self.layer_name}: input must be (B, {self.in_features}) or "
                             f"({self.members}, B, {self.in_features}), got {tuple(input.shape)}")
        q = self._orthonormal_for_training(input) if input.dim() in (2, 3) else None
        if q is not None:  # training: the tangent gradient from the batch (shared input: (1, B, in))
            out = tangent_linear(input if input.dim() == 3 else input[None], q, self.bias,
                                 lipschitz_weight(self).scale)
            return out.squeeze(1) if single else out
        w = self._constrained_weight()
        if input.dim() == 2:  # shared input: one plain matrix product for all members
            out = (input @ w.mT).reshape(input.shape[0], self.members, self.out_features).transpose(0, 1)
            out = out if self.bias is None else out + self.bias[:, None, :]
            return out.squeeze(1) if single else out
        if input.dim() != 3:
            raise ValueError(f"{self.layer_name}: input must be (B, {self.in_features}) or "
                             f"({self.members}, B, {self.in_features}), got {tuple(input.shape)}")
        blocks = w.reshape(self.members, self.out_features, self.in_features).mT
        if self.bias is None:
            return torch.bmm(input, blocks)
        return torch.baddbmm(self.bias[:, None, :], input, blocks)

    @torch.no_grad()
    def member(self, k: int) -> SpectralLinear:
        """Member ``k`` as a ``SpectralLinear`` computing the same function (its raw weight and
        bias copied; the same normalization applies to them)."""
        if not 0 <= k < self.members:
            raise IndexError(f"member index {k} out of range for {self.members} members")
        rows = slice(k * self.out_features, (k + 1) * self.out_features)
        raw = self.parametrizations.weight.original
        layer = SpectralLinear(self.in_features, self.out_features, bias=self.bias is not None,
                               k_coef_lip=self.k_coef_lip, eps_bjorck=self.eps_bjorck)
        layer = layer.to(raw.device, raw.dtype)
        layer.parametrizations.weight.original.copy_(raw[rows])
        lipschitz_weight(layer).u.copy_(lipschitz_weight(self).u[k:k + 1])
        if self.bias is not None:
            layer.bias.copy_(self.bias[k])
        return layer.eval()
