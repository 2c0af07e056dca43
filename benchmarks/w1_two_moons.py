"""W1 between the two half-moons (noise 0.1), n per side: cross-fitted estimate vs exact OT on the
same samples (lipot.ot.exact_w1), with times.

    python benchmarks/w1_two_moons.py --n 5000
"""

import argparse
import time

import numpy as np

import lipot
from lipot.ot import exact_w1
from lipot.data.toys import two_moons


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--folds", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    X, Y = two_moons(args.n, np.random.default_rng(args.seed))
    t0 = time.perf_counter()
    exact = exact_w1(X, Y)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = lipot.estimate_w1(X, Y, seed=args.seed, **{k: v for k, v in (("folds", args.folds), ("epochs", args.epochs))
                                                      if v is not None})
    t_est = time.perf_counter() - t0
    covered = res.ci[0] <= exact <= res.ci[1]
    print(f"n={args.n}: exact_w1 {exact:.4f} ({t_exact:.1f} s); estimate {res.value:.4f} +- {res.stderr:.4f} "
          f"(95% CI {res.ci[0]:.4f}..{res.ci[1]:.4f}, covers exact: {covered}); "
          f"error {100 * (res.value - exact) / exact:+.2f} %; in-sample {res.in_sample:.4f}; selected {res.selected}; {t_est:.1f} s")
