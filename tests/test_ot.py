"""lipot.ot against independent values: Dirac distances, scipy's 1-D W1; and its checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from lipot.ot import exact_w1, sinkhorn_w1, sliced_w1


def test_two_diracs_and_weights():
    x, y = np.array([[0.0, 0.0, 1.0]]), np.array([[3.0, 4.0, 1.0]])
    assert exact_w1(x, y) == pytest.approx(5.0, rel=1e-12)
    assert exact_w1(np.repeat(x, 3, 0), np.repeat(y, 2, 0)) == pytest.approx(5.0, rel=1e-12)


def test_one_dimensional_matches_scipy():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=40), rng.normal(1.0, 2.0, size=55)
    a, b = rng.random(40), rng.random(55)
    assert exact_w1(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-9)
    assert exact_w1(u, v, a, b) == pytest.approx(wasserstein_distance(u, v, a, b), rel=1e-9)
    assert exact_w1(u, v, 3 * a, b) == pytest.approx(exact_w1(u, v, a, b), rel=1e-12)  # normalized


def test_baselines_bracket_the_exact_value():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(80, 3)), rng.normal(size=(90, 3)) + 1.0
    exact = exact_w1(x, y)
    assert sinkhorn_w1(x, y, reg=0.05) >= exact * (1 - 1e-6)
    assert sliced_w1(x, y, n_projections=200) <= exact


def test_checks():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="max_pairs"):
        exact_w1(x, x, max_pairs=50)
    with pytest.raises(ValueError, match="X contains NaN"):
        exact_w1(np.full((3, 2), np.nan), x)
    with pytest.raises(ValueError, match="same number of features"):
        exact_w1(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least 1"):
        exact_w1(np.zeros((0, 2)), x)
    with pytest.raises(ValueError, match="weights_x must be finite and >= 0"):
        exact_w1(x, x, weights_x=-np.ones(10))
    with pytest.raises(ValueError, match="weights_y sums to 0"):
        exact_w1(x, x, weights_y=np.zeros(10))
    with pytest.raises(ValueError, match="weights_x has 3 entries"):
        exact_w1(x, x, weights_x=np.ones(3))
    rng = np.random.default_rng(2)
    with pytest.raises(RuntimeError, match="num_itermax"):
        exact_w1(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)), num_itermax=2)


def test_pots_weight_names_still_work_with_a_warning():
    x = np.random.default_rng(3).normal(size=(10, 2))
    w = np.arange(1.0, 11.0)
    with pytest.warns(DeprecationWarning, match=r"exact_w1\(a=...\) is renamed weights_x"):
        old = exact_w1(x, x + 1.0, a=w)
    assert old == pytest.approx(exact_w1(x, x + 1.0, weights_x=w), rel=1e-12)
    with pytest.raises(TypeError, match="pass weights_y only"):
        exact_w1(x, x, weights_y=w, b=w)
