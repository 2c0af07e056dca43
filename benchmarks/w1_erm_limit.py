"""How close to the true W1 can a critic fitted on n samples get? The empirical-KR limit on funnel pairs.

A W1 critic is fitted by maximizing the KR value ``mean f(y) - mean f(x)`` on a finite training
sample, and reported by its KR value on held-out points. This script asks where that fitting
leads on the funnel pairs of Korotin, Kolesov & Burnaev's benchmark
(:class:`lipot.data.funnels.FunnelPair`) even from the best start: it takes the true potential,

.. math::
    f(z) = \\min_k \\big(\\lVert z - c_k\\rVert + b_k\\big),

as a :class:`lipot.nn.ConeEnvelope` of ``K`` cones with the true centres and offsets, and runs
full-batch Adam on the KR value of ``--n`` training points per side (independent of the
held-out points), keeping the iterate of largest training KR. Every parameter value of this
model is 1-Lipschitz, the truth is in the model class, and the fit *starts* at the truth: an
estimator that maximizes the empirical KR value over this class to a local maximum near the
truth ends about where this fit ends. (In 2-D, where the true potential is already close to a
local maximum of the training KR, the default step does not raise it: run ``--dims`` of 16 and
more.)

Printed per row: the KR value on the training points and on 8000 held-out points per side
against the true W1 (Monte Carlo over 100 000 pairs), at the start (the oracle) and at the end,
and the mean distance the centres moved.

``lipot.estimate_w1`` with 8000 points per side trains each fold's critic on 5440 points per
side (5 folds, 4 of them for training, less a selection part of 15 %): ``--n 5440`` is its
budget.

    python benchmarks/w1_erm_limit.py --dims 64 128 --funnels 64 --n 5440 8000 16000 32000
    python benchmarks/w1_erm_limit.py --dims 16 64 128 --funnels 4 64 --n 5440 --json limit.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from lipot.data.funnels import FunnelPair
from lipot.nn import ConeEnvelope


def true_envelope(pair: FunnelPair) -> ConeEnvelope:
    """The pair's potential as a float32 lower envelope of its ``K`` cones."""
    env = ConeEnvelope(pair.dim, pair.funnels, lower=True)
    with torch.no_grad():
        env.centers.copy_(pair.centers)
        env.offsets.copy_(pair.offsets)
    return env


def kr(env: ConeEnvelope, x: torch.Tensor, y: torch.Tensor) -> float:
    """KR value ``mean f(y) - mean f(x)`` (the potential is small on P, the law of ``x``)."""
    with torch.no_grad():
        return float(env(y).mean() - env(x).mean())


def run(dim: int, funnels: int, n: int, steps: int, lr: float, seed: int) -> dict:
    """One row: fit the true envelope on ``n`` training points per side (``steps`` full-batch Adam
    steps, the iterate of largest training KR kept); KR values before and after."""
    pair = FunnelPair(dim, funnels, seed)
    truth, _ = pair.w1(100_000, seed=30_000 + seed)
    x_train, _ = pair.sample(n, seed=1 + 100 * seed)
    _, y_train = pair.sample(n, seed=2 + 100 * seed)
    x_held, _ = pair.sample(8000, seed=10_000 + seed)
    _, y_held = pair.sample(8000, seed=20_000 + seed)
    x_train, y_train, x_held, y_held = (t.float() for t in (x_train, y_train, x_held, y_held))
    env = true_envelope(pair)
    start = env.centers.detach().clone()
    row = {"d": dim, "K": funnels, "n": n, "truth": truth,
           "train0": kr(env, x_train, y_train), "held0": kr(env, x_held, y_held)}
    opt = torch.optim.Adam(env.parameters(), lr=lr)
    best, state = row["train0"], copy.deepcopy(env.state_dict())
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = env(x_train).mean() - env(y_train).mean()
        value = -float(loss.detach())  # the training KR of the current parameters, before the step
        if value > best:
            best, state = value, copy.deepcopy(env.state_dict())
        opt.zero_grad()
        loss.backward()
        opt.step()
    if kr(env, x_train, y_train) < best:
        env.load_state_dict(state)
    row.update(train=kr(env, x_train, y_train), held=kr(env, x_held, y_held),
               drift=float((env.centers.detach() - start).norm(dim=1).mean()), seconds=time.perf_counter() - t0)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[64, 128])
    p.add_argument("--funnels", type=int, nargs="+", default=[64])
    p.add_argument("--n", type=int, nargs="+", default=[5440, 8000, 16000, 32000], help="training points per side")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (data units: the cube is [-2.5, 2.5]^d)")
    p.add_argument("--seed", type=int, default=0, help="the pair's seed")
    p.add_argument("--json", default=None, help="write the rows to this file (for w1_funnels.py --limit-json)")
    args = p.parse_args()
    rows = []
    print("| d | K | n per side | oracle (held-out) | fitted: training KR | fitted: held-out KR | centre drift | time |")
    print("|---|---|---|---|---|---|---|---|")
    for dim in args.dims:
        for funnels in args.funnels:
            for n in args.n:
                r = run(dim, funnels, n, args.steps, args.lr, args.seed)
                rows.append(r)
                pct = lambda v: f"{100 * (v / r['truth'] - 1):+.1f} %"  # noqa: E731
                print(f"| {dim} | {funnels} | {n} | {pct(r['held0'])} | {pct(r['train'])} | **{pct(r['held'])}** | "
                      f"{r['drift']:.2f} | {r['seconds']:.0f} s |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
