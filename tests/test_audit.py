"""lipot.audit: lower bounds against independent Jacobian norms and SVDs, attack strength on
linear classifiers (exact distances), zero violations on trained GNP models, planted errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lipot
from lipot.audit import attack_radius, audit_certificates, lipschitz_lower_bound


def _linear_distance(layer: nn.Linear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and exact l2 distance to the decision boundary of a linear classifier
    (numpy float64): min over j of (z_y - z_j) / ||w_y - w_j||."""
    W, b = layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()
    z = x.double().numpy() @ W.T + b
    y = z.argmax(1)
    d = np.full(len(x), np.inf)
    for j in range(W.shape[0]):
        gap = z[np.arange(len(x)), y] - z[:, j]
        norm = np.linalg.norm(W[y] - W[j], axis=1)
        d = np.where(y == j, d, np.minimum(d, gap / np.where(norm > 0, norm, np.inf)))
    return torch.as_tensor(y), torch.as_tensor(d)


def test_lower_bound_of_a_linear_map_is_its_spectral_norm():
    torch.manual_seed(0)
    layer = nn.Linear(12, 7)
    x = torch.randn(32, 12)
    lb = lipschitz_lower_bound(layer, x)
    exact = np.linalg.norm(layer.weight.detach().double().numpy(), 2)
    assert exact * (1 - 1e-3) <= lb.value <= exact * (1 + 1e-4)
    a, b = lb.pair  # the reported value is a ratio over a real pair of inputs
    with torch.no_grad():
        ratio = (layer(a[None]) - layer(b[None])).norm() / (a - b).norm()
    assert float(ratio) == pytest.approx(lb.value, rel=1e-4)


def test_lower_bound_reaches_the_local_jacobian_norms_and_stays_below_the_verified_bound():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(40, 10)
    jac = torch.func.vmap(torch.func.jacrev(net))(x).detach().double().numpy()
    local = max(np.linalg.norm(j, 2) for j in jac)  # numpy SVD of each dense Jacobian
    lb = lipschitz_lower_bound(net, x)
    assert lb.power_iteration >= 0.99 * local
    assert lb.value <= lipot.lipschitz_bound(net, (10,)) * (1 + 1e-6)


def test_lower_bound_is_not_inflated_by_float32_rounding():
    """A float32 ratio over a close pair of inputs with large outputs can exceed the true
    constant by its rounding error; the reported value must not. The reference is independent:
    the product of the float64 spectral norms (numpy SVD) of the weights, an upper bound of the
    GroupSort network's constant, and of an orthogonal map's exactly."""
    torch.manual_seed(0)
    layers = [nn.Linear(64, 64, bias=False) for _ in range(4)]
    for layer in layers:
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(64, 64, dtype=torch.float64))
            layer.weight.copy_(q.float())
    net = nn.Sequential(*layers)
    x = 50 * torch.randn(16, 64)  # outputs of norm ~400 compared at distance 2h
    lb = lipschitz_lower_bound(net, x, h=1e-3, ascent_steps=20)
    upper = np.prod([np.linalg.norm(layer.weight.detach().double().numpy(), 2) for layer in layers])
    assert lb.value <= upper * (1 + 1e-9)
    assert lb.value >= upper * (1 - 1e-6)  # an orthogonal map: every pair attains it
    assert max(lb.power_iteration, lb.pairwise) == lb.value


@pytest.mark.parametrize("classes", [1, 2, 5])
def test_attack_radius_is_within_one_percent_of_the_exact_distance_on_linear_models(classes):
    torch.manual_seed(classes)
    x = torch.randn(120, 16)
    if classes == 1:  # one logit, class = sign
        layer = nn.Linear(16, 1)
        z = layer(x).detach().reshape(-1).double()
        y, exact = torch.where(z > 0, 1, -1), z.abs() / layer.weight.detach().double().norm()
    else:
        layer = nn.Linear(16, classes)
        y, exact = _linear_distance(layer, x)
    res = attack_radius(layer, x, y)
    assert bool(res.success.all())
    ratio = res.radii.double() / exact
    assert float(ratio.max()) <= 1.01
    # never below the exact distance, up to float32 resolution of the returned points' distances
    # (absolute ~1e-7 for unit-scale inputs: a point 4e-4 from the boundary may come out 1.5e-7 closer)
    assert bool((res.radii.double() >= exact * (1 - 1e-4) - 1e-6).all())
    with torch.no_grad():  # every returned point is misclassified, at the returned distance
        out = layer(res.points)
        pred = torch.where(out.reshape(-1) > 0, 1, -1) if classes == 1 else out.argmax(1)
    assert bool((pred != y).all())
    assert torch.allclose((res.points - x).norm(dim=1), res.radii, rtol=1e-5)


