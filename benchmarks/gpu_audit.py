"""Audit an MNIST model on a device (CUDA when there is one): certificates vs attack radii, norm
audit and empirical Lipschitz lower bound, with timings.

    python benchmarks/gpu_audit.py --data-root MNIST_DIR --device cuda --n 1000
    python benchmarks/gpu_audit.py --model m.pt --data-root MNIST_DIR --device cpu --n 200

Without ``--model`` it trains the MNIST 0-vs-8 dense HKR model of the results table (docs/results.md, 10 epochs) first.
"""

import argparse
import time

import torch

import lipot
from _data import MNIST_ROOT
from lipot.audit import audit_certificates
from lipot.cli._args import dataset as _dataset
from lipot.cli.check import load_model as _load_model

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--model", default=None, help="checkpoint written by `lipot train`")
parser.add_argument("--data-root", default=MNIST_ROOT, help="MNIST folder (default: $LIPOT_MNIST_ROOT or data/mnist)")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
parser.add_argument("--n", type=int, default=1000)
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

t0 = time.perf_counter()
if args.model:
    model, config = _load_model(args.model)
    binary = config["binary"]
else:
    binary = (0, 8)
    torch.manual_seed(args.seed)
    x, y = _dataset("mnist", args.data_root, "train", binary)
    model = lipot.models.dense_classifier(784, (32, 16), 1)
    lipot.training.fit(model, lipot.losses.HKRLoss(10 / 11, 1.0), lipot.training.make_loader(x, y, 128, seed=args.seed),
                       10, lr=3e-3, device=args.device, progress=False, log=None)
    model.eval()
model.to(args.device)
t_model = time.perf_counter() - t0
xt, yt = _dataset("mnist", args.data_root, "test", binary)
idx = torch.randperm(xt.shape[0], generator=torch.Generator().manual_seed(args.seed))[:args.n]
if args.device.startswith("cuda"):
    torch.cuda.synchronize()
t0 = time.perf_counter()
report = audit_certificates(model, xt[idx], yt[idx], attack={"steps": args.steps}, device=args.device)
if args.device.startswith("cuda"):
    torch.cuda.synchronize()
print(report)
print(f"device {args.device}: model ready in {t_model:.1f} s; audit of {args.n} points in "
      f"{time.perf_counter() - t0:.1f} s")
