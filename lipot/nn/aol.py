r"""Almost-orthogonal Lipschitz (AOL) layers: :class:`AOLLinear` and :class:`AOLConv2d`.

The weight is rescaled in closed form, without iterations (Prach & Lampert, arXiv:2208.03160):

.. math::
    W \mapsto W D, \qquad D_{ii} = \Big(\sum_j |W^\top W|_{ij}\Big)^{-1/2}

(for a convolution, :math:`W^\top W` is the kernel's self-correlation over channels and
offsets; :func:`lipot.linalg.normalizers.aol_normalize`). :math:`\lVert W D\rVert \le 1` for every
:math:`W`, so the layer is ``k_coef_lip``-Lipschitz whatever the weights, and it is orthogonal
exactly when :math:`W` already is (then :math:`D = I`). The rescaling is differentiable and costs
one small convolution of the kernel with itself: the cheap option next to
:class:`lipot.OrthoConv2d`, tight once training has made the weight near-orthogonal, loose
before.

The bound is that of the stride-1 convolution, so a strided AOL layer is a contraction that
cannot be orthogonal (a pixel-unshuffle kernel of stride :math:`s` gets :math:`D = I/s`): use
:class:`lipot.OrthoConv2d` to down-sample without losing gradient norm.

Bounds per padding: zero padding and every stride or dilation (a crop and subsampling of a
circular convolution on a larger torus); circular padding while the output windows do not wrap
around (``out * stride <= input size``, checked at every forward); reflect / replicate padding
divided by :func:`lipot.linalg.normalizers.padding_copy_bound`.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import TorusConvMixin, check_conv_settings
from .linear import LinearMixin

__all__ = ["AOLLinear", "AOLConv2d"]


class AOLLinear(LinearMixin, nn.Linear):
    r"""``torch.nn.Linear`` with the AOL rescaling :math:`W D` (see the module docstring), times
    ``k_coef_lip``: ``k_coef_lip``-Lipschitz for every weight, no iterations.

    Args:
        in_features, out_features, bias, device, dtype: as ``torch.nn.Linear``.
        k_coef_lip: Lipschitz factor.

    Reference: Prach & Lampert, *Almost-orthogonal layers for efficient general-purpose
    Lipschitz networks*, arXiv:2208.03160.

    Example:
        >>> layer = lipot.AOLLinear(16, 16)
        >>> s = torch.linalg.svdvals(lipot.vanilla_export(layer).weight)
        >>> bool(s.max() <= 1 + 1e-5)
        True
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 k_coef_lip: float = 1.0, *, device=None, dtype=None) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_weight(k_coef_lip, method="aol")


class AOLConv2d(TorusConvMixin, nn.Conv2d):
    r"""``torch.nn.Conv2d`` with the AOL rescaling of its kernel (see the module docstring),
    times ``k_coef_lip``. The kernel starts as the identity (``torch.nn.init.dirac_``: each
    input channel copied to one output channel at the centre tap), so with stride 1 the layer
    starts exactly orthogonal (an isometry, or a co-isometry when
    ``out_channels < in_channels``) away from the border, as in the reference.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype: as ``torch.nn.Conv2d`` (stride and dilation cannot both
            exceed 1).
        k_coef_lip: Lipschitz factor.

    Reference: Prach & Lampert, arXiv:2208.03160 (Thm. 2).

    Example:
        >>> conv = lipot.AOLConv2d(4, 4, 3, padding=1)
        >>> conv(torch.randn(2, 4, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
        >>> lipot.lipschitz_bound(conv, (4, 8, 8)) <= 1 + 1e-5
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
        self._init_conv(padding, k_coef_lip, method="aol")
        with torch.no_grad():  # identity (Dirac) kernel: the rescaling is then D = I
            nn.init.dirac_(self.parametrizations.weight.original, groups)
