r"""Lipschitz convolutions: :class:`SpectralConv1d`, :class:`SpectralConv2d`,
:class:`FrobeniusConv2d` and :class:`SpectralConvTranspose2d`.

The kernel reshaped to ``(out_channels, in_channels * prod(kernel_size))`` (per group) is
normalized (Björck or Frobenius) so that its spectral norm is at most 1, then multiplied by
``k_coef_lip / conv_count_bound(...)``. :func:`lipot.linalg.normalizers.conv_count_bound` is the exact
worst case of the convolution's operator norm over kernels with unit reshaped norm; it accounts
for stride, dilation, and copies made by reflect / replicate / circular padding. It equals
deel-torchlip's :math:`\sqrt{\lceil k_1/s_1\rceil \lceil k_2/s_2\rceil}` for zero padding.

This bound is valid but loose for most trained kernels (a trained 3×3 conv typically has operator
norm 0.55–0.8 under it): the layers are k-Lipschitz but not gradient-norm preserving. Use
``lipot.certify`` to compute the actual (smaller) operator norm for certificates.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from .. import _checks
from ..linalg.conv_coefficients import resolve_padding, conv_coefficient, padding_copy_bound
from ..linalg.normalizers import (
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK,
    DEFAULT_EPS_SPECTRAL,
    DEFAULT_MAXITER_BJORCK,
    DEFAULT_MAXITER_SPECTRAL,
)
from .weight_layer import LipschitzWeightLayer, spectral_weight_kwargs

__all__ = ["SpectralConv1d", "SpectralConv2d", "FrobeniusConv2d", "SpectralConvTranspose2d"]

_SUPPORTED_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_conv_settings(
    name: str, padding_mode: str, stride: Sequence[int], dilation: Sequence[int]
) -> None:
    if padding_mode not in _SUPPORTED_PADDING_MODES:
        hint = " (use 'reflect', its closest torch equivalent)" if padding_mode == "symmetric" else ""
        raise ValueError(
            f"{name}: padding_mode={padding_mode!r} is not supported{hint}; lipot bounds "
            f"{_SUPPORTED_PADDING_MODES}"
        )
    if any(s > 1 for s in stride) and any(d > 1 for d in dilation):
        raise ValueError(
            f"{name}: stride={tuple(stride)} together with dilation={tuple(dilation)} is not "
            "supported; use stride=1 with dilation, or dilation=1 with stride"
        )


def _check_circular_tiling(name: str, size: Sequence[int], kernel: Sequence[int],
                           stride: Sequence[int], dilation: Sequence[int],
                           pads: Sequence[tuple[int, int]]) -> None:
    """Refuse circular inputs on which the output windows would wrap around the torus.

    A circularly padded convolution reads input ``(s*n + d*t - p_left) mod N``; the orthogonal
    and AOL layers are contractions only while the ``out`` outputs per axis satisfy
    ``out * s <= N`` (the stride windows of the torus are then read at most once).
    """
    for n, k, s, d, (left, right) in zip(size, kernel, stride, dilation, pads):
        out = (n + left + right - d * (k - 1) - 1) // s + 1
        if out * s > n:
            raise ValueError(
                f"{name}: circular padding {tuple(pads)} with stride {tuple(stride)} on an input of "
                f"spatial size {tuple(size)} gives {out} outputs along an axis of length {n}: "
                "the windows wrap around and read some pixels twice, so the layer would not be "
                "1-Lipschitz. Use padding (kernel - 1) // 2 (or 'same') and an input size "
                "divisible by the stride, or padding_mode='zeros'"
            )


def _check_k(k_coef_lip: float) -> float:
    return _checks.positive_float("k_coef_lip", k_coef_lip)


class ConvMixin(LipschitzWeightLayer):
    """Shared constructor tail and export for the convolution layers."""

    _plain_class: type

    @staticmethod
    def _coefficient(kernel_size, stride, padding, dilation, padding_mode) -> float:
        """Factor that makes a kernel normalized by this layer's method k-Lipschitz as a conv:
        ``1 / conv_count_bound`` for a reshaped kernel of norm <= 1."""
        return conv_coefficient(kernel_size, stride, padding, dilation, padding_mode)

    def _setup_conv(self, padding) -> float:
        """Validate the settings, record the padding; returns the correction coefficient."""
        self._padding_arg = padding
        check_conv_settings(self.layer_name, self.padding_mode, self.stride, self.dilation)
        self._pads = resolve_padding(padding, self.kernel_size, self.dilation, self.stride)
        return self._coefficient(self.kernel_size, self.stride, padding, self.dilation, self.padding_mode)

    def _init_conv(self, padding, k_coef_lip: float, **weight_kwargs) -> None:
        """Set the layer up and register its weight parametrization."""
        coefficient = self._setup_conv(padding)
        self._init_weight(
            _check_k(k_coef_lip), groups=self.groups, coefficient=coefficient, **weight_kwargs
        )

    def _plain_kwargs(self) -> dict:
        return dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self._padding_arg,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
        )

    def _check_channels(self, input: Tensor) -> None:
        self._check_width(input, self.in_channels, -1 - len(self.kernel_size), "channels")

    def forward(self, input: Tensor) -> Tensor:
        self._check_channels(input)
        return self._conv_forward(input, self._constrained_weight(), self.bias)

    def vanilla_export(self) -> nn.Module:
        plain = self._plain_class(**self._plain_kwargs())
        return self._copy_into(plain.to(self.weight.device, self.weight.dtype))


def copy_coefficient(kernel_size, stride, padding, dilation, padding_mode) -> float:
    """The coefficient of convolutions that are contractions before padding (orthogonal, AOL):
    ``1 / padding_copy_bound`` (1 for zero and circular padding)."""
    return 1.0 / padding_copy_bound(kernel_size, stride, padding, dilation, padding_mode)


class TorusConvMixin(ConvMixin):
    """Convolutions whose bound comes from the circular convolution on a torus (orthogonal,
    AOL): a circularly padded input on which the windows would wrap around is refused."""

    _coefficient = staticmethod(copy_coefficient)

    def forward(self, input: Tensor) -> Tensor:
        self._check_channels(input)
        if self.padding_mode == "circular":
            _check_circular_tiling(self.layer_name, input.shape[2:], self.kernel_size,
                                   self.stride, self.dilation, self._pads)
        return self._conv_forward(input, self._constrained_weight(), self.bias)


class TransposedConvMixin(ConvMixin):
    """Forward and export of the transposed convolutions (the adjoint of ``conv2d`` with the
    same weight, stride, padding, dilation and groups: the same operator norm)."""

    @staticmethod
    def _default_output_padding(output_padding):
        """``None`` means 0 (no extra rows or columns), as torch's ``output_size=None`` does."""
        return 0 if output_padding is None else output_padding

    @classmethod
    def _check_padding(cls, padding) -> None:
        if isinstance(padding, str):
            raise ValueError(
                f"{cls.__name__}: padding={padding!r} is not supported by "
                "torch.nn.ConvTranspose2d; give an int or a tuple"
            )

    def _setup_conv(self, padding) -> float:
        coefficient = super()._setup_conv(padding)
        self._check_output_padding()
        return coefficient

    def _check_output_padding(self) -> None:
        """torch accepts any ``output_padding`` at construction and fails at the first forward;
        lipot refuses it here: each must be in ``[0, max(stride, dilation))``."""
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if not 0 <= op < max(s, d):
                raise ValueError(
                    f"{self.layer_name}: output_padding={tuple(self.output_padding)} must be >= 0 "
                    f"and smaller than stride={tuple(self.stride)} or dilation="
                    f"{tuple(self.dilation)} (torch's rule); it only adds rows and columns that a "
                    "stride > 1 leaves undetermined"
                )

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        self._check_channels(input)
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return F.conv_transpose2d(
            input, self._constrained_weight(), self.bias, self.stride, self.padding,
            output_padding, self.groups, self.dilation,
        )

    def _plain_kwargs(self) -> dict:
        kwargs = super()._plain_kwargs()
        kwargs["output_padding"] = self.output_padding
        return kwargs


