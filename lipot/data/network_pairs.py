r"""Pairs of distributions with a known :math:`W_1` built on a random gradient-norm-preserving
network: a second family of W1 benchmark pairs, beside the funnels of :mod:`lipot.data.funnels`.

**Principle** (Kantorovich–Rubinstein duality). If :math:`f` is 1-Lipschitz and a coupling of
:math:`P` and :math:`Q` only pairs points with :math:`f(y) - f(x) = \lVert y - x\rVert`, then

.. math::
    \mathbb E\lVert x - y\rVert = \mathbb E_Q f - \mathbb E_P f \le W_1(P, Q)
    \le \mathbb E\lVert x - y\rVert ,

so the coupling is optimal and :math:`W_1(P, Q) = \mathbb E\lVert x - y\rVert`. The funnels
move points along the rays of a minimum of cones; here :math:`f` is a random network

.. math::
    f(z) = u^\top \sigma(Q_L \cdots \sigma(Q_1 z + a_1) \cdots + a_L),

with :math:`Q_i` exactly orthogonal :math:`d \times d` matrices (QR of Gaussian matrices, float64),
:math:`\sigma` the MaxMin activation on consecutive pairs (the identity on a last odd
coordinate), :math:`\lVert u\rVert = 1` and biases :math:`a_i`. It is piecewise linear, and its
gradient :math:`Q_1^\top \Pi_1 \cdots Q_L^\top \Pi_L u` (:math:`\Pi_i` the permutations MaxMin
applies) has norm exactly 1 everywhere it exists.

**Sampling.** :math:`y \sim Q` is uniform on the cube :math:`[-a, a]^d`. With :math:`e =
\nabla f(y)`, :math:`g(s) = f(y) - f(y - s e) \le s` for every :math:`s \ge 0` and the set where
:math:`g(s) = s` is an interval :math:`[0, s^*]` (if :math:`g(s_0) = s_0` then for
:math:`s < s_0`, :math:`g(s) \ge g(s_0) - (s_0 - s) = s`), found by bisection. Then :math:`x = y -
t\,\min(s^*, L)\, e` with :math:`t` uniform on :math:`[0, 1]` and :math:`L` the longest step:
:math:`f(y) - f(x) = \lVert y - x\rVert` on every pair (checked by the tests to rounding), and
the transport direction at :math:`x` is :math:`e`. Unlike the funnels, the rays end wherever an
activation switches, so the transport is short and its direction varies from region to region.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import _checks
from .funnels import KnownW1Pair

__all__ = ["NetworkPair"]

_BISECTIONS = 45
_SLACK = 1e-12  # relative rounding allowed in g(s) = s (float64)


@dataclass
class NetworkPair(KnownW1Pair):
    """One benchmark pair :math:`(P, Q)` on a random GNP network potential (module docstring).

    Args:
        dim: dimension :math:`d`.
        depth: number of orthogonal layers :math:`L`.
        seed: seed of the network (the pair itself).
        half_width: :math:`a`, the cube is :math:`[-a, a]^d`.
        max_step: :math:`L`, the longest move.

    Example::

        pair = NetworkPair(dim=16, seed=0)
        x, y = pair.sample(8000, seed=1)        # x ~ P, y ~ Q, paired optimally
        truth, err = pair.w1()                  # E||x - y|| by Monte Carlo, and its standard error
    """

    dim: int
    depth: int = 3
    seed: int = 0
    half_width: float = 2.5
    max_step: float = 1.0
    weights: list = field(init=False, repr=False)
    biases: list = field(init=False, repr=False)
    output: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _checks.positive_int("dim", self.dim)
        _checks.positive_int("depth", self.depth)
        self.half_width = _checks.positive_float("half_width", self.half_width)
        self.max_step = _checks.positive_float("max_step", self.max_step)
        gen = torch.Generator().manual_seed(int(self.seed))
        self.weights, self.biases = [], []
        for _ in range(self.depth):
            q, r = torch.linalg.qr(torch.randn(self.dim, self.dim, generator=gen, dtype=torch.float64))
            self.weights.append(q * torch.sign(torch.diagonal(r)))  # Haar-distributed orthogonal
            self.biases.append(self.half_width * 0.5 * torch.randn(self.dim, generator=gen, dtype=torch.float64))
        u = torch.randn(self.dim, generator=gen, dtype=torch.float64)
        self.output = u / u.norm()

    def _forward(self, z: Tensor) -> Tensor:
        h = z
        even = self.dim - self.dim % 2
        for q, a in zip(self.weights, self.biases):
            h = h @ q.to(h.device).T + a.to(h.device)
            pairs = h[:, :even].reshape(h.shape[0], -1, 2)
            h = torch.cat([pairs.max(-1).values, pairs.min(-1).values, h[:, even:]], dim=1)
        return h @ self.output.to(h.device)

    def potential(self, z: Tensor) -> Tensor:
        """The true potential :math:`f` of points ``z`` ``(n, dim)``: 1-Lipschitz, with
        :math:`\\mathbb E_Q f - \\mathbb E_P f = W_1`."""
        return self._forward(self._points("z", z))

    def gradient(self, z: Tensor) -> Tensor:
        """:math:`\\nabla f(z)` (unit vectors): at a point :math:`x \\sim P`, the true transport
        direction toward its partner in :math:`Q`."""
        z = self._points("z", z).clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self._forward(z).sum(), z)
        return grad

    def ray_length(self, y: Tensor) -> Tensor:
        """:math:`\\min(s^*, L)`: how far each ``y`` can move down :math:`-\\nabla f(y)` with
        :math:`f` falling at unit rate (bisection, module docstring)."""
        y = self._points("y", y)
        e = self.gradient(y)
        fy = self._forward(y)

        def straight(s: Tensor) -> Tensor:
            return fy - self._forward(y - s[:, None] * e) >= s * (1 - _SLACK) - _SLACK

        hi = torch.full((y.shape[0],), self.max_step, dtype=torch.float64, device=y.device)
        lo = torch.zeros_like(hi)
        done = straight(hi)
        lo[done] = hi[done]
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            ok = straight(mid)
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        return torch.where(done, hi, lo)

    def transport(self, y: Tensor, t: Tensor) -> Tensor:
        """The point ``x`` of :math:`P` paired with each ``y`` (rows, in the cube), moved by
        the fraction ``t`` ``(n,)`` of its ray."""
        y = self._points("y", y)
        return y - (t * self.ray_length(y))[:, None] * self.gradient(y)

    def sample(self, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``n`` optimally paired points ``(x, y)``: ``y`` uniform on the cube (:math:`Q`), ``x``
        its image (:math:`P`); float64 ``(n, dim)`` each."""
        n = _checks.positive_int("n", n)
        gen = torch.Generator().manual_seed(int(seed))
        y = (torch.rand(n, self.dim, generator=gen, dtype=torch.float64) * 2 - 1) * self.half_width
        t = torch.rand(n, generator=gen, dtype=torch.float64)
        return self.transport(y, t), y
