"""W1 between N(0, I) and N(m, I) in dimension d (true W1 = ||m|| = 2), n samples per side:
held-out estimate, in-sample KR, epochs run and time.

    python benchmarks/w1_gaussian_shift.py --dim 784 --n 5000
"""

import argparse
import time

import numpy as np

import lipot

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--dim", type=int, default=784)
parser.add_argument("--n", type=int, default=5000)
parser.add_argument("--epochs", type=int, default=None, help="default: the estimator's")
parser.add_argument("--lr", type=float, default=None, help="default: the estimator's")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--folds", type=int, default=None, help="default: the estimator's")
parser.add_argument("--critic", choices=["auto", "linear", "gnp"], default="auto",
                    help="auto (default): per fold, the better of the closed-form linear critic and a GNP "
                         "network on the selection part")
args = parser.parse_args()
rng = np.random.default_rng(args.seed)
shift = np.zeros(args.dim)
shift[:4] = 1.0  # ||m|| = 2
X = rng.normal(size=(args.n, args.dim))
Y = rng.normal(size=(args.n, args.dim)) + shift
t0 = time.perf_counter()
critic = None if args.critic == "auto" else args.critic
settings = {k: v for k, v in (("folds", args.folds), ("epochs", args.epochs), ("lr", args.lr)) if v is not None}
res = lipot.estimate_w1(X, Y, critic=critic, seed=args.seed, **settings)
print(f"d={args.dim} n={args.n} critic={args.critic} folds={args.folds}: held-out {res.value:.4f} +- {res.stderr:.4f} (true 2), in-sample "
      f"{res.in_sample:.4f}, selected {res.selected}, {time.perf_counter() - t0:.1f} s")
