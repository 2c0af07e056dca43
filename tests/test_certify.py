"""Certificates: verified bounds against dense Jacobian SVDs, radii against exact distances to
the decision boundary computed independently (linear models, dense grid search in 2-D)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import lipot
from lipot.certify import (
    certified_accuracy,
    certified_radius,
    conv_operator_norm,
    conv_operator_norm_lower,
    lipschitz_bound,
    lipschitz_report,
)


def _dense_norm(f, shape):
    x = torch.zeros(1, *shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: f(z).reshape(-1), x).reshape(-1, x.numel())
    return torch.linalg.matrix_norm(jac, 2).item()


@pytest.mark.parametrize(
    "cin,cout,k,stride,padding,dilation,size,groups",
    [
        (2, 3, 3, 1, 1, 1, 6, 1),
        (2, 4, 3, 2, 1, 1, 7, 1),
        (3, 5, 4, 2, 2, 1, 8, 1),
        (2, 3, 3, 1, 0, 2, 9, 1),
        (4, 4, 3, 2, 1, 1, 5, 2),
        (1, 9, 3, 1, 1, 1, 4, 1),
        (2, 2, 5, 3, 2, 1, 11, 1),
        (2, 3, 3, 1, "same", 1, 6, 1),
        (2, 2, 2, 1, "same", 1, 5, 1),
    ],
)
def test_conv_operator_norm_is_an_upper_bound(cin, cout, k, stride, padding, dilation, size, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=False).double()
    exact = _dense_norm(conv, (cin, size, size))
    upper = conv_operator_norm(conv.weight, (size, size), conv.stride, conv.padding, conv.dilation, groups)
    lower = conv_operator_norm_lower(conv, (cin, size, size), iterations=300)
    assert lower <= exact * (1 + 1e-9)
    assert exact <= upper
    assert upper <= 1.25 * exact  # and useful even on tiny inputs


@pytest.mark.parametrize("shape", [(3, 4, 5, 7), (2, 3, 64, 256), (2, 2, 256, 64), (7, 1, 1, 9), (4, 4, 32, 32)])
def test_largest_singular_value_of_blocks_matches_numpy_svd(shape):
    from lipot.linalg.operator_norms import _largest_singular_value

    rng = np.random.default_rng(0)
    blocks = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    blocks[0] *= 1e-3  # blocks of very different scales, and a rank-one one
    blocks[-1] = np.outer(rng.normal(size=shape[-2]), rng.normal(size=shape[-1]))
    reference = np.linalg.svd(blocks, compute_uv=False)[..., 0].max()
    assert abs(_largest_singular_value(blocks) - reference) <= 1e-12 * reference


def test_conv_operator_norm_1d_and_tight_on_large_inputs():
    torch.manual_seed(1)
    conv = nn.Conv1d(2, 3, 3, stride=2, padding=1, bias=False).double()
    exact = _dense_norm(conv, (2, 9))
    assert exact <= conv_operator_norm(conv.weight, (9,), conv.stride, conv.padding, conv.dilation)
    conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False).double()
    exact = _dense_norm(conv2, (3, 28, 28))
    upper = conv_operator_norm(conv2.weight, (28, 28), 1, 1, 1)
    assert exact <= upper <= 1.005 * exact


@pytest.mark.parametrize("stride,padding,output_padding", [(1, 1, 0), (2, 1, 1), (2, 0, 0)])
def test_conv_transpose_bound(stride, padding, output_padding):
    torch.manual_seed(2)
    convt = nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding, output_padding=output_padding).double()
    exact = _dense_norm(lambda z: convt(z) - convt.bias[None, :, None, None], (3, 5, 5))
    bound = lipschitz_bound(nn.Sequential(convt), (3, 5, 5))
    assert exact <= bound <= 1.25 * exact


def test_sequential_subclass_with_own_forward_is_rejected():
    class Skip(nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)

    with pytest.raises(ValueError, match="own forward"):
        lipschitz_bound(Skip(nn.Linear(3, 3)), (3,))


def _small_models():
    torch.manual_seed(0)
    yield lipot.Sequential(
        lipot.SpectralConv2d(1, 4, 3, padding=1), lipot.GroupSort2(), lipot.ScaledL2NormPool2d(2),
        lipot.SpectralConv2d(4, 4, 3, padding=1, stride=2), lipot.GroupSort2(), nn.Flatten(),
        lipot.SpectralLinear(16, 3),
    ), (1, 8, 8)
    yield nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4).eval(), nn.Flatten(),
        nn.Linear(4 * 36, 6), lipot.LipResidual(lipot.Sequential(lipot.SpectralLinear(6, 6), lipot.GroupSort2())),
    ), (2, 6, 6)
    yield lipot.Sequential(nn.Flatten(), lipot.FrobeniusLinear(12, 6, disjoint_neurons=False), lipot.FullSort(), lipot.SpectralLinear(6, 2)), (12,)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_lipschitz_bound_dominates_local_jacobians(index):
    model, shape = list(_small_models())[index]
    model = model.double()
    model.eval()
    bound = lipschitz_bound(model, shape)
    g = torch.Generator().manual_seed(3)
    worst = 0.0
    for _ in range(10):
        x = torch.randn(1, *shape, generator=g, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda z: model(z).reshape(-1), x).reshape(-1, x.numel())
        worst = max(worst, torch.linalg.matrix_norm(jac, 2).item())
    assert worst <= bound
    if isinstance(model, lipot.Sequential):
        assert bound <= lipot.nominal_lipschitz(model) * (1 + 1e-6)


def test_lipschitz_bound_uses_actual_weights_and_rejects_unknown_modules():
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.diag(torch.tensor([3.0, 0.5, 0.1]))[:, :3].repeat(1, 2)[:, :4])
    expected = torch.linalg.matrix_norm(lin.weight.double(), 2).item()
    assert lipschitz_bound(nn.Sequential(lin), (4,)) == pytest.approx(expected, rel=1e-8)
    assert lipschitz_bound(nn.Sequential(lin), (4,)) >= expected

    class Custom(nn.Module):
        def forward(self, x):
            return 2 * x

    with pytest.raises(ValueError, match="cannot bound Custom"):
        lipschitz_bound(nn.Sequential(lin, Custom()), (4,))
    with pytest.raises(ValueError, match="input_shape"):
        lipschitz_bound(nn.Sequential(lin), ())
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="eval mode"):
        lipot.certify.leaf_bounds._batchnorm_bound(bn)


def test_report_names_layers_and_conv_bound_below_nominal():
    model, shape = next(_small_models())
    bound, report = lipschitz_report(model, shape)
    kinds = [r.kind for r in report]
    assert kinds[0] == "SpectralConv2d" and kinds[-1] == "SpectralLinear"
    assert math.prod(r.bound for r in report) == pytest.approx(bound)
    assert report[0].bound < report[0].nominal  # the count correction is loose; the bound is not


def test_linear_multiclass_radius_equals_exact_distance():
    """A linear classifier's decision region is a polytope: the distance to its boundary is
    min_j (f_y - f_j) / ||w_y - w_j||, computed here with numpy."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    logits = x @ w.T + b
    W, F = w.numpy(), logits.numpy()
    exact = []
    for f in F:
        y = f.argmax()
        exact.append(min((f[y] - f[j]) / np.linalg.norm(W[y] - W[j]) for j in range(4) if j != y))
    exact = torch.tensor(exact)
    per_pair = certified_radius(logits, 1.0, last_layer_weight=w)
    assert torch.allclose(per_pair, exact, rtol=1e-10)
    spectral = torch.linalg.matrix_norm(w, 2).item()
    assert (certified_radius(logits, spectral) <= exact + 1e-12).all()
    assert (certified_radius(logits, spectral, independent_rows=True) <= exact + 1e-12).all()
    # binary: |w.x + b| / ||w||
    wb = w[:1]
    fb = x @ wb.T + b[0]
    assert torch.allclose(certified_radius(fb, wb.norm().item()), (fb.abs() / wb.norm()).ravel())


