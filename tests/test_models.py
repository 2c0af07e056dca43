"""Ready-made architectures: shapes, argument checks, and their verified bound against dense
Jacobians."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.parametrize import type_before_parametrizations

import lipot
from lipot import models


def test_dense_and_conv_classifiers_shapes_and_bounds():
    torch.manual_seed(0)
    dense = models.dense_classifier(12, (8, 4), 3)
    conv = models.conv_classifier(1, 8, (4, 6), (8,), 3)
    for model, shape in [(dense, (12,)), (conv, (1, 8, 8))]:
        model = model.double().eval()
        x = torch.randn(5, *shape, dtype=torch.float64)
        assert model(x).shape == (5, 3)
        bound = lipot.lipschitz_bound(model, shape)
        assert bound <= lipot.nominal_lipschitz(model) * (1 + 1e-6)
        for xi in x:
            jac = torch.autograd.functional.jacobian(lambda z: model(z[None])[0], xi).reshape(3, -1)
            assert torch.linalg.matrix_norm(jac, 2).item() <= bound


@pytest.mark.parametrize("conv", sorted(models.CONV_LAYERS))
@pytest.mark.parametrize("downsample", models.DOWNSAMPLING)
def test_conv_choice_and_strided_downsampling(conv, downsample):
    torch.manual_seed(0)
    model = models.conv_classifier(1, 8, (4, 8), (8,), 3, conv=conv, downsample=downsample).double().eval()
    kinds = [type_before_parametrizations(m).__name__ for m in model]
    expected = {"ortho": "OrthoConv2d", "aol": "AOLConv2d", "spectral": "SpectralConv2d"}[conv]
    assert kinds.count(expected) == (4 if downsample == "stride" else 2)
    assert ("ScaledL2NormPool2d" in kinds) == (downsample == "pool")
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    assert model(x).shape == (3, 3)
    bound = lipot.lipschitz_bound(model, (1, 8, 8))
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda z: model(z[None])[0], xi).reshape(3, -1)
        assert torch.linalg.matrix_norm(jac, 2).item() <= bound
    critic = models.conv_critic(1, 8, conv=conv)
    assert type_before_parametrizations(critic[0]).__name__ == expected and critic(x.float()).shape == (3, 1)


def test_deeper_4c3f_adds_convolutions_and_stays_1_lipschitz():
    """``convs_per_block=2`` (a 6C3F): six convolutions, and the body's Jacobian (dense SVD, an
    independent check) has spectral norm at most 1; the recipes pass the option on."""
    torch.manual_seed(0)
    model = models.cnn_4c3f(1, 8, 3, convs_per_block=2).double().eval()
    convs = [m for m in model if isinstance(m, lipot.OrthoConv2d)]
    assert [(c.out_channels, c.stride[0]) for c in convs] == [(32, 1), (32, 1), (32, 2), (64, 1), (64, 1), (64, 2)]
    body = model[:-1]
    for xi in torch.randn(3, 1, 8, 8, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda z: body(z[None])[0], xi).reshape(512, -1)
        assert torch.linalg.matrix_norm(jac, 2).item() <= 1 + 1e-4
    recipe = lipot.training.recipes.build_recipe("gloro", 1.58, 2, input_size=8, num_classes=3, convs_per_block=2)
    assert recipe.arch_kwargs["convs_per_block"] == 2
    assert sum(isinstance(m, lipot.OrthoConv2d) for m in models.build(recipe.arch, **recipe.arch_kwargs)) == 6
    with pytest.raises(ValueError, match="convs_per_block"):
        lipot.training.recipes.build_recipe("lse-hkr", 1.58, 2, convs_per_block=2)
    with pytest.raises(ValueError, match="convs_per_block"):
        models.cnn_4c3f(convs_per_block=0)


def test_default_conv_is_orthogonal():
    assert models.DEFAULT_CONV == "ortho"
    assert isinstance(models.conv_classifier()[0], lipot.OrthoConv2d)


def test_builder_errors():
    with pytest.raises(ValueError, match="divisible by 2 for GroupSort2"):
        models.dense_classifier(4, (3,), 1)
    with pytest.raises(ValueError, match="input_size"):
        models.conv_classifier(1, 6, (4, 4, 4), (), 2)
    with pytest.raises(ValueError, match="unknown architecture"):
        models.build("resnet")
    with pytest.raises(ValueError, match="conv must be one of"):
        models.conv_classifier(conv="bcop")
    with pytest.raises(ValueError, match="downsample must be one of"):
        models.conv_classifier(downsample="maxpool")
