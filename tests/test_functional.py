"""lipot.functional against independent numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lipot
from lipot import functional as LF


@pytest.mark.parametrize("group", [1, 2, 3, 6, None])
@pytest.mark.parametrize("dim", [1, -1])
def test_group_sort_matches_numpy(group, dim):
    x = np.random.default_rng(0).standard_normal((4, 6, 6))
    out = LF.group_sort(torch.tensor(x), group, dim).numpy()
    moved = np.moveaxis(x, dim, -1)
    g = moved.shape[-1] if group is None else group
    expected = np.sort(moved.reshape(*moved.shape[:-1], -1, g), axis=-1).reshape(moved.shape)
    np.testing.assert_array_equal(out, np.moveaxis(expected, -1, dim))


def test_group_sort_2_and_full_sort_are_group_sort():
    x = torch.randn(3, 8, 2)
    torch.testing.assert_close(LF.group_sort_2(x), LF.group_sort(x, 2))
    torch.testing.assert_close(LF.full_sort(x), LF.group_sort(x, None))


def test_max_min_matches_numpy():
    x = np.random.default_rng(1).standard_normal((3, 4, 2))
    out = LF.max_min(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(out, np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=1))


def test_householder_matches_reflection_formula():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6, 3))
    theta = rng.standard_normal(3)
    out = LF.householder(torch.tensor(x), torch.tensor(theta)).numpy()
    a, b = x[:, :3], x[:, 3:]
    t = theta[None, :, None]
    n = np.stack([np.sin(t / 2) * np.ones_like(a), -np.cos(t / 2) * np.ones_like(a)])
    s = n[0] * a + n[1] * b
    reflect = s > 0
    ea = np.where(reflect, a - 2 * s * n[0], a)
    eb = np.where(reflect, b - 2 * s * n[1], b)
    np.testing.assert_allclose(out, np.concatenate([ea, eb], axis=1), atol=1e-12)


@pytest.mark.parametrize("k", [0.5, 1.0, 3.0])
def test_lipschitz_prelu_slopes(k):
    a = torch.tensor([-5.0, -0.5, 0.2, 4.0])
    x = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    out = LF.lipschitz_prelu(x, a, k)
    c = min(1.0, k)
    expected_neg = -c * np.clip(a.numpy(), -k / c, k / c)
    np.testing.assert_allclose(out[0].numpy(), expected_neg, rtol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), c, rtol=1e-6)
    assert np.abs(out[0].numpy()).max() <= k + 1e-6 and out[1].max().item() <= k + 1e-6


def window_norms(x, kh, kw, ceil):
    n, c, h, w = x.shape
    oh = -(-h // kh) if ceil else h // kh
    ow = -(-w // kw) if ceil else w // kw
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.sqrt((x[:, :, i * kh:(i + 1) * kh, j * kw:(j + 1) * kw] ** 2).sum(axis=(2, 3)))
    return out


@pytest.mark.parametrize("ceil", [False, True])
def test_l2_norm_pool_matches_numpy(ceil):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 5))
    out = LF.l2_norm_pool2d(torch.tensor(x), (2, 2), None, ceil).numpy()
    np.testing.assert_allclose(out, window_norms(x, 2, 2, ceil), rtol=1e-12)


def test_scaled_pools_match_numpy():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 4))
    t = torch.tensor(x)
    avg = lipot.ScaledAvgPool2d((3, 2))(t).numpy()
    sums = x.reshape(2, 3, 2, 3, 2, 2).sum(axis=(3, 5))
    np.testing.assert_allclose(avg, sums / np.sqrt(6), rtol=1e-12)
    override = lipot.ScaledAvgPool2d((3, 2), divisor_override=5)(t).numpy()
    np.testing.assert_allclose(override, sums / np.sqrt(6), rtol=1e-12)
    adaptive = lipot.ScaledAdaptiveAvgPool2d((2, 2))(t).numpy()
    np.testing.assert_allclose(adaptive, sums / np.sqrt(6), rtol=1e-12)
    glob = lipot.ScaledAdaptiveAvgPool2d(1)(t).numpy()
    np.testing.assert_allclose(glob[..., 0, 0], x.sum(axis=(2, 3)) / np.sqrt(24), rtol=1e-12)
    l2 = lipot.ScaledAdaptiveL2NormPool2d((2, None))(t).numpy()
    np.testing.assert_allclose(l2, np.sqrt((x.reshape(2, 3, 2, 3, 4) ** 2).sum(axis=3)), rtol=1e-12)


def test_invertible_sampling_are_inverse_permutations():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    down = lipot.InvertibleDownSampling(2)(x)
    assert down.shape == (2, 12, 2, 3)
    assert sorted(down.flatten().tolist()) == sorted(x.flatten().tolist())
    torch.testing.assert_close(lipot.InvertibleUpSampling(2)(down), x, rtol=0, atol=0)


def test_batch_centering_running_mean():
    layer = lipot.BatchCentering(2, momentum=None, bias=False)
    batches = [torch.randn(4, 2, 3, 3) + i for i in range(3)]
    for b in batches:
        out = layer(b)
        np.testing.assert_allclose(out.mean(dim=(0, 2, 3)).detach().numpy(), 0, atol=1e-6)
    expected = np.mean([b.mean(dim=(0, 2, 3)).numpy() for b in batches], axis=0)
    np.testing.assert_allclose(layer.running_mean.numpy(), expected, rtol=1e-5)
    layer.eval()
    x = torch.randn(1, 2, 3, 3)
    np.testing.assert_allclose(layer(x).numpy(), (x - torch.tensor(expected)[None, :, None, None].float()).numpy(), rtol=1e-5)


def test_layer_centering_and_residual_values():
    x = torch.randn(2, 3, 4, 4)
    layer = lipot.LayerCentering(3, k_coef_lip=2.0)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    expected = 2.0 * (x - x.mean(dim=(-2, -1), keepdim=True)) + torch.tensor([1.0, 2.0, 3.0])[None, :, None, None]
    torch.testing.assert_close(layer(x), expected)
    res = lipot.LipResidual()
    y = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(res(x, y), 0.5 * x + 0.5 * y)