def _grid_distance(model, points, grid, step):
    """For each point, the distance to the nearest grid node with a different predicted class."""
    with torch.no_grad():
        pred_grid = model(grid)
        pred_pts = model(points)
    cls = (lambda o: (o.reshape(-1) > 0).long()) if pred_grid.shape[1] == 1 else (lambda o: o.argmax(1))
    cg, cp = cls(pred_grid), cls(pred_pts)
    d = torch.cdist(points, grid)
    d = torch.where(cg[None, :] != cp[:, None], d, torch.full_like(d, math.inf))
    return d.min(1).values + step  # a grid node within step/sqrt(2) of every boundary point


@pytest.mark.parametrize("classes", [1, 3])
def test_certified_radius_below_distance_found_by_dense_search(classes):
    torch.manual_seed(classes)
    model = lipot.Sequential(
        lipot.SpectralLinear(2, 16), lipot.GroupSort2(), lipot.SpectralLinear(16, 16), lipot.GroupSort2(),
        lipot.SpectralLinear(16, classes),
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x = torch.randn(256, 2) * 1.5
    y = (x.norm(dim=1) > 1.4).float() * 2 - 1 if classes == 1 else (torch.atan2(x[:, 1], x[:, 0]) > 0).long() + (x.norm(dim=1) > 2).long()
    loss_fn = lipot.losses.HKRLoss(0.9, 0.5) if classes == 1 else lipot.losses.HKRMulticlassLoss(0.9, 0.5)
    for _ in range(150):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    model.eval()
    step = 0.01
    axis = torch.arange(-4, 4 + step, step)
    grid = torch.cartesian_prod(axis, axis)
    points = torch.rand(100, 2) * 4 - 2
    exact_upper = _grid_distance(model, points, grid, step)
    with torch.no_grad():
        logits = model(points)
    bound = lipschitz_bound(model, (2,))
    radius = certified_radius(logits, bound)
    assert (radius <= exact_upper).all()
    assert radius.max() > 0.05  # not vacuous
    if classes > 1:
        body_bound = lipschitz_bound(lipot.Sequential(*list(model.children())[:-1]), (2,))
        pair = certified_radius(logits, body_bound, last_layer_weight=model[-1].weight)
        assert (pair <= exact_upper).all()
        assert (pair >= radius - 1e-6).all()


def test_certified_accuracy_counts_correct_and_certified():
    torch.manual_seed(0)
    model = lipot.Sequential(lipot.SpectralLinear(3, 4), lipot.GroupSort2(), lipot.SpectralLinear(4, 3))
    x = torch.randn(64, 3)
    y = torch.randint(0, 3, (64,))
    res = certified_accuracy(model, (x, y), [0.0, 0.05, 10.0])
    with torch.no_grad():
        logits = model(x)
    correct = logits.argmax(1) == y
    body = lipschitz_bound(lipot.Sequential(*list(model.children())[:-1]), (3,))
    radius = certified_radius(logits, body, last_layer_weight=model[-1].weight)
    assert res.accuracy == pytest.approx(correct.float().mean().item())
    assert res.certified[0.05] == pytest.approx((correct & (radius > 0.05)).float().mean().item())
    assert res.certified[10.0] == 0.0
    assert res.method.startswith("per-pair")
    with pytest.raises(ValueError, match="eps"):
        certified_accuracy(model, (x, y), [-1.0])
    with pytest.raises(ValueError, match="labels"):
        certified_accuracy(model, (x, y[:, None]), [0.1])  # (N, 1) indices: ambiguous
    with pytest.raises(ValueError, match="NaN"):
        certified_accuracy(model, (x * float("nan"), y), [0.1])
    with pytest.raises(ValueError, match="lipschitz"):
        certified_radius(logits, 0.0)
