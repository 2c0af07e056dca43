"""API details a migrating deel-torchlip user meets: multilabel KR / hinge / HKR losses,
transposed-conv settings refused at construction, BatchCentering's running mean and the in-place
``vanilla_model``. References are computed independently here (and against deel-torchlip itself
when it is installed, as in the ``bench`` extra)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lipot
import lipot.losses as LL
import lipot.nn as L


def _multilabel_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = (torch.rand(12, 3, generator=g) > 0.5).to(torch.float64)
    y[0], y[1] = 1.0, 0.0  # both labels in every column
    return x, y


def _per_column_kr(x, y):
    return sum(x[y[:, c] > 0, c].mean() - x[y[:, c] <= 0, c].mean() for c in range(x.shape[1])) / x.shape[1]


def _per_column_hinge(x, y, m):
    sign = torch.where(y > 0, 1.0, -1.0).to(x.dtype)
    return torch.relu(m / 2 - sign * x).mean()


def test_multilabel_kr_hinge_hkr_average_the_columns():
    x, y = _multilabel_batch()
    kr, hinge = _per_column_kr(x, y), _per_column_hinge(x, y, 0.7)
    assert torch.allclose(LL.kr_loss(x, y), kr)
    assert torch.allclose(LL.KRLoss(warn=False)(x, y), kr)
    assert torch.allclose(LL.kr_loss(x, y, reduction="none").mean(), kr)
    assert torch.allclose(LL.hinge_margin_loss(x, y, 0.7), hinge)
    assert torch.allclose(LL.HingeMarginLoss(0.7)(x, y), hinge)
    assert torch.allclose(LL.HKRLoss(0.9, 0.7)(x, y), 0.9 * hinge - 0.1 * kr)
    # labels +-1 give the same values as 0/1
    assert torch.allclose(LL.kr_loss(x, 2 * y - 1), kr)


def test_multilabel_column_with_one_label_is_left_out():
    x, y = _multilabel_batch()
    y[:, 2] = 1.0  # column 2 has no negative
    expected = sum(x[y[:, c] > 0, c].mean() - x[y[:, c] <= 0, c].mean() for c in range(2)) / 2
    assert torch.allclose(LL.kr_loss(x, y), expected)


def test_multilabel_target_shape_must_match():
    x, y = _multilabel_batch()
    with pytest.raises(ValueError, match="multilabel input .* same shape"):
        LL.kr_loss(x, y[:, :2])
    with pytest.raises(ValueError, match="multiclass"):
        LL.hinge_margin_loss(x, torch.zeros(12, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\{-1, \+1\} or \{0, 1\}"):
        LL.hkr_loss(x, 3 * y, 0.5)


def test_multilabel_losses_match_deel_torchlip():
    torchlip = pytest.importorskip("deel.torchlip")
    x, y = _multilabel_batch()
    x, y = x.float(), y.float()
    assert torch.allclose(LL.KRLoss(warn=False)(x, y), torchlip.KRLoss()(x, y), atol=1e-6)
    assert torch.allclose(LL.HingeMarginLoss(0.5)(x, y), torchlip.HingeMarginLoss(0.5)(x, y), atol=1e-6)
    assert torch.allclose(LL.HKRLoss(0.9, 0.5)(x, y), torchlip.HKRLoss(0.9, 0.5)(x, y), atol=1e-6)


@pytest.mark.parametrize("cls", [L.SpectralConvTranspose2d, L.OrthoConvTranspose2d])
@pytest.mark.parametrize("output_padding", [5, -1, (0, 2)])
def test_transposed_conv_output_padding_refused_at_construction(cls, output_padding):
    with pytest.raises(ValueError, match="output_padding"):
        cls(2, 2, 2, stride=2, output_padding=output_padding)


@pytest.mark.parametrize("cls", [L.SpectralConvTranspose2d, L.OrthoConvTranspose2d])
def test_transposed_conv_valid_output_padding_runs(cls):
    layer = cls(2, 2, 2, stride=2, output_padding=1)
    assert layer(torch.randn(1, 2, 3, 3)).shape == (1, 2, 7, 7)


def test_batch_centering_momentum_none_is_the_cumulative_average():
    torch.manual_seed(0)
    layer = L.BatchCentering(3, momentum=None).train()
    batches = [torch.randn(4, 3, 5) + i for i in range(5)]
    for b in batches:
        layer(b)
    expected = torch.stack([b.mean(dim=(0, 2)) for b in batches]).mean(0)
    assert torch.allclose(layer.running_mean, expected, atol=1e-6)
    default = L.BatchCentering(3).train()
    for b in batches:
        default(b)
    ema = torch.zeros(3)
    for b in batches:
        ema = 0.9 * ema + 0.1 * b.mean(dim=(0, 2))
    assert torch.allclose(default.running_mean, ema, atol=1e-6)


def test_batch_centering_momentum_none_matches_deel_torchlip():
    torchlip = pytest.importorskip("deel.torchlip")
    torch.manual_seed(0)
    ours, theirs = L.BatchCentering(3, momentum=None).train(), torchlip.BatchCentering(3).train()
    x = torch.randn(4, 3, 5)
    for i in range(4):
        ours(x + i)
        theirs(x + i)
    ours.eval(), theirs.eval()
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def _model():
    torch.manual_seed(0)
    return L.Sequential(
        L.SpectralConv2d(1, 4, 3, padding=1), L.GroupSort2(), L.BatchCentering(4), nn.Flatten(),
        L.SpectralLinear(64, 2),
    )


def test_vanilla_model_converts_in_place():
    model, x = _model(), torch.randn(5, 1, 4, 4)
    model.train()(x)
    expected = model.eval()(x).detach()
    returned = lipot.vanilla_model(model)
    assert returned is model
    assert type(model) is nn.Sequential
    assert not any(type(m).__module__.startswith("lipot") for m in model.modules())
    assert torch.allclose(model(x), expected, atol=1e-6)
    layer = L.SpectralLinear(4, 3).eval()
    expected = layer(torch.ones(2, 4)).detach()
    lipot.vanilla_model(layer)
    assert type(layer) is nn.Linear and torch.allclose(layer(torch.ones(2, 4)), expected)


def test_vanilla_model_copy_leaves_the_model():
    model, x = _model(), torch.randn(5, 1, 4, 4)
    expected = model.eval()(x).detach()
    copy = lipot.vanilla_model(model, in_place=False)
    assert copy is not model and isinstance(model, L.Sequential)
    assert torch.allclose(copy(x), expected, atol=1e-6) and torch.allclose(model(x), expected)
