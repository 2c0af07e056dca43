r"""Minimum-norm :math:`\ell_2` attacks, written here and batched: DeepFool (Moosavi-Dezfooli et
al., arXiv:1511.04599), targeted FAB (Croce & Hein, arXiv:1907.02044), FMN (Pintor et al.,
arXiv:2102.12827) and APGD with the DLR loss (Croce & Hein, arXiv:2003.01690) bisected on the
radius per sample; :func:`attack_radius` keeps, per sample, the closest point that is really
misclassified (every returned point is re-checked)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import _checks
from ..nn.base import evaluating
from ._common import Logits, as_inputs, bcast, check_labels, logit_margin, is_misclassified, sample_norms

__all__ = ["attack_radius", "AttackResult", "ATTACKS"]


def _grad(fn: Logits, x: Tensor, y: Tensor, objective: Callable[[Tensor], Tensor]):
    """(objective values, their input gradients, logits) at ``x``; one backward pass."""
    xg = x.detach().requires_grad_(True)
    z = fn(xg)
    val = objective(z)
    (g,) = torch.autograd.grad(val.sum(), xg)
    return val.detach(), g, z.detach()


def _deepfool(fn: Logits, x: Tensor, y: Tensor, steps: int, overshoot: float = 0.02, **_) -> Tensor:
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
            gn = sample_norms(gk).clamp_min(1e-12)
            d = torch.where(y == k, torch.full_like(fk, math.inf), fk / gn)
            better = d < best_d
            best_d = torch.where(better, d, best_d)
            step = torch.where(bcast(better, x), bcast((fk + 1e-6) / gn**2, x) * gk, step)
        r_tot = r_tot + step * bcast(active, x)
        adv = x + (1 + overshoot) * r_tot
    return adv.detach()


def _top_targets(fn: Logits, x: Tensor, y: Tensor, k: int) -> list[Tensor]:
    with torch.no_grad():
        z = fn(x)
        z = z.masked_fill(nn.functional.one_hot(y, z.shape[1]).bool(), -math.inf)
    k = min(k, z.shape[1] - 1)
    return list(z.topk(k, dim=1).indices.T)


def _fab(fn: Logits, x: Tensor, y: Tensor, steps: int, targets: int = 3, eta: float = 1.05, beta: float = 0.9,
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
            wn2 = bcast(sample_norms(w) ** 2, x).clamp_min(1e-24)
            d1 = -bcast(g, x) / wn2 * w
            lin = g + (w * (x - cur)).reshape(x.shape[0], -1).sum(1)
            d2 = -bcast(lin, x) / wn2 * w
            n1, n2 = sample_norms(d1), sample_norms(d2)
            a = bcast((n1 / (n1 + n2).clamp_min(1e-24)).clamp(max=alpha_max), x)
            new = (1 - a) * (cur + eta * d1) + a * (x + eta * d2)
            adv = is_misclassified(fn, new, y)
            dist = sample_norms(new - x)
            improve = adv & (dist < best)
            best = torch.where(improve, dist, best)
            best_x = torch.where(bcast(improve, x), new, best_x)
            cur = torch.where(bcast(adv, x), (1 - beta) * x + beta * new, new).detach()
    return best_x


def _fmn(fn: Logits, x: Tensor, y: Tensor, steps: int, gamma: float = 0.05, **_) -> Tensor:
    """Fast Minimum Norm (L2): gradient steps on the margin inside an adaptive ball whose
    radius shrinks after each success and grows (or jumps to the linear estimate) otherwise."""
    delta = torch.zeros_like(x)
    eps = torch.full((x.shape[0],), math.inf, device=x.device)
    best = torch.full_like(eps, math.inf)
    best_x = x.clone()
    alpha0 = None
    for i in range(steps):
        m, g, _ = _grad(fn, x + delta, y, lambda z: logit_margin(z, y))
        gn = sample_norms(g).clamp_min(1e-12)
        if alpha0 is None:
            alpha0 = (m.abs() / gn).clamp_min(1e-6)  # linear distance estimate: a scale-free step
        cos = 0.5 * (1 + math.cos(math.pi * i / steps))
        alpha, gam = alpha0 * (0.01 + 0.99 * cos), gamma * (0.02 + 0.98 * cos)
        dn = sample_norms(delta)
        adv = is_misclassified(fn, x + delta, y)
        improve = adv & (dn < best)
        best = torch.where(improve, dn, best)
        best_x = torch.where(bcast(improve, x), x + delta, best_x)
        eps = torch.where(adv, torch.minimum(eps, dn) * (1 - gam),
                          torch.where(torch.isfinite(best), eps * (1 + gam), dn + m.clamp_min(0) / gn))
        delta = delta - bcast(alpha / gn, x) * g
        delta = delta * bcast((eps / sample_norms(delta).clamp_min(1e-12)).clamp(max=1.0), x)
        delta = delta.detach()
    adv = is_misclassified(fn, x + delta, y)
    dn = sample_norms(delta)
    improve = adv & (dn < best)
    return torch.where(bcast(improve, x), x + delta, best_x)


def _dlr(z: Tensor, y: Tensor) -> Tensor:
    """Difference-of-logits ratio (to maximize): ``-(z_y - max_{j!=y} z_j) / (z_(1) - z_(3))``;
    with two classes, the negative margin."""
    m = logit_margin(z, y)
    if z.shape[1] < 3:
        return -m
    top = z.topk(3, dim=1).values
    return -m / (top[:, 0] - top[:, 2]).clamp_min(1e-12)


def _apgd(fn: Logits, x: Tensor, y: Tensor, eps: Tensor, start: Tensor, steps: int) -> Tensor:
    """APGD (L2 ball of radius ``eps`` per sample) on the DLR loss, with momentum and step
    halving at checkpoints without progress; returns the closest misclassified point found
    (``x`` where none)."""
    e = bcast(eps, x)

    def proj(p: Tensor) -> Tensor:
        d = p - x
        return x + d * (e / bcast(sample_norms(d), x).clamp_min(1e-12)).clamp(max=1.0)

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
        dist = sample_norms(cur - x)
        improve = adv & (dist < found)
        found = torch.where(improve, dist, found)
        found_x = torch.where(bcast(improve, x), cur, found_x)
        up = loss > best_loss
        best_loss = torch.where(up, loss, best_loss)
        best_pt = torch.where(bcast(up, x), cur, best_pt)
        zstep = proj(cur + eta * g / bcast(sample_norms(g).clamp_min(1e-12), x))
        a = 1.0 if k == 0 else 0.75
        nxt = proj(cur + a * (zstep - cur) + (1 - a) * (cur - prev))
        prev, cur = cur, nxt.detach()
        if (k + 1) % period == 0:
            stuck = bcast(best_loss <= last_best, x)
            eta = torch.where(stuck, eta / 2, eta)
            cur = torch.where(stuck, best_pt, cur)
            last_best = best_loss.clone()
    return found_x


def _apgd_bisect(fn: Logits, x: Tensor, y: Tensor, best: Tensor, best_x: Tensor, steps: int,
                 bisections: int = 6, **_) -> Tensor:
    """Per-sample bisection on the radius below the best one found so far, APGD-DLR at each."""
    lo, hi = torch.zeros_like(best), best.clone()
    out = best_x.clone()
    finite = torch.isfinite(hi)
    if not bool(finite.any()):
        return out
    hi = torch.where(finite, hi, torch.zeros_like(hi))
    direction = (best_x - x) / bcast(sample_norms(best_x - x).clamp_min(1e-12), x)
    for _ in range(bisections):
        eps = (lo + hi) / 2
        pts = _apgd(fn, x, y, eps, x + bcast(eps, x) * direction, max(steps // bisections, 10))
        hit = finite & is_misclassified(fn, pts, y)
        d = sample_norms(pts - x)
        better = hit & (d < hi)
        out = torch.where(bcast(better, x), pts, out)
        hi = torch.where(better, d, hi)
        lo = torch.where(hit, lo, torch.maximum(lo, eps))
    return out


def _refine_on_ray(fn: Logits, x: Tensor, y: Tensor, pts: Tensor, found: Tensor, iters: int = 20) -> Tensor:
    """Bisection on ``t`` for the point ``x + t (p - x)`` closest to ``x`` that is still
    misclassified (``t = 1`` is): pulls every attack's point onto the boundary."""
    lo, hi = torch.zeros_like(found, dtype=x.dtype), torch.ones_like(found, dtype=x.dtype)
    for _ in range(iters):
        mid = (lo + hi) / 2
        hit = is_misclassified(fn, x + bcast(mid, x) * (pts - x), y)
        hi = torch.where(hit & found, mid, hi)
        lo = torch.where(hit & found, lo, mid)
    return torch.where(bcast(found, x), x + bcast(hi, x) * (pts - x), pts)


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


