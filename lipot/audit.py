r"""Audit: check, not trust, a model's Lipschitz bound and its certificates.

* :func:`lipschitz_lower_bound`: the largest ratio :math:`\lVert f(a) - f(b)\rVert / \lVert a -
  b\rVert` found (a true lower bound on :math:`L`, whatever the search did) by two searches:
  power iteration on :math:`J^\top J` at the data points (:math:`J^\top u` by autograd,
  :math:`Jv` by a central difference, so the reported value is itself a ratio over a pair), and
  gradient ascent of the pairwise ratio. GroupSort networks are piecewise linear, so
  :math:`\lVert J(x)\rVert` has no useful gradient; the pairwise ratio does.
* :func:`attack_radius`: per sample, the smallest :math:`\ell_2` perturbation found by an
  ensemble of minimum-norm attacks written here -- batched DeepFool (Moosavi-Dezfooli et al.,
  arXiv:1511.04599), targeted FAB (Croce & Hein, arXiv:1907.02044), FMN (Pintor et al.,
  arXiv:2102.12827) and APGD with the DLR loss (Croce & Hein, arXiv:2003.01690) bisected on the
  radius per sample. Every returned point is re-checked: it really is misclassified.
* :func:`audit_certificates`: certificates (from a verified bound) against attack radii, and
  the lower bound against the upper one. A certificate is a lower bound on the distance to the
  decision boundary and a successful attack an upper bound, so ``certificate <= attack radius``
  must hold per sample; attacks miss small errors, hence the norm audit beside it.

Binary models with one logit (class = sign) are handled as the two logits ``(0, f)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import _checks
from .certify import certified_accuracy, lipschitz_bound
from .nn.base import evaluating

__all__ = ["lipschitz_lower_bound", "LowerBound", "attack_radius", "AttackResult", "audit_certificates",
           "AuditReport", "ATTACKS"]


# ------------------------------------------------------------------------------- helpers


def _as_inputs(name: str, X) -> Tensor:
    x = torch.as_tensor(X)
    if not x.is_floating_point():
        x = x.float()
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def _norms(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class _Logits:
    """The model as a map to ``(N, C >= 2)`` logits (one logit ``f`` becomes ``(0, f)``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.binary: bool | None = None

    def __call__(self, x: Tensor) -> Tensor:
        z = self.model(x)
        if z.dim() == 1 or (z.dim() == 2 and z.shape[1] == 1):
            self.binary = True
            z = z.reshape(-1, 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)
        if z.dim() != 2:
            raise ValueError(f"the model must return (N,), (N, 1) or (N, C) logits, got {tuple(z.shape)}")
        self.binary = False
        return z


def _labels(fn: _Logits, x: Tensor, y, n: int | None = None) -> Tensor:
    """Class indices: +-1 / {0, 1} for one logit, indices or one-hot for C logits. The model runs
    on ``x[:1]`` only (for its number of outputs); ``n``: the number of labels expected
    (default ``len(x)``)."""
    y = torch.as_tensor(y, device=x.device)
    with torch.no_grad():
        z = fn(x[:1])
    n = x.shape[0] if n is None else n
    if fn.binary:
        if y.numel() != n:
            raise ValueError(f"y: expected {n} binary labels (+-1 or 0/1), got shape {tuple(y.shape)}")
        return (_checks.binary_labels("y", y).reshape(-1) > 0).long()
    if y.dim() == 2 and y.shape == (n, z.shape[1]):
        y = _checks.binary_labels("y (one-hot)", y).argmax(1)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"y: expected {n} class indices or one-hot labels {(n, z.shape[1])}, "
                         f"got shape {tuple(y.shape)}")
    return _checks.class_indices("y", y, z.shape[1]).long()


