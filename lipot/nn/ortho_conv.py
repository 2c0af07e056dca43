r"""Exactly orthogonal convolutions: :class:`OrthoConv2d` and :class:`OrthoConvTranspose2d`.

The kernel is *built* from orthonormal factors, each kept orthonormal by the shared
:class:`lipot.nn.parametrization.LipschitzWeight` (Björck with in-place re-projection and the
exact polar backward), then composed by kernel convolution (BCOP, Li et al., arXiv:1911.00937;
AOC, Boissin et al., arXiv:2501.07930):

.. math::
    K = R \circledast B(P_1) \circledast \dots \circledast B(P_n), \qquad
    B(P) = [\,P,\; I - P\,] \text{ along one spatial axis}, \quad P = U U^\top,

* :math:`R` is an orthonormal matrix (rows or columns) reshaped to an
  :math:`e_1 \times e_2` kernel with :math:`e_d = \min(k_d, s_d)`: for stride 1 a 1×1 conv, for
  stride :math:`s` the :math:`s \times s` stride-:math:`s` "reshaped kernel" (RKO) conv, which
  reads disjoint windows and is therefore exactly (co-)isometric;
* each :math:`B(P)` is a two-tap block on one axis with a symmetric projector
  :math:`P = U U^\top` (:math:`U` with orthonormal columns, rank :math:`\lceil c/2\rceil`). Its
  symbol :math:`P + (I - P)\,z` is unitary on the unit circle, so its circular convolution is
  orthogonal; there are :math:`k_d - e_d` of them per axis, which makes the kernel
  :math:`k_1 \times k_2`.

The blocks act on the input channels (applied before :math:`R`), except for stride 1 with
more output than input channels, where they act on the output channels (after :math:`R`).
Composing a block adds one tap: :math:`K'[t] = K[t-1] (I - P) + K[t]\,P`, one thin matrix
product and two pads. Inference is one plain ``conv2d`` with the cached effective kernel.

What is guaranteed (:math:`N` input size, :math:`s` stride, per axis):

* **circular padding** with output size :math:`\times s \le N` (checked at every forward):
  the layer is a crop of an orthogonal block-circulant operator, so it is
  ``k_coef_lip``-Lipschitz; with :math:`N = s \cdot` output size and kernel :math:`\ge`
  stride it is exactly ``k_coef_lip`` times an isometry (:math:`c_{out} \ge c_{in} s^2`) or a
  co-isometry (otherwise): every singular value equals ``k_coef_lip``. (Wider outputs would
  read pixels twice and are refused.)
* **zero padding**: a crop of a circular convolution on a larger torus: ``k_coef_lip``-Lipschitz
  on every input size, orthogonal away from the border.
* **reflect / replicate padding**: the padding copies pixels; the kernel is divided by
  :func:`lipot.linalg.normalizers.padding_copy_bound` (sound, not gradient-norm preserving).

Soundness does not rest on the factors being exactly orthonormal: :math:`\lVert R\rVert \le 1`
and :math:`0 \preceq P \preceq I` (true for any :math:`\lVert U\rVert \le 1`, which Björck
guarantees) already make every factor a contraction.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from ..linalg.normalizers import (
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK_ORTHO,
    DEFAULT_EPS_SPECTRAL,
    DEFAULT_MAXITER_BJORCK,
    DEFAULT_MAXITER_SPECTRAL,
)
from .conv import (
    check_conv_settings,
    ConvMixin,
    TorusConvMixin,
    TransposedConvMixin,
    copy_coefficient,
)
from .ortho_kernel import OrthogonalKernel, KernelPlan, compose_projector_block
from .parametrization import check_weight_dtype

__all__ = ["OrthoConv2d", "OrthoConvTranspose2d", "OrthogonalKernel", "compose_projector_block"]


def _check_eps(eps_bjorck) -> float:
    if eps_bjorck is None:
        raise ValueError(
            "eps_bjorck=None (spectral normalization only) is not available for orthogonal "
            "convolutions: their factors must be orthonormal; use SpectralConv2d for that mode"
        )
    return _checks.positive_float("eps_bjorck", eps_bjorck)


class _OrthoConvMixin(ConvMixin):
    """Registration of the orthogonal kernel (``k_coef_lip``, the eval cache and export come
    from :class:`LipschitzWeightLayer`, through the kernel parametrization)."""

    _coefficient = staticmethod(copy_coefficient)

    def _init_ortho(self, rows: int, cols_per_group: int, padding, k_coef_lip: float,
                    bjorck: dict, device, dtype) -> None:
        coefficient = self._setup_conv(padding)
        check_weight_dtype(self.weight.dtype)
        self._init_lipschitz(k_coef_lip)
        plan = KernelPlan(rows, cols_per_group, tuple(self.kernel_size), tuple(self.stride), self.groups)
        param = OrthogonalKernel(plan, self._k_coef_lip, coefficient, device, dtype, **bjorck)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()
        nn.utils.parametrize.register_parametrization(self, "weight", param)


def _bjorck_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck) -> dict:
    """The factors' Björck settings. They keep the ``"polar"`` update: an orthogonal convolution
    is exactly orthogonal in training too (to ``eps_bjorck``, 1e-6 by default), which one
    retraction step per update does not give (its singular values drift by up to 0.4 %)."""
    return dict(eps_spectral=eps_spectral, maxiter_spectral=maxiter_spectral,
                eps_bjorck=_check_eps(eps_bjorck), maxiter_bjorck=maxiter_bjorck,
                beta_bjorck=beta_bjorck, update="polar")


_ORTHO_ARGS_DOC = """
    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype: as the torch.nn layer (stride and dilation cannot both
            exceed 1).
        k_coef_lip: Lipschitz factor (every singular value equals it where the layer is
            orthogonal).
        eps_spectral, maxiter_spectral: power iteration that pre-scales each factor.
        eps_bjorck, maxiter_bjorck, beta_bjorck: Björck accuracy of each orthonormal factor
            (default 1e-6: float32 accuracy), iteration limit, step (only 0.5 is accepted).

    References:
        Li et al., *Preventing gradient attenuation in Lipschitz constrained convolutional
        networks* (BCOP), arXiv:1911.00937; Boissin et al., *An adaptive orthogonal convolution
        scheme* (AOC), arXiv:2501.07930.
