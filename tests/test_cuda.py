"""CUDA checks (skipped without a GPU): device moves invalidate the eval cache, losses and
certificates agree with the CPU, and GPU training keeps the verified bound."""

from __future__ import annotations

import pytest
import torch

import lipot
from lipot import losses, models

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_eval_cache_follows_device_moves():
    torch.manual_seed(0)
    layer = lipot.SpectralLinear(16, 16).eval()
    x = torch.randn(4, 16)
    cpu_out = layer(x)
    layer.cuda()
    gpu_out = layer(x.cuda())
    assert gpu_out.device.type == "cuda"
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # change the raw weight on the GPU: the cache must not serve the old one
        layer.parametrizations.weight.original.mul_(-1)
    layer.train()
    layer(x.cuda())
    layer.eval()
    torch.testing.assert_close(layer(x.cuda()).cpu(), -cpu_out + 2 * layer.bias.detach().cpu(), rtol=1e-4, atol=1e-4)


def test_losses_match_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 10, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    for loss in [losses.HKRMulticlassLoss(0.9), losses.LseHKRMulticlassLoss(0.9), losses.SoftHKRMulticlassLoss(0.9)]:
        cpu = loss(x, y)
        gpu = loss.cuda()(x.cuda(), y.cuda())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)


def test_gpu_training_keeps_the_verified_bound():
    torch.manual_seed(0)
    model = models.conv_classifier(1, 16, (8, 16), (32,), 10).cuda()
    loss_fn = losses.LseHKRMulticlassLoss(0.9, min_margin=2.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(64, 1, 16, 16, device="cuda")
    y = torch.randint(0, 10, (64,), device="cuda")
    for _ in range(20):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    bound = lipot.lipschitz_bound(model, (1, 16, 16))
    assert bound <= 1 + 1e-5
    res = lipot.certified_accuracy(model, (x, y), [0.1])
    assert 0.0 <= res.certified[0.1] <= res.accuracy
