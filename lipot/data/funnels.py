r"""Pairs of distributions with a known :math:`W_1` in any dimension: the "funnel" family of the W1
benchmark of Korotin, Kolesov & Burnaev (*Kantorovich Strikes Back! Wasserstein GANs are not
Optimal Transport?*, NeurIPS 2022 datasets and benchmarks track).

:math:`Q` is uniform on the cube :math:`[-a, a]^d`. The potential

.. math::
    f(z) = \min_k \big(\lVert z - c_k\rVert + b_k\big)

over :math:`K` funnels (centres :math:`c_k` uniform in the cube, offsets :math:`b_k \sim 0.1\,
\mathcal N(0, 1)`) is 1-Lipschitz. The region of funnel :math:`k` (where it attains the minimum)
is star-shaped around :math:`c_k`: if :math:`y` lies in it, so does the segment :math:`[c_k, y]`.
For :math:`y \sim Q` with funnel :math:`k`, let :math:`e = (y - c_k)/\lVert y - c_k\rVert` and
:math:`s_{\max}` the length of the ray :math:`c_k + s e` inside both the cube and the region;
with :math:`t = \lVert y - c_k\rVert / s_{\max} \in [0, 1]`, the point

.. math::
    x = c_k + t^p s_{\max}\, e \qquad (p = 8)

slides toward the centre along the ray, and :math:`P` is the law of :math:`x`. On the ray
:math:`f(c_k + s e) = s + b_k`, so :math:`f(y) - f(x) = \lVert y - x\rVert` for every pair: the
pairs are moved along the rays of a 1-Lipschitz potential, hence optimally coupled, and

.. math::
    W_1(P, Q) = \mathbb E\,\lVert x - y\rVert = \mathbb E_Q f - \mathbb E_P f ,

with transport direction :math:`(y - x)/\lVert y - x\rVert = \nabla f(x)` at :math:`x`.

**The ray's end.** Along the ray, funnel :math:`j` overtakes :math:`k` where
:math:`s + b_k = \lVert w + s e\rVert + b_j`, :math:`w = c_k - c_j`; squaring gives
:math:`s_j = (\lVert w\rVert^2 - \beta^2) / (2(\beta - \langle e, w\rangle))` with
:math:`\beta = b_k - b_j`, when :math:`\beta > \langle e, w\rangle` (otherwise funnel :math:`j`
never overtakes: :math:`\lVert w + s e\rVert - s` decreases to :math:`\langle e, w\rangle`). The
cube is left at :math:`\min_i (\pm a - c_{k,i})/e_i`; :math:`s_{\max}` is the smallest of these.

Everything is computed in float64 with torch (CPU or GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import _checks

__all__ = ["FunnelPair", "KnownW1Pair"]

_CHUNK = 4096  # points per block of the (points x funnels) computations


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class KnownW1Pair:
    """What the benchmark pairs with a known :math:`W_1` share (:class:`FunnelPair`,
    :class:`lipot.data.network_pairs.NetworkPair`): a subclass has ``dim`` and ``sample(n, seed)``
    returning optimally paired ``(x, y)``."""

    dim: int

    def _points(self, name: str, z) -> Tensor:
        z = torch.as_tensor(z, dtype=torch.float64)
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (n, {self.dim}), got {tuple(z.shape)}")
        return z

    def w1(self, n: int = 200_000, seed: int = 12345) -> tuple[float, float]:
        r""":math:`W_1(P, Q) = \mathbb E\lVert x - y\rVert` by Monte Carlo over ``n`` pairs, and
        its standard error."""
        x, y = self.sample(n, seed)
        dist = (x - y).norm(dim=1)
        return float(dist.mean()), float(dist.std() / math.sqrt(n))


@dataclass
class FunnelPair(KnownW1Pair):
    """One benchmark pair :math:`(P, Q)` of the funnel family (see the module docstring).

    Args:
        dim: dimension :math:`d`.
        funnels: number of funnels :math:`K`.
        seed: seed of the funnels' centres and offsets (the pair itself).
        half_width: :math:`a`, the cube is :math:`[-a, a]^d` (2.5 in the paper).
        power: :math:`p`, how far points slide toward their centre (8 in the paper).
        offset_scale: standard deviation of the offsets :math:`b_k` (0.1 in the paper).

    Example::

        pair = FunnelPair(dim=16, funnels=64, seed=0)
        x, y = pair.sample(8000, seed=1)        # x ~ P, y ~ Q, paired optimally
        truth, err = pair.w1()                  # E||x - y|| by Monte Carlo, and its standard error
        lipot.estimate_w1(y, x).value           # estimates W1(Q, P) = W1(P, Q)
    """

    dim: int
    funnels: int
    seed: int = 0
    half_width: float = 2.5
    power: float = 8.0
    offset_scale: float = 0.1
    centers: Tensor = field(init=False, repr=False)
    offsets: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _checks.positive_int("dim", self.dim)
        _checks.positive_int("funnels", self.funnels)
        self.half_width = _checks.positive_float("half_width", self.half_width)
        self.power = _checks.positive_float("power", self.power)
        if not math.isfinite(float(self.offset_scale)) or self.offset_scale < 0:
            raise ValueError(f"offset_scale must be a finite number >= 0, got {self.offset_scale!r}")
        gen = _generator(self.seed)
        a = self.half_width
        self.centers = (torch.rand(self.funnels, self.dim, generator=gen, dtype=torch.float64) * 2 - 1) * a
        self.offsets = self.offset_scale * torch.randn(self.funnels, generator=gen, dtype=torch.float64)

    # ------------------------------------------------------------------ the potential

    def _scores(self, z: Tensor) -> Tensor:
        """``||z - c_k|| + b_k`` for every point and funnel: ``(n, K)``."""
        c = self.centers.to(z.device)
        dist = torch.cdist(z, c, compute_mode="donot_use_mm_for_euclid_dist")
        return dist + self.offsets.to(z.device)

    def potential(self, z: Tensor) -> Tensor:
        r"""The true potential :math:`f(z) = \min_k(\lVert z - c_k\rVert + b_k)` of points
        ``z`` ``(n, dim)``: 1-Lipschitz, with :math:`\mathbb E_Q f - \mathbb E_P f = W_1`."""
        z = self._points("z", z)
        return torch.cat([self._scores(part).min(1).values for part in z.split(_CHUNK)])

    def gradient(self, z: Tensor) -> Tensor:
        r""":math:`\nabla f(z)`, the unit vector from the centre of ``z``'s funnel to ``z``: at a
        point :math:`x \sim P` it is the true transport direction toward its partner in
        :math:`Q`."""
        z = self._points("z", z)
        out = []
        for part in z.split(_CHUNK):
            k = self._scores(part).argmin(1)
            ray = part - self.centers.to(part.device)[k]
            out.append(ray / ray.norm(dim=1, keepdim=True).clamp_min(torch.finfo(ray.dtype).tiny))
        return torch.cat(out)

    # ------------------------------------------------------------------ sampling

    def _ray_length(self, c: Tensor, e: Tensor, k: Tensor) -> Tensor:
        """Length of the ray ``c + s e`` inside the cube and the region of funnel ``k``."""
        a = self.half_width
        bound = torch.where(e > 0, a - c, -a - c)
        cube = torch.where(e != 0, bound / torch.where(e != 0, e, torch.ones_like(e)), math.inf).min(1).values
        centers, offsets = self.centers.to(c.device), self.offsets.to(c.device)
        # w_j = c_k - c_j without the (n, K, d) tensor: <e, w_j> and ||w_j||^2 from (n, K) products
        along = (e * c).sum(1, keepdim=True) - e @ centers.T
        gap = torch.cdist(c, centers, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        beta = offsets[k][:, None] - offsets[None, :]  # b_k - b_j
        den = beta - along
        num = gap - beta * beta
        overtake = torch.where(den > 0, num / (2 * torch.where(den > 0, den, torch.ones_like(den))), math.inf)
        overtake = overtake.scatter(1, k[:, None], math.inf)  # a funnel never overtakes itself
        return torch.minimum(cube, overtake.clamp_min(0).min(1).values)

    def transport(self, y: Tensor) -> Tensor:
        """The point ``x`` of :math:`P` paired with each ``y`` of :math:`Q` (rows of ``y``, in the
        cube): ``x = c + t^p s_max e`` (module docstring)."""
        y = self._points("y", y)
        out = []
        for part in y.split(_CHUNK):
            k = self._scores(part).argmin(1)
            c = self.centers.to(part.device)[k]
            ray = part - c
            length = ray.norm(dim=1)
            e = ray / length.clamp_min(torch.finfo(ray.dtype).tiny)[:, None]
            s_max = self._ray_length(c, e, k)
            t = (length / s_max).clamp(0.0, 1.0)
            out.append(c + (t.pow(self.power) * s_max)[:, None] * e)
        return torch.cat(out)

    def sample(self, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``n`` optimally paired points ``(x, y)``: ``y`` uniform on the cube (:math:`Q`), ``x``
        its image (:math:`P`); float64 ``(n, dim)`` each. Shuffle one side to get two
        independent samples (the estimators do not use the pairing)."""
        n = _checks.positive_int("n", n)
        y = (torch.rand(n, self.dim, generator=_generator(seed), dtype=torch.float64) * 2 - 1) * self.half_width
        return self.transport(y), y
