"""How far the plug-in reference `exact_w1` of two samples lies from the W1 of the distributions
they are drawn from, on the 2-D validation toys (8-ring vs 5x5 grid, two moons).

The exact W1 of two empirical measures is biased upward: W1 is jointly convex and the empirical
measures average to the true ones, so E[W1(mu_n, nu_n)] >= W1(mu, nu) (Jensen), with a gap that
shrinks with n (about n^(-1/2) in 2-D). A held-out KR estimate is biased the other way: a
critic fitted on other points is one fixed 1-Lipschitz function, so its expected value on fresh
points is at most W1(mu, nu). Comparing the estimator with `exact_w1` on the same sample
therefore charges it with the reference's own bias. This script measures that bias: the mean
and spread of `exact_w1` over independent samples for each n, and the population value from a
least-squares fit mean(n) = W + c / sqrt(n).

    python benchmarks/w1_reference_bias.py --toy ring-grid --n 1000 2000 5000 10000 --seeds 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lipot.ot import exact_w1
from lipot.data.toys import ring_vs_grid, two_moons

SAMPLERS = {"ring-grid": ring_vs_grid, "moons": two_moons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", choices=sorted(SAMPLERS), default="ring-grid")
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 2000, 5000, 10000],
                        help="points per side")
    parser.add_argument("--seeds", type=int, default=4, help="independent samples per n")
    args = parser.parse_args()
    if any(n < 2 for n in args.n) or args.seeds < 1:
        parser.error("--n values must be >= 2 and --seeds >= 1")
    means = []
    for n in args.n:
        values, start = [], time.perf_counter()
        for seed in range(args.seeds):
            x, y = SAMPLERS[args.toy](n, np.random.default_rng(10_000 * n + seed))
            values.append(exact_w1(x, y))
        values = np.array(values)
        means.append(values.mean())
        spread = values.std(ddof=1) if len(values) > 1 else float("nan")
        print(f"{args.toy} n={n}: exact_w1 over {args.seeds} samples: mean {values.mean():.4f}, "
              f"sd {spread:.4f}, min {values.min():.4f}, max {values.max():.4f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    if args.toy == "ring-grid":  # the same mixtures without their sd-0.05 blur
        ring = 2 * np.c_[np.cos(2 * np.pi * np.arange(8) / 8), np.sin(2 * np.pi * np.arange(8) / 8)]
        grid = np.array([[i, j] for i in range(-2, 3) for j in range(-2, 3)], dtype=float)
        print(f"W1 of the cluster centres alone (8 ring points vs 25 grid points, uniform): "
              f"{exact_w1(ring, grid):.4f}")
    if len(args.n) >= 2:
        design = np.c_[np.ones(len(args.n)), 1 / np.sqrt(np.array(args.n, float))]
        (w, c), *_ = np.linalg.lstsq(design, np.array(means), rcond=None)
        print(f"fit mean(n) = W + c / sqrt(n): W = {w:.4f}, c = {c:.3f}")
        for n, m in zip(args.n, means):
            print(f"  n={n}: mean exact_w1 is {100 * (m / w - 1):+.2f} % above the fitted W")


if __name__ == "__main__":
    main()