def _margin(z: Tensor, y: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j``: > 0 iff correctly classified (ties count as errors)."""
    other = z.masked_fill(nn.functional.one_hot(y, z.shape[1]).bool(), -math.inf).max(1).values
    return z.gather(1, y[:, None])[:, 0] - other


def _misclassified(fn: _Logits, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return fn(x).argmax(1) != y


# ------------------------------------------------------------------------------- lower bounds


@dataclass
class LowerBound:
    """:func:`lipschitz_lower_bound`'s result: ``value`` = max of the two searches."""

    value: float
    power_iteration: float
    pairwise: float
    pair: tuple[Tensor, Tensor] = field(repr=False)


def _ratio(f: Callable[[Tensor], Tensor], a: Tensor, b: Tensor) -> Tensor:
    diff = (f(a) - f(b)).reshape(a.shape[0], -1)
    return diff.norm(dim=1) / _norms(a - b).clamp_min(torch.finfo(a.dtype).tiny)


def _power_iteration(f, x: Tensor, iterations: int, h: float, gen: torch.Generator):
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    v = v / _bcast(_norms(v), v)
    for _ in range(iterations):
        with torch.no_grad():
            jv = (f(x + h * v) - f(x - h * v)) / (2 * h)
        xg = x.detach().requires_grad_(True)
        (jtjv,) = torch.autograd.grad(f(xg), xg, grad_outputs=jv)
        n = _norms(jtjv)
        v = torch.where(_bcast(n > 0, v), jtjv / _bcast(n.clamp_min(1e-30), v), v)
    with torch.no_grad():
        r = _ratio(f, x + h * v, x - h * v)
    i = int(r.argmax())
    return float(r[i]), ((x + h * v)[i], (x - h * v)[i])


def _pairwise_ascent(f, x: Tensor, steps: int, lr: float, gen: torch.Generator):
    """Adam ascent of log ||f(a) - f(b)|| - log ||a - b|| from data pairs and near pairs."""
    n = x.shape[0]
    scale = float(_norms(x - x.mean(0, keepdim=True)).mean()) or 1.0
    near = x + 0.05 * scale * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) / math.sqrt(x[0].numel())
    far = x[torch.randperm(n, generator=gen).to(x.device)]
    a = torch.cat([x, x]).clone().requires_grad_(True)
    b = torch.cat([near, far]).clone()
    same = _norms(a.detach() - b) == 0
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
    """
    x = _as_inputs("X", X)
    param = next(iter(model.parameters()), None)
    if param is not None:
        x = x.to(param.device, param.dtype)
    gen = torch.Generator().manual_seed(seed)
    if h is None:
        h = 1e-3 * (float(_norms(x).mean()) or 1.0)

    def f(z: Tensor) -> Tensor:
        return model(z).reshape(z.shape[0], -1)

    with evaluating(model):
        power, pair_p = _power_iteration(f, x, iterations, h, gen)
        pairwise, pair_a = _pairwise_ascent(f, x, ascent_steps, lr, gen)
    best_pair = pair_p if power >= pairwise else pair_a
    return LowerBound(max(power, pairwise), power, pairwise, best_pair)


# ------------------------------------------------------------------------------- attacks


def _grad(fn: _Logits, x: Tensor, y: Tensor, objective: Callable[[Tensor], Tensor]):
    """(objective values, their input gradients, logits) at ``x``; one backward pass."""
    xg = x.detach().requires_grad_(True)
    z = fn(xg)
    val = objective(z)
    (g,) = torch.autograd.grad(val.sum(), xg)
    return val.detach(), g, z.detach()


def _deepfool(fn: _Logits, x: Tensor, y: Tensor, steps: int, overshoot: float = 0.02, **_) -> Tensor:
    """Batched DeepFool: step to the nearest linearized class boundary, accumulate, overshoot."""
    r_tot = torch.zeros_like(x)
    adv = x.clone()
    for _ in range(steps):
        xa = adv.detach().requires_grad_(True)
        z = fn(xa)
        active = z.argmax(1) == y
        if not bool(active.any()):
            break
        zy = z.gather(1, y[:, None])[:, 0]
        best_d = torch.full_like(zy, math.inf)
        step = torch.zeros_like(x)
        for k in range(z.shape[1]):
            (gk,) = torch.autograd.grad((z[:, k] - zy).sum(), xa, retain_graph=k < z.shape[1] - 1)
            fk = (z[:, k] - zy).detach().abs()
            gn = _norms(gk).clamp_min(1e-12)
            d = torch.where(y == k, torch.full_like(fk, math.inf), fk / gn)
            better = d < best_d
            best_d = torch.where(better, d, best_d)
            step = torch.where(_bcast(better, x), _bcast((fk + 1e-6) / gn**2, x) * gk, step)
        r_tot = r_tot + step * _bcast(active, x)
        adv = x + (1 + overshoot) * r_tot
    return adv.detach()


def _top_targets(fn: _Logits, x: Tensor, y: Tensor, k: int) -> list[Tensor]:
    with torch.no_grad():
        z = fn(x)
        z = z.masked_fill(nn.functional.one_hot(y, z.shape[1]).bool(), -math.inf)
    k = min(k, z.shape[1] - 1)
    return list(z.topk(k, dim=1).indices.T)


def _fab(fn: _Logits, x: Tensor, y: Tensor, steps: int, targets: int = 3, eta: float = 1.05, beta: float = 0.9,
         alpha_max: float = 0.1, **_) -> Tensor:
    """Targeted FAB (unconstrained domain): projections of the current and the original point on
    the linearized boundary to each target class, biased toward the original, with a backward
    step after each success; keeps the closest misclassified point."""
    best = torch.full((x.shape[0],), math.inf, device=x.device)
    best_x = x.clone()
    for t in _top_targets(fn, x, y, targets):
        cur = x.clone()
        for _ in range(steps):
            g, w, _ = _grad(fn, cur, y, lambda z: z.gather(1, y[:, None])[:, 0] - z.gather(1, t[:, None])[:, 0])
            wn2 = _bcast(_norms(w) ** 2, x).clamp_min(1e-24)
            d1 = -_bcast(g, x) / wn2 * w
            lin = g + (w * (x - cur)).reshape(x.shape[0], -1).sum(1)
            d2 = -_bcast(lin, x) / wn2 * w
            n1, n2 = _norms(d1), _norms(d2)
            a = _bcast((n1 / (n1 + n2).clamp_min(1e-24)).clamp(max=alpha_max), x)
            new = (1 - a) * (cur + eta * d1) + a * (x + eta * d2)
            adv = _misclassified(fn, new, y)
            dist = _norms(new - x)
            improve = adv & (dist < best)
            best = torch.where(improve, dist, best)
            best_x = torch.where(_bcast(improve, x), new, best_x)
            cur = torch.where(_bcast(adv, x), (1 - beta) * x + beta * new, new).detach()
    return best_x


def _fmn(fn: _Logits, x: Tensor, y: Tensor, steps: int, gamma: float = 0.05, **_) -> Tensor:
    """Fast Minimum Norm (L2): gradient steps on the margin inside an adaptive ball whose
    radius shrinks after each success and grows (or jumps to the linear estimate) otherwise."""
    delta = torch.zeros_like(x)
    eps = torch.full((x.shape[0],), math.inf, device=x.device)
    best = torch.full_like(eps, math.inf)
    best_x = x.clone()
    alpha0 = None
    for i in range(steps):
        m, g, _ = _grad(fn, x + delta, y, lambda z: _margin(z, y))
        gn = _norms(g).clamp_min(1e-12)
        if alpha0 is None:
            alpha0 = (m.abs() / gn).clamp_min(1e-6)  # linear distance estimate: a scale-free step
        cos = 0.5 * (1 + math.cos(math.pi * i / steps))
        alpha, gam = alpha0 * (0.01 + 0.99 * cos), gamma * (0.02 + 0.98 * cos)
        dn = _norms(delta)
        adv = _misclassified(fn, x + delta, y)
        improve = adv & (dn < best)
        best = torch.where(improve, dn, best)
        best_x = torch.where(_bcast(improve, x), x + delta, best_x)
        eps = torch.where(adv, torch.minimum(eps, dn) * (1 - gam),
                          torch.where(torch.isfinite(best), eps * (1 + gam), dn + m.clamp_min(0) / gn))
        delta = delta - _bcast(alpha / gn, x) * g
        delta = delta * _bcast((eps / _norms(delta).clamp_min(1e-12)).clamp(max=1.0), x)
        delta = delta.detach()
    adv = _misclassified(fn, x + delta, y)
    dn = _norms(delta)
    improve = adv & (dn < best)
    return torch.where(_bcast(improve, x), x + delta, best_x)


def _dlr(z: Tensor, y: Tensor) -> Tensor:
    """Difference-of-logits ratio (to maximize): ``-(z_y - max_{j!=y} z_j) / (z_(1) - z_(3))``;
    with two classes, the negative margin."""
    m = _margin(z, y)
    if z.shape[1] < 3:
        return -m
    top = z.topk(3, dim=1).values
    return -m / (top[:, 0] - top[:, 2]).clamp_min(1e-12)


def _apgd(fn: _Logits, x: Tensor, y: Tensor, eps: Tensor, start: Tensor, steps: int) -> Tensor:
    """APGD (L2 ball of radius ``eps`` per sample) on the DLR loss, with momentum and step
    halving at checkpoints without progress; returns the closest misclassified point found
    (``x`` where none)."""
    e = _bcast(eps, x)

    def proj(p: Tensor) -> Tensor:
        d = p - x
        return x + d * (e / _bcast(_norms(d), x).clamp_min(1e-12)).clamp(max=1.0)

    cur = proj(start)
    prev = cur.clone()
    eta = 2 * e
    best_loss = torch.full_like(eps, -math.inf)
    best_pt = cur.clone()
    found = torch.full_like(eps, math.inf)
    found_x = x.clone()
    period, last_best = max(steps // 5, 1), best_loss.clone()
    for k in range(steps):
        loss, g, z = _grad(fn, cur, y, lambda zz: _dlr(zz, y))
        adv = z.argmax(1) != y
        dist = _norms(cur - x)
        improve = adv & (dist < found)
        found = torch.where(improve, dist, found)
        found_x = torch.where(_bcast(improve, x), cur, found_x)
        up = loss > best_loss
        best_loss = torch.where(up, loss, best_loss)
        best_pt = torch.where(_bcast(up, x), cur, best_pt)
        zstep = proj(cur + eta * g / _bcast(_norms(g).clamp_min(1e-12), x))
        a = 1.0 if k == 0 else 0.75
        nxt = proj(cur + a * (zstep - cur) + (1 - a) * (cur - prev))
        prev, cur = cur, nxt.detach()
        if (k + 1) % period == 0:
            stuck = _bcast(best_loss <= last_best, x)
            eta = torch.where(stuck, eta / 2, eta)
            cur = torch.where(stuck, best_pt, cur)
            last_best = best_loss.clone()
    return found_x


def _apgd_bisect(fn: _Logits, x: Tensor, y: Tensor, best: Tensor, best_x: Tensor, steps: int,
                 bisections: int = 6, **_) -> Tensor:
    """Per-sample bisection on the radius below the best one found so far, APGD-DLR at each."""
    lo, hi = torch.zeros_like(best), best.clone()
    out = best_x.clone()
    finite = torch.isfinite(hi)
    if not bool(finite.any()):
        return out
    hi = torch.where(finite, hi, torch.zeros_like(hi))
    direction = (best_x - x) / _bcast(_norms(best_x - x).clamp_min(1e-12), x)
    for _ in range(bisections):
        eps = (lo + hi) / 2
        pts = _apgd(fn, x, y, eps, x + _bcast(eps, x) * direction, max(steps // bisections, 10))
        hit = finite & _misclassified(fn, pts, y)
        d = _norms(pts - x)
        better = hit & (d < hi)
        out = torch.where(_bcast(better, x), pts, out)
        hi = torch.where(better, d, hi)
        lo = torch.where(hit, lo, torch.maximum(lo, eps))
    return out


def _refine_on_ray(fn: _Logits, x: Tensor, y: Tensor, pts: Tensor, found: Tensor, iters: int = 20) -> Tensor:
    """Bisection on ``t`` for the point ``x + t (p - x)`` closest to ``x`` that is still
    misclassified (``t = 1`` is): pulls every attack's point onto the boundary."""
    lo, hi = torch.zeros_like(found, dtype=x.dtype), torch.ones_like(found, dtype=x.dtype)
    for _ in range(iters):
        mid = (lo + hi) / 2
        hit = _misclassified(fn, x + _bcast(mid, x) * (pts - x), y)
        hi = torch.where(hit & found, mid, hi)
        lo = torch.where(hit & found, lo, mid)
    return torch.where(_bcast(found, x), x + _bcast(hi, x) * (pts - x), pts)


