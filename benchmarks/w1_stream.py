"""W1 through the streaming path: n points per side (d = 10) in raw float32 files on disk, read
in blocks by a Dataset (no memory map, so the resident memory is lipot's own), streamed by
estimate_w1. Scaled copies: X ~ N(0, I), Y ~ N(0, s^2 I), W1 = |s - 1| E||X|| (non-linear critic).
Prints the estimate, the time and the peak RSS (compare n = 10^5, 10^6 and 10^7: memory must
not grow). ``--source generator`` makes the samples on the fly instead (nothing on disk).

    python benchmarks/w1_stream.py --n 1000000
    python benchmarks/w1_stream.py --n 10000000 --source generator
"""

import argparse
import os
import resource
import tempfile
import time

import numpy as np
import torch

import lipot
from lipot.data.toys import mean_norm


class BlockFile(torch.utils.data.Dataset):
    """Block ``i`` of a raw float32 file of ``(n, d)`` rows, read with a plain file read."""

    def __init__(self, path: str, n: int, d: int, block: int) -> None:
        self.path, self.n, self.d, self.block = path, n, d, block

    def __len__(self) -> int:
        return (self.n + self.block - 1) // self.block

    def __getitem__(self, i: int) -> torch.Tensor:
        rows = min(self.block, self.n - i * self.block)
        with open(self.path, "rb") as f:
            f.seek(i * self.block * self.d * 4)
            return torch.from_numpy(np.fromfile(f, dtype=np.float32, count=rows * self.d).reshape(rows, self.d))


class Generated(torch.utils.data.IterableDataset):
    """``n`` rows of ``scale * N(0, I_d)`` made on the fly in blocks, each block from its own
    seeded generator, so that every pass yields the same samples (nothing on disk or in memory)."""

    def __init__(self, n: int, d: int, scale: float, seed: int, block: int) -> None:
        self.n, self.d, self.scale, self.seed, self.block = n, d, scale, seed, block

    def __iter__(self):
        for i, start in enumerate(range(0, self.n, self.block)):
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            yield self.scale * torch.randn(min(self.block, self.n - start), self.d, generator=gen)


def write(path: str, n: int, d: int, scale: float, seed: int, block: int = 100_000) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for i in range(0, n, block):
            (scale * rng.normal(size=(min(block, n - i), d))).astype(np.float32).tofile(f)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--n", type=int, default=1_000_000)
parser.add_argument("--dim", type=int, default=10)
parser.add_argument("--scale", type=float, default=1.5)
parser.add_argument("--block", type=int, default=1024, help="rows per read (the training batch)")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--patience", type=int, default=2)
parser.add_argument("--folds", type=int, default=1)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--source", choices=["file", "generator"], default="file",
                    help="file: raw float32 files read in blocks; generator: samples made on the fly")
args = parser.parse_args()

truth = abs(args.scale - 1) * mean_norm(args.dim)
with tempfile.TemporaryDirectory() as tmp:
    if args.source == "file":
        px, py = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
        write(px, args.n, args.dim, 1.0, args.seed)
        write(py, args.n, args.dim, args.scale, args.seed + 1)
        datasets = [BlockFile(p, args.n, args.dim, args.block) for p in (px, py)]
    else:
        datasets = [Generated(args.n, args.dim, s, args.seed + i, args.block) for i, s in enumerate((1.0, args.scale))]
    before = peak_rss_mb()
    loaders = [torch.utils.data.DataLoader(d, batch_size=None) for d in datasets]
    t0 = time.perf_counter()
    res = lipot.estimate_w1(*loaders, epochs=args.epochs, patience=args.patience, folds=args.folds,
                            seed=args.seed, device="cpu")
    seconds = time.perf_counter() - t0
print(f"n={args.n} per side, d={args.dim}, s={args.scale}: estimate {res.value:.4f} +- {res.stderr:.4f} "
      f"(true {truth:.4f}, error {100 * (res.value - truth) / truth:+.2f} %), held-out {res.n_heldout}, "
      f"selected {res.selected}, {len([h for h in res.history if 'epoch' in h])} epochs, {seconds:.1f} s; "
      f"peak RSS {peak_rss_mb():.0f} MB (before the estimate: {before:.0f} MB); "
      f"data {2 * args.n * args.dim * 4 / 2**20:.0f} MB "
      f"({'on disk' if args.source == 'file' else 'generated on the fly, never stored'})")