_BJORCK_DOC = """
    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode: as the torch.nn layer; padding modes 'zeros', 'reflect', 'replicate' and
            'circular' are bounded; stride and dilation cannot both exceed 1.
        k_coef_lip: Lipschitz factor.
        eps_spectral, maxiter_spectral: power-iteration stopping rule (scaling only).
        eps_bjorck: target accuracy of the reshaped kernel's singular values; ``None`` uses a
            verified spectral normalization instead of Björck.
        maxiter_bjorck, beta_bjorck: Björck iteration limit and step (only 0.5 is accepted).
        device, dtype: as the torch.nn layer.
"""


class _SpectralConvNd(ConvMixin):
    """Constructor shared by SpectralConv1d and SpectralConv2d (torch signature + lipot args)."""

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
        eps_bjorck: float | None = DEFAULT_EPS_BJORCK,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
        device=None,
        dtype=None,
    ) -> None:
        check_conv_settings(self.layer_name, padding_mode, (1,), (1,))
        self._plain_class.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device=device, dtype=dtype,
        )
        self._init_conv(
            padding, k_coef_lip,
            **spectral_weight_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck)
        )


class SpectralConv2d(_SpectralConvNd, nn.Conv2d):
    __doc__ = (
        r"""``torch.nn.Conv2d`` whose reshaped kernel is orthonormalized (Björck) and scaled by
    ``k_coef_lip / conv_count_bound``: a ``k_coef_lip``-Lipschitz convolution.
    """
        + _BJORCK_DOC
        + r"""

    Example:
        >>> conv = lipot.SpectralConv2d(3, 8, 3, padding=1)
        >>> conv(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 8, 16, 16])
        >>> lipot.lipschitz_bound(conv, (3, 16, 16)) <= 1 + 1e-5
        True
    """
    )

    _plain_class = nn.Conv2d


