r"""Empirical lower bounds on a model's :math:`\ell_2` Lipschitz constant: every candidate is an
exact ratio :math:`\lVert f(a) - f(b)\rVert / \lVert a - b\rVert` over a pair of inputs, found
by power iteration on :math:`J^\top J` and by gradient ascent of the pairwise ratio (GroupSort
networks are piecewise linear, so :math:`\lVert J(x)\rVert` has no useful gradient; the
pairwise ratio does)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from ..nn.base import evaluating
from ._common import as_inputs, bcast, sample_norms

__all__ = ["lipschitz_lower_bound", "LowerBound"]


@dataclass
class LowerBound:
    """:func:`lipschitz_lower_bound`'s result: ``value`` = max of the two searches."""

    value: float
    power_iteration: float
    pairwise: float
    pair: tuple[Tensor, Tensor] = field(repr=False)


def _ratio(f: Callable[[Tensor], Tensor], a: Tensor, b: Tensor) -> Tensor:
    diff = (f(a) - f(b)).reshape(a.shape[0], -1)
    return diff.norm(dim=1) / sample_norms(a - b).clamp_min(torch.finfo(a.dtype).tiny)


def _power_iteration(f, x: Tensor, iterations: int, h: float, gen: torch.Generator):
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    v = v / bcast(sample_norms(v), v)
    for _ in range(iterations):
        with torch.no_grad():
            jv = (f(x + h * v) - f(x - h * v)) / (2 * h)
        xg = x.detach().requires_grad_(True)
        (jtjv,) = torch.autograd.grad(f(xg), xg, grad_outputs=jv)
        n = sample_norms(jtjv)
        v = torch.where(bcast(n > 0, v), jtjv / bcast(n.clamp_min(1e-30), v), v)
    with torch.no_grad():
        r = _ratio(f, x + h * v, x - h * v)
    i = int(r.argmax())
    return float(r[i]), ((x + h * v)[i], (x - h * v)[i])


def _pairwise_ascent(f, x: Tensor, steps: int, lr: float, gen: torch.Generator):
    """Adam ascent of log ||f(a) - f(b)|| - log ||a - b|| from data pairs and near pairs."""
    n = x.shape[0]
    scale = float(sample_norms(x - x.mean(0, keepdim=True)).mean()) or 1.0
    near = x + 0.05 * scale * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) / math.sqrt(x[0].numel())
    far = x[torch.randperm(n, generator=gen).to(x.device)]
    a = torch.cat([x, x]).clone().requires_grad_(True)
    b = torch.cat([near, far]).clone()
    same = sample_norms(a.detach() - b) == 0
    b[same] = b[same] + 1e-3 * scale
    b.requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr * scale)
    best, pair = -math.inf, (x[0], x[0])
    for _ in range(steps + 1):
        r = _ratio(f, a, b)
        i = int(r.detach().argmax())
        if float(r[i].detach()) > best:
            best, pair = float(r[i].detach()), (a[i].detach().clone(), b[i].detach().clone())
        opt.zero_grad(set_to_none=True)
        (-torch.log(r.clamp_min(1e-30)).sum()).backward()
        opt.step()
    return best, pair


def lipschitz_lower_bound(model: nn.Module, X, *, iterations: int = 30, ascent_steps: int = 100,
                          lr: float = 0.01, h: float | None = None, seed: int = 0) -> LowerBound:
    r"""A lower bound on the :math:`\ell_2` Lipschitz constant of ``model`` near the points ``X``.

    Every candidate is an exact ratio :math:`\lVert f(a) - f(b)\rVert/\lVert a - b\rVert` over a
    pair of inputs, so the result is a lower bound whatever the searches found:

    * power iteration on :math:`J(x)^\top J(x)` at each point (``iterations`` steps; :math:`Jv`
      by a central difference of step ``h``, default 1e-3 of the data scale);
    * Adam ascent (``ascent_steps``, step ``lr`` times the data scale) of the pairwise ratio from
      each point and a near copy, and from random pairs of points.

    The model is evaluated in eval mode (restored afterwards), in its own precision: a float32
    ratio over a pair at distance ``2h`` carries a rounding error of about ``1e-5`` relative at
    the default ``h`` (so compare it with an upper bound up to such a tolerance, as
    :func:`audit_certificates` does with ``rtol``).

    Args:
        model: any module mapping a batch of inputs to outputs.
        X: the points ``(N, *)`` near which to search.
        iterations: power-iteration steps per point.
        ascent_steps: Adam steps of the pairwise-ratio ascent.
        lr: the ascent's step, relative to the data scale.
        h: the central-difference step (default 1e-3 of the data scale).
        seed: the searches' random seed.

    Example:
        >>> layer = lipot.SpectralLinear(6, 6)                 # orthogonal: the true constant is 1
        >>> lb = lipot.lipschitz_lower_bound(layer, torch.randn(8, 6))
        >>> 0.99 < lb.value <= 1.0 + 1e-4
        True
    """
    x = as_inputs("X", X)
    param = next(iter(model.parameters()), None)
    if param is not None:
        x = x.to(param.device, param.dtype)
    gen = torch.Generator().manual_seed(seed)
    if h is None:
        h = 1e-3 * (float(sample_norms(x).mean()) or 1.0)

    def f(z: Tensor) -> Tensor:
        return model(z).reshape(z.shape[0], -1)

    with evaluating(model):
        power, pair_p = _power_iteration(f, x, iterations, h, gen)
        pairwise, pair_a = _pairwise_ascent(f, x, ascent_steps, lr, gen)
    best_pair = pair_p if power >= pairwise else pair_a
    return LowerBound(max(power, pairwise), power, pairwise, best_pair)
