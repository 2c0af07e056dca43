"""Lipschitz activations: GroupSort, GroupSort2, FullSort, MaxMin, HouseHolder, LPReLU.

Each is ``k_coef_lip``-Lipschitz (its 1-Lipschitz map times ``k_coef_lip``); all but LPReLU are
also gradient-norm preserving. They export (``vanilla_export``) to ``torch.fx.GraphModule``
objects that need only torch.

**Channels and unbatched input.** The channel-wise activations act on dimension ``dim`` (1 by
default, as deel-torchlip); a 1-D input is one unbatched vector whose channels are dimension 0
(torch's ``PReLU`` convention), so ``layer(x[0])`` equals ``layer(x)[0]`` for ``(N, C)`` inputs and
``torch.func.vmap(layer)`` works. For unbatched images ``(C, H, W)`` give ``dim=-3`` (then batched
``(N, C, H, W)`` inputs work too): the builders of :mod:`lipot.models` do.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import _checks
from . import functional as LF
from .base import LipschitzModule, TracedLipschitzModule, trace_export

__all__ = ["GroupSort", "GroupSort2", "FullSort", "GroupSortNorm", "MaxMin", "HouseHolder", "LPReLU"]


def _scaled(x: Tensor, k: float) -> Tensor:
    return x if k == 1.0 else x * k


def _channel_dim(input: Tensor, dim: int) -> int:
    """``dim``, or 0 for a 1-D input with the default ``dim=1`` (one unbatched vector)."""
    if not LF.is_tracing() and dim == 1 and input.dim() == 1:
        return 0
    return dim


class _Activation(TracedLipschitzModule):
    def extra_repr(self) -> str:
        return f"k_coef_lip={self.k_coef_lip:g}"


class GroupSort(_Activation):
    r"""Sort channels (dimension 1) within groups of ``group_size`` (``None``: all channels).

    Args:
        group_size: group size; must divide the number of channels (checked at forward).
        k_coef_lip: Lipschitz factor.
        dim: the channel dimension (see the module docstring for 1-D inputs).

    Shape: ``(N, C, *)`` -> same; ``(C,)`` -> same.
    Reference: Anil, Lucas & Grosse, arXiv:1811.05381.

    Example:
        >>> lipot.GroupSort(3)(torch.tensor([[3.0, 1.0, 2.0, 0.0, -1.0, 5.0]]))
        tensor([[ 1.,  2.,  3., -1.,  0.,  5.]])
    """

    def __init__(self, group_size: int | None = None, k_coef_lip: float = 1.0, dim: int = 1) -> None:
        super().__init__(k_coef_lip)
        self.group_size = None if group_size is None else _checks.positive_int("group_size", group_size)
        self.dim = int(dim)

    def forward(self, input: Tensor) -> Tensor:
        return _scaled(LF.group_sort(input, self.group_size, _channel_dim(input, self.dim)), self.k_coef_lip)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, dim={self.dim}, " + super().extra_repr()


class GroupSort2(GroupSort):
    """GroupSort with groups of 2 (computed as min/max pairs).

    Args:
        k_coef_lip: Lipschitz factor.
        dim: the channel dimension.

    Example:
        >>> lipot.GroupSort2()(torch.tensor([[3.0, 1.0, -2.0, 0.0]]))
        tensor([[ 1.,  3., -2.,  0.]])
    """

    def __init__(self, k_coef_lip: float = 1.0, dim: int = 1) -> None:
        super().__init__(group_size=2, k_coef_lip=k_coef_lip, dim=dim)


class FullSort(GroupSort):
    """GroupSort over all channels.

    Args:
        k_coef_lip: Lipschitz factor.
        dim: the channel dimension.

    Example:
        >>> lipot.FullSort()(torch.tensor([[3.0, 1.0, -2.0, 0.0]]))
        tensor([[-2.,  0.,  1.,  3.]])
    """

    def __init__(self, k_coef_lip: float = 1.0, dim: int = 1) -> None:
        super().__init__(group_size=None, k_coef_lip=k_coef_lip, dim=dim)


class GroupSortNorm(_Activation):
    r"""GroupSort2 on the first half of the channels (dimension 1), :math:`\ell_2` norms of
    consecutive pairs on the second half (:func:`lipot.functional.group_sort_norm`).

    Shape: ``(N, C, *)`` -> ``(N, C/2 + C/4, *)``, ``C`` divisible by 4. 1-Lipschitz and
    gradient-norm preserving; the norm half lets a dense network represent radial functions
    such as :math:`\lVert x - a\rVert`, which GroupSort alone approximates coarsely (the
    default critic of :func:`lipot.estimate_w1` uses it).

    Args:
        k_coef_lip: Lipschitz factor.
        dim: the channel dimension.

    Example:
        >>> x = torch.tensor([[3.0, 1.0, 3.0, 4.0]])            # GroupSort2 on (3, 1), norm of (3, 4)
        >>> lipot.GroupSortNorm()(x)
        tensor([[1., 3., 5.]])
    """

    def __init__(self, k_coef_lip: float = 1.0, dim: int = 1) -> None:
        super().__init__(k_coef_lip)
        self.dim = int(dim)

    def forward(self, input: Tensor) -> Tensor:
        return _scaled(LF.group_sort_norm(input, _channel_dim(input, self.dim)), self.k_coef_lip)

    @staticmethod
    def out_features(features: int) -> int:
        """Output width for ``features`` input channels."""
        return features // 2 + features // 4


class MaxMin(_Activation):
    r"""Concatenate :math:`\max(x,0)` and :math:`\max(-x,0)` along ``dim`` (doubles it).

    Args:
        dim: dimension to double (``None`` means 1, the channels, as deel-torchlip for batched
            inputs).
        k_coef_lip: Lipschitz factor.

    Example:
        >>> lipot.MaxMin()(torch.tensor([[3.0, -1.0]]))          # max(x, 0), then max(-x, 0)
        tensor([[3., 0., 0., 1.]])
    """

    def __init__(self, dim: int | None = None, k_coef_lip: float = 1.0) -> None:
        super().__init__(k_coef_lip)
        self.dim = 1 if dim is None else int(dim)

    def forward(self, input: Tensor) -> Tensor:
        return _scaled(LF.max_min(input, _channel_dim(input, self.dim)), self.k_coef_lip)


class HouseHolder(_Activation):
    r"""Householder activation on channel pairs with a learnable angle per pair.

    Args:
        channels: number of channels (even).
        k_coef_lip: Lipschitz factor.
        theta_initializer: ``None`` (angle pi/2), a float angle, or ``"zeros"``, ``"ones"``,
            ``"normal"``.
        dim: the channel dimension when ``forward`` gets no ``axis`` (1; ``-3`` for unbatched
            images too, see the module docstring).

    See :func:`lipot.functional.householder`.

    Example:
        >>> act = lipot.HouseHolder(4)                         # a learned reflection on half the channels
        >>> x = torch.randn(8, 4)
        >>> bool(torch.allclose(act(x).norm(dim=1), x.norm(dim=1), atol=1e-5))   # norm preserving
        True
    """

    def __init__(self, channels: int, k_coef_lip: float = 1.0, theta_initializer=None, dim: int = 1) -> None:
        super().__init__(k_coef_lip)
        channels = _checks.positive_int("channels", channels)
        if channels % 2:
            raise ValueError(f"HouseHolder: channels must be even, got {channels}")
        self.channels = channels
        theta = torch.full((channels // 2,), 0.5 * math.pi)
        if isinstance(theta_initializer, (int, float)) and not isinstance(theta_initializer, bool):
            theta.fill_(float(theta_initializer))
        elif theta_initializer == "zeros":
            theta.zero_()
        elif theta_initializer == "ones":
            theta.fill_(1.0)
        elif theta_initializer == "normal":
            theta.normal_()
        elif theta_initializer is not None:
            raise ValueError(
                "theta_initializer must be None, a float, 'zeros', 'ones' or 'normal', "
                f"got {theta_initializer!r}"
            )
        self.theta = nn.Parameter(theta)
        self.dim = int(dim)

    def forward(self, input: Tensor, axis: int | None = None) -> Tensor:
        axis = self.dim if axis is None else axis
        return _scaled(LF.householder(input, self.theta, _channel_dim(input, axis)), self.k_coef_lip)

    def vanilla_export(self) -> nn.Module:
        """The traced forward with ``axis`` fixed to ``dim`` (the exported module takes the input
        only)."""
        return trace_export(self, concrete_args={"axis": None})


class LPReLU(nn.PReLU, LipschitzModule):
    """A ``k_coef_lip``-Lipschitz PReLU (see :func:`lipot.functional.lipschitz_prelu`).

    Args:
        num_parameters, init: as ``torch.nn.PReLU``.
        k_coef_lip: Lipschitz factor.

    Example:
        >>> act = lipot.LPReLU()                                # PReLU with its slope clipped to [-k, k]
        >>> act(torch.tensor([2.0, -2.0])).detach()
        tensor([ 2.0000, -0.5000])
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, k_coef_lip: float = 1.0) -> None:
        nn.PReLU.__init__(self, num_parameters=num_parameters, init=init)
        self._init_lipschitz(k_coef_lip)

    def forward(self, input: Tensor) -> Tensor:
        return LF.lipschitz_prelu(input, self.weight, self.k_coef_lip)

    def vanilla_export(self) -> nn.Module:
        return trace_export(self)

