"""How close can a held-out estimate come? The exact OT potential of the training part, held out.

Any held-out KR estimate fits its critic on part of the sample and evaluates it on the rest.
Its natural benchmark is the *exact* Kantorovich potential of the training part: POT's exact
solver gives the dual variables :math:`(u, v)` of the training points, and

.. math::
    \\varphi(z) = \\tfrac12 \\Big[\\min_j \\big(\\|z - y_j\\| - v_j\\big)
                 + \\max_i \\big(u_i - \\|z - x_i\\|\\big)\\Big]

(the mean of the two McShane-Whitney extensions of the optimal potential, 1-Lipschitz) reaches
the training part's exact W1 on its own points. Its KR value on the held-out part measures what
the training points can say about the distributions: the shortfall against ``exact_w1`` of the
whole sample is the finite-sample limit of a held-out estimate that learns the sample's own OT.

For every one of ``--samples`` independent samples this script cross-fits that exact potential
with ``K = 5`` folds (the estimator's default), training on the share of the sample that trains
each of the estimator's critics (``--train-share``, 68 %: 4 of 5 folds without the 15 %
selection part) and on all 4 other folds (80 %), and runs ``lipot.estimate_w1`` (its defaults,
or ``--set``) on the same sample; it prints every error against ``exact_w1`` and their means.

    python benchmarks/w1_heldout_limit.py --case ring-grid --n 1000 --samples 6
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import ot
from scipy.spatial.distance import cdist

import lipot
from lipot.ot import exact_w1
from lipot.data.toys import ring_vs_grid, two_moons

sys.path.insert(0, os.path.dirname(__file__))
from w1_validation import setting  # noqa: E402

FOLDS = 5


def exact_potential(xt: np.ndarray, yt: np.ndarray):
    """The mean of the two 1-Lipschitz extensions of the exact dual potential of ``(xt, yt)``."""
    a, b = np.full(len(xt), 1 / len(xt)), np.full(len(yt), 1 / len(yt))
    _, log = ot.emd(a, b, cdist(xt, yt), log=True, numItermax=10_000_000)
    u, v = log["u"], log["v"]
    return lambda z: 0.5 * ((cdist(z, yt) - v[None]).min(1) + (u[None] - cdist(z, xt)).max(1))


def heldout_exact(x: np.ndarray, y: np.ndarray, share: float, seed: int) -> float:
    """Cross-fitted held-out KR value of the exact potential fitted on ``share`` of each sample."""
    rng = np.random.default_rng(seed)
    fold_x, fold_y = rng.permutation(len(x)) % FOLDS, rng.permutation(len(y)) % FOLDS
    values = []
    for k in range(FOLDS):
        xt, yt = x[fold_x != k], y[fold_y != k]
        xt, yt = xt[: round(share * len(x))], yt[: round(share * len(y))]
        f = exact_potential(xt, yt)
        values.append(f(x[fold_x == k]).mean() - f(y[fold_y == k]).mean())
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["ring-grid", "moons"], default="ring-grid")
    parser.add_argument("--n", type=int, default=1000, help="points per side")
    parser.add_argument("--samples", type=int, default=6, help="independent samples")
    parser.add_argument("--seed", type=int, default=100, help="seed of the first sample")
    parser.add_argument("--train-share", type=float, default=0.8 * 0.85,
                        help="share of each sample that trains one critic (default: the estimator's)")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", type=setting,
                        help="W1Estimator keyword arguments")
    args = parser.parse_args()
    shares = (args.train_share, (FOLDS - 1) / FOLDS)
    rows: dict[str, list[float]] = {f"exact potential, {s:.0%} train": [] for s in shares}
    rows["lipot.estimate_w1"] = []
    for i in range(args.samples):
        rng = np.random.default_rng(args.seed + i)
        x, y = (ring_vs_grid if args.case == "ring-grid" else two_moons)(args.n, rng)
        ref = exact_w1(x, y)
        for s, name in zip(shares, rows):
            rows[name].append(100 * (heldout_exact(x, y, s, args.seed + i) / ref - 1))
        est = lipot.estimate_w1(x, y, **dict(args.set))
        rows["lipot.estimate_w1"].append(100 * (est.value / ref - 1))
        print(f"sample {i} (seed {args.seed + i}): exact_w1 {ref:.4f}; "
              + "; ".join(f"{name} {v[-1]:+.2f} %" for name, v in rows.items()), flush=True)
    for name, errors in rows.items():
        sd = float(np.std(errors, ddof=1)) if len(errors) > 1 else math.nan
        print(f"{args.case} n={args.n}, {name}: mean error {np.mean(errors):+.2f} % "
              f"(± {sd / math.sqrt(len(errors)):.2f} %) against exact_w1 of the whole sample")


if __name__ == "__main__":
    main()
