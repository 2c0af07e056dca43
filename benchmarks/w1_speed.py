"""W1 speed and accuracy, side by side in one run: lipot's estimator with its current defaults,
the same estimator of an earlier lipot checkout (``--old-src``, optional), and POT's
``exact_w1`` / ``sinkhorn_w1`` / ``sliced_w1`` (through :mod:`lipot.ot`) on the validation cases.

For each case and method: wall time and the error against the truth (analytic cases) or against
``exact_w1`` on the same samples. Sinkhorn over-estimates W1 (entropic blur) and sliced W1 is a
different, smaller quantity; they are here for their time.

    git worktree add /tmp/lipot-old <earlier commit>          # optional: the earlier estimator
    python benchmarks/w1_speed.py --old-src /tmp/lipot-old     # ~30 min on 2 CPU cores
    python benchmarks/w1_speed.py --only "shift d=10 n=4000"   # one case, no earlier version
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import lipot
from lipot.ot import exact_w1, sinkhorn_w1, sliced_w1

sys.path.insert(0, os.path.dirname(__file__))
from lipot.data.toys import gaussian_shift as shift, ring_vs_grid, scaled_gaussians as scaled, two_moons  # noqa: E402

OLD_RUN = """
import json, sys, time, numpy as np
import lipot
data = np.load(sys.argv[1])
t0 = time.perf_counter()
res = lipot.estimate_w1(data["x"], data["y"], seed=0)
print(json.dumps({"value": res.value, "seconds": time.perf_counter() - t0, "file": lipot.__file__}))
"""


def cases():
    rng = np.random.default_rng(0)
    yield "shift d=2 n=2000", *shift(2, 2000, rng)
    yield "shift d=10 n=2000", *shift(10, 2000, rng)
    yield "shift d=10 n=4000", *shift(10, 4000, rng)
    yield "shift d=784 n=5000", *shift(784, 5000, rng)
    yield "scaled s=1.5 d=2 n=2000", *scaled(2, 2000, rng)
    yield "scaled s=1.5 d=10 n=2000", *scaled(10, 2000, rng)
    yield "scaled s=1.5 d=10 n=4000", *scaled(10, 4000, rng)
    yield "two moons n=5000", *two_moons(5000, rng), None
    yield "8-ring vs 5x5-grid n=1000", *ring_vs_grid(1000, rng), None
    yield "8-ring vs 5x5-grid n=5000", *ring_vs_grid(5000, rng), None


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def old_estimate(src: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x=x, y=y)
        env = {**os.environ, "PYTHONPATH": src}
        out = subprocess.run([sys.executable, "-c", OLD_RUN, path], env=env, capture_output=True, text=True,
                             check=True, cwd=tmp)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["file"].startswith(os.path.abspath(src)):
        raise RuntimeError(f"--old-src: imported {result['file']}, not the checkout in {src}")
    return result["value"], result["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old-src", help="a checkout of an earlier lipot to run side by side (optional)")
    p.add_argument("--only", nargs="+", help="case names to run (default: all)")
    args = p.parse_args()
    cols = ["earlier lipot"] if args.old_src else []
    cols += ["lipot (defaults)", "exact_w1 (POT emd2)", "sinkhorn_w1", "sliced_w1"]
    print("| case | reference | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name, x, y, truth in cases():
        if args.only and name not in args.only:
            continue
        exact, t_exact = timed(lambda: exact_w1(x, y))
        ref, ref_name = (truth, "truth") if truth is not None else (exact, "exact")
        cells = []

        def cell(value: float, seconds: float) -> str:
            return f"{value:.4f} ({100 * (value - ref) / ref:+.1f} %), {seconds:.1f} s"

        if args.old_src:
            cells.append(cell(*old_estimate(args.old_src, x, y)))
        res, t_new = timed(lambda: lipot.estimate_w1(x, y, seed=0))
        cells.append(cell(res.value, t_new))
        cells.append(cell(exact, t_exact))
        cells.append(cell(*timed(lambda: sinkhorn_w1(x, y))))
        cells.append(cell(*timed(lambda: sliced_w1(x, y))))
        print(f"| {name} | {ref:.4f} ({ref_name}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