@pytest.fixture(scope="module")
def trained_classifier():
    torch.manual_seed(0)
    centers = 2.0 * torch.randn(3, 10)
    y = torch.arange(600) % 3
    x = centers[y] + 0.7 * torch.randn(600, 10)
    model = lipot.models.dense_classifier(10, (32, 32), 3)
    lipot.training.fit(model, lipot.losses.HKRMulticlassLoss(0.9, 1.0), lipot.training.make_loader(x, y, 64),
                       epochs=8, lr=3e-3, progress=False, log=None)
    return model.eval(), x[:150], y[:150]


def test_trained_gnp_classifier_has_no_violation(trained_classifier):
    model, x, y = trained_classifier
    report = audit_certificates(model, x, y, attack={"steps": 40})
    assert report.n_correct > 100
    assert report.violations == 0 and report.verdict == "ok"
    assert 1.0 <= report.min_ratio <= report.median_ratio
    assert 0.5 < report.lower_bound <= report.upper_bound == pytest.approx(report.verified_bound)
    assert "violations (attack radius < certificate): 0" in str(report)


@pytest.fixture(scope="module")
def trained_binary():
    torch.manual_seed(2)
    y = torch.where(torch.arange(400) % 2 == 0, 1, -1)
    x = torch.randn(400, 6) + 1.5 * y[:, None].float()
    model = lipot.models.dense_classifier(6, (16, 16), 1)
    lipot.training.fit(model, lipot.losses.HKRLoss(0.9, 1.0), lipot.training.make_loader(x, y.float()[:, None], 50),
                       epochs=5, lr=3e-3, progress=False, log=None)
    return model.eval(), x[:100], y[:100]


def test_trained_binary_model_has_no_violation(trained_binary):
    model, x, y = trained_binary
    report = audit_certificates(model, x, y, attack={"steps": 40})
    assert report.violations == 0 and report.verdict == "ok" and report.min_ratio >= 1.0


def _scaled_last_layer(model: nn.Module, how: str) -> nn.Module:
    """``model`` with its output scaled by 1.1: an appended 1.1 * identity layer, or its last
    layer replaced by a plain ``nn.Linear`` with 1.1 x the constrained weight and bias."""
    if how == "appended":
        k = model[-1].weight.shape[0]
        scaled = nn.Sequential(*model, nn.Linear(k, k, bias=False))
        with torch.no_grad():
            scaled[-1].weight.copy_(1.1 * torch.eye(k))
        return scaled
    last = model[-1]  # the SpectralLinear output layer, replaced by a plain Linear at 1.1 x
    plain = nn.Linear(last.in_features, last.out_features)
    with torch.no_grad():
        plain.weight.copy_(1.1 * last.weight)
        plain.bias.copy_(1.1 * last.bias)
    return nn.Sequential(*model[:-1], plain)


@pytest.mark.parametrize("how", ["appended", "replaced"])
@pytest.mark.parametrize("model_kind", ["3-class", "binary"])
def test_last_layer_scaled_by_1_1_is_flagged_by_the_norm_audit(trained_classifier, trained_binary, how, model_kind):
    """Every planted x1.1 (two models, two ways of planting it) fails the audit when the
    certificates assume L = 1, even with attacks too weak to find a violation."""
    model, x, y = trained_classifier if model_kind == "3-class" else trained_binary
    scaled = _scaled_last_layer(model, how)
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), 1.1 * model(x), rtol=1e-5, atol=1e-5)
    report = audit_certificates(scaled, x, y, lipschitz=1.0, attack={"steps": 5, "attacks": ["deepfool"]})
    assert report.verdict.startswith("FAILED") and "norm audit" in report.verdict
    assert report.verified_bound == pytest.approx(1.1 * lipot.lipschitz_bound(model, tuple(x.shape[1:])), rel=1e-4)


def test_unconstrained_network_with_a_false_bound_has_violations():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.mul_(4.0)
    x = torch.randn(60, 8)
    y = net(x).argmax(1)
    report = audit_certificates(net, x, y, lipschitz=1.0, attack={"steps": 30})
    assert report.violations > 0 and report.lower_bound > 1.0
    assert "violated" in report.verdict


def test_bad_inputs():
    layer = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    with pytest.raises(ValueError, match="X contains NaN"):
        attack_radius(layer, torch.full((5, 4), float("nan")), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="class indices"):
        attack_radius(layer, x, torch.full((5,), 7))
    with pytest.raises(ValueError, match="attacks must be"):
        attack_radius(layer, x, torch.zeros(5, dtype=torch.long), attacks=["pgd"])
    with pytest.raises(ValueError, match="y: 4 labels"):
        audit_certificates(layer, x, torch.zeros(4, dtype=torch.long), lipschitz=1.0)


def test_binary_labels_must_be_signs_or_bits():
    layer = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="binary labels"):
        attack_radius(layer, torch.randn(3, 4), torch.tensor([2, 1, -1]))
