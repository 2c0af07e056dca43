"""One cone envelope trained alone on a funnel pair: the runs behind the envelope critic's settings.

A plain Adam loop (no folds, no model selection, no race) fits the lower envelope
``f(z) = softmin_tau(||z - c_j|| + b_j)`` of ``--cones`` cones to the funnel pair of ``--dim``,
``--funnels`` (seed 0) by maximizing the KR value on fresh batches of ``--batch`` points per side
(or on fixed samples of 4000 per side with ``--finite``), with a cosine learning-rate schedule and
a temperature that falls linearly from ``--temperature`` (in the data's units) to 0 over the first
70 % of the steps. Every tenth of the run it prints the KR value on 8000 held-out points per side
against the true W1, and the mean cosine between the envelope's gradient and the true transport
direction on 2000 of them.

    python benchmarks/w1_envelope_alone.py --dim 16 --funnels 64 --cones 64              # hard minimum
    python benchmarks/w1_envelope_alone.py --dim 16 --funnels 64 --cones 1024 --temperature 0.3
    python benchmarks/w1_envelope_alone.py --dim 128 --funnels 64 --cones 1024 --temperature 0.3 --start mixed

These runs chose the estimator's envelope defaults (``lipot.wasserstein.critics``): the number
of cones, the annealed soft minimum and the start of the centers.
"""

from __future__ import annotations

import argparse
import time

import torch

from lipot.data.funnels import FunnelPair


def start_centers(points: torch.Tensor, cones: int, start: str, gen: torch.Generator) -> torch.Tensor:
    """``mean``: the points' mean plus 0.1 standard deviation of noise per coordinate; ``data``:
    random points; ``mixed``: every other center on a random point, the rest near the mean."""
    n, d = points.shape
    near_mean = points.mean(0) + 0.1 * points.std(0) * torch.randn(cones, d, generator=gen, dtype=points.dtype)
    if start == "mean":
        return near_mean
    if start == "mixed":
        near_mean[::2] = points[torch.randint(0, n, (cones // 2,), generator=gen)]
        return near_mean
    return points[torch.randint(0, n, (cones,), generator=gen)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--funnels", type=int, required=True)
    p.add_argument("--cones", type=int, required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0, help="initial temperature (data units); 0: hard")
    p.add_argument("--start", choices=["mean", "mixed", "data"], default="mean")
    p.add_argument("--finite", action="store_true", help="train on 4000 fixed points per side")
    args = p.parse_args()
    torch.set_num_threads(2)
    pair = FunnelPair(args.dim, args.funnels, 0)
    truth, _ = pair.w1(100_000, seed=30_000)
    x_held, _ = pair.sample(8000, seed=10_000)
    _, y_held = pair.sample(8000, seed=20_000)
    gen = torch.Generator().manual_seed(0)
    x_start, _ = pair.sample(4000, seed=5)
    centers = start_centers(x_start, args.cones, args.start, gen).float().requires_grad_(True)
    offsets = torch.zeros(args.cones, requires_grad=True)
    x_fixed, _ = pair.sample(4000, seed=777)
    _, y_fixed = pair.sample(4000, seed=778)
    opt = torch.optim.Adam([centers, offsets], lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    tau = args.temperature

    def f(z: torch.Tensor) -> torch.Tensor:
        scores = torch.cdist(z.float(), centers) + offsets
        return -tau * torch.logsumexp(-scores / tau, 1) if tau > 0 else scores.min(1).values

    t0 = time.time()
    for step in range(args.steps):
        tau = args.temperature * max(0.0, 1 - step / (0.7 * args.steps))
        if args.finite:
            x = x_fixed[torch.randint(0, 4000, (args.batch,), generator=gen)]
            y = y_fixed[torch.randint(0, 4000, (args.batch,), generator=gen)]
        else:
            x, _ = pair.sample(args.batch, seed=100 + 2 * step)
            _, y = pair.sample(args.batch, seed=101 + 2 * step)
        loss = -(f(y).mean() - f(x).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % (args.steps // 10) == 0 or step == args.steps - 1:
            with torch.no_grad():
                held = float(f(y_held).mean() - f(x_held).mean())
            probe = x_held[:2000].float().requires_grad_(True)
            (grad,) = torch.autograd.grad(f(probe).sum(), probe)
            cos = float((grad.double() * pair.gradient(x_held[:2000])).sum(1).mean())
            print(f"d={args.dim} K={args.funnels} cones={args.cones} step {step}: held-out "
                  f"{100 * (held / truth - 1):+.1f} % of the true W1, cos {cos:.2f}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
