"""The stacked fold critics of the W1 estimator: equal to K separately trained critics step for
step, verified 1-Lipschitz members; GroupSortNorm; float64 centering and the float32 range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lipot
from lipot.functional import group_sort_norm, pair_norm
from lipot.losses import weighted_kr
from lipot.nn import GroupSortNorm, StackedSpectralLinear
from lipot.wasserstein import StackedDenseCritic
from lipot.wasserstein.fitting import _Selection, train_fold_critics
from lipot.wasserstein.folds import FoldPlan


def _batches(steps: int, d: int, b: int, k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g) * 1.5 + 0.3
        ax = (torch.rand(k, b, generator=g) < 0.7).float()  # each critic trains on its own subset
        ay = (torch.rand(k, b, generator=g) < 0.7).float()
        yield x, y, ax, ay


def test_stacked_critics_equal_separately_trained_critics_step_for_step():
    k, d = 3, 6
    torch.manual_seed(0)
    # Björck to float32 accuracy: the stacked layers iterate until their least converged member
    # is done, so at the default tolerance (1e-3) members may differ by that much from alone
    stacked = StackedDenseCritic(k, d, [1.0, 2.0, 0.5], hidden=(8, 12), eps_bjorck=1e-6)
    separate = [stacked.member(i).train() for i in range(k)]  # same initial weights
    for m in separate:
        for p in m.parameters():
            p.requires_grad_(True)
    # SGD with momentum: Adam divides each gradient entry by its own magnitude, so an entry that
    # is 0 in one computation and 1e-8 (rounding) in the other moves by ~lr in one of them only;
    # the gradients themselves agree to float32 rounding (checked below through the outputs)
    opt = torch.optim.SGD(stacked.parameters(), lr=0.05, momentum=0.9)
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in separate]
    stacked.train()
    probe = torch.randn(50, d)
    for step, (x, y, ax, ay) in enumerate(_batches(6, d, 40, k)):
        f = stacked(torch.cat([x, y]))
        loss = -weighted_kr(f[:, :40], f[:, 40:], ax, ay).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for i, (m, o) in enumerate(zip(separate, opts)):  # K independent trainings
            kr = weighted_kr(m(x), m(y), ax[i], ay[i])
            o.zero_grad()
            (-kr).backward()
            o.step()
        with torch.no_grad():
            together = stacked(probe)
            for i, m in enumerate(separate):
                assert torch.allclose(together[i], m(probe), atol=2e-5, rtol=1e-4), (step, i)


def test_stacked_members_are_verified_one_lipschitz_and_gnp():
    torch.manual_seed(1)
    stacked = StackedDenseCritic(2, 5, [1.0, 1.0], hidden=(8, 8))
    for i in range(2):
        member = stacked.member(i)
        assert lipot.lipschitz_bound(member.critic, (5,)) <= 1 + 1e-5
        x = torch.randn(5, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda v: member.critic.double()(v[None])[0, 0], x)
        assert float(jac.norm()) <= 1 + 1e-5


def test_stacked_linear_members_and_shapes():
    torch.manual_seed(2)
    layer = StackedSpectralLinear(3, 4, 6)
    x = torch.randn(7, 4)
    out = layer(x)
    assert out.shape == (3, 7, 6)
    for i in range(3):
        single = layer.member(i)
        assert torch.allclose(out[i], single(x), atol=1e-6)
        sv = torch.linalg.svdvals(single.weight.detach().double())
        assert float(sv.max()) <= 1 + 1e-5 and float(sv.min()) >= 1 - 2e-3
    assert torch.allclose(layer(x[None].expand(3, 7, 4).contiguous()), out, atol=1e-6)
    with pytest.raises(ValueError, match="in_features=4"):
        layer(torch.randn(7, 5))
    with pytest.raises(ValueError, match=r"\(3, B, 4\)"):
        layer(torch.randn(2, 7, 4))
    with pytest.raises(IndexError):
        layer.member(3)


def test_pair_norm_and_group_sort_norm_against_numpy_and_jacobian():
    x = torch.randn(4, 8, dtype=torch.float64)
    a = x.numpy()
    assert np.allclose(pair_norm(x).numpy(), np.hypot(a[:, 0::2], a[:, 1::2]))
    out = group_sort_norm(x).numpy()
    assert out.shape == (4, 6)
    assert np.allclose(out[:, :4], np.sort(a[:, :4].reshape(4, 2, 2), -1).reshape(4, 4))
    assert np.allclose(out[:, 4:], np.hypot(a[:, 4::2], a[:, 5::2]))
    # 1-Lipschitz with orthonormal Jacobian rows (dense Jacobian SVD, float64)
    jac = torch.autograd.functional.jacobian(lambda v: GroupSortNorm()(v[None])[0], x[0])
    assert torch.allclose(torch.linalg.svdvals(jac), torch.ones(6, dtype=torch.float64), atol=1e-12)
    # a zero pair: gradient 0, not NaN
    z = torch.zeros(1, 4, requires_grad=True)
    pair_norm(z).sum().backward()
    assert torch.equal(z.grad, torch.zeros(1, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        group_sort_norm(torch.randn(2, 6))


def test_large_offset_gives_the_centered_value():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 3)), rng.normal(size=(400, 3)) * 1.3 + np.array([1.0, 0, 0])
    settings = dict(epochs=3, seed=0, folds=2)
    near = lipot.estimate_w1(x, y, **settings)
    far = lipot.estimate_w1(x + 1e8, y + 1e8, **settings)
    # float64 keeps ~1e-8 of the 1e8 offset: the centered inputs differ at that level, and
    # training amplifies it a little (uncentered float32 gave 0.12 for a W1 of 2)
    assert far.value == pytest.approx(near.value, rel=1e-2) and abs(far.value - near.value) < near.stderr / 4
    linear = [lipot.estimate_w1(a, b, critic="linear", folds=2).value for a, b in ((x, y), (x + 1e8, y + 1e8))]
    assert linear[1] == pytest.approx(linear[0], rel=1e-6)
    assert lipot.ot.exact_w1(x + 1e8, y + 1e8) == pytest.approx(lipot.ot.exact_w1(x, y), rel=1e-9)
    # the returned critic takes raw float64 inputs: same KR value far from the origin
    est = lipot.W1Estimator(**settings).fit(x + 1e8, y + 1e8)
    with torch.no_grad():
        raw = est.critic_(torch.as_tensor(x + 1e8)).mean() - est.critic_(torch.as_tensor(y + 1e8)).mean()
    assert float(raw) == pytest.approx(est.evaluate(x + 1e8, y + 1e8).value, rel=1e-4)


def test_bad_hidden_widths_are_refused():
    with pytest.raises(ValueError, match="hidden must be .*divisible by 4"):
        lipot.W1Estimator(hidden=(6, 8)).fit(np.zeros((20, 2)), np.ones((20, 2)))


def test_values_beyond_float32_are_refused():
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="X has values of magnitude up to .*float32"):
        lipot.estimate_w1(x * 1e39, x)
    with pytest.raises(ValueError, match="Y has values .*rescale"):
        lipot.estimate_w1(x, x * 1e39)
    loader = torch.utils.data.DataLoader(torch.as_tensor(x * 1e39), batch_size=10)
    with pytest.raises(ValueError, match="Y \\(batch starting at sample 0\\)"):
        lipot.estimate_w1(torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=10), loader)


def test_networks_race_the_linear_critic():
    """On a pure shift the linear critic is optimal: each fold's network, unable to pass the
    linear critic's selection KR, stops after ``patience`` epochs and the estimate is the
    linear one (computed alone). On scaled copies (equal means, the linear critic is ~0) the
    networks pass it at once and keep training."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 4))
    y = rng.normal(size=(1200, 4)) + np.array([1.5, 0, 0, 0])
    est = lipot.estimate_w1(x, y, seed=0, folds=3, patience=3)
    assert est.selected == ("linear",) * 3
    assert max(h.get("epoch", 0) for h in est.history) == 3
    assert est.value == pytest.approx(lipot.estimate_w1(x, y, critic="linear", seed=0, folds=3).value, abs=1e-12)
    scaled = lipot.estimate_w1(x, 1.5 * rng.normal(size=(1200, 4)), seed=0, folds=3, patience=3, epochs=12)
    assert scaled.selected == ("gnp",) * 3
    assert max(h.get("epoch", 0) for h in scaled.history) > 3
    with pytest.raises(ValueError, match="rivals must hold one value per critic"):
        train_fold_critics(None, None, None, FoldPlan(2, (0.3, 0.15)), None, seed=0, rivals=[0.0])


