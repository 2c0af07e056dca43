"""lipot.Sequential(k_coef_lip=k) makes the whole model k-Lipschitz (dense Jacobian check)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import lipot
from conftest import lipschitz_all_modes, train_steps


def conv_net(k):
    return lipot.Sequential(
        lipot.SpectralConv2d(1, 4, 3, padding=1),
        lipot.GroupSort2(),
        lipot.ScaledL2NormPool2d(2),
        lipot.SpectralConv2d(4, 4, 3, padding=1, padding_mode="reflect"),
        lipot.MaxMin(),
        lipot.InvertibleDownSampling(2),
        nn.Flatten(),
        lipot.SpectralLinear(128, 8),
        lipot.FullSort(),
        lipot.FrobeniusLinear(8, 1),
        k_coef_lip=k,
    )


@pytest.mark.parametrize("k", [0.5, 1.0, 4.0])
def test_sequential_end_to_end_bound(k):
    model = conv_net(k)
    x = torch.randn(6, 1, 8, 8)
    train_steps(model, x, steps=5, lr=0.05)
    measured = lipschitz_all_modes(model, x[:1], points=3)
    for mode, value in measured.items():
        assert value <= k * (1 + 1e-4), (mode, value)
    assert model.lipschitz_bound() == pytest.approx(k)


def test_sequential_sets_every_layer_factor_and_redistributes():
    model = lipot.Sequential(lipot.SpectralLinear(4, 4), nn.ReLU(), lipot.GroupSort2(), lipot.SpectralLinear(4, 2), k_coef_lip=8.0)
    factors = [m.k_coef_lip for m in model if isinstance(m, lipot.LipschitzModule)]
    assert factors == pytest.approx([2.0, 2.0, 2.0])
    # the layers' weights really carry the factor
    sv = torch.linalg.svdvals(model[0].weight.detach().double())
    assert sv.max().item() == pytest.approx(2.0, rel=1e-5)
    model.k_coef_lip = 1.0
    assert [m.k_coef_lip for m in model if isinstance(m, lipot.LipschitzModule)] == pytest.approx([1.0] * 3)
    sv = torch.linalg.svdvals(model[0].weight.detach().double())
    assert sv.max().item() == pytest.approx(1.0, rel=1e-5)


def test_nested_sequential():
    inner = lipot.Sequential(lipot.SpectralLinear(4, 4), lipot.GroupSort2())
    outer = lipot.Sequential(inner, lipot.SpectralLinear(4, 1), k_coef_lip=9.0)
    assert inner.k_coef_lip == pytest.approx(3.0)
    assert inner[0].k_coef_lip * inner[1].k_coef_lip == pytest.approx(3.0)
    assert outer.lipschitz_bound() == pytest.approx(9.0)


def test_override_and_disjoint_warnings():
    with pytest.warns(UserWarning, match="overrides k_coef_lip=3"):
        lipot.Sequential(lipot.SpectralLinear(2, 2, k_coef_lip=3.0), k_coef_lip=2.0)
    with pytest.warns(UserWarning, match="disjoint_neurons"):
        lipot.Sequential(lipot.FrobeniusLinear(2, 3), lipot.SpectralLinear(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lipot.Sequential(lipot.SpectralLinear(2, 2), lipot.FrobeniusLinear(2, 1))
        # a row-normalized last layer ("LLN" head) is certified per pair: no warning
        lipot.Sequential(lipot.SpectralLinear(2, 2), lipot.FrobeniusLinear(2, 3))


@pytest.mark.parametrize(
    "layer", [nn.Linear(2, 2), nn.Conv2d(1, 1, 3), nn.BatchNorm1d(2), nn.Dropout(0.1), nn.GELU(),
              nn.LeakyReLU(negative_slope=-2.0)]
)
def test_unbounded_layers_are_rejected(layer):
    with pytest.raises(ValueError, match="Sequential layer"):
        lipot.Sequential(lipot.SpectralLinear(2, 2), layer)


def test_structure_is_frozen():
    model = lipot.Sequential(lipot.SpectralLinear(2, 2))
    with pytest.raises(TypeError, match="restructured"):
        model.append(lipot.SpectralLinear(2, 2))
    with pytest.raises(TypeError, match="restructured"):
        del model[0]