ATTACKS: dict[str, Callable] = {"deepfool": _deepfool, "fab": _fab, "fmn": _fmn}
"""The independent minimum-norm attacks; ``"apgd"`` (bisection below the best radius found by
the others) runs after them."""


@dataclass
class AttackResult:
    """:func:`attack_radius`'s result. ``radii[i]`` is ``inf`` (and ``success[i]`` False) when no
    attack found an adversarial point for sample ``i``; 0 for samples already misclassified."""

    radii: Tensor
    points: Tensor = field(repr=False)
    success: Tensor = field(repr=False)
    per_attack: dict[str, Tensor] = field(default_factory=dict, repr=False)


def attack_radius(model: nn.Module, X, y, *, attacks: Sequence[str] = ("deepfool", "fab", "fmn", "apgd"),
                  steps: int = 100, targets: int = 3, batch_size: int = 256,
                  device: str | torch.device | None = None, progress: bool | None = False) -> AttackResult:
    """Per-sample minimum :math:`\\ell_2` adversarial distance over an ensemble of attacks.

    Args:
        model: a classifier: ``(N, C)`` logits, or one logit (class = sign) for binary models.
        X: inputs ``(N, ...)``; y: labels (indices / one-hot, or +-1 / {0, 1} for one logit).
        attacks: among ``"deepfool"``, ``"fab"``, ``"fmn"`` and ``"apgd"`` (runs last: it
            bisects on the radius below the best one found by the others).
        steps: iterations per attack (FAB: per target class).
        targets: FAB's number of target classes (the highest other logits).
        batch_size, device: samples per batch; where to run (default: the model's device).
        progress: a tqdm bar over batches x attacks on stderr (``None``: when it is a terminal).

    Returns an :class:`AttackResult`. Every point it returns is re-evaluated: it is misclassified
    by ``model`` (in eval mode); the domain is unconstrained (no box), like the certificate.
    """
    _checks.positive_int("steps", steps)
    _checks.positive_int("targets", targets)
    _checks.positive_int("batch_size", batch_size)
    if isinstance(attacks, str):
        attacks = (attacks,)
    unknown = set(attacks) - set(ATTACKS) - {"apgd"}
    if unknown or not attacks:
        raise ValueError(f"attacks must be a non-empty subset of {sorted(ATTACKS) + ['apgd']}, got {list(attacks)}")
    x_all = _as_inputs("X", X)
    param = next(iter(model.parameters()), None)
    dev = torch.device(device) if device is not None else (param.device if param is not None else x_all.device)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    fn = _Logits(model)
    radii, points, success = [], [], []
    per_attack: dict[str, list[Tensor]] = {a: [] for a in attacks}
    with evaluating(model):
        x_all = x_all.to(dev, dtype)
        y_all = _labels(fn, x_all, y)
        starts = range(0, x_all.shape[0], batch_size)
        bar = tqdm(total=len(starts) * len(attacks), desc="attacks", unit="attack", leave=False,
                   disable=None if progress is None else not progress)
        for i in starts:
            x, lab = x_all[i:i + batch_size], y_all[i:i + batch_size]
            best = torch.where(_misclassified(fn, x, lab), 0.0, math.inf).to(x)
            best_x = x.clone()
            for name in attacks:
                bar.set_postfix(batch=f"{i // batch_size + 1}/{len(starts)}", attack=name, refresh=False)
                bar.update()
                if name == "apgd":
                    pts = _apgd_bisect(fn, x, lab, best, best_x, steps)
                else:
                    pts = ATTACKS[name](fn, x, lab, steps=steps, targets=targets)
                pts = _refine_on_ray(fn, x, lab, pts, _misclassified(fn, pts, lab))
                hit = _misclassified(fn, pts, lab)  # the check: only verified points count
                d = torch.where(hit, _norms(pts - x), torch.full_like(best, math.inf))
                per_attack[name].append(d.cpu())
                better = d < best
                best = torch.where(better, d, best)
                best_x = torch.where(_bcast(better, x), pts, best_x)
            radii.append(best.cpu())
            points.append(best_x.cpu())
            success.append(torch.isfinite(best).cpu())
        bar.close()
    return AttackResult(torch.cat(radii), torch.cat(points), torch.cat(success),
                        {k: torch.cat(v) for k, v in per_attack.items()})


