"""estimate_w1 / W1Estimator: analytic values, soundness against exact OT on the same samples,
a verified 1-Lipschitz critic, weights and input checks."""

from __future__ import annotations

import inspect

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
    est = W1Estimator(epochs=25, folds=3, seed=0, min_epoch_steps=5).fit(x, y)
    return x, y, est


def test_gaussian_shift_value_and_interval(gaussian_shift):
    x, y, est = gaussian_shift
    res = est.result_
    assert abs(res.value - 2.0) < 0.15
    assert res.ci[0] < res.value < res.ci[1] and 0 < res.stderr < 0.2
    assert res.n_heldout == (1500, 1500)  # cross-fitting: every sample held out once
    single = W1Estimator(epochs=25, folds=1, seed=0, min_epoch_steps=5).fit(x, y).result_
    assert single.n_heldout == (450, 450) and abs(single.value - 2.0) < 0.2


def test_kr_value_never_exceeds_exact_ot_on_the_same_sample(gaussian_shift):
    x, y, est = gaussian_shift
    rng = np.random.default_rng(5)
    for n in (50, 300):
        xs, ys = x[rng.choice(1500, n, replace=False)], y[rng.choice(1500, n, replace=False)]
        assert est.evaluate(xs, ys).value <= exact_w1(xs, ys) + 1e-5


def test_critic_is_verified_one_lipschitz(gaussian_shift):
    x, y, est = gaussian_shift
    critic = est.critic_  # the mean of the fold critics
    assert len(critic.critics) == 3 and len(est.result_.selected) == 3
    # a shift: the closed-form linear critic wins the selection in every fold
    assert est.result_.selected == ("linear",) * 3
    networks = W1Estimator("gnp", epochs=3, folds=2, seed=0).fit(x[:300], y[:300]).critic_.critics
    for member in list(critic.critics) + list(networks):
        inner = member.critic if isinstance(member, lipot.wasserstein.ScaledCritic) else member
        assert lipot.lipschitz_bound(inner, (2,)) <= 1 + 1e-5


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
    res = lipot.estimate_w1(x, y, critic="gnp", epochs=5, folds=1, seed=0)
    assert isinstance(res.critic.critic[0], lipot.OrthoConv2d)  # the default conv
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
        W1Estimator(val_fraction=1.5).fit(x, x)
    with pytest.raises(RuntimeError, match="fit"):
        W1Estimator().evaluate(x, x)


def test_cli_estimate(tmp_path, capsys):
    from lipot import cli

    rng = np.random.default_rng(3)
    np.save(tmp_path / "a.npy", rng.normal(size=(200, 2)))
    np.savetxt(tmp_path / "b.csv", rng.normal(size=(200, 2)) + 1.0, delimiter=",")
    assert cli.main(["estimate", str(tmp_path / "a.npy"), str(tmp_path / "b.csv"), "--epochs", "3", "--exact"]) == 0
    out = capsys.readouterr().out
    assert "W1 estimate" in out and "exact W1 of these samples" in out and "critics:" in out
    assert cli.main(["estimate", str(tmp_path / "a.npy"), str(tmp_path / "b.csv"), "--critic", "linear",
                     "--folds", "2"]) == 0
    assert "critics: linear x2" in capsys.readouterr().out
    assert cli.main(["estimate", str(tmp_path / "a.npy"), str(tmp_path / "b.csv"), "--critic", "cone",
                     "--cones", "8", "--folds", "2", "--epochs", "2"]) == 0
    assert "critics: cone x2" in capsys.readouterr().out
    (tmp_path / "a.txt").write_text("1 2\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["estimate", str(tmp_path / "a.txt"), str(tmp_path / "b.csv")])
    assert exit_info.value.code == 2 and "expected a .npy" in capsys.readouterr().err


# ------------------------------------------------------------------------------- streams


class _Chunks(torch.utils.data.Dataset):
    """Blocks of rows of an array (a DataLoader with batch_size=None streams them)."""

    def __init__(self, x, w=None, size=64):
        self.x, self.w, self.size = torch.as_tensor(x, dtype=torch.float32), w, size

    def __len__(self):
        return (len(self.x) + self.size - 1) // self.size

    def __getitem__(self, i):
        block = self.x[i * self.size:(i + 1) * self.size]
        if self.w is None:
            return block
        return block, torch.as_tensor(self.w[i * self.size:(i + 1) * self.size], dtype=torch.float32)


def _loader(x, w=None, size=64):
    return torch.utils.data.DataLoader(_Chunks(x, w, size), batch_size=None, shuffle=False)


def test_streamed_scaled_copies_match_the_analytic_value():
    # W1(N(0, I), N(0, s^2 I)) = |s - 1| E||X||; the optimal critic ||x|| is not linear
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3000, 2)), 2.0 * rng.normal(size=(3000, 2))
    truth = 1.0 * np.sqrt(np.pi / 2)  # E||X|| for a 2-D standard normal
    res = lipot.estimate_w1(_loader(x), _loader(y), epochs=15, folds=2, seed=0, min_epoch_steps=1)
    assert set(res.selected) == {"gnp"}
    assert res.n_heldout == (3000, 3000)
    assert abs(res.value - truth) < 4 * res.stderr + 0.03
    # the streamed fit is a different split from the in-memory one but estimates the same value
    mem = lipot.estimate_w1(x, y, epochs=15, folds=2, seed=0, min_epoch_steps=1)
    assert abs(mem.value - res.value) < 0.1
    assert res.value <= exact_w1(x, y) + 1e-5


