"""The network benchmark family (lipot.data.network_pairs) against independent facts: the potential is
1-Lipschitz with unit gradients, every pair moves along a ray where it falls at unit rate
(f(y) - f(x) = ||x - y||), so on any finite sample POT's exact W1 between the paired points
equals the mean pair distance."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from lipot.data.network_pairs import NetworkPair

CASES = [(1, 2, 0), (2, 3, 0), (5, 3, 1), (16, 2, 2)]


@pytest.mark.parametrize("dim,depth,seed", CASES)
def test_pairs_move_along_rays_of_unit_slope(dim, depth, seed):
    pair = NetworkPair(dim, depth, seed)
    x, y = pair.sample(2000, seed=seed + 1)
    dist = (x - y).norm(dim=1)
    assert torch.allclose(pair.potential(y) - pair.potential(x), dist, rtol=0, atol=1e-12 * (1 + dim))
    assert float(dist.max()) <= pair.max_step
    assert float(dist.mean()) > 0.01  # the rays are not degenerate
    grad = pair.gradient(y)
    assert torch.allclose(grad.norm(dim=1), torch.ones(len(y), dtype=torch.float64), atol=1e-12)
    moved = dist > 1e-9
    assert torch.allclose((y - x)[moved] / dist[moved, None], grad[moved], atol=1e-9)


@pytest.mark.parametrize("dim,depth,seed", CASES[1:])
def test_exact_ot_of_the_paired_sample_is_the_mean_pair_distance(dim, depth, seed):
    pair = NetworkPair(dim, depth, seed)
    x, y = pair.sample(400, seed=7)
    cost = ot.dist(x.numpy(), y.numpy(), metric="euclidean")
    exact = ot.emd2([], [], cost, numItermax=10_000_000)
    assert exact == pytest.approx(float((x - y).norm(dim=1).mean()), rel=1e-9)


def test_potential_is_one_lipschitz_and_the_truth_is_stable():
    pair = NetworkPair(8, 3, 0)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(2, 5000, 8, generator=gen, dtype=torch.float64) * 6 - 3)
    quotient = (pair.potential(a) - pair.potential(b)).abs() / (a - b).norm(dim=1)
    assert float(quotient.max()) <= 1 + 1e-12
    value, stderr = pair.w1(5000, seed=3)
    again, _ = pair.w1(5000, seed=4)
    assert 0 < stderr < 0.02 and abs(value - again) < 5 * stderr
    with pytest.raises(ValueError, match=r"z must have shape \(n, 8\)"):
        pair.potential(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="max_step"):
        NetworkPair(4, max_step=0)
