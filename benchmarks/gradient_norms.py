"""Input-gradient norms of two 1-Lipschitz conv networks, for each convolution lipot offers.

Run: python benchmarks/gradient_norms.py   (about a minute on 2 CPU cores)

A network whose scalar output has input-gradient norm 1 almost everywhere is gradient-norm
preserving (GNP); any 1-Lipschitz network has norm <= 1. Two shapes, on 1x28x28 inputs:

* ``expanding``: the former quickstart network, conv 1->16 + GroupSort2 + 2x2 L2-norm pooling,
  conv 16->32 + GroupSort2 + pooling, dense 64, one output (zero padding). Its convolutions add
  channels at full resolution: their backward pass keeps only the part of the gradient inside
  their range.
* ``gnp-stack``: the quickstart network, where every layer keeps or reduces the dimension
  (strided 4x4 convolutions 1->4 and 4->16, 3x3 convolutions 4->4 and 16->16, dense 64, one
  output), with circular padding (orthogonal convolutions are then exactly orthogonal) and with
  zero padding.

Printed: the minimum and maximum norm over 8 random points, fresh and after 20 Adam steps
(lr 1e-3) of MSE towards random targets, as in ``examples/quickstart.py``.
"""

from __future__ import annotations

import torch
from torch import nn

import lipot

CONVS = {"ortho": lipot.OrthoConv2d, "aol": lipot.AOLConv2d, "spectral": lipot.SpectralConv2d}


def expanding(conv) -> nn.Module:
    return lipot.Sequential(
        conv(1, 16, 3, padding=1), lipot.GroupSort2(), lipot.ScaledL2NormPool2d(2),
        conv(16, 32, 3, padding=1), lipot.GroupSort2(), lipot.ScaledL2NormPool2d(2),
        nn.Flatten(), lipot.SpectralLinear(32 * 7 * 7, 64), lipot.GroupSort2(), lipot.FrobeniusLinear(64, 1),
    )


def gnp_stack(conv, padding_mode: str) -> nn.Module:
    pad = dict(padding=1, padding_mode=padding_mode)
    return lipot.Sequential(
        conv(1, 4, 4, stride=2, **pad), lipot.GroupSort2(), conv(4, 4, 3, **pad), lipot.GroupSort2(),
        conv(4, 16, 4, stride=2, **pad), lipot.GroupSort2(), conv(16, 16, 3, **pad), lipot.GroupSort2(),
        nn.Flatten(), lipot.SpectralLinear(16 * 7 * 7, 64), lipot.GroupSort2(), lipot.FrobeniusLinear(64, 1),
    )


def norms(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    model.eval()
    points = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(points).sum(), points)
    model.train()
    return grad.flatten(1).norm(dim=1)


def train(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 1, 28, 28, generator=gen), torch.randn(64, 1, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def main() -> None:
    torch.set_num_threads(2)
    points = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    print(f"{'network':<22}{'conv':<10}{'fresh min/max':>18}{'trained min/max':>20}")
    builds = [("expanding", lambda c: expanding(c)),
              ("gnp-stack circular", lambda c: gnp_stack(c, "circular")),
              ("gnp-stack zeros", lambda c: gnp_stack(c, "zeros"))]
    for name, build in builds:
        for conv_name, conv in CONVS.items():
            torch.manual_seed(0)
            model = build(conv)
            fresh = norms(model, points)
            train(model)
            trained = norms(model, points)
            print(f"{name:<22}{conv_name:<10}{fresh.min():>9.4f}/{fresh.max():.4f}"
                  f"{trained.min():>11.4f}/{trained.max():.4f}")


if __name__ == "__main__":
    main()