# ------------------------------------------------------------------------------- audit


@dataclass
class AuditReport:
    """:func:`audit_certificates`'s result (on the correctly classified samples).

    ``violations``: samples whose attack radius is below their certificate (beyond the float32
    tolerance ``rtol``); ``min_ratio`` / ``median_ratio``: attack radius / certificate;
    ``lower_bound`` (empirical, :func:`lipschitz_lower_bound`) and ``upper_bound`` (the bound
    the certificates used); ``verdict``: ``"ok"`` or what failed."""

    n: int
    n_correct: int
    violations: int
    min_ratio: float
    median_ratio: float
    lower_bound: float
    upper_bound: float
    verified_bound: float | None
    certificate_method: str
    verdict: str
    unattacked: int = 0
    verified_note: str = ""
    certificates: Tensor = field(default=None, repr=False)
    attack_radii: Tensor = field(default=None, repr=False)
    adversarial: Tensor = field(default=None, repr=False)

    def __str__(self) -> str:
        lines = [
            f"audit of {self.n} samples ({self.n_correct} correctly classified, audited)",
            f"  certificates: {self.certificate_method}",
            f"  Lipschitz bounds: empirical lower {self.lower_bound:.6f} <= upper {self.upper_bound:.6f}"
            + (f" (verified {self.verified_bound:.6f})" if self.verified_bound is not None else "")
            + (f"; {self.verified_note}" if self.verified_note else ""),
            f"  attack radius / certificate: min {self.min_ratio:.4f}, median {self.median_ratio:.4f}",
            f"  violations (attack radius < certificate): {self.violations}"
            + (f"; {self.unattacked} samples with no adversarial point found" if self.unattacked else ""),
            f"  verdict: {self.verdict}",
        ]
        return "\n".join(lines)


