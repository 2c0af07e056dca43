"""End-to-end HKR training step of the MNIST 10-class conv classifier (conv 32-64 + dense 256,
GroupSort2, L2-norm pooling, LseHKR loss, Adam), lipot vs deel-torchlip vs an unconstrained
torch.nn network of the same shape, side by side in one run::

    python -m pytest benchmarks/test_training_step.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds --benchmark-sort=name

One step = ``zero_grad; forward; loss; backward; Adam step`` on a batch of 128 MNIST-sized
inputs, so the weights change at every step (the constrained layers re-normalize each time).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lipot
from lipot import losses, models

from mnist_conv_vs_deel import deel_model

IMPLS = ["torch", "lipot", "deel"]


def make(impl: str):
    torch.manual_seed(0)
    if impl == "lipot":
        return models.conv_classifier(1, 28, (32, 64), (256,), 10, conv="spectral"), losses.LseHKRMulticlassLoss(0.95, min_margin=3.0)
    if impl == "torch":  # same shapes, unconstrained weights, lipot's weight-free layers
        lip = models.conv_classifier(1, 28, (32, 64), (256,), 10, conv="spectral")
        plain = nn.Sequential(*[m.vanilla_export() if isinstance(m, (nn.Conv2d, nn.Linear)) else m for m in lip])
        return plain, losses.LseHKRMulticlassLoss(0.95, min_margin=3.0)
    dl = pytest.importorskip("deel.torchlip")
    return deel_model((32, 64), (256,)), dl.LseHKRMulticlassLoss(0.95, min_margin=3.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_mnist_conv_train_step(benchmark, impl):
    benchmark.group = "MNIST conv HKR train step (batch 128)"
    model, loss_fn = make(impl)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(128, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    target = nn.functional.one_hot(y, 10).float() if impl == "deel" else y
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):  # warm-up: the first lipot steps converge Björck from the random init
        step()
    loss = benchmark.pedantic(step, rounds=20, iterations=1)
    assert torch.isfinite(loss)
    if impl == "lipot":
        bound = lipot.lipschitz_bound(model, (1, 28, 28))
        benchmark.extra_info["verified_bound"] = bound
        assert bound <= 1.0 + 1e-5
