"""Time to a W1 estimate at n = 10k per side, d = 784, beside exact OT (POT emd2) on the same samples.

estimate_w1 is run with growing epoch budgets; the converged value is the one of the largest
budget, and the report gives the first budget whose value is within 2 % of it, with its time.

    python benchmarks/w1_time_to_estimate.py --case mnist      # digits 0-4 vs 5-9 (flattened)
    python benchmarks/w1_time_to_estimate.py --case shift      # N(0, I) vs N(m, I), ||m|| = 2
"""

import argparse
import resource
import time

import numpy as np

import lipot
from lipot.ot import exact_w1

from _data import MNIST_ROOT

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--case", choices=["mnist", "shift"], default="mnist")
parser.add_argument("--n", type=int, default=10_000)
parser.add_argument("--budgets", type=int, nargs="+", default=[1, 3, 10, 60], help="epoch budgets")
parser.add_argument("--data-root", default=MNIST_ROOT, help="MNIST folder (default: $LIPOT_MNIST_ROOT or data/mnist)")
parser.add_argument("--no-exact", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
if args.case == "mnist":
    images, labels = lipot.data.mnist(args.data_root, "train")
    flat, labels = images.numpy().reshape(-1, 784), labels.numpy()
    X, Y = flat[labels <= 4][:args.n], flat[labels >= 5][:args.n]
else:
    m = np.zeros(784)
    m[:4] = 1.0
    X, Y = rng.normal(size=(args.n, 784)), rng.normal(size=(args.n, 784)) + m

runs = []
for epochs in sorted(args.budgets):
    t0 = time.perf_counter()
    res = lipot.estimate_w1(X, Y, epochs=epochs, seed=args.seed)
    runs.append((epochs, res, time.perf_counter() - t0))
    print(f"epochs <= {epochs:3d}: estimate {res.value:.4f} +- {res.stderr:.4f}, selected {res.selected}, "
          f"{runs[-1][2]:.1f} s", flush=True)
final = runs[-1][1].value
first = next(r for r in runs if abs(r[1].value - final) <= 0.02 * abs(final))
print(f"{args.case}, n={len(X)}/{len(Y)}, d=784: converged estimate {final:.4f}; within 2 % of it after "
      f"{first[2]:.1f} s (epochs <= {first[0]}: {first[1].value:.4f})")
if not args.no_exact:
    t0 = time.perf_counter()
    exact = exact_w1(X, Y)
    print(f"exact_w1 (plug-in, biased upward in high dimension): {exact:.4f} in {time.perf_counter() - t0:.1f} s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB")
