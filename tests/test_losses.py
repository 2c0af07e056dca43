"""Losses against independent per-sample formulas (plain numpy loops), sign conventions, label
checks, reductions, and SoftHKR's saved state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lipot import functional as LF
from lipot import losses as L


def _binary(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(n, 1, generator=g) > 0.4, 1.0, -1.0).double()
    return x, y


def _multi(n=50, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


def _np_kr(f, pos):
    return f[pos].mean() - f[~pos].mean()


def test_binary_kr_hinge_hkr_match_formulas():
    x, y = _binary()
    f, pos = x.numpy().ravel(), y.numpy().ravel() > 0
    kr = _np_kr(f, pos)
    hinge = np.mean([max(0.0, 0.5 * 1.5 - (1 if p else -1) * v) for v, p in zip(f, pos)])
    assert LF.kr_loss(x, y).item() == pytest.approx(kr, rel=1e-12)
    assert LF.neg_kr_loss(x, y).item() == pytest.approx(-kr, rel=1e-12)
    assert LF.hinge_margin_loss(x, y, 1.5).item() == pytest.approx(hinge, rel=1e-12)
    assert LF.hkr_loss(x, y, 0.7, 1.5).item() == pytest.approx(0.7 * hinge - 0.3 * kr, rel=1e-12)
    # {0, 1} labels are the same as {-1, +1}; (N,) shapes too
    y01 = (y > 0).double()
    assert LF.hkr_loss(x.ravel(), y01.ravel(), 0.7, 1.5).item() == pytest.approx(0.7 * hinge - 0.3 * kr)


def test_reductions():
    x, y = _binary()
    per = LF.hkr_loss(x, y, 0.5, reduction="none")
    assert per.shape == (40,)
    assert per.mean().item() == pytest.approx(LF.hkr_loss(x, y, 0.5).item())
    assert per.sum().item() == pytest.approx(LF.hkr_loss(x, y, 0.5, reduction="sum").item())
    assert LF.kr_loss(x, y, reduction="none").mean().item() == pytest.approx(LF.kr_loss(x, y).item())
    with pytest.raises(ValueError, match="reduction"):
        LF.kr_loss(x, y, reduction="avg")


def test_multiclass_formulas():
    x, y = _multi()
    f, c = x.numpy(), x.shape[1]
    onehot = np.eye(c)[y.numpy()] > 0
    kr = np.mean([_np_kr(f[:, k], onehot[:, k]) for k in range(c)])
    m = 1.2
    hinge = []
    for i in range(f.shape[0]):
        t = y[i].item()
        terms = [(c - 1) * max(0, m / 2 - f[i, t])] + [max(0, m / 2 + f[i, j]) for j in range(c) if j != t]
        hinge.append(sum(terms) / c)
    hinge = np.mean(hinge)
    assert LF.kr_multiclass_loss(x, y).item() == pytest.approx(kr, rel=1e-12)
    assert LF.hinge_multiclass_loss(x, y, m).item() == pytest.approx(hinge, rel=1e-12)
    assert LF.hkr_multiclass_loss(x, y, 0.8, m).item() == pytest.approx(0.8 * hinge - 0.2 * kr, rel=1e-12)
    # one-hot targets, {0,1} and {-1,+1}, give the same values as indices
    oh = torch.nn.functional.one_hot(y, c).double()
    assert LF.hkr_multiclass_loss(x, oh, 0.8, m).item() == pytest.approx(0.8 * hinge - 0.2 * kr)
    assert LF.hkr_multiclass_loss(x, 2 * oh - 1, 0.8, m).item() == pytest.approx(0.8 * hinge - 0.2 * kr)


def test_lse_soft_categorical_tau_formulas():
    x, y = _multi(c=4)
    f, c = x.numpy(), 4
    alpha, m, T, p = 0.6, 1.0, 2.0, 1.5
    t = math.log(c - 1) / (p * m / 2)
    lse, soft, cat = [], [], []
    for i in range(f.shape[0]):
        k = y[i].item()
        z = T * f[i]
        others = [j for j in range(c) if j != k]
        s = math.log(sum(math.exp(t * z[j]) for j in others)) / t
        lse.append((1 - alpha) * (s - z[k]) + alpha * (max(0, m / 2 - z[k]) + max(0, m / 2 + s)))
        w = np.exp(0.5 * f[i, others]) / np.exp(0.5 * f[i, others]).sum()
        per = [(1 - alpha) * (-f[i, k]) + alpha * max(0, m / 2 - f[i, k])]
        per += [wj * ((1 - alpha) * f[i, j] + alpha * max(0, m / 2 + f[i, j])) for wj, j in zip(w, others)]
        soft.append(sum(per))
        cat.append(max(0, 2.0 - (f[i, k] - max(f[i, j] for j in others))))
    assert LF.lse_hkr_multiclass_loss(x, y, alpha, m, T, p).item() == pytest.approx(np.mean(lse), rel=1e-10)
    assert LF.soft_hkr_multiclass_loss(x, y, alpha, m, 0.5).item() == pytest.approx(np.mean(soft), rel=1e-10)
    assert LF.categorical_hinge_loss(x, y, 2.0).item() == pytest.approx(np.mean(cat), rel=1e-12)
    ce = np.mean([-(3 * f[i, y[i]] - math.log(np.exp(3 * f[i]).sum())) for i in range(f.shape[0])]) / 3
    assert L.TauCrossEntropyLoss(3.0)(x, y).item() == pytest.approx(ce, rel=1e-10)
    xb, yb = _binary()
    fb, pb = xb.numpy().ravel(), yb.numpy().ravel() > 0
    bce = np.mean([math.log1p(math.exp(-2 * v)) if p_ else math.log1p(math.exp(2 * v)) for v, p_ in zip(fb, pb)]) / 2
    assert L.TauBCEWithLogitsLoss(2.0)(xb, yb).item() == pytest.approx(bce, rel=1e-10)


def _train_and_track(loss_fn, x, y, kr_fn, steps=300):
    """Minimize loss_fn over a free logit table (any function of the inputs): KR must go up."""
    f = torch.nn.Parameter(0.01 * torch.randn_like(x))
    opt = torch.optim.SGD([f], lr=0.5)
    before = kr_fn(f.detach(), y).item()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(f, y).backward()
        opt.step()
    return before, kr_fn(f.detach(), y).item()


@pytest.mark.parametrize(
    "make",
    [
        lambda: L.HKRMulticlassLoss(0.9),
        lambda: L.HKRMulticlassLoss(0.0),
        lambda: L.SoftHKRMulticlassLoss(0.9),
        lambda: L.LseHKRMulticlassLoss(0.9),
    ],
)
def test_minimizing_multiclass_hkr_increases_kr(make):
    x, y = _multi(n=64, c=4)
    before, after = _train_and_track(make(), x.float(), y, LF.kr_multiclass_loss)
    assert after > before + 0.1


@pytest.mark.parametrize("make", [lambda: L.HKRLoss(0.9), lambda: L.HKRLoss(0.0), lambda: L.NegKRLoss()])
def test_minimizing_binary_hkr_increases_kr(make):
    x, y = _binary(n=64)
    before, after = _train_and_track(make(), x.float(), y.float(), LF.kr_loss)
    assert after > before + 0.1


def test_kr_loss_module_warns_when_minimized():
    x, y = _binary()
    f = x.clone().requires_grad_(True)
    with pytest.warns(UserWarning, match="MAXIMIZE"):
        L.KRLoss()(f, y)
    with torch.no_grad():  # as a metric: no warning
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            L.KRLoss()(x, y)


def test_label_and_argument_errors():
    x, y = _binary()
    with pytest.raises(ValueError, match=r"\{-1, \+1\}"):
        LF.hkr_loss(x, y * 2, 0.5)
    with pytest.raises(ValueError, match="shape"):
        LF.hkr_loss(x, y[:10], 0.5)
    with pytest.raises(ValueError, match="alpha=0.909091"):
        L.HKRLoss(alpha=10)
    with pytest.raises(ValueError, match="both classes"):
        LF.kr_loss(x, torch.ones_like(y))
    with pytest.raises(ValueError, match="NaN"):
        LF.hkr_loss(x * float("nan"), y, 0.5)
    xm, ym = _multi()
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        LF.hkr_multiclass_loss(xm, ym + 5, 0.5)
    with pytest.raises(ValueError, match="one-hot"):
        LF.hkr_multiclass_loss(xm, torch.zeros(50, 3), 0.5)
    with pytest.raises(ValueError, match="3 classes"):
        LF.lse_hkr_multiclass_loss(xm[:, :2], ym % 2)
    with pytest.raises(ValueError, match="exactly one positive"):
        LF.categorical_hinge_loss(xm, torch.ones(50, 5))
    with pytest.raises(ValueError, match="non-empty"):
        LF.kr_loss(torch.zeros(0, 1), torch.zeros(0, 1))


def test_soft_hkr_state_is_saved_and_restored():
    x, y = _multi(c=4)
    loss = L.SoftHKRMulticlassLoss(0.9, alpha_mean=0.5)
    for _ in range(3):
        loss(3 * x.float(), y)
    assert "current_mean" in loss.state_dict()
    assert loss.current_mean.item() != pytest.approx(1.0)
    other = L.SoftHKRMulticlassLoss(0.9, alpha_mean=0.5)
    other.load_state_dict(loss.state_dict())
    other.eval()
    loss.eval()  # eval mode: no update, same value
    assert other(x.float(), y).item() == pytest.approx(loss(x.float(), y).item())
    assert other.current_mean.item() == loss.current_mean.item()
