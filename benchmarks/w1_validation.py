"""W1 validation harness: one table of estimate_w1 against analytic values and exact OT (POT).

For every case: the cross-fitted estimate ± stderr and its 95 % CI, the truth where it is known
(analytic), ``exact_w1`` on the same samples (the plug-in value, biased upward in high
dimension), and the soundness check — the returned critic's KR value on the whole sample must not
exceed ``exact_w1`` on that sample (any 1-Lipschitz f satisfies it; a violation means the critic
is not 1-Lipschitz).

    python benchmarks/w1_validation.py                       # every case (CPU: ~1 h)
    python benchmarks/w1_validation.py --only shift diracs   # a subset
    python benchmarks/w1_validation.py --only scaled --set patience=12 hidden=256,256,256
                                                             # other estimator settings

The MNIST rows read ``$LIPOT_MNIST_ROOT`` (else ``data/mnist`` in the repository).
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import sys
import time

import numpy as np

import lipot
from lipot.ot import exact_w1

sys.path.insert(0, os.path.dirname(__file__))
from _data import MNIST_ROOT  # noqa: E402
from lipot.data.toys import gaussian_shift, ring_vs_grid, scaled_gaussians, two_moons  # noqa: E402


shift, scaled = gaussian_shift, scaled_gaussians


def diracs(d: int, n: int, rng):
    y0 = rng.normal(size=d)
    y0 *= 3.0 / np.linalg.norm(y0)
    return np.zeros((n, d)), np.tile(y0, (n, 1)), 3.0


def mnist_pair(a: int, b: int):
    xs, ys = lipot.data.mnist(MNIST_ROOT, "train")
    x, y = xs.numpy(), ys.numpy()
    return x[y == a].reshape(-1, 784), x[y == b].reshape(-1, 784)  # vectors: dense + linear critics




def cases(only):
    rng = np.random.default_rng(0)
    out = []
    if "shift" in only:
        for d, n in ((2, 2000), (10, 2000), (784, 5000)):
            out.append((f"Gaussian shift d={d}", *shift(d, n, rng)))
    if "diracs" in only:
        out.append(("two Diracs d=5", *diracs(5, 500, rng)))
    if "scaled" in only:
        for d in (2, 10):
            out.append((f"scaled copies s=1.5 d={d}", *scaled(d, 2000, rng)))
    if "moons" in only:
        out.append(("two moons", *two_moons(5000, rng), None))
    if "mixtures" in only:
        for n in (1000, 5000, 10000):
            out.append(("8-ring vs 5x5-grid", *ring_vs_grid(n, rng), None))
    if "mnist" in only:
        for a, b in ((0, 8), (1, 7)):
            out.append((f"MNIST {a} vs {b} (train)", *mnist_pair(a, b), None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=["shift", "diracs", "scaled", "moons", "mixtures", "mnist"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", type=setting,
                        help="other W1Estimator keyword arguments, e.g. patience=12 hidden=256,256,256")
    args = parser.parse_args()
    settings = dict(args.set, **({"epochs": args.epochs} if args.epochs else {}))
    if settings:
        lipot.W1Estimator(seed=args.seed, **settings)  # a wrong name or value fails here, before any case
        print(f"W1Estimator settings: {settings}")
    print("| case | n per side | truth | estimate ± stderr (95 % CI) | exact_w1 on the sample | "
          "critic KR on the sample ≤ exact | selected | time |")
    print("|---|---|---|---|---|---|---|---|")
    violations = 0
    for name, x, y, truth in cases(args.only):
        t0 = time.perf_counter()
        est = lipot.W1Estimator(seed=args.seed, **settings).fit(x, y)
        res, seconds = est.result_, time.perf_counter() - t0
        exact = exact_w1(x, y) if x.shape[0] * y.shape[0] <= lipot.ot.DEFAULT_MAX_PAIRS else math.nan
        whole = est.evaluate(x, y).value
        sound = not (whole > exact + 1e-5)
        violations += not sound
        ref = truth if truth is not None else exact
        tol = 1e-6 * abs(ref)  # float32 critics: a zero-variance case (Diracs) is exact only to rounding
        covers = "covers" if res.ci[0] - tol <= ref <= res.ci[1] + tol else "misses"
        truth_s = f"{truth:.4f}" if truth is not None else "—"
        kinds = ", ".join(f"{k}×{res.selected.count(k)}" for k in sorted(set(res.selected)))
        print(f"| {name} | {x.shape[0]}/{y.shape[0]} | {truth_s} | {res.value:.4f} ± {res.stderr:.4f} "
              f"({res.ci[0]:.4f}..{res.ci[1]:.4f}, {covers} {'truth' if truth is not None else 'exact'}; "
              f"{100 * (res.value - ref) / ref:+.2f} %) | {exact:.4f} | {whole:.4f} ≤ {exact:.4f}: "
              f"{'yes' if sound else 'NO'} | {kinds} | {seconds:.0f} s |", flush=True)
        if name.startswith("MNIST"):
            plugin(x, y, args.seed)
    print(f"\nsoundness violations: {violations}")


def setting(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> ``(NAME, VALUE)``, the value read as a Python literal (``256,256`` is a
    tuple, ``1e-3`` a float)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a Python literal") from e


def plugin(x, y, seed: int) -> None:
    """exact_w1 between random subsets of growing size: the plug-in value, biased upward."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in (250, 500, 1000, 2000, 4000):
        xs, ys = x[rng.choice(len(x), n, replace=False)], y[rng.choice(len(y), n, replace=False)]
        parts.append(f"n={n}: {exact_w1(xs, ys):.3f}")
    print(f"|  | plug-in exact_w1 on subsets (biased upward) | | {'; '.join(parts)} | | | | |", flush=True)


if __name__ == "__main__":
    main()