def _attack_batch(fn: Logits, x: Tensor, y: Tensor, attacks: Sequence[str], steps: int, targets: int,
                  per_attack: dict[str, list[Tensor]], tick: Callable[[str], None]) -> tuple[Tensor, Tensor]:
    """Every attack on one batch, in order; returns the per-sample smallest verified radius
    (0 where already misclassified, ``inf`` where none was found) and its point. Each
    attack's points are pulled onto the boundary along their ray, then re-checked: only
    misclassified points count."""
    best = torch.where(is_misclassified(fn, x, y), 0.0, math.inf).to(x)
    best_x = x.clone()
    for name in attacks:
        tick(name)
        if name == "apgd":
            pts = _apgd_bisect(fn, x, y, best, best_x, steps)
        else:
            pts = ATTACKS[name](fn, x, y, steps=steps, targets=targets)
        pts = _refine_on_ray(fn, x, y, pts, is_misclassified(fn, pts, y))
        hit = is_misclassified(fn, pts, y)  # the check: only verified points count
        d = torch.where(hit, sample_norms(pts - x), torch.full_like(best, math.inf))
        per_attack[name].append(d.cpu())
        better = d < best
        best = torch.where(better, d, best)
        best_x = torch.where(bcast(better, x), pts, best_x)
    return best, best_x


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

    Example:
        >>> model = torch.nn.Linear(2, 2)                      # a linear classifier: exact boundary distance
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])); _ = model.bias.zero_()
        >>> x, y = torch.tensor([[1.5, 0.3]]), torch.tensor([0])
        >>> result = lipot.attack_radius(model, x, y)
        >>> round(float(result.radii[0]), 3)                 # the distance to the boundary x_0 = 0
        1.5
    """
    _checks.positive_int("steps", steps)
    _checks.positive_int("targets", targets)
    _checks.positive_int("batch_size", batch_size)
    if isinstance(attacks, str):
        attacks = (attacks,)
    unknown = set(attacks) - set(ATTACKS) - {"apgd"}
    if unknown or not attacks:
        raise ValueError(f"attacks must be a non-empty subset of {sorted(ATTACKS) + ['apgd']}, got {list(attacks)}")
    x_all = as_inputs("X", X)
    param = next(iter(model.parameters()), None)
    dev = torch.device(device) if device is not None else (param.device if param is not None else x_all.device)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    fn = Logits(model)
    radii, points, success = [], [], []
    per_attack: dict[str, list[Tensor]] = {a: [] for a in attacks}
    with evaluating(model):
        x_all = x_all.to(dev, dtype)
        y_all = check_labels(fn, x_all, y)
        starts = range(0, x_all.shape[0], batch_size)
        bar = tqdm(total=len(starts) * len(attacks), desc="attacks", unit="attack", leave=False,
                   disable=None if progress is None else not progress)
        for i in starts:
            x, lab = x_all[i:i + batch_size], y_all[i:i + batch_size]

            def tick(name: str) -> None:
                bar.set_postfix(batch=f"{i // batch_size + 1}/{len(starts)}", attack=name, refresh=False)
                bar.update()

            best, best_x = _attack_batch(fn, x, lab, attacks, steps, targets, per_attack, tick)
            radii.append(best.cpu())
            points.append(best_x.cpu())
            success.append(torch.isfinite(best).cpu())
        bar.close()
    return AttackResult(torch.cat(radii), torch.cat(points), torch.cat(success),
                        {k: torch.cat(v) for k, v in per_attack.items()})