def test_stream_weights_and_datasets():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(400, 3)), rng.normal(size=(400, 3)) + 1.0
    w = rng.random(400)
    est = W1Estimator("linear", folds=2, seed=0).fit(_loader(x, w), torch.utils.data.TensorDataset(
        torch.as_tensor(y, dtype=torch.float32)))
    # evaluation on streams equals the in-memory weighted evaluation
    assert est.evaluate(_loader(x, w, size=7), _loader(y)).value == pytest.approx(
        est.evaluate(x, y, weights_x=w).value, rel=1e-6)


def test_cells_by_hash_have_the_requested_fractions():
    from lipot.wasserstein.folds import FoldPlan, cells_by_hash

    cells = cells_by_hash(np.arange(200_000), FoldPlan(4, (0.3, 0.15)), key=3).numpy()
    groups, sel = cells // 2, cells % 2
    assert np.allclose(np.bincount(groups) / cells.size, 0.25, atol=0.005)
    assert abs(sel.mean() - 0.15) < 0.005
    single = cells_by_hash(np.arange(200_000), FoldPlan(1, (0.3, 0.15)), key=3).numpy()
    assert abs((single // 2 == 0).mean() - 0.3) < 0.005 and abs((single % 2).mean() - 0.15) < 0.005


def test_bad_streams():
    x = np.random.default_rng(0).normal(size=(100, 2))
    shuffled = torch.utils.data.DataLoader(torch.as_tensor(x, dtype=torch.float32), batch_size=10, shuffle=True)
    with pytest.raises(ValueError, match="shuffle=False"):
        lipot.estimate_w1(shuffled, _loader(x))
    labelled = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.zeros(100, dtype=torch.int64))
    with pytest.raises(TypeError, match="labels"):
        lipot.estimate_w1(labelled, _loader(x))
    bad = x.copy()
    bad[70] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        lipot.estimate_w1(_loader(bad), _loader(x), epochs=1)
    with pytest.raises(TypeError, match="both"):
        lipot.estimate_w1(_loader(x), x)
    with pytest.raises(ValueError, match="weights"):
        lipot.estimate_w1(_loader(x), _loader(x), weights_x=np.ones(100))
    with pytest.raises(ValueError, match="X is empty"):
        lipot.estimate_w1(_loader(x[:0]), _loader(x))
    with pytest.raises(ValueError, match="critic must be"):
        W1Estimator("network").fit(np.zeros((20, 2)), np.ones((20, 2)))


def test_stream_with_only_zero_weights_is_refused():
    x = np.random.default_rng(1).normal(size=(200, 2))
    est = W1Estimator("linear", folds=2, seed=0).fit(x, x + 1.0)
    with pytest.raises(ValueError, match="positive weight"):
        est.evaluate(_loader(x, np.zeros(200)), _loader(x))


def test_transport_direction_is_the_unit_gradient_toward_x(gaussian_shift):
    """Y = X + (2, 0): points of Y move toward X along (-1, 0). The direction is the critic's
    gradient, checked against central finite differences of the critic itself (float64)."""
    x, y, est = gaussian_shift
    res = est.result_
    points = torch.as_tensor(y[:200], dtype=torch.float32)
    direction = res.transport_direction(points)
    assert direction.shape == points.shape
    assert torch.allclose(direction.norm(dim=1), torch.ones(200), atol=1e-5)
    assert float(direction[:, 0].mean()) < -0.9  # toward X's side
    h = 1e-3
    critic = res.critic
    with torch.no_grad():
        fd = torch.stack([(critic(points + h * e) - critic(points - h * e)).reshape(-1) / (2 * h)
                          for e in torch.eye(2)], 1)
    fd = fd / fd.norm(dim=1, keepdim=True)
    assert float((fd * direction).sum(1).median()) > 0.999
    with pytest.raises(ValueError, match="NaN"):
        res.transport_direction(torch.full((3, 2), float("nan")))
    with pytest.raises(ValueError, match="non-empty batch"):
        res.transport_direction(torch.zeros(0, 2))


def test_transport_direction_on_a_funnel_pair():
    """On the 4-funnel pair in 2-D the critic's gradient points along the true transport
    direction (the potential's gradient) at most points of P."""
    from lipot.data.funnels import FunnelPair

    pair = FunnelPair(2, 4, 0)
    x, _ = pair.sample(1000, seed=1)
    _, y = pair.sample(1000, seed=2)
    res = lipot.estimate_w1(y.numpy(), x.numpy(), critic="cone", epochs=15, folds=3, seed=0, progress=False)
    cos = (res.transport_direction(x).double() * pair.gradient(x)).sum(1)
    assert float(cos.mean()) > 0.7


def test_exact_companion_brackets_the_estimate():
    """Small 2-D samples get POT's exact W1 beside the held-out value (an upper companion:
    exact >= the critic's KR value on the same samples); exact=False skips it, exact=True forces
    it in higher dimension; streams cannot have it."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1.0
    settings = dict(epochs=5, folds=2, seed=0, min_epoch_steps=2)
    est = W1Estimator(**settings).fit(x, y)
    assert est.result_.exact == pytest.approx(exact_w1(x, y), rel=1e-12)
    assert est.evaluate(x, y).value <= est.result_.exact + 1e-6
    assert W1Estimator(exact=False, **settings).fit(x, y).result_.exact is None
    x3, y3 = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    assert W1Estimator(**settings).fit(x3, y3).result_.exact is None
    assert W1Estimator(exact=True, **settings).fit(x3, y3).result_.exact == pytest.approx(exact_w1(x3, y3))
    with pytest.raises(TypeError, match="exact must be None, True or False"):
        W1Estimator(exact="yes").fit(np.zeros((20, 2)), np.ones((20, 2)))


def _gaussian_sampler(shift, seed):
    gen = torch.Generator().manual_seed(seed)

    def draw(n):
        return torch.randn(n, 3, generator=gen, dtype=torch.float64) + torch.as_tensor(shift)
    return draw


def test_samplers_draw_fresh_training_batches():
    """Callables as sources: the held-out part has the size asked for, every training pass draws
    new samples (n_drawn counts them), and the value estimates the shift's W1 = ||m|| = 1.5."""
    draws = (1024, 512, 2048)
    res = lipot.estimate_w1(_gaussian_sampler([0.0, 0.0, 0.0], 1), _gaussian_sampler([1.5, 0.0, 0.0], 2),
                            draws=draws, epochs=40, min_epoch_steps=4, critic="gnp")
    assert res.n_heldout == (2048, 2048)
    assert all(n > 2 * sum(draws) for n in res.n_drawn)  # the first draw plus fresh training passes
    assert abs(res.value - 1.5) < 4 * res.stderr + 0.05
    assert res.exact is None and res.selected == ("gnp",)


def test_iterator_sampler_and_its_errors():
    def batches(shift, seed):
        gen = torch.Generator().manual_seed(seed)
        for _ in range(40):
            yield torch.randn(300, 2, generator=gen) + shift

    draws = (600, 300, 600)
    res = lipot.estimate_w1(batches(0.0, 1), batches(1.0, 2), draws=draws, epochs=2, min_epoch_steps=1,
                            critic="linear")
    assert res.n_drawn[0] >= sum(draws) and abs(res.value - 2 ** 0.5) < 0.3
    with pytest.raises(ValueError, match="exhausted after 300 samples"):
        lipot.estimate_w1(iter([np.zeros((300, 2))]), batches(1.0, 2), draws=draws)
    with pytest.raises(TypeError, match="both be samplers"):
        lipot.estimate_w1(batches(0.0, 1), np.zeros((50, 2)), draws=draws)
    with pytest.raises(ValueError, match=r"draws\[2\] \(heldout\) must be >= 1"):
        W1Estimator(draws=(10, 10, 0)).fit(batches(0.0, 1), batches(1.0, 2))
    with pytest.raises(ValueError, match="NaN"):
        lipot.estimate_w1(lambda n: np.full((n, 2), np.nan), lambda n: np.zeros((n, 2)), draws=draws)
    est = W1Estimator(draws=draws, epochs=1, critic="linear").fit(batches(0.0, 1), batches(1.0, 2))
    with pytest.raises(TypeError, match="draw them from the samplers first"):
        est.evaluate(batches(0.0, 3), batches(1.0, 4))


def test_the_estimator_follows_scikit_learns_conventions():
    """Arguments stored as given and validated by fit; get_params / set_params; sklearn's clone
    copies the settings and none of the fitted state."""
    base = pytest.importorskip("sklearn.base")
    est = W1Estimator("gnp", folds=2, seed=3, val_fraction=0.25, hidden=[8, 8], epochs=2)
    params = est.get_params()
    assert params["val_fraction"] == 0.25 and params["hidden"] == [8, 8] and params["critic"] == "gnp"
    assert set(params) == set(inspect.signature(W1Estimator.__init__).parameters) - {"self"}
    bad = W1Estimator(val_fraction=1.5)  # stored, refused by fit only
    assert bad.val_fraction == 1.5
    with pytest.raises(ValueError, match="val_fraction"):
        bad.fit(np.zeros((20, 2)), np.ones((20, 2)))
    x = np.random.default_rng(0).normal(size=(200, 2))
    est.fit(x, x + 1.0)
    copy = base.clone(est)
    assert copy.get_params() == est.get_params() and copy.result_ is None and copy.critic_ is None
    assert est.set_params(seed=5, folds=3) is est and est.seed == 5 and est.folds == 3
    with pytest.raises(ValueError, match="no parameter 'fold'"):
        est.set_params(fold=3)
    assert repr(W1Estimator("linear", seed=3)) == "W1Estimator(critic='linear', seed=3)"
