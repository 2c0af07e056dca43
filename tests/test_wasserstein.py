"""estimate_w1 / W1Estimator: analytic values, soundness against exact OT on the same samples,
a verified 1-Lipschitz critic, weights and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lipot
from lipot.ot import exact_w1
from lipot.wasserstein import W1Estimator


@pytest.fixture(scope="module")
def gaussian_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 2))
    y = rng.normal(size=(1500, 2)) + np.array([2.0, 0.0])  # W1 = ||m|| = 2
    est = W1Estimator(epochs=25, folds=3, seed=0).fit(x, y)
    return x, y, est


def test_gaussian_shift_value_and_interval(gaussian_shift):
    x, y, est = gaussian_shift
    res = est.result_
    assert abs(res.value - 2.0) < 0.15
    assert res.ci[0] < res.value < res.ci[1] and 0 < res.stderr < 0.2
    assert res.n_heldout == (1500, 1500)  # cross-fitting: every sample held out once
    single = W1Estimator(epochs=25, folds=1, seed=0).fit(x, y).result_
    assert single.n_heldout == (450, 450) and abs(single.value - 2.0) < 0.2


def test_kr_value_never_exceeds_exact_ot_on_the_same_sample(gaussian_shift):
    x, y, est = gaussian_shift
    rng = np.random.default_rng(5)
    for n in (50, 300):
        xs, ys = x[rng.choice(1500, n, replace=False)], y[rng.choice(1500, n, replace=False)]
        assert est.evaluate(xs, ys).value <= exact_w1(xs, ys) + 1e-5


def test_critic_is_verified_one_lipschitz(gaussian_shift):
    critic = gaussian_shift[2].critic_  # the mean of the fold critics
    assert len(critic.critics) == 3
    for member in critic.critics:
        assert lipot.lipschitz_bound(member.critic, (2,)) <= 1 + 1e-5


def test_weighted_evaluation_matches_numpy(gaussian_shift):
    x, y, est = gaussian_shift
    wx, wy = np.linspace(0, 1, 1500), np.ones(1500)
    with torch.no_grad():
        fx = est.critic_(torch.tensor(x, dtype=torch.float32)).double().numpy()
        fy = est.critic_(torch.tensor(y, dtype=torch.float32)).double().numpy()
    expected = (fx * wx).sum() / wx.sum() - fy.mean()
    assert est.evaluate(x, y, wx, wy).value == pytest.approx(expected, rel=1e-5)


def test_images_get_a_conv_critic():
    rng = np.random.default_rng(1)
    x = rng.random((300, 1, 8, 8)).astype(np.float32)
    y = x + 0.5
    res = lipot.estimate_w1(x, y, epochs=5, folds=1, seed=0)
    assert isinstance(res.critic.critic[0], lipot.SpectralConv2d)
    assert 0 < res.value <= exact_w1(x.reshape(300, -1), y.reshape(300, -1)) + 1e-5


def test_bad_inputs():
    x = np.zeros((20, 3))
    with pytest.raises(ValueError, match="X contains NaN"):
        lipot.estimate_w1(np.full((20, 3), np.nan), x)
    with pytest.raises(ValueError, match="Y must hold at least 2"):
        lipot.estimate_w1(x, x[:1])
    with pytest.raises(ValueError, match="same number of features"):
        lipot.estimate_w1(x, np.zeros((20, 2)))
    with pytest.raises(ValueError, match="weights_x must be finite and >= 0"):
        lipot.estimate_w1(x, x, weights_x=-np.ones(20))
    with pytest.raises(ValueError, match="val_fraction"):
        W1Estimator(val_fraction=1.5)
    with pytest.raises(RuntimeError, match="fit"):
        W1Estimator().evaluate(x, x)


def test_cli_estimate(tmp_path, capsys):
    from lipot import cli

    rng = np.random.default_rng(3)
    np.save(tmp_path / "a.npy", rng.normal(size=(200, 2)))
    np.savetxt(tmp_path / "b.csv", rng.normal(size=(200, 2)) + 1.0, delimiter=",")
    assert cli.main(["estimate", str(tmp_path / "a.npy"), str(tmp_path / "b.csv"), "--epochs", "3", "--exact"]) == 0
    out = capsys.readouterr().out
    assert "W1 estimate" in out and "exact W1 of these samples" in out
    with pytest.raises(SystemExit, match="expected a .npy"):
        cli.main(["estimate", str(tmp_path / "a.txt"), str(tmp_path / "b.csv")])
