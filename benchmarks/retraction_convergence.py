"""Convergence of the two updates of lipot's Björck layers (``"polar"`` and ``"retraction"``) on
one task, at equal Adam steps: a GNP network (8 -> W -> W -> 1, ``SpectralLinear`` and
``GroupSort2``) fitted to a 1-Lipschitz target on 512 Gaussian points (MSE), for several learning
rates and seeds. Prints the training loss after 200, 400 and 1000 steps, and the time per step.

    python benchmarks/retraction_convergence.py [--width 32] [--lrs 2e-3 5e-3 1e-2] [--seeds 3 4]
"""

from __future__ import annotations

import argparse
import time

import torch

import lipot

CHECKPOINTS = (200, 400, 1000)


def network(update: str, width: int) -> torch.nn.Module:
    return lipot.Sequential(lipot.SpectralLinear(8, width, update=update), lipot.GroupSort2(),
                            lipot.SpectralLinear(width, width, update=update), lipot.GroupSort2(),
                            lipot.SpectralLinear(width, 1, update=update))


def run(update: str, width: int, lr: float, seed: int, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], float]:
    torch.manual_seed(seed)
    model = network(update, width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, start = [], time.perf_counter()
    for step in range(1, CHECKPOINTS[-1] + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if step in CHECKPOINTS:
            losses.append(float(loss.detach()))
    return losses, (time.perf_counter() - start) / CHECKPOINTS[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-3, 5e-3, 1e-2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    args = parser.parse_args()
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(512, 8, generator=gen)
    y = (x[:, :1].abs() - x[:, 1:2] + 0.5 * x[:, 2:3].abs()) / 2
    print(f"target variance {float(y.var()):.4f}; width {args.width}; loss after {CHECKPOINTS} Adam steps")
    for lr in args.lrs:
        for seed in args.seeds:
            cells = []
            for update in ("polar", "retraction"):
                losses, per_step = run(update, args.width, lr, seed, x, y)
                cells.append(f"{update} " + " ".join(f"{v:.2e}" for v in losses) + f" ({per_step * 1e3:.2f} ms/step)")
            print(f"lr {lr:g} seed {seed}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
