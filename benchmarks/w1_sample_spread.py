"""Bias or noise? The estimator's error on several independent samples of one validation case.

One row of ``benchmarks/w1_validation.py`` is one sample: its error mixes the estimator's bias
(the held-out critic's expected shortfall) with the sample's noise (the held-out value's
standard error, and for exact references the sample's own exact W1). This script draws
``--samples`` independent samples of one case, estimates W1 on each with the defaults (or
``--set`` settings), and prints every error, their mean (the bias, up to mean/sqrt(samples))
and their standard deviation (the noise), beside the mean reported stderr.

    python benchmarks/w1_sample_spread.py --case scaled --dim 10 --n 2000 --samples 6
    python benchmarks/w1_sample_spread.py --case shift --dim 784 --n 5000 --samples 6
    python benchmarks/w1_sample_spread.py --case ring-grid --n 1000 --samples 6
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

import lipot
from lipot.ot import exact_w1
from lipot.data.toys import gaussian_shift, ring_vs_grid, scaled_gaussians, two_moons

sys.path.insert(0, os.path.dirname(__file__))
from w1_validation import setting  # noqa: E402


def draw(case: str, dim: int, n: int, rng) -> tuple[np.ndarray, np.ndarray, float, str]:
    """One sample of the case and its reference (the truth, or exact_w1 of this sample)."""
    if case in ("shift", "scaled"):
        x, y, truth = (gaussian_shift if case == "shift" else scaled_gaussians)(dim, n, rng)
        return x, y, truth, "truth"
    x, y = (ring_vs_grid if case == "ring-grid" else two_moons)(n, rng)
    return x, y, exact_w1(x, y), "exact_w1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["shift", "scaled", "ring-grid", "moons"], required=True)
    parser.add_argument("--dim", type=int, default=10, help="dimension of shift / scaled")
    parser.add_argument("--n", type=int, default=2000, help="points per side")
    parser.add_argument("--samples", type=int, default=6, help="independent samples")
    parser.add_argument("--seed", type=int, default=100, help="seed of the first sample")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", type=setting,
                        help="W1Estimator keyword arguments, e.g. folds=10")
    args = parser.parse_args()
    settings = dict(args.set)
    errors, stderrs = [], []
    for i in range(args.samples):
        x, y, ref, kind = draw(args.case, args.dim, args.n, np.random.default_rng(args.seed + i))
        res = lipot.estimate_w1(x, y, **settings)
        errors.append(100 * (res.value / ref - 1))
        stderrs.append(100 * res.stderr / ref)
        print(f"sample {i} (seed {args.seed + i}): {res.value:.4f} vs {kind} {ref:.4f}: {errors[-1]:+.2f} % "
              f"(stderr {stderrs[-1]:.2f} %), selected {','.join(sorted(set(res.selected)))}, {res.seconds:.0f} s",
              flush=True)
    mean, sd = float(np.mean(errors)), float(np.std(errors, ddof=1)) if len(errors) > 1 else math.nan
    name = f"{args.case} d={args.dim}" if args.case in ("shift", "scaled") else args.case
    print(f"{name} n={args.n} {settings or 'defaults'}: mean error {mean:+.2f} % "
          f"(± {sd / math.sqrt(len(errors)):.2f} % standard error of the mean), sd over samples {sd:.2f} %, "
          f"mean reported stderr {np.mean(stderrs):.2f} %")


if __name__ == "__main__":
    main()