def audit_certificates(model: nn.Module, X, y, lipschitz: float | None = None, *, attack: dict | None = None,
                       lower: dict | None = None, rtol: float = 1e-4, per_pair: bool = True,
                       device: str | torch.device | None = None) -> AuditReport:
    """Audit ``model``'s certificates on ``(X, y)``: certificates vs attack radii, and the
    empirical lower bound on :math:`L` vs the bound the certificates use.

    Args:
        model: a classifier (one logit for binary, else ``(N, C)`` logits).
        X, y: inputs and labels (as for :func:`lipot.certify.certified_accuracy`).
        lipschitz: the bound to certify with; ``None`` computes the verified bound
            (:func:`lipot.certify.lipschitz_bound`, per pair when the model is a Sequential
            ending with a Linear layer).
        attack: keyword arguments for :func:`attack_radius`; lower: for
            :func:`lipschitz_lower_bound`.
        rtol: relative tolerance of a violation (float32 logits: a point found at
            ``radius >= certificate * (1 - rtol)`` is not counted).

    The verdict fails when any certificate is violated; when the verified bound (product of
    exact per-layer operator norms) exceeds the bound the certificates assumed (the norm audit:
    attacks alone miss small errors); or when the empirical lower bound exceeds it.
    """

    x = _as_inputs("X", X)
    y = torch.as_tensor(y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y: {y.shape[0]} labels for {x.shape[0]} inputs")
    _checks.fraction("rtol", rtol, high_open=True)
    param = next(iter(model.parameters()), None)
    with evaluating(model):  # the labels against the model's outputs, named as this function's y
        _labels(_Logits(model), x[:1].to(device or (param.device if param is not None else x.device)), y,
                x.shape[0])
    cert = certified_accuracy(model, (x, y), [0.0], lipschitz=lipschitz, per_pair=per_pair, device=device)
    verified, verified_note = None, ""
    try:
        verified = lipschitz_bound(model, tuple(x.shape[1:]))
    except ValueError as err:  # a module lipot cannot bound: reported, and only the empirical audit remains
        if lipschitz is None:
            raise
        verified_note = f"no verified bound ({err})"
    upper = float(lipschitz) if lipschitz is not None else verified
    lb = lipschitz_lower_bound(model, x, **(lower or {}))
    correct = cert.correct
    att = attack_radius(model, x[correct], y[correct], device=device, **(attack or {}))
    certs = cert.radii[correct].double()
    radii = att.radii.double()
    ratio = radii / certs.clamp_min(1e-30)
    violations = int((radii < certs * (1 - rtol)).sum())
    problems = []
    if violations:
        problems.append(f"{violations} certificate(s) violated by an attack")
    if verified is not None and verified > upper * (1 + rtol):
        problems.append(f"norm audit: the verified bound {verified:.6f} exceeds the bound used {upper:.6f}")
    if lb.value > upper * (1 + rtol):
        problems.append(f"empirical Lipschitz lower bound {lb.value:.6f} exceeds the bound used {upper:.6f}")
    finite = ratio[torch.isfinite(ratio)]
    return AuditReport(
        n=x.shape[0], n_correct=int(correct.sum()), violations=violations,
        min_ratio=float(finite.min()) if finite.numel() else math.inf,
        median_ratio=float(finite.median()) if finite.numel() else math.inf,
        lower_bound=lb.value, upper_bound=upper, verified_bound=verified,
        certificate_method=cert.method if lipschitz is None else f"given L = {upper:g}",
        verdict="ok" if not problems else "FAILED: " + "; ".join(problems),
        unattacked=int((~att.success).sum()), verified_note=verified_note, certificates=certs, attack_radii=radii, adversarial=att.points,
    )
