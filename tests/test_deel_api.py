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


# ----------------------------------------------------------------------------- name parity

BASE_CLASSES = {"LipschitzModule"}  # subclassed, not instantiated: lipot's mixin has no arguments


def _deel_names(module) -> list[str]:
    import inspect as _inspect

    def public(name: str) -> bool:  # classes and functions, and the two helper modules users import
        obj = getattr(module, name)
        return (callable(obj) and not _inspect.ismodule(obj)) or name in ("utils", "init")

    return sorted(n for n in dir(module) if not n.startswith("_") and n not in ("F", "Optional", "torch")
                  and public(n))


def _accepts(ours, theirs) -> list[str]:
    """deel-torchlip parameter names that ``ours`` does not accept."""
    import inspect as _inspect

    try:
        mine, their = _inspect.signature(ours).parameters, _inspect.signature(theirs).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in mine.values()):
        return []
    return [n for n, p in their.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in mine]


@pytest.mark.parametrize("where", ["top", "functional"])
def test_every_deel_torchlip_name_exists_or_names_its_replacement(where):
    torchlip = pytest.importorskip("deel.torchlip")
    import lipot.functional

    theirs = torchlip if where == "top" else torchlip.functional
    ours = lipot if where == "top" else lipot.functional
    for name in _deel_names(theirs):
        if hasattr(ours, name):
            if name not in BASE_CLASSES:
                assert not _accepts(getattr(ours, name), getattr(theirs, name)), (name, _accepts(getattr(ours, name), getattr(theirs, name)))
            continue
        with pytest.raises(AttributeError, match=r"deel-torchlip name.*lipot|torch"):
            getattr(ours, name)


def test_multi_gpu_maps_to_global_batch_statistics():
    x, y = torch.randn(8), torch.tensor([1.0, -1.0] * 4)
    assert torch.equal(LL.hkr_loss(x, y, 0.9, multi_gpu=False), LL.hkr_loss(x, y, 0.9))
    assert torch.equal(LL.HKRLoss(0.9, 1.0, False, "mean")(x, y), LL.HKRLoss(0.9)(x, y))
    # outside a process group there is one process: its batch is the global batch, and the value
    # is the single-process one (deel-torchlip's behaviour); inside one, test_distributed checks
    # the reduction over the group
    assert torch.equal(LL.HKRLoss(0.9, multi_gpu=True)(x, y), LL.HKRLoss(0.9)(x, y))
    assert torch.equal(LL.hkr_loss(x, y, 0.9, multi_gpu=True), LL.hkr_loss(x, y, 0.9))
    xm, ym = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(LL.KRMulticlassLoss(multi_gpu=True)(xm, ym), LL.KRMulticlassLoss()(xm, ym))
    with pytest.raises(ValueError, match="true_values"):
        LL.KRLoss(true_values=(0, 1))
    with pytest.raises(TypeError, match="multi_gpu"):
        LL.kr_loss(x, y, multi_gpu="yes")


def test_deel_torchlip_seed_snippet_runs_with_the_import_changed():
    """deel-torchlip's documented first example, with ``from deel import torchlip`` replaced by
    ``import lipot as torchlip`` (alpha in [0, 1])."""
    import lipot as torchlip

    model = torchlip.Sequential(
        torchlip.SpectralConv2d(1, 8, 3, padding=1), torchlip.GroupSort2(), torchlip.ScaledL2NormPool2d(2),
        torchlip.SpectralConv2d(8, 8, 3, padding=1), torchlip.GroupSort2(), torch.nn.Flatten(),
        torchlip.SpectralLinear(8 * 4 * 4, 1),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, target = torch.randn(16, 1, 8, 8), torch.tensor([1.0, -1.0] * 8)[:, None]
    output = model(x)
    loss = torchlip.functional.hkr_loss(output, target, alpha=0.9, min_margin=1)
    loss.backward()
    optimizer.step()
    vanilla = torchlip.vanilla_model(model)
    assert isinstance(vanilla, torch.nn.Sequential) and torch.isfinite(loss)


# deel-torchlip 1.0.5's TauCrossEntropyLoss casts a target that does not have the input's shape
# to int64 (``target.to(torch.int64)`` in its forward), so float class indices work there; lipot
# accepts them in every loss that takes class indices and refuses non-integer values (which
# deel-torchlip truncates silently)
FLOAT_INDEX_LOSSES = {
    "TauCrossEntropyLoss": lambda: LL.TauCrossEntropyLoss(2.0),
    "HKRMulticlassLoss": lambda: LL.HKRMulticlassLoss(0.9),
    "HingeMulticlassLoss": lambda: LL.HingeMulticlassLoss(),
    "KRMulticlassLoss": lambda: LL.KRMulticlassLoss(),
    "SoftHKRMulticlassLoss": lambda: LL.SoftHKRMulticlassLoss(0.9),
    "LseHKRMulticlassLoss": lambda: LL.LseHKRMulticlassLoss(),
    "CategoricalHingeLoss": lambda: LL.CategoricalHingeLoss(),
}


@pytest.mark.parametrize("name", sorted(FLOAT_INDEX_LOSSES))
def test_multiclass_losses_accept_integer_valued_float_indices(name):
    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 2, 1, 1, 0, 2])
    assert torch.equal(FLOAT_INDEX_LOSSES[name]()(x, y.float()), FLOAT_INDEX_LOSSES[name]()(x, y))
    with pytest.raises(ValueError, match=r"target: floating-point class indices must hold integer values, got 1\.5"):
        FLOAT_INDEX_LOSSES[name]()(x, torch.tensor([0.0, 2.0, 1.5, 1.0, 0.0, 2.0]))


@pytest.mark.parametrize("name", ["margin_cross_entropy_loss", "gloro_trades_loss", "emma_loss",
                                  "logit_annealing_loss"])
def test_margin_losses_accept_integer_valued_float_indices(name):
    from lipot.losses import margin

    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 2, 1, 1, 0, 2])
    fn = getattr(margin, name)
    assert torch.equal(fn(x, y.float(), 0.5), fn(x, y, 0.5))
    with pytest.raises(ValueError, match="integer values"):
        fn(x, y.float() + 0.25, 0.5)


@pytest.mark.parametrize("cls", [L.SpectralConvTranspose2d, L.OrthoConvTranspose2d])
def test_transposed_conv_output_padding_none_means_zero(cls):
    torch.manual_seed(0)
    layer = cls(2, 2, 2, stride=2, output_padding=None)
    assert layer.output_padding == (0, 0)
    assert layer(torch.randn(1, 2, 3, 3)).shape == (1, 2, 6, 6)


@pytest.mark.parametrize("cls", [L.SpectralConvTranspose2d, L.OrthoConvTranspose2d])
def test_transposed_conv_same_padding_stays_refused(cls):
    """A deliberate difference (README, migration): torch.nn.ConvTranspose2d has no 'same'."""
    with pytest.raises(ValueError, match="padding='same' is not supported"):
        cls(2, 2, 3, padding="same")
