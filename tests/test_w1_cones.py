"""The cone potential (a 1-Lipschitz min/max of cones) and the cone critic of the W1 estimator:
values against a brute-force numpy computation, 1-Lipschitz on random pairs and by its
Jacobian, stacked members equal to separately trained ones, centers drawn from training points
only, and the estimator's use of it on 2-D data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lipot
from lipot.functional import cone_potential
from lipot.losses import weighted_kr
from lipot.nn import ConePotential
from lipot.data.toys import ring_vs_grid
from lipot.wasserstein import StackedConeCritic, default_candidates
from lipot.wasserstein.critics import CONE_MAX_FEATURES


def _numpy_cones(x, p, a, q, b):
    low = np.array([min(a[j] + np.linalg.norm(xi - p[j]) for j in range(len(p))) for xi in x])
    high = np.array([max(b[j] - np.linalg.norm(xi - q[j]) for j in range(len(q))) for xi in x])
    return 0.5 * (low + high)


def test_cone_potential_matches_brute_force_and_stacks():
    rng = np.random.default_rng(0)
    x, p, q = rng.normal(size=(9, 3)), rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    a, b = rng.normal(size=5), rng.normal(size=4)
    t = [torch.as_tensor(v) for v in (x, p, a, q, b)]
    assert np.allclose(cone_potential(*t).numpy(), _numpy_cones(x, p, a, q, b), atol=1e-12)
    # a stack of 2 potentials on a shared input: member k uses slice k of the parameters
    p2, a2, q2, b2 = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5)), rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4))
    out = cone_potential(t[0][None], *(torch.as_tensor(v) for v in (p2, a2, q2, b2)))
    assert out.shape == (2, 9)
    for k in range(2):
        assert np.allclose(out[k].numpy(), _numpy_cones(x, p2[k], a2[k], q2[k], b2[k]), atol=1e-12)


def test_cone_potential_gradients_are_those_of_the_full_minimum():
    # the fast path differentiates only the chosen cone; the reference differentiates amin/amax
    torch.manual_seed(0)
    x = torch.randn(2, 7, 2, dtype=torch.float64, requires_grad=True)
    params = [torch.randn(2, 5, 2, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64),
              torch.randn(2, 4, 2, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)]
    for t in params:
        t.requires_grad_(True)
    p, a, q, b = params
    d1 = (x.unsqueeze(-2) - p.unsqueeze(-3)).norm(dim=-1)
    d2 = (x.unsqueeze(-2) - q.unsqueeze(-3)).norm(dim=-1)
    ref = 0.5 * ((d1 + a.unsqueeze(-2)).amin(-1) + (b.unsqueeze(-2) - d2).amax(-1))
    fast = cone_potential(x, *params)
    for g, h in zip(torch.autograd.grad(fast.sum(), [x, *params]), torch.autograd.grad(ref.sum(), [x, *params])):
        assert torch.allclose(g, h, atol=1e-12)
    assert torch.autograd.gradgradcheck(lambda v: cone_potential(v, *params), (x,))
    # at a center: zero gradient, not NaN
    z = p[0, :1].detach().clone().requires_grad_(True)
    cone_potential(z, p[0].detach(), torch.zeros(5, dtype=torch.float64), p[0].detach(),
                   torch.zeros(5, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("k", [1.0, 2.5])
def test_cone_layer_is_k_lipschitz_on_random_pairs_and_by_its_jacobian(k):
    torch.manual_seed(1)
    layer = ConePotential(4, cones=16, k_coef_lip=k).double()
    with torch.no_grad():
        layer.low_offsets.normal_()
        layer.high_offsets.normal_()
    x, y = torch.randn(2000, 4, dtype=torch.float64), torch.randn(2000, 4, dtype=torch.float64)
    y = x + 0.1 * torch.randn_like(x) * torch.rand(2000, 1, dtype=torch.float64)
    with torch.no_grad():
        ratio = (layer(x) - layer(y)).abs().reshape(-1) / (x - y).norm(dim=1)
    assert float(ratio.max()) <= k * (1 + 1e-9)
    for point in torch.randn(20, 4, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0, 0], point)
        assert float(jac.norm()) <= k * (1 + 1e-9)
    assert lipot.lipschitz_bound(torch.nn.Sequential(layer), (4,)) == pytest.approx(k)


def test_cone_layer_export_shapes_and_errors():
    torch.manual_seed(2)
    layer = ConePotential(3, cones=5)
    x = torch.randn(6, 3)
    out = layer(x)
    assert out.shape == (6, 1)
    exported = lipot.vanilla_export(lipot.Sequential(torch.nn.Flatten(), layer))
    assert torch.allclose(exported(x), out)
    assert not any(isinstance(m, lipot.nn.LipschitzModule) for m in exported.modules())
    with pytest.raises(ValueError, match="ConePotential: .*2 features .*expected 3"):
        layer(torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"low must have shape \(5, 3\)"):
        layer.place(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="cones must be >= 1"):
        ConePotential(3, cones=0)
    points = torch.randn(5, 3)
    layer.place(points, points + 1)
    assert torch.equal(layer.low_centers.detach(), points) and not layer.low_offsets.detach().any()


def test_stacked_cone_critics_equal_separately_trained_critics_step_for_step():
    k, d, b = 3, 2, 40
    torch.manual_seed(3)
    stacked = StackedConeCritic(k, d, [1.0, 2.0, 0.5], cones=6)
    separate = [stacked.member(i).train() for i in range(k)]
    for m in separate:
        for p in m.parameters():
            p.requires_grad_(True)
    opt = torch.optim.Adam(stacked.parameters(), lr=0.05)
    opts = [torch.optim.Adam(m.parameters(), lr=0.05) for m in separate]
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(50, d)
    for step in range(6):
        x, y = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g) * 1.5 + 0.3
        ax, ay = (torch.rand(k, b, generator=g) < 0.7).float(), (torch.rand(k, b, generator=g) < 0.7).float()
        f = stacked(torch.cat([x, y]))
        opt.zero_grad()
        (-weighted_kr(f[:, :b], f[:, b:], ax, ay).sum()).backward()
        opt.step()
        for i, (m, o) in enumerate(zip(separate, opts)):
            o.zero_grad()
            (-weighted_kr(m(x), m(y), ax[i], ay[i])).backward()
            o.step()
        with torch.no_grad():
            together = stacked(probe)
            for i, m in enumerate(separate):
                assert torch.allclose(together[i], m(probe), atol=1e-5), (step, i)
    for i in range(k):
        assert lipot.lipschitz_bound(stacked.member(i).critic, (d,)) <= 1.0


def test_cone_centers_come_from_each_folds_training_part():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(280, 2)) + 1.0
    est = lipot.W1Estimator(cones=40, folds=3)
    est._validate()
    sx, sy, _ = est._sources(x, y, None, None)
    plan = lipot.wasserstein.FoldPlan(3, est._fractions)
    for i, s in enumerate((sx, sy)):
        s.assign(plan, np.random.default_rng(0), i)
    critics = est._fold_networks("cone", sx, sy, plan, [1.5, 1.5, 1.5], n_train=100)
    for k in range(3):
        train = plan.masks(k)["train"]
        for centers, source in ((critics.low_centers[k], sy), (critics.high_centers[k], sx)):
            allowed = source.x[train[source.cells]]
            dist = torch.cdist(centers.detach() * 1.5, allowed, compute_mode="donot_use_mm_for_euclid_dist").amin(1)
            assert float(dist.max()) < 1e-5  # every center is a training point of fold k
    envelopes = est._fold_networks("envelope", sx, sy, plan, [1.5, 1.5, 1.5], n_train=100)
    for k in range(3):
        train = plan.masks(k)["train"]
        source = sy if bool(envelopes.sign[k] > 0) else sx  # a lower envelope wraps the second sample
        allowed = source.x[train[source.cells]]
        on_samples = envelopes.centers[k, ::2].detach() * 1.5
        dist = torch.cdist(on_samples, allowed, compute_mode="donot_use_mm_for_euclid_dist").amin(1)
        assert float(dist.max()) < 1e-5  # every other center is a training point of fold k


def test_estimator_proposes_cones_for_2d_data_only():
    assert CONE_MAX_FEATURES == 2
    assert default_candidates(2) == ("linear", "cone", "gnp") and default_candidates(1)[1] == "cone"
    assert default_candidates(3) == ("linear", "gnp")
    assert default_candidates(2, 4096) == ("linear", "cone", "envelope", "gnp")  # enough to train it
    assert default_candidates(128, 5000) == ("linear", "envelope", "gnp")
    assert default_candidates(3, 4095) == default_candidates(129, 10**6) == ("linear", "gnp")
    x, y = ring_vs_grid(600, np.random.default_rng(5))
    est = lipot.W1Estimator(epochs=8, folds=3).fit(x, y)
    res = est.result_
    assert {h["candidate"] for h in res.history} == {"linear", "cone", "gnp"}
    assert set(res.selected) <= {"linear", "cone", "gnp"}
    assert est.evaluate(x, y).value <= lipot.ot.exact_w1(x, y) + 1e-5
    cone = lipot.estimate_w1(x, y, critic="cone", epochs=8, folds=3)
    assert cone.selected == ("cone",) * 3
    for member in est.critic_.critics:
        inner = member.critic if isinstance(member, lipot.wasserstein.ScaledCritic) else member
        assert lipot.lipschitz_bound(inner, (2,)) <= 1 + 1e-5
    three = lipot.W1Estimator(epochs=2, folds=2).fit(np.c_[x, x[:, :1]], np.c_[y, y[:, :1]]).result_
    assert "cone" not in {h["candidate"] for h in three.history}
    with pytest.raises(ValueError, match="cones must be an integer >= 1"):
        lipot.W1Estimator(cones=0).fit(np.zeros((20, 2)), np.ones((20, 2)))
    with pytest.raises(ValueError, match="'cone'"):
        lipot.W1Estimator(critic="cones").fit(np.zeros((20, 2)), np.ones((20, 2)))


def test_streamed_2d_samples_get_cone_centers_from_the_stream():
    x, y = ring_vs_grid(800, np.random.default_rng(6))

    def loader(a):
        data = torch.utils.data.TensorDataset(torch.as_tensor(a, dtype=torch.float32))
        return torch.utils.data.DataLoader(data, batch_size=100, shuffle=False)

    res = lipot.estimate_w1(loader(x), loader(y), critic="cone", epochs=6, folds=2)
    assert res.selected == ("cone", "cone")
    exact = lipot.ot.exact_w1(x, y)
    assert 0.5 * exact < res.value and res.ci[0] <= exact * 1.05


def test_dense_critic_is_deeper_for_low_dimensional_inputs():
    from lipot.wasserstein.defaults import LOW_DIM_FEATURES, LOW_DIM_HIDDEN

    assert lipot.wasserstein.auto_hidden(LOW_DIM_FEATURES) == LOW_DIM_HIDDEN == (64,) * 6
    assert lipot.wasserstein.auto_hidden(LOW_DIM_FEATURES + 1) == lipot.models.DENSE_CRITIC_HIDDEN
    assert lipot.wasserstein.auto_hidden(CONE_MAX_FEATURES) == lipot.models.DENSE_CRITIC_HIDDEN
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(300, 3)), 1.5 * rng.normal(size=(300, 3))
    est = lipot.W1Estimator(critic="gnp", epochs=2, folds=2).fit(x, y)
    member = est.critic_.critics[0]
    linears = [m for m in member.critic.modules() if isinstance(m, lipot.nn.SpectralLinear)]
    assert [m.out_features for m in linears] == [64] * 6 + [1]
    assert lipot.lipschitz_bound(member.critic, (3,)) <= 1 + 1e-5