class SpectralConv1d(_SpectralConvNd, nn.Conv1d):
    __doc__ = (
        r"""``torch.nn.Conv1d`` whose reshaped kernel is orthonormalized (Björck) and scaled by
    ``k_coef_lip / conv_count_bound``: a ``k_coef_lip``-Lipschitz convolution.
    """
        + _BJORCK_DOC
        + r"""

    Example:
        >>> conv = lipot.SpectralConv1d(2, 4, 3, padding=1)
        >>> conv(torch.randn(5, 2, 32)).shape
        torch.Size([5, 4, 32])
        >>> lipot.lipschitz_bound(conv, (2, 32)) <= 1 + 1e-5
        True
    """
    )

    _plain_class = nn.Conv1d


class FrobeniusConv2d(nn.Conv2d, ConvMixin):
    r"""``torch.nn.Conv2d`` whose kernel (per group) is divided by its Frobenius norm and scaled
    by ``k_coef_lip / conv_count_bound``. Cheaper than :class:`SpectralConv2d` and tight when the
    reshaped kernel has rank one (a single output channel).

    Args:
        as :class:`SpectralConv2d`, without the Björck / power-iteration arguments.

    Example:
        >>> conv = lipot.FrobeniusConv2d(3, 1, 3, padding=1)
        >>> conv(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 1, 16, 16])
        >>> lipot.lipschitz_bound(conv, (3, 16, 16)) <= 1 + 1e-5
        True
    """

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
        *,
        device=None,
        dtype=None,
    ) -> None:
        check_conv_settings(self.layer_name, padding_mode, (1,), (1,))
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device=device, dtype=dtype,
        )
        self._init_conv(padding, k_coef_lip, method="frobenius")


class SpectralConvTranspose2d(TransposedConvMixin, nn.ConvTranspose2d):
    __doc__ = (
        r"""``torch.nn.ConvTranspose2d`` with an orthonormalized reshaped kernel scaled by
    ``k_coef_lip / conv_count_bound``. A transposed convolution is the adjoint of the
    convolution with the same kernel, stride, padding and dilation, so it has the same operator
    norm and the same bound. Only zero padding exists for transposed convolutions in torch.
    """
        + _BJORCK_DOC
        + r"""

    Example:
        >>> up = lipot.SpectralConvTranspose2d(8, 3, 2, stride=2)
        >>> up(torch.randn(2, 8, 8, 8)).shape
        torch.Size([2, 3, 16, 16])
        >>> lipot.lipschitz_bound(up, (8, 8, 8)) <= 1 + 1e-5
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
        eps_bjorck: float | None = DEFAULT_EPS_BJORCK,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
    ) -> None:
        self._check_padding(padding)
        output_padding = self._default_output_padding(output_padding)
        nn.ConvTranspose2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, output_padding,
            groups, bias, dilation, padding_mode, device=device, dtype=dtype,
        )
        self._init_conv(
            padding, k_coef_lip,
            **spectral_weight_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck)
        )

