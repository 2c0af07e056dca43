"""Settings that would break the Lipschitz bound raise ValueError naming the argument."""

from __future__ import annotations

import math

import pytest
import torch

import lipot

BAD_K = [0.0, -1.0, math.nan, math.inf]


@pytest.mark.parametrize("k", BAD_K)
@pytest.mark.parametrize(
    "make",
    [
        lambda k: lipot.SpectralLinear(2, 2, k_coef_lip=k),
        lambda k: lipot.FrobeniusLinear(2, 2, k_coef_lip=k),
        lambda k: lipot.SpectralConv2d(1, 1, 3, k_coef_lip=k),
        lambda k: lipot.SpectralConvTranspose2d(1, 1, 3, k_coef_lip=k),
        lambda k: lipot.GroupSort2(k_coef_lip=k),
        lambda k: lipot.HouseHolder(2, k_coef_lip=k),
        lambda k: lipot.ScaledAvgPool2d(2, k_coef_lip=k),
        lambda k: lipot.InvertibleDownSampling(2, k_coef_lip=k),
        lambda k: lipot.LayerCentering(1, k_coef_lip=k),
        lambda k: lipot.LipResidual(k_coef_lip=k),
        lambda k: lipot.Sequential(lipot.SpectralLinear(2, 2), k_coef_lip=k),
    ],
)
def test_non_positive_or_non_finite_k_is_rejected(make, k):
    with pytest.raises(ValueError, match="k_coef_lip"):
        make(k)


def test_k_setter_is_checked():
    layer = lipot.SpectralLinear(2, 2)
    with pytest.raises(ValueError, match="k_coef_lip"):
        layer.k_coef_lip = -2


def test_conv_settings():
    with pytest.raises(ValueError, match="stride.*dilation"):
        lipot.SpectralConv2d(1, 1, 3, stride=2, dilation=2)
    with pytest.raises(ValueError, match="padding_mode='symmetric'"):
        lipot.SpectralConv2d(1, 1, 3, padding=1, padding_mode="symmetric")
    with pytest.raises(ValueError, match="padding_mode"):
        lipot.FrobeniusConv2d(1, 1, 3, padding=1, padding_mode="bogus")
    with pytest.raises(ValueError, match="padding"):
        lipot.SpectralConvTranspose2d(1, 1, 3, padding="same")


def test_bjorck_settings():
    with pytest.raises(ValueError, match="beta_bjorck"):
        lipot.SpectralLinear(2, 2, beta_bjorck=0.25)
    with pytest.raises(ValueError, match="eps_bjorck"):
        lipot.SpectralLinear(2, 2, eps_bjorck=-1.0)
    with pytest.raises(ValueError, match="maxiter_bjorck"):
        lipot.SpectralConv2d(1, 1, 3, maxiter_bjorck=0)
    with pytest.raises(ValueError, match="eps_spectral"):
        lipot.SpectralLinear(2, 2, eps_spectral=0.0)


def test_activation_settings():
    with pytest.raises(ValueError, match="group_size=4"):
        lipot.GroupSort(4)(torch.randn(2, 6))
    with pytest.raises(ValueError, match="group_size"):
        lipot.GroupSort(0)
    with pytest.raises(ValueError, match="channels must be even"):
        lipot.HouseHolder(3)
    with pytest.raises(ValueError, match="theta_initializer"):
        lipot.HouseHolder(2, theta_initializer="bogus")
    with pytest.raises(ValueError, match="2 \\* len\\(theta\\)"):
        lipot.HouseHolder(4)(torch.randn(2, 6))


def test_pooling_and_sampling_settings():
    with pytest.raises(ValueError, match="stride"):
        lipot.ScaledAvgPool2d(2, stride=1)
    with pytest.raises(ValueError, match="ceil_mode"):
        lipot.ScaledAvgPool2d(2, ceil_mode=True)
    with pytest.raises(ValueError, match="padding"):
        lipot.ScaledAvgPool2d(2, padding=1)
    with pytest.raises(ValueError, match="stride"):
        lipot.ScaledL2NormPool2d(3, stride=2)
    with pytest.raises(ValueError, match="output_size"):
        lipot.ScaledAdaptiveAvgPool2d((3, 3))(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="output_size"):
        lipot.ScaledAdaptiveL2NormPool2d((0, 1))
    with pytest.raises(ValueError, match="kernel_size=2"):
        lipot.InvertibleDownSampling(2)(torch.randn(1, 1, 3, 4))
    with pytest.raises(ValueError, match="kernel_size\\*\\*2"):
        lipot.InvertibleUpSampling(2)(torch.randn(1, 3, 2, 2))


def test_centering_and_residual_settings():
    with pytest.raises(ValueError, match="num_features=3"):
        lipot.LayerCentering(3)(torch.randn(2, 2, 4, 4))
    with pytest.raises(ValueError, match="momentum"):
        lipot.BatchCentering(2, momentum=1.5)
    with pytest.raises(ValueError, match="1-Lipschitz"):
        lipot.LipResidual(lipot.SpectralLinear(2, 2, k_coef_lip=2.0))
    with pytest.raises(ValueError, match="forward\\(x, y\\)"):
        lipot.LipResidual()(torch.randn(2, 2))


def test_residual_rejects_unknown_blocks():
    with pytest.raises(ValueError, match="cannot bound"):
        lipot.LipResidual(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("eps_bjorck", [1e-3, None])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_weights_raise_instead_of_silent_nan(eps_bjorck, bad):
    """A diverged training run (NaN/Inf raw weight) gets a clear error, not NaN outputs after a
    misleading convergence warning."""
    layer = lipot.SpectralLinear(4, 4, eps_bjorck=eps_bjorck)
    with torch.no_grad():
        layer.parametrizations.weight.original[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer(torch.randn(2, 4))
