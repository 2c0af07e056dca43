r"""A scalar 1-Lipschitz potential built from cones (Euclidean distances to learned centers).

:class:`ConePotential` computes

.. math::
    f(x) = \frac{k}{2}\Big[\min_j \big(a_j + \lVert x - p_j\rVert_2\big)
    + \max_j \big(b_j - \lVert x - q_j\rVert_2\big)\Big]

(:func:`lipot.functional.cone_potential`), which is :math:`k`-Lipschitz for *every* value of
the centers :math:`p, q` and offsets :math:`a, b`: no normalization is needed, and
:func:`lipot.certify.lipschitz_bound` bounds it by :math:`k` analytically.

It is the shape of a Kantorovich potential: for two finite samples the optimal KR critic is
:math:`f(x) = \min_j (g_j + \lVert x - y_j\rVert)` over the points :math:`y_j` of the second
sample (the c-transform). With a few hundred learned centers it fits the potential of clustered
low-dimensional data (2-D mixtures, moons) closer than a dense GNP network of the same cost, and
it generalizes there; in higher dimension it overfits (a cone sees one neighbourhood), which is
why :func:`lipot.estimate_w1` only proposes it for inputs of at most
:data:`lipot.wasserstein.CONE_MAX_FEATURES` features and keeps it only when it wins the model
selection.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import _checks
from . import functional as LF
from .base import TracedLipschitzModule, trace_export

__all__ = ["ConePotential", "ConeEnvelope", "DEFAULT_CONES"]

DEFAULT_CONES = 128
"""Default number of cones per term of :class:`ConePotential` (and of the W1 cone critic)."""


class ConePotential(TracedLipschitzModule):
    """A ``k_coef_lip``-Lipschitz scalar function of ``in_features`` inputs made of ``cones``
    cones per term (see the module docstring).

    Args:
        in_features: input width.
        cones: number of centers of each term (``m``).
        k_coef_lip: Lipschitz factor.

    Shape: ``(N, in_features) -> (N, 1)``; one unbatched ``(in_features,) -> (1,)``. Parameters: ``low_centers``, ``high_centers``
    ``(cones, in_features)`` (standard normal at construction; :meth:`place` sets them from
    data) and ``low_offsets``, ``high_offsets`` ``(cones,)`` (zero).

    Example:
        >>> critic = lipot.ConePotential(2, cones=16)
        >>> critic(torch.randn(5, 2)).shape
        torch.Size([5, 1])
        >>> lipot.lipschitz_bound(critic, (2,))
        1.0
    """

    def __init__(self, in_features: int, cones: int = DEFAULT_CONES, k_coef_lip: float = 1.0) -> None:
        super().__init__(k_coef_lip)
        self.in_features = _checks.positive_int("in_features", in_features)
        self.cones = _checks.positive_int("cones", cones)
        self.low_centers = nn.Parameter(torch.randn(cones, in_features))
        self.low_offsets = nn.Parameter(torch.zeros(cones))
        self.high_centers = nn.Parameter(torch.randn(cones, in_features))
        self.high_offsets = nn.Parameter(torch.zeros(cones))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, cones={self.cones}"

    @torch.no_grad()
    def place(self, low: Tensor, high: Tensor) -> "ConePotential":
        """Put the centers of the minimum on the points ``low`` (where :math:`f` should be
        small) and those of the maximum on ``high``, both ``(cones, in_features)``; zero the
        offsets. Returns ``self``."""
        for name, points, target in (("low", low, self.low_centers), ("high", high, self.high_centers)):
            if tuple(points.shape) != tuple(target.shape):
                raise ValueError(f"ConePotential.place: {name} must have shape {tuple(target.shape)}, "
                                 f"got {tuple(points.shape)}")
            target.copy_(points)
        self.low_offsets.zero_()
        self.high_offsets.zero_()
        return self

    def forward(self, input: Tensor) -> Tensor:
        if not LF.is_tracing():
            self._check_width(input, self.in_features, -1, "features")
        single = not LF.is_tracing() and input.dim() == 1  # one unbatched sample, as nn.Linear takes
        points = input.unsqueeze(0) if single else input
        f = LF.cone_potential(points, self.low_centers, self.low_offsets, self.high_centers, self.high_offsets)
        f = (f if self.k_coef_lip == 1.0 else self.k_coef_lip * f).unsqueeze(-1)
        return f.squeeze(0) if single else f

    def vanilla_export(self) -> nn.Module:
        return trace_export(self)


class ConeEnvelope(TracedLipschitzModule):
    r"""A ``k_coef_lip``-Lipschitz scalar function: the lower or upper envelope of ``cones``
    cones, optionally smoothed (:func:`lipot.functional.cone_envelope`):

    .. math::
        f(x) = k\,\min_j \big(\lVert x - c_j\rVert_2 + b_j\big) \quad(\text{lower}),
        \qquad f(x) = k\,\max_j \big(b_j - \lVert x - c_j\rVert_2\big) \quad(\text{upper}),

    with the minimum (maximum) replaced by a soft one of temperature ``temperature`` when it is
    positive. Unlike :class:`ConePotential` (the *mean* of a lower and an upper envelope, whose
    gradient norm is below 1 wherever the two disagree), its gradient has norm 1 wherever one
    cone dominates: a gradient-norm-preserving potential. It is the potential of transport
    toward (lower) or away from (upper) a set of centers, such as the funnel pairs of Korotin,
    Kolesov & Burnaev's W1 benchmark (:mod:`lipot.data.funnels`), and every 1-Lipschitz function is
    such an envelope over enough centers (McShane's extension).

    Args:
        in_features: input width.
        cones: number of centers ``m``.
        lower: the lower envelope (a minimum; ``False``: the upper one, a maximum).
        temperature: :math:`\tau \ge 0` of the soft minimum (0: the exact one).
        k_coef_lip: Lipschitz factor.

    Shape: ``(N, in_features) -> (N, 1)``; one unbatched ``(in_features,) -> (1,)``.
    Parameters: ``centers`` ``(cones, in_features)`` (standard normal at construction) and
    ``offsets`` ``(cones,)`` (zero).

    Example:
        >>> f = lipot.ConeEnvelope(3, cones=8)                  # min_j ||x - c_j|| + b_j
        >>> x = torch.randn(4, 3, requires_grad=True)
        >>> (g,) = torch.autograd.grad(f(x).sum(), x)
        >>> bool(((g.norm(dim=1) - 1).abs() < 1e-5).all())    # gradient norm 1: a GNP potential
        True
    """

    def __init__(self, in_features: int, cones: int = DEFAULT_CONES, lower: bool = True, temperature: float = 0.0,
                 k_coef_lip: float = 1.0) -> None:
        super().__init__(k_coef_lip)
        self.in_features = _checks.positive_int("in_features", in_features)
        self.cones = _checks.positive_int("cones", cones)
        if not isinstance(lower, bool):
            raise TypeError(f"lower must be True or False, got {lower!r}")
        self.lower = lower
        self.temperature = _checks.nonnegative_float("temperature", temperature)
        self.centers = nn.Parameter(torch.randn(cones, in_features))
        self.offsets = nn.Parameter(torch.zeros(cones))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, cones={self.cones}, lower={self.lower}, "
                f"temperature={self.temperature:g}")

    def forward(self, input: Tensor) -> Tensor:
        if not LF.is_tracing():
            self._check_width(input, self.in_features, -1, "features")
        single = not LF.is_tracing() and input.dim() == 1
        points = input.unsqueeze(0) if single else input
        f = LF.cone_envelope(points, self.centers, self.offsets, self.temperature, 1.0 if self.lower else -1.0)
        f = (f if self.k_coef_lip == 1.0 else self.k_coef_lip * f).unsqueeze(-1)
        return f.squeeze(0) if single else f
