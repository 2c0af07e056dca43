"""Gradient-norm-preservation claims, measured with numpy SVDs of dense Jacobians."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lipot
from conftest import jacobian_matrix, singular_values_np, train_steps


def weight_singular_values(layer, mode):
    getattr(layer, mode)()
    with torch.no_grad():
        return singular_values_np(layer.weight)


# accuracy of the singular values in train and eval mode: the polar update projects to
# eps_bjorck (1e-3) at every step; the retraction plans its steps for 10 * eps_bjorck in training
# and uses the projection to 1e-4 out of training
ACCURACY = {"polar": {"train": 1e-3, "eval": 1e-3}, "retraction": {"train": 1e-2, "eval": 1e-4}}


@pytest.mark.parametrize("update", ["retraction", "polar"])
@pytest.mark.parametrize("shape", [(784, 32), (32, 16), (64, 64), (16, 1), (1, 16), (7, 300)])
@pytest.mark.parametrize("k", [0.5, 1.0, 3.0])
def test_spectral_linear_singular_values_after_training(shape, k, update):
    layer = lipot.SpectralLinear(*shape, k_coef_lip=k, update=update)
    train_steps(layer, torch.randn(64, shape[0]), steps=20, lr=1e-2)
    for mode in ("train", "eval"):
        sv = weight_singular_values(layer, mode)
        assert sv.max() <= k * (1 + 1e-5)
        assert sv.min() >= k * (1 - ACCURACY[update][mode]), (mode, sv.min() / k)


def test_spectral_linear_stays_orthonormal_where_deel_torchlip_did_not():
    """Measured on deel-torchlip 1.0.5: its SpectralLinear(1024) after 36 Adam steps (lr 1e-3)
    on mean(y^2) had singular values in [0.024, 1.000]."""
    torch.manual_seed(0)
    layer = lipot.SpectralLinear(1024, 1024)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    x = torch.randn(256, 1024)
    for _ in range(36):
        opt.zero_grad()
        (layer(x) ** 2).mean().backward()
        opt.step()
    sv = weight_singular_values(layer, "train")
    assert sv.max() <= 1 + 1e-5
    assert sv.min() >= 1 - ACCURACY["retraction"]["train"]
    sv = weight_singular_values(layer, "eval")
    assert sv.max() <= 1 + 1e-5 and sv.min() >= 1 - ACCURACY["retraction"]["eval"]


def test_spectral_conv_reshaped_kernel_is_orthonormal():
    layer = lipot.SpectralConv2d(4, 8, 3, padding=1, k_coef_lip=2.0)
    train_steps(layer, torch.randn(8, 4, 6, 6), steps=10)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        with torch.no_grad():
            reshaped = layer.weight.reshape(8, -1) / (2.0 * lipot.linalg.normalizers.conv_coefficient(3, 1, 1))
        sv = singular_values_np(reshaped)
        assert sv.max() <= 1 + 1e-5 and sv.min() >= 1 - ACCURACY["retraction"][mode], (mode, sv.min())


GNP_ACTIVATIONS = [
    (lambda: lipot.GroupSort(4), (8, 3, 3)),
    (lambda: lipot.GroupSort2(), (6,)),
    (lambda: lipot.FullSort(), (10,)),
    (lambda: lipot.MaxMin(), (5, 2, 2)),
    (lambda: lipot.HouseHolder(6, theta_initializer="normal"), (6, 2)),
    (lambda: lipot.InvertibleDownSampling(2), (3, 4, 6)),
    (lambda: lipot.InvertibleUpSampling(2), (8, 3, 2)),
]


@pytest.mark.parametrize("make,shape", GNP_ACTIVATIONS)
@pytest.mark.parametrize("k", [1.0, 2.0])
def test_activations_preserve_gradient_norms(make, shape, k):
    """All singular values of the Jacobian equal k: ||J^T g|| = k ||g|| for every output
    gradient g in the range of J (every g for the square ones), and ||J v|| = k ||v||."""
    layer = make()
    layer.k_coef_lip = k
    for seed in range(3):
        x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
        jac = jacobian_matrix(layer, x)
        sv = singular_values_np(jac)
        np.testing.assert_allclose(sv, k, rtol=1e-6)
        # back-propagated gradient norm for a random upstream gradient in the range of J
        g = jac @ torch.randn(jac.shape[1], dtype=torch.float64)
        assert torch.linalg.vector_norm(jac.T @ g).item() == pytest.approx(k * g.norm().item(), rel=1e-6)


@pytest.mark.parametrize("kernel", [1, 2, (2, 3)])
def test_l2_norm_pooling_preserves_norms_of_non_overlapping_windows(kernel):
    pool = lipot.ScaledL2NormPool2d(kernel)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = torch.randn(2, 3, 2 * kh, 3 * kw, dtype=torch.float64)
    out = pool(x)
    np.testing.assert_allclose(out.flatten(1).norm(dim=1).numpy(), x.flatten(1).norm(dim=1).numpy(), rtol=1e-12)
    global_pool = lipot.ScaledAdaptiveL2NormPool2d((1, 1))
    np.testing.assert_allclose(
        global_pool(x).flatten(1).norm(dim=1).numpy(), x.flatten(1).norm(dim=1).numpy(), rtol=1e-12
    )
    # each output's gradient is a unit vector (the window's direction)
    xr = x.clone().requires_grad_()
    pool(xr)[0, 0, 0, 0].backward()
    assert xr.grad.norm().item() == pytest.approx(1.0)


def test_l2_norm_pooling_gradient_is_finite_at_zero():
    x = torch.zeros(1, 2, 4, 4, requires_grad=True)
    lipot.ScaledL2NormPool2d(2)(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    lipot.ScaledAdaptiveL2NormPool2d()(x).sum().backward()
    assert torch.isfinite(x.grad).all()