def test_networks_trained_together_race_each_other():
    """On 2-D scaled copies the GNP network leads the cone critic from the first epoch: the cone
    critics, trained alongside on the same batches, stop after ``patience`` epochs, and the GNP
    critics end exactly where they end when trained alone (their own optimizer, schedule and
    stopping are unaffected by the race they win)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(800, 2)), 1.5 * rng.normal(size=(800, 2))
    settings = dict(seed=0, folds=3, patience=3, epochs=12)
    both = lipot.estimate_w1(x, y, **settings)
    alone = lipot.estimate_w1(x, y, critic="gnp", **settings)
    assert both.selected == ("gnp",) * 3
    last = {kind: max(h["epoch"] for h in both.history if h.get("candidate") == kind) for kind in ("cone", "gnp")}
    assert last == {"cone": 3, "gnp": 12}
    assert both.value == alone.value


def test_the_envelope_challenges_without_stopping_the_network(monkeypatch):
    """The envelope critic is a *challenger*: it must beat the GNP network to go on, but the GNP
    critics train exactly as they do alone (same batches, same selection values every epoch)."""
    monkeypatch.setattr(lipot.wasserstein.defaults, "ENVELOPE_MIN_TRAIN", 1)  # small data: propose it
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 3)), 1.5 * rng.normal(size=(400, 3))
    settings = dict(seed=0, folds=2, patience=3, epochs=6)
    both = lipot.estimate_w1(x, y, cones=64, **settings)
    alone = lipot.estimate_w1(x, y, critic="gnp", **settings)
    assert {h["candidate"] for h in both.history} == {"linear", "envelope", "gnp"}
    gnp = lambda res: [(h["fold"], h["epoch"], h["selection_kr"]) for h in res.history  # noqa: E731
                       if h["candidate"] == "gnp"]
    assert gnp(both) == gnp(alone)


def test_a_warming_critic_is_judged_against_itself_only():
    """While warming up, a critic behind its rival goes on as long as it keeps rising, and stops
    after ``patience`` epochs without a rise of its own; once warm, the rival counts again."""
    track = _Selection(1, patience=2, smoothing=0.0, tol=0.0)
    for v in (1.0, 1.1, 1.2, 1.3, 1.4):  # behind its rival (2.0), but rising: never stopped
        track.record(0, v, _Snapshots())
        track.judge(0, v, _Snapshots(), rival=2.0, hold=True)
    assert track.active[0] and track.stale[0] == 0
    for _ in range(2):  # warm: two epochs behind the rival stop it
        track.judge(0, 1.5, _Snapshots(), rival=2.0)
    assert not track.active[0]

    track = _Selection(1, patience=2, smoothing=0.0, tol=0.0)
    track.record(0, 1.0, _Snapshots())
    for _ in range(3):  # warming but level: stopped after patience epochs without a rise
        track.judge(0, 1.0, _Snapshots(), rival=2.0, hold=True)
    assert not track.active[0]


class _Snapshots:
    def fold_state(self, k):
        return {"k": k}

    def load_fold_state(self, k, state):
        assert state == {"k": k}


@pytest.mark.parametrize("tol, stops_at", [(0.0, None), (1e-3, 4)])
def test_selection_stops_when_gains_fall_below_the_relative_tolerance(tol, stops_at):
    track = _Selection(1, patience=3, smoothing=0.0, tol=tol)
    stopped = None
    for epoch in range(1, 21):  # the selection KR rises by 0.02 % per epoch, 0.06 % per 3 epochs
        track.record(0, 1.0002 ** epoch, _Snapshots())
        track.judge(0, 1.0002 ** epoch, _Snapshots())
        if not track.active[0]:
            stopped = epoch
            break
    assert stopped == stops_at
    # a rival above the critic's values: no epoch counts as an improvement
    rivalled = _Selection(1, patience=2, smoothing=0.0, tol=tol)
    for epoch in (1, 2):
        rivalled.record(0, float(epoch), _Snapshots())
        rivalled.judge(0, float(epoch), _Snapshots(), rival=5.0)
    assert rivalled.active == [False] and rivalled.best == [2.0]


def test_default_stopping_tolerance_by_input_width():
    from lipot.wasserstein import auto_tol
    from lipot.wasserstein.defaults import LOW_DIM_FEATURES
    assert auto_tol(2) == auto_tol(LOW_DIM_FEATURES) == 1e-3
    assert auto_tol(LOW_DIM_FEATURES + 1) == auto_tol(784) == 1e-4
    assert lipot.W1Estimator().tol is None and lipot.W1Estimator(tol=0).tol == 0
