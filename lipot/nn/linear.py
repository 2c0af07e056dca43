"""Lipschitz dense layers: :class:`SpectralLinear` and :class:`FrobeniusLinear`."""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F

from ..linalg.tangent_linear import tangent_linear
from ..linalg.normalizers import (
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK,
    DEFAULT_EPS_SPECTRAL,
    DEFAULT_MAXITER_BJORCK,
    DEFAULT_MAXITER_SPECTRAL,
)
from .weight_layer import LipschitzWeightLayer, lipschitz_weight, spectral_weight_kwargs

__all__ = ["SpectralLinear", "FrobeniusLinear"]


class LinearMixin(LipschitzWeightLayer):
    """Forward and export shared by the constrained dense layers."""

    def forward(self, input: Tensor) -> Tensor:
        self._check_width(input, self.in_features, -1, "features")
        q = self._orthonormal_for_training(input)
        if q is not None:  # training: the tangent gradient from the batch
            bias = None if self.bias is None else self.bias[None]
            out = tangent_linear(input.reshape(1, -1, self.in_features), q, bias, lipschitz_weight(self).scale)
            return out.reshape(*input.shape[:-1], self.out_features)
        return F.linear(input, self._constrained_weight(), self.bias)

    def vanilla_export(self) -> nn.Linear:
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        return self._copy_into(plain.to(self.weight.device, self.weight.dtype))


class SpectralLinear(LinearMixin, nn.Linear):
    r"""``torch.nn.Linear`` whose weight is ``k_coef_lip`` times an orthonormal matrix.

    .. math::
        y = k\,\mathrm{polar}(W)\,x + b, \qquad \mathrm{polar}(W) = W (W^\top W)^{-1/2}

    All singular values of the effective weight are :math:`k` (to ``eps_bjorck``) and never above
    :math:`k`: the layer is :math:`k`-Lipschitz and gradient-norm preserving (an isometry when
    ``out_features >= in_features``). The polar factor is computed by spectral scaling (power
    iteration, persistent vector) followed by Björck steps with β = 0.5, which stay contractive
    even before convergence; see :class:`lipot.nn.parametrization.LipschitzWeight` for how the
    raw weight is kept orthonormal so that training costs a few matrix products per step.

    Args:
        in_features, out_features, bias: as ``torch.nn.Linear``.
        k_coef_lip: Lipschitz factor :math:`k > 0`.
        eps_spectral, maxiter_spectral: power-iteration stopping rule (scaling only).
        eps_bjorck: target accuracy of the singular values. ``None`` disables Björck
            (spectral normalization only, by a *verified* bound: 1-Lipschitz but not gradient
            norm preserving).
        maxiter_bjorck: maximum number of Björck steps per weight update.
        beta_bjorck: Björck step size; only 0.5 is safe and accepted.
        update: how training keeps the weight orthonormal; ``None`` (default):
            ``"retraction"``. Both give the weight the same gradient, the derivative of the
            polar factor at the orthonormal raw weight (its tangent projection). ``"polar"``:
            the raw weight is projected to ``eps_bjorck`` before every training forward.
            ``"retraction"``: one Björck step after each optimizer step (Riemannian gradient
            descent with a retraction; the full projection when an update moved the spectrum
            far), and out of training the projection to 1e-4 (cached): two matrix products per
            step for the weight, the cheapest train step. The two differ at second order in the step size; both keep the largest
            singular value at most ``k`` at every step.
        device, dtype: as ``torch.nn.Linear``.

    References:
        Anil, Lucas & Grosse, *Sorting out Lipschitz function approximation*, arXiv:1811.05381.

    Example:
        >>> layer = lipot.SpectralLinear(16, 8)
        >>> layer(torch.randn(4, 16)).shape
        torch.Size([4, 8])
        >>> s = torch.linalg.svdvals(lipot.vanilla_export(layer).weight)   # all 1, to eps_bjorck
        >>> bool(((s - 1).abs() <= 1e-3).all() and s.max() <= 1 + 1e-6)
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        k_coef_lip: float = 1.0,
        eps_spectral: float = DEFAULT_EPS_SPECTRAL,
        eps_bjorck: float | None = DEFAULT_EPS_BJORCK,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
        update: str | None = None,
        device=None,
        dtype=None,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_weight(
            k_coef_lip,
            **spectral_weight_kwargs(
                eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck, update
            ),
        )


class FrobeniusLinear(LinearMixin, nn.Linear):
    r"""``torch.nn.Linear`` normalized by a Frobenius norm.

    * ``disjoint_neurons=True`` (default, as deel-torchlip): every row of the weight has norm
      :math:`k`, so **each output** :math:`y_j` is :math:`k`-Lipschitz. The map as a whole is
      only :math:`k\sqrt{m}`-Lipschitz in :math:`\ell_2` (``m = out_features``); a multiclass
      certificate must then divide the margin by :math:`2k` (not :math:`\sqrt2 k`).
    * ``disjoint_neurons=False``: the whole matrix has Frobenius norm :math:`k`, hence spectral
      norm :math:`\le k`: the layer is :math:`k`-Lipschitz (norm preserving only when
      ``out_features == 1``, where both modes coincide).

    Args:
        in_features, out_features, bias: as ``torch.nn.Linear``.
        disjoint_neurons: normalize each output neuron separately.
        k_coef_lip: Lipschitz factor.

    Example:
        >>> layer = lipot.FrobeniusLinear(16, 1)              # a 1-output head: ||w||_F = ||w||_2 = 1
        >>> round(float(lipot.vanilla_export(layer).weight.detach().norm()), 4)
        1.0
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        disjoint_neurons: bool = True,
        k_coef_lip: float = 1.0,
        *,
        device=None,
        dtype=None,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.disjoint_neurons = bool(disjoint_neurons)
        self._init_weight(k_coef_lip, method="frobenius", disjoint_neurons=self.disjoint_neurons)

    def lipschitz_bound(self) -> float:
        """l2 -> l2 bound: ``k`` or ``k * sqrt(out_features)`` for disjoint neurons."""
        if self.disjoint_neurons:
            return self.k_coef_lip * math.sqrt(self.out_features)
        return self.k_coef_lip
