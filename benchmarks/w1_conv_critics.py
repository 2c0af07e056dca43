"""W1 between the MNIST training images of two digits with each conv critic, beside the dense
critic on the flattened images: held-out estimate (a lower bound on W1 in expectation: higher
is tighter) and time.

Run: python benchmarks/w1_conv_critics.py --data-root MNIST_DIR   (about a minute)
"""

from __future__ import annotations

import argparse
import time

import torch

import lipot
from lipot.data import mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--digits", type=int, nargs=2, default=(0, 8))
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    x, y = mnist(args.data_root, "train")
    a, b = (x[y == d] for d in args.digits)
    critics = {f"conv critic, {conv}": (lambda c=conv: lipot.models.conv_critic(1, 28, conv=c), a, b)
               for conv in lipot.models.CONV_LAYERS}
    critics["dense critic, flattened"] = (lambda: "gnp", a.flatten(1), b.flatten(1))
    for name, (critic, xa, xb) in critics.items():
        torch.manual_seed(0)
        start = time.perf_counter()
        res = lipot.estimate_w1(xa, xb, critic=critic(), epochs=args.epochs, folds=1, seed=0)
        print(f"{name:<26} estimate {res.value:.4f} +- {res.stderr:.4f}   {time.perf_counter() - start:6.1f} s")


if __name__ == "__main__":
    main()
