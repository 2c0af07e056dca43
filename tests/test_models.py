"""Ready-made architectures: shapes, argument checks, and their verified bound against dense
Jacobians."""

from __future__ import annotations

import pytest
import torch

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


def test_builder_errors():
    with pytest.raises(ValueError, match="even"):
        models.dense_classifier(4, (3,), 1)
    with pytest.raises(ValueError, match="input_size"):
        models.conv_classifier(1, 6, (4, 4, 4), (), 2)
    with pytest.raises(ValueError, match="unknown architecture"):
        models.build("resnet")
