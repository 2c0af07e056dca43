"""The cone envelope (a soft or exact minimum / maximum of cones) and the envelope critic of the
W1 estimator: values against a brute-force computation, 1-Lipschitz by its Jacobian and on
random pairs, unit gradient where one cone dominates, the stacked members equal to the exported
layers, the temperature schedule, the orientation and the estimator on a funnel pair."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lipot
from lipot.data.funnels import FunnelPair
from lipot.functional import cone_envelope
from lipot.nn import ConeEnvelope
from lipot.wasserstein import StackedEnvelopeCritic
from lipot.wasserstein.critics import envelope_orientation, envelope_start


def _brute(x, c, b, tau, sign):
    """sign * softmin_tau(||x - c_j|| + sign b_j), one point at a time in numpy."""
    out = []
    for xi in x:
        z = np.array([np.linalg.norm(xi - cj) for cj in c]) + sign * b
        out.append(z.min() if tau == 0 else z.min() - tau * np.log(np.exp(-(z - z.min()) / tau).sum()))
    return sign * np.array(out)


@pytest.mark.parametrize("tau", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_envelope_matches_brute_force_one_and_stacked(tau, sign):
    rng = np.random.default_rng(0)
    x, c, b = rng.normal(size=(9, 3)), rng.normal(size=(5, 3)), rng.normal(size=5)
    t = [torch.as_tensor(v) for v in (x, c, b)]
    for exact in (True, False):
        got = cone_envelope(*t, tau, sign, exact=exact).numpy()
        assert np.allclose(got, _brute(x, c, b, tau, sign), atol=1e-9 if exact else 1e-6)
    c2, b2 = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5))
    taus, signs = torch.tensor([tau, 0.3], dtype=torch.float64), torch.tensor([sign, -sign], dtype=torch.float64)
    out = cone_envelope(t[0][None], torch.as_tensor(c2), torch.as_tensor(b2), taus, signs)
    for k in range(2):
        assert np.allclose(out[k].numpy(), _brute(x, c2[k], b2[k], float(taus[k]), float(signs[k])), atol=1e-9)


@pytest.mark.parametrize("tau", [0.0, 0.2])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("k", [1.0, 2.5])
def test_envelope_layer_is_k_lipschitz_by_jacobian_and_pairs(tau, lower, k):
    torch.manual_seed(3)
    layer = ConeEnvelope(4, cones=16, lower=lower, temperature=tau, k_coef_lip=k).double()
    with torch.no_grad():
        layer.offsets.normal_()
    x = torch.randn(2000, 4, dtype=torch.float64)
    y = x + 0.1 * torch.randn_like(x) * torch.rand(2000, 1, dtype=torch.float64)
    with torch.no_grad():
        ratio = (layer(x) - layer(y)).abs().reshape(-1) / (x - y).norm(dim=1)
    assert float(ratio.max()) <= k * (1 + 1e-9)
    norms = []
    for point in torch.randn(30, 4, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0, 0], point)
        norms.append(float(jac.norm()))
    assert max(norms) <= k * (1 + 1e-9)
    if tau == 0:  # one cone dominates almost everywhere: the gradient norm is exactly k
        assert min(norms) == pytest.approx(k, rel=1e-9)
    assert lipot.lipschitz_bound(torch.nn.Sequential(layer), (4,)) == pytest.approx(k)
    exported = lipot.vanilla_export(layer)
    assert torch.allclose(exported(x[:50]), layer(x[:50]))


def test_stacked_members_equal_exported_layers_and_the_temperature_anneals():
    torch.manual_seed(0)
    stack = StackedEnvelopeCritic(3, 4, [1.0, 2.0, 0.5], cones=6, temperature=0.2, anneal_steps=4)
    gen = torch.Generator().manual_seed(0)
    for k, lower in enumerate((True, False, True)):
        stack.place(k, lower, envelope_start(torch.randn(40, 4), 6, gen))
    x = torch.randn(30, 4)
    assert torch.allclose(stack.temperature(), torch.full((3,), 0.2))
    stack.train()
    for _ in range(2):
        stack(x)
    assert torch.allclose(stack.temperature(), torch.full((3,), 0.1))
    stack.eval()
    with torch.no_grad():
        out = stack(x)
        for k in range(3):
            member = stack.member(k)
            assert member.critic[1].temperature == pytest.approx(0.1)
            assert member.critic[1].lower == (k != 1)
            assert torch.allclose(member(x), out[k], atol=1e-5)
            assert lipot.lipschitz_bound(member.critic, (4,)) == pytest.approx(1.0)
    snapshot = stack.fold_state(1)
    stack.train()
    for _ in range(5):
        stack(x)
    assert float(stack.temperature()[1]) == 0.0
    stack.load_fold_state(1, snapshot)  # a snapshot keeps the temperature it had
    assert float(stack.temperature()[1]) == pytest.approx(0.1)


def test_orientation_wraps_the_concentrated_side():
    gen = torch.Generator().manual_seed(0)
    spread, tight = 2 * torch.randn(500, 3, generator=gen), 0.1 * torch.randn(500, 3, generator=gen)
    assert envelope_orientation(spread, tight)  # small on the second sample: a minimum
    assert not envelope_orientation(tight, spread)
    centers = envelope_start(tight + 5, 10, gen)
    assert centers.shape == (10, 3)
    assert float((centers - 5).norm(dim=1).max()) < 1.0  # on samples or near their mean


def test_estimator_fits_a_funnel_pair_with_a_verified_envelope():
    pair = FunnelPair(dim=8, funnels=4, seed=0)
    x, _ = pair.sample(1500, seed=1)
    _, y = pair.sample(1500, seed=2)
    truth, _ = pair.w1(20_000, seed=3)
    res = lipot.estimate_w1(y, x, critic="envelope", folds=2, epochs=60)
    assert set(res.selected) == {"envelope"}
    for member in res.critic.critics:  # the mean of the fold critics, each verified
        assert lipot.lipschitz_bound(member.critic, (8,)) <= 1.0 + 1e-6
    assert res.value == pytest.approx(truth, rel=0.15)
    cos = float((res.transport_direction(x).double() * pair.gradient(x)).sum(1).mean())
    assert cos > 0.8
    assert math.isfinite(res.stderr)


def test_envelope_cones_follow_the_training_part():
    from lipot.wasserstein import auto_envelope_cones
    from lipot.wasserstein.critics import ENVELOPE_CONES
    assert auto_envelope_cones(10) == 16 and auto_envelope_cones(4000) == 200
    assert auto_envelope_cones(5440) == 272
    assert auto_envelope_cones(10**6) == ENVELOPE_CONES == 1024
    assert auto_envelope_cones(10, fresh=True) == ENVELOPE_CONES  # samplers: fresh samples, all the cones


def _envelope_cones(result) -> set[int]:
    return {m.cones for m in result.critic.modules() if isinstance(m, lipot.ConeEnvelope)}


def test_samplers_get_every_cone_and_fixed_samples_fewer():
    gen = torch.Generator().manual_seed(0)
    draw_x = lambda n: torch.randn(n, 3, generator=gen)  # noqa: E731
    draw_y = lambda n: torch.randn(n, 3, generator=gen) + 1.0  # noqa: E731
    fixed = lipot.estimate_w1(draw_x(400), draw_y(400), critic="envelope", epochs=1, min_epoch_steps=1, seed=0)
    sampled = lipot.estimate_w1(draw_x, draw_y, critic="envelope", epochs=1, min_epoch_steps=1, seed=0,
                                draws=(64, 64, 64))
    assert _envelope_cones(fixed) == {16}      # 400 * 0.68 training samples / 20 per cone -> at least 16
    assert _envelope_cones(sampled) == {1024}


def test_wide_inputs_get_smaller_envelope_steps_and_temperature():
    from lipot.wasserstein.critics import ENVELOPE_TEMPERATURE, envelope_width_factor
    assert envelope_width_factor(2) == envelope_width_factor(16) == 1.0
    assert envelope_width_factor(64) == pytest.approx(0.5)
    stack = StackedEnvelopeCritic(2, 64, [1.0, 1.0], cones=4)
    assert stack.lr_factor == pytest.approx(1.5)
    assert float(stack.temperature()[0]) == pytest.approx(0.5 * ENVELOPE_TEMPERATURE)