"""


class OrthoConv2d(_OrthoConvMixin, TorusConvMixin, nn.Conv2d):
    __doc__ = (
        r"""``torch.nn.Conv2d`` with an exactly orthogonal kernel (times ``k_coef_lip``).

    Gradient-norm preserving where :class:`SpectralConv2d` cannot be: with circular padding,
    stride 1 and ``in_channels == out_channels`` every singular value of the layer is
    ``k_coef_lip``; see the module docstring for strides, other channel counts and paddings.
    With ``kernel_size < stride`` some pixels are never read (sound, not orthogonal).
    """
        + _ORTHO_ARGS_DOC
        + r"""

    Example:
        >>> conv = lipot.OrthoConv2d(4, 4, 3, padding=1, padding_mode="circular")
        >>> x = torch.randn(2, 4, 8, 8)
        >>> ratio = conv(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)   # an isometry
        >>> bool(((ratio - 1).abs() < 1e-4).all())
        True
    """
    )

    _plain_class = nn.Conv2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        k_coef_lip: float = 1.0,
        eps_spectral: float = DEFAULT_EPS_SPECTRAL,
        eps_bjorck: float = DEFAULT_EPS_BJORCK_ORTHO,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
        device=None,
        dtype=None,
    ) -> None:
        check_conv_settings(self.layer_name, padding_mode, (1,), (1,))
        bjorck = _bjorck_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck)
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device=device, dtype=dtype,
        )
        self._init_ortho(out_channels, in_channels // groups, padding, k_coef_lip, bjorck, device, dtype)


class OrthoConvTranspose2d(_OrthoConvMixin, TransposedConvMixin, nn.ConvTranspose2d):
    __doc__ = (
        r"""``torch.nn.ConvTranspose2d`` whose kernel is that of an orthogonal convolution from
    ``out_channels`` to ``in_channels``: the layer is its adjoint, with the same singular values
    (an isometry where the convolution is a co-isometry, e.g. the up-sampling adjoint of a
    stride-2 :class:`OrthoConv2d`). Only zero padding exists for transposed convolutions in
    torch: ``k_coef_lip``-Lipschitz on every input size, orthogonal away from the border.
    """
        + _ORTHO_ARGS_DOC
        + r"""

    Example:
        >>> up = lipot.OrthoConvTranspose2d(16, 4, 2, stride=2)       # 16x4x4 -> 4x8x8, orthogonal
        >>> x = torch.randn(2, 16, 4, 4)
        >>> ratio = up(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
        >>> bool(((ratio - 1).abs() < 1e-4).all())
        True
    """
    )

    _plain_class = nn.ConvTranspose2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        k_coef_lip: float = 1.0,
        eps_spectral: float = DEFAULT_EPS_SPECTRAL,
        eps_bjorck: float = DEFAULT_EPS_BJORCK_ORTHO,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
    ) -> None:
        self._check_padding(padding)
        bjorck = _bjorck_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck)
        output_padding = self._default_output_padding(output_padding)
        nn.ConvTranspose2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, output_padding,
            groups, bias, dilation, padding_mode, device=device, dtype=dtype,
        )
        self._init_ortho(in_channels, out_channels // groups, padding, k_coef_lip, bjorck, device, dtype)
