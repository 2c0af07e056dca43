"""The funnel benchmark family (lipot.data.funnels) against independent facts: the pairing moves points
along rays of a 1-Lipschitz potential (f(y) - f(x) = ||x - y|| on every pair), so on any finite
sample POT's exact W1 between the paired points equals the mean pair distance (the pairing is a
feasible plan and f a feasible dual with the same value)."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from lipot.data.funnels import FunnelPair

CASES = [(1, 3, 0), (2, 4, 0), (2, 64, 1), (3, 16, 2), (16, 64, 0), (64, 256, 3)]


@pytest.mark.parametrize("dim,funnels,seed", CASES)
def test_pairs_move_along_the_rays_of_the_potential(dim, funnels, seed):
    pair = FunnelPair(dim, funnels, seed)
    x, y = pair.sample(3000, seed=seed + 1)
    dist = (x - y).norm(dim=1)
    assert torch.allclose(pair.potential(y) - pair.potential(x), dist, rtol=0, atol=1e-12 * (1 + dim))
    assert bool((x.abs() <= pair.half_width).all()) and bool((y.abs() <= pair.half_width).all())
    # the gradient is defined away from the centres (t^p underflows to x = c for y near its centre)
    centre = pair.centers[(torch.cdist(y, pair.centers) + pair.offsets).argmin(1)]
    moved = (dist > 1e-9) & ((x - centre).norm(dim=1) > 1e-6)
    assert int(moved.sum()) > 0.5 * len(x)
    direction = (y - x)[moved] / dist[moved, None]
    assert torch.allclose(pair.gradient(x[moved]), direction, atol=1e-9)


@pytest.mark.parametrize("dim,funnels,seed", CASES[:4])
def test_exact_ot_of_the_paired_sample_is_the_mean_pair_distance(dim, funnels, seed):
    pair = FunnelPair(dim, funnels, seed)
    x, y = pair.sample(400, seed=7)
    cost = ot.dist(x.numpy(), y.numpy(), metric="euclidean")
    exact = ot.emd2([], [], cost, numItermax=10_000_000)
    assert exact == pytest.approx(float((x - y).norm(dim=1).mean()), rel=1e-9)


def test_potential_is_one_lipschitz():
    pair = FunnelPair(8, 32, 0)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(2, 5000, 8, generator=gen, dtype=torch.float64) * 6 - 3)
    quotient = (pair.potential(a) - pair.potential(b)).abs() / (a - b).norm(dim=1)
    assert float(quotient.max()) <= 1 + 1e-12


def test_monte_carlo_truth_and_arguments():
    pair = FunnelPair(16, 64, 0)
    value, stderr = pair.w1(20_000, seed=3)
    again, _ = pair.w1(20_000, seed=4)
    assert 0 < stderr < 0.02 and abs(value - again) < 5 * stderr
    assert FunnelPair(16, 64, 0).centers.equal(pair.centers)  # the pair is its seed
    with pytest.raises(ValueError, match=r"z must have shape \(n, 16\)"):
        pair.potential(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="funnels"):
        FunnelPair(4, 0)


def test_erm_limit_starts_at_the_true_potential_and_climbs_the_training_kr():
    """``benchmarks/w1_erm_limit.py``: its envelope is the pair's potential (checked against
    ``FunnelPair.potential``), and fitting raises the training KR value above the oracle's."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import w1_erm_limit

    pair = FunnelPair(8, 4, seed=3)
    z = pair.sample(300, seed=5)[1]
    env = w1_erm_limit.true_envelope(pair)
    assert torch.allclose(env(z.float()).squeeze(1).double(), pair.potential(z), atol=1e-4)
    row = w1_erm_limit.run(8, 4, n=300, steps=30, lr=0.02, seed=3)
    x, _ = pair.sample(8000, seed=10_003)
    _, y = pair.sample(8000, seed=20_003)
    oracle = float(pair.potential(y).mean() - pair.potential(x).mean())
    assert row["held0"] == pytest.approx(oracle, rel=1e-4)
    assert row["train"] > row["train0"]
