"""Certified-margin losses (lipot.losses.margin) against independent numpy computations of their
formulas, their per-pair radius against lipot.certify, and the schedules that drive them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lipot
from lipot import losses
from lipot.training.schedules import RadiusRamp, lr_decay


def _case(seed: int = 0, n: int = 16, c: int = 5, d: int = 7):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=gen, dtype=torch.float64) * 2
    w = torch.randn(c, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=gen)
    return z, w, y


def _np_k(w: np.ndarray, lip: float) -> np.ndarray:
    c = w.shape[0]
    return np.array([[lip * np.sqrt(((w[i] - w[j]) ** 2).sum()) for j in range(c)] for i in range(c)])


def _lse(a: np.ndarray) -> float:
    m = a.max()
    return float(m + np.log(np.exp(a - m).sum()))


def _ce(logits: np.ndarray, y: int) -> float:
    return _lse(logits) - float(logits[y])


def test_pairwise_lipschitz_matches_numpy_and_has_finite_gradient():
    _, w, _ = _case()
    w = w.clone().requires_grad_()
    k = losses.pairwise_lipschitz(w, 1.7)
    np.testing.assert_allclose(k.detach().numpy(), _np_k(w.detach().numpy(), 1.7), rtol=1e-12)
    k.sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


@pytest.mark.parametrize("lip", [1.0, 0.8])
def test_pairwise_radius_equals_certified_radius(lip):
    z, w, _ = _case(1)
    k = losses.pairwise_lipschitz(w, lip)
    ours = losses.pairwise_radius(z, k)
    theirs = lipot.certify.certified_radius(z, lip, last_layer_weight=w)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    # without a last layer: the sqrt(2) L form of a Lipschitz logit map
    torch.testing.assert_close(losses.pairwise_radius(z), lipot.certify.certified_radius(z, 1.0))


def test_offset_cross_entropy_matches_numpy():
    z, _, y = _case(2)
    u, t = 1.3, 0.4
    ours = losses.offset_cross_entropy_loss(z, y, u, t, reduction="none")
    zn, yn = z.numpy(), y.numpy()
    ref = [t * _ce((zn[i] - u * np.eye(zn.shape[1])[yn[i]]) / t, yn[i]) for i in range(len(yn))]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)


def test_margin_cross_entropy_matches_numpy():
    z, w, y = _case(3)
    eps, t, lip = 0.7, 0.5, 1.2
    ours = losses.margin_cross_entropy_loss(z, y, eps, losses.pairwise_lipschitz(w, lip), t, reduction="none")
    zn, yn, k = z.numpy(), y.numpy(), _np_k(w.numpy(), lip)
    ref = [t * _ce((zn[i] + eps * k[yn[i]]) / t, yn[i]) for i in range(len(yn))]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)


def test_gloro_trades_matches_numpy_kl():
    z, w, y = _case(4)
    eps, lam = 0.6, 1.5
    ours = losses.gloro_trades_loss(z, y, eps, losses.pairwise_lipschitz(w), lam, reduction="none")
    zn, yn, k = z.numpy(), y.numpy(), _np_k(w.numpy(), 1.0)
    ref = []
    for i in range(len(yn)):
        j = int(zn[i].argmax())
        bot = max(zn[i, m] + eps * k[j, m] for m in range(zn.shape[1]) if m != j)
        p = np.exp(zn[i] - _lse(zn[i]))
        q_all = np.append(zn[i], bot)
        q = np.exp(q_all - _lse(q_all))[:-1]
        kl = float((p * np.log(p / q)).sum())
        ref.append(_ce(zn[i], yn[i]) + lam * kl)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9)


def _np_emma(zn, yn, k, eps, rho):
    out = []
    for i in range(len(yn)):
        zi, yi = zn[i].copy(), yn[i]
        for j in range(len(zi)):
            if j != yi:
                frac = np.clip((zn[i, yi] - zn[i, j]) / (eps * k[yi, j]), rho, 1.0)
                zi[j] = zn[i, j] + frac * eps * k[yi, j]
        out.append(zi)
    return np.array(out)


def test_emma_matches_numpy_and_detaches_the_radius():
    z, w, y = _case(5)
    eps, rho = 0.9, 0.05
    k = losses.pairwise_lipschitz(w)
    ours = losses.emma_loss(z, y, eps, k, rho, reduction="none")
    worst = _np_emma(z.numpy(), y.numpy(), k.numpy(), eps, rho)
    np.testing.assert_allclose(ours.numpy(), [_ce(worst[i], y[i].item()) for i in range(len(y))], rtol=1e-10)
    # the adaptive radius carries no gradient: d loss / d z is the CE gradient at the worst logits
    zg = z.clone().requires_grad_()
    losses.emma_loss(zg, y, eps, k, rho, reduction="sum").backward()
    p = np.exp(worst - np.log(np.exp(worst).sum(1, keepdims=True)))
    np.testing.assert_allclose(zg.grad.numpy(), p - np.eye(z.shape[1])[y.numpy()], rtol=1e-9, atol=1e-12)


def test_logit_annealing_matches_numpy():
    z, w, y = _case(6)
    eps, u, t, gamma = 0.5, 2.0, 0.75, 5.0
    k = losses.pairwise_lipschitz(w)
    ours = losses.logit_annealing_loss(z, y, eps, k, u, t, gamma, reduction="none")
    worst = _np_emma(z.numpy(), y.numpy(), k.numpy(), eps, 0.01)
    ref = []
    for i in range(len(y)):
        yi = y[i].item()
        ce = _ce((worst[i] - u * np.eye(z.shape[1])[yi]) / t, yi)
        ref.append(t * (1 - np.exp(-ce)) ** gamma * ce)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9)


def test_modules_read_the_head_weight_and_match_the_functions():
    head = lipot.FrobeniusLinear(7, 5, disjoint_neurons=True).double()
    z, _, y = _case(7)
    k = losses.pairwise_lipschitz(head.weight, 0.9)
    pairs = [
        (losses.MarginCrossEntropyLoss(0.4, head, 0.9), losses.margin_cross_entropy_loss(z, y, 0.4, k)),
        (losses.GloroTradesLoss(0.4, head, 0.9), losses.gloro_trades_loss(z, y, 0.4, k)),
        (losses.EMMALoss(0.4, head, 0.9), losses.emma_loss(z, y, 0.4, k)),
        (losses.LogitAnnealingLoss(0.4, head, 0.9), losses.logit_annealing_loss(z, y, 0.4, k)),
    ]
    for module, value in pairs:
        torch.testing.assert_close(module(z, y), value)
        assert "head" not in dict(module.named_modules())  # the head's weights belong to the model
    loss = losses.EMMALoss(0.4, head)
    loss(z, y).backward()
    assert head.parametrizations.weight.original.grad.abs().sum() > 0  # K is differentiable


def test_one_hot_targets_and_bad_labels():
    z, w, y = _case(8)
    k = losses.pairwise_lipschitz(w)
    one_hot = torch.nn.functional.one_hot(y, z.shape[1])
    torch.testing.assert_close(losses.emma_loss(z, one_hot, 0.3, k), losses.emma_loss(z, y, 0.3, k))
    with pytest.raises(ValueError, match="class indices"):
        losses.gloro_trades_loss(z, torch.full_like(y, 9), 0.3, k)
    with pytest.raises(ValueError, match="eps"):
        losses.EMMALoss(-1.0)
    with pytest.raises(ValueError, match="pair_lipschitz"):
        losses.emma_loss(z, y, 0.3, k[:2])
    with pytest.raises(TypeError, match="head"):
        losses.GloroTradesLoss(0.3, head=torch.nn.ReLU())
    # the modules refuse at construction what the functions refuse at call
    for make, name in [(lambda: losses.GloroTradesLoss(0.3, lam=-1), "lam"),
                       (lambda: losses.EMMALoss(0.3, min_fraction=2.0), "min_fraction"),
                       (lambda: losses.LogitAnnealingLoss(0.3, gamma=float("nan")), "gamma"),
                       (lambda: losses.OffsetCrossEntropyLoss(offset=-1), "offset")]:
        with pytest.raises(ValueError, match=name):
            make()
    with pytest.raises(ValueError, match="lam"):
        losses.gloro_trades_loss(z, y, 0.3, k, lam=-1)


def _blobs(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 2.0], [1.8, -1.0], [-1.8, -1.0]])
    y = torch.randint(0, 3, (n,), generator=gen)
    return centers[y] + 0.7 * torch.randn(n, 2, generator=gen), y


def _train_toy(loss_fn_for, eps: float, steps: int = 200) -> float:
    torch.manual_seed(0)
    model = lipot.models.dense_classifier(2, (32, 32), 3)
    loss_fn = loss_fn_for(model)
    x, y = _blobs(512, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    xt, yt = _blobs(1000, 1)
    return lipot.certified_accuracy(model, (xt, yt), [eps]).certified[eps]


def test_margin_losses_raise_certified_accuracy_on_a_toy_problem():
    """3 overlapping Gaussian blobs in 2-D, eps = 0.8: trained the same way, every margin loss
    certifies most test points, far more than a margin-blind cross-entropy (temperature
    1/20: it stops pushing once a point is classified) and than the untrained network."""
    eps = 0.8
    blind = _train_toy(lambda m: losses.TauCrossEntropyLoss(20.0), eps)
    untrained = _train_toy(lambda m: (lambda z, y: 0.0 * z.sum()), eps, steps=1)
    assert blind < 0.5 and untrained < 0.1
    for make in (lambda m: losses.EMMALoss(eps, m[-1]), lambda m: losses.GloroTradesLoss(eps, m[-1]),
                 lambda m: losses.MarginCrossEntropyLoss(eps, m[-1]),
                 lambda m: losses.LogitAnnealingLoss(eps, m[-1])):
        certified = _train_toy(make, eps)
        assert certified > 0.8 and certified > blind + 0.3, (certified, blind)


def test_radius_ramp_and_lr_decay():
    ramp = RadiusRamp(1.58, 1.1, 10)
    assert ramp(0) == 0 and ramp(5) == pytest.approx(0.869) and ramp(10) == ramp(40) == pytest.approx(1.738)
    assert RadiusRamp(1.0, 1.0, 0)(0) == 1.0
    with pytest.raises(ValueError, match="overshoot"):
        RadiusRamp(1.0, -1.0)
    for kind in ("cosine", "exponential"):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-2)
        sched = lr_decay(opt, 7, kind, 1e-6)
        for _ in range(7):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-6, rel=1e-6)
    with pytest.raises(ValueError, match="kind"):
        lr_decay(opt, 3, "linear")


def test_fit_drives_the_loss_radius_and_records_it():
    torch.manual_seed(0)
    model = lipot.models.dense_classifier(2, (8,), 3)
    x, y = _blobs(256, 2)
    loss = losses.EMMALoss(0.0, model[-1])
    history = lipot.training.fit(model, loss, lipot.training.make_loader(x, y, 64), 3, progress=False, log=None,
                                 radius_ramp=RadiusRamp(0.5, 1.0, 2))
    steps = 4  # 256 / 64 batches per epoch, the radius is set before each
    assert [h["train_eps"] for h in history] == pytest.approx([0.5 * (0 + 3 / steps) / 2, 0.5 * (1 + 3 / steps) / 2, 0.5])
    with pytest.raises(ValueError, match="radius_ramp"):
        lipot.training.fit(model, torch.nn.CrossEntropyLoss(), lipot.training.make_loader(x, y, 64), 1,
                           progress=False, log=None, radius_ramp=RadiusRamp(0.5))


def test_4c3f_is_certified_per_pair_with_a_unit_body_bound():
    model = lipot.models.cnn_4c3f()
    assert isinstance(model[-1], lipot.FrobeniusLinear)
    x = torch.rand(8, 1, 28, 28)
    result = lipot.certified_accuracy(model, (x, torch.zeros(8, dtype=torch.long)), [0.1])
    assert result.method.startswith("per-pair")
    assert 0.99 < result.lipschitz <= 1.0 + 1e-4
    assert not math.isnan(float(result.radii.sum()))
