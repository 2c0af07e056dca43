"""lipot.linalg.normalizers against independent computations (numpy SVD, dense Jacobians, formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lipot.linalg import bjorck
from lipot.linalg import normalizers as N
from conftest import jacobian_matrix, singular_values_np, spectral_norm_np


# ---- power iteration -------------------------------------------------------------------------


def test_power_iteration_matches_svd_from_below():
    w = torch.randn(30, 17, dtype=torch.float64)
    sigma, u = N.power_iteration(w, maxiter=500, tol=1e-12)
    exact = spectral_norm_np(w)
    assert sigma.item() <= exact * (1 + 1e-12)
    assert sigma.item() == pytest.approx(exact, rel=1e-6)
    assert u.norm().item() == pytest.approx(1.0)


def test_power_iteration_batched_and_warm_start():
    w = torch.randn(3, 8, 5)
    sigma, u = N.power_iteration(w, maxiter=200, tol=1e-9)
    exact = [spectral_norm_np(m) for m in w]
    np.testing.assert_allclose(sigma.numpy(), exact, rtol=1e-4)
    sigma2, _ = N.power_iteration(w, u, maxiter=1)
    np.testing.assert_allclose(sigma2.numpy(), exact, rtol=1e-4)


def test_operator_power_iteration_on_a_convolution_matches_dense_jacobian():
    kernel = torch.randn(4, 3, 3, 3, dtype=torch.float64)

    def conv(x):
        return torch.nn.functional.conv2d(x, kernel, padding=1)

    def conv_t(y):
        return torch.nn.functional.conv_transpose2d(y, kernel, padding=1)

    u = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    sigma, _ = N.operator_power_iteration(conv, conv_t, u, tol=1e-12, maxiter=2000)
    exact = spectral_norm_np(jacobian_matrix(conv, torch.zeros(1, 3, 6, 6, dtype=torch.float64)))
    assert sigma.item() <= exact * (1 + 1e-9)
    assert sigma.item() == pytest.approx(exact, rel=1e-5)


# ---- Björck ----------------------------------------------------------------------------------


def bjorck_polynomial(sigma, beta):
    return (1 + beta) * sigma - beta * sigma**3


def test_beta_half_is_the_only_safe_step():
    """Independent check of the facts behind check_bjorck_beta."""
    grid = np.linspace(0, math.sqrt(3), 200001)
    assert bjorck_polynomial(grid, 0.5).max() <= 1 + 1e-12
    assert bjorck_polynomial(grid, 0.5).min() >= -1e-12
    assert bjorck_polynomial(grid, 0.25).max() == pytest.approx(1.0758, abs=1e-3)
    assert bjorck_polynomial(np.linspace(0, 1, 100001), 0.6).max() > 1.005
    for beta in (0.25, 0.6, 1.0):
        with pytest.raises(ValueError, match="beta_bjorck"):
            N.check_bjorck_beta(beta)
    assert N.check_bjorck_beta(0.5) == 0.5


@pytest.mark.parametrize("shape", [(7, 7), (12, 5), (5, 12), (3, 9, 4), (1, 6), (6, 1)])
def test_bjorck_converges_to_orthonormal(shape):
    w = torch.randn(*shape, dtype=torch.float64) * 0.3 + torch.eye(*shape[-2:], dtype=torch.float64)
    q = N.bjorck_orthonormalize(w / spectral_norm_np(w.reshape(-1, shape[-1])), tol=1e-10, maxiter=60)
    for m in q.reshape(-1, *shape[-2:]):
        sv = singular_values_np(m)
        assert sv.max() <= 1 + 1e-12
        assert sv.min() >= 1 - 1e-9


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    m=st.integers(1, 10), n=st.integers(1, 10), log_scale=st.floats(-3, 3),
    maxiter=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), rank_deficient=st.booleans(),
)
def test_bjorck_never_exceeds_one_even_unconverged(m, n, log_scale, maxiter, seed, rank_deficient):
    """Any float32 input, any scale, any number of steps: sigma_max <= 1 (+ rounding)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(m, n, generator=gen) * 10.0**log_scale
    if rank_deficient and min(m, n) > 1:
        w[:, 0] = w[:, 1]
    q = N.bjorck_orthonormalize(w, tol=1e-12, maxiter=maxiter)
    assert singular_values_np(q).max() <= 1 + 2e-6


def test_bjorck_certified_prescale_handles_large_inputs_without_power_iteration():
    w = torch.randn(40, 40) * 50  # sigma_max ~ 700: a single unscaled step would explode
    q, steps, _ = N.bjorck_orthonormalize(w, maxiter=1, return_info=True)
    assert steps == 1
    assert singular_values_np(q).max() <= 1 + 1e-6


def test_bjorck_fixed_iterations_matches_loop_and_is_differentiable():
    w = (torch.eye(6) + 0.1 * torch.randn(6, 6)).requires_grad_()
    q = N.bjorck_orthonormalize(w, fixed_iterations=8)
    q.sum().backward()
    assert torch.isfinite(w.grad).all()
    assert singular_values_np(q).min() >= 1 - 1e-5


# ---- polar derivative -------------------------------------------------------------------------


def exact_polar(w: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(w, full_matrices=False)
    return u @ vt


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9)])
def test_polar_tangent_gradient_is_the_polar_derivative(shape):
    """Finite differences of the exact polar factor (numpy SVD) at an orthonormal point."""
    rng = np.random.default_rng(0)
    q = exact_polar(rng.standard_normal(shape))
    g = rng.standard_normal(shape)
    e = rng.standard_normal(shape)
    h = 1e-6
    directional = ((exact_polar(q + h * e) - exact_polar(q - h * e)) / (2 * h) * g).sum()
    qt = torch.tensor(q, requires_grad=True)
    (N.polar_tangent(qt) * torch.tensor(g)).sum().backward()
    assert (qt.grad.numpy() * e).sum() == pytest.approx(directional, rel=1e-6, abs=1e-8)
    # forward is the identity
    assert torch.equal(N.polar_tangent(torch.tensor(q)), torch.tensor(q))


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9)])
def test_polar_tangent_vjp_is_the_polar_derivative(shape):
    """The public VJP (used by hand-written backward passes) against finite differences of the
    exact polar factor, batched and unbatched."""
    rng = np.random.default_rng(1)
    q = np.stack([exact_polar(rng.standard_normal(shape)) for _ in range(2)])
    g, e = rng.standard_normal(q.shape), rng.standard_normal(q.shape)
    h = 1e-6
    for i in range(2):
        directional = ((exact_polar(q[i] + h * e[i]) - exact_polar(q[i] - h * e[i])) / (2 * h) * g[i]).sum()
        single = N.polar_tangent_vjp(torch.tensor(q[i]), torch.tensor(g[i])).numpy()
        assert (single * e[i]).sum() == pytest.approx(directional, rel=1e-6, abs=1e-8)
    batched = N.polar_tangent_vjp(torch.tensor(q), torch.tensor(g)).numpy()
    unbatched = [N.polar_tangent_vjp(torch.tensor(q[i]), torch.tensor(g[i])).numpy() for i in range(2)]
    np.testing.assert_allclose(batched, np.stack(unbatched), rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(e=st.floats(1e-6, 0.999), eps=st.sampled_from([1e-3, 1e-6, 1e-9]))
def test_planned_bjorck_steps_bound_every_singular_value(e, eps):
    """The plan from max |sigma^2 - 1| <= e, checked by iterating the scalar Björck map on a
    fine grid of the whole interval (independent of the plan's closed-form bound)."""
    steps = bjorck._planned_steps(e, eps, maxiter=50)
    sigma = np.sqrt(np.linspace(1 - e, 1 + e, 20001))
    for _ in range(steps or 50):
        sigma = 1.5 * sigma - 0.5 * sigma**3
    if steps is not None:
        assert np.abs(sigma - 1).max() <= eps * (1 + 1e-9) + 1e-15
        assert sigma.max() <= 1 + 1e-15


@pytest.mark.parametrize("shape", [(3, 64, 128), (50, 20), (8, 8)])
@pytest.mark.parametrize("scale", [1e-4, 1e-2, 0.05])
def test_bjorck_near_orthonormal_converges_and_stays_below_one(shape, scale):
    """An orthonormal matrix plus a small update: singular values by numpy SVD within eps of
    1 and never above, in float32 and float64."""
    gen = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(*shape[:-2], max(shape[-2:]), min(shape[-2:]), generator=gen,
                                    dtype=torch.float64)).Q
    q = q if shape[-2] >= shape[-1] else q.mT
    w = q + scale / math.sqrt(max(shape[-2:])) * torch.randn(shape, generator=gen, dtype=torch.float64)
    for dtype, eps, tol in [(torch.float64, 1e-9, 1e-12), (torch.float32, 1e-6, 2e-6)]:
        result = N.bjorck_near_orthonormal(w.to(dtype), tol=eps, maxiter=20)
        assert result is not None
        out, steps = result
        assert 1 <= steps <= 5
        sv = np.linalg.svd(out.double().numpy(), compute_uv=False)
        assert np.abs(sv - 1).max() <= eps + tol
        assert sv.max() <= 1 + tol


def test_bjorck_near_orthonormal_declines_what_it_cannot_certify():
    torch.manual_seed(0)
    assert N.bjorck_near_orthonormal(torch.randn(20, 30)) is None  # far from orthonormal
    assert N.bjorck_near_orthonormal(2 * torch.eye(5)) is None  # sigma^2 - 1 = 3
    nan = torch.eye(5)
    nan[0, 0] = float("nan")
    assert N.bjorck_near_orthonormal(nan) is None  # bjorck_orthonormalize then raises
    with pytest.raises(ValueError, match="NaN"):
        N.bjorck_orthonormalize(nan)
    big = torch.linalg.qr(torch.randn(300, 300)).Q  # Gram wider than the Frobenius-bound limit
    assert N.bjorck_near_orthonormal(big) is None


# ---- Frobenius / spectral --------------------------------------------------------------------


def test_frobenius_normalize():
    w = torch.randn(2, 5, 7, dtype=torch.float64)
    out = N.frobenius_normalize(w)
    np.testing.assert_allclose(out.flatten(1).norm(dim=1).numpy(), 1.0)
    rows = N.frobenius_normalize(w, disjoint_neurons=True)
    np.testing.assert_allclose(rows.norm(dim=-1).numpy(), 1.0)


def test_spectral_normalize_is_sound_with_a_useless_vector():
    """A stale power-iteration vector orthogonal to the top singular vector (one step allowed)
    under-estimates sigma; the Cholesky certificate fails and the exact norm is used."""
    u_, s_, vt_ = np.linalg.svd(np.random.default_rng(1).standard_normal((8, 6)), full_matrices=False)
    s_ = np.array([10.0, 1.0, 0.9, 0.5, 0.2, 0.1])
    w = torch.tensor(u_ @ np.diag(s_) @ vt_, dtype=torch.float32)
    stale = torch.tensor(vt_[1], dtype=torch.float32)
    normalized, _, sigma = N.spectral_normalize(w, stale, tol=1e-3, maxiter=1)
    assert spectral_norm_np(normalized) <= 1 + 1e-6
    assert spectral_norm_np(normalized) >= 1 / (1 + 1e-3) - 1e-6


# ---- convolution coefficients ----------------------------------------------------------------


def orthonormal_tall_kernel(c_in, k, extra_out=0, seed=0):
    """A kernel whose reshaped matrix (c_out, c_in*k*k) has orthonormal columns."""
    cols = c_in * k * k
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(cols + extra_out, cols, generator=gen, dtype=torch.float64))
    return q.reshape(cols + extra_out, c_in, k, k)


@pytest.mark.parametrize("mode,padding", [("zeros", 1), ("zeros", 2), ("zeros", 0), ("reflect", 1),
                                          ("replicate", 1), ("replicate", 2), ("circular", 1)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [4, 5, 8])
def test_count_bound_is_attained_by_orthonormal_tall_kernels(mode, padding, stride, size):
    """For a kernel with orthonormal reshaped columns the conv's operator norm equals the count
    bound for that input size (dense Jacobian), and never exceeds the all-sizes bound."""
    k = 3
    kernel = orthonormal_tall_kernel(1, k)
    conv = torch.nn.Conv2d(1, k * k, k, stride=stride, padding=padding, padding_mode=mode, bias=False)
    conv = conv.double()
    with torch.no_grad():
        conv.weight.copy_(kernel)
    exact = spectral_norm_np(jacobian_matrix(conv, torch.zeros(1, 1, size, size, dtype=torch.float64)))
    at_size = N.conv_count_bound(k, stride, padding, 1, mode, input_size=size)
    assert exact == pytest.approx(at_size, rel=1e-9)
    assert exact <= N.conv_count_bound(k, stride, padding, 1, mode) * (1 + 1e-12)


def test_count_bound_equals_deel_for_zero_padding_and_is_valid_with_dilation():
    for k in range(1, 6):
        for s in (1, 2, 3):
            assert N.conv_coefficient(k, s, k // 2) == pytest.approx(N.deel_conv_coefficient(k, s))
    kernel = orthonormal_tall_kernel(2, 3)
    conv = torch.nn.Conv2d(2, 18, 3, padding=2, dilation=2, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(kernel)
    exact = spectral_norm_np(jacobian_matrix(conv, torch.zeros(1, 2, 9, 9, dtype=torch.float64)))
    assert exact <= N.conv_count_bound(3, 1, 2, 2) * (1 + 1e-12)


def test_deel_lip_input_size_coefficient_is_not_a_bound():
    """The counterexample to deel-lip's coefficient, reproduced: deel-lip's average-count coefficient lets a 3x3 conv
    with an orthonormal tall kernel exceed 1 on small inputs; lipot's coefficient does not."""

    def deel_lip_coefficient(k, h, w):
        kd = (k - 1) / 2
        return math.sqrt(h * w / ((k * h - kd * (kd + 1)) * (k * w - kd * (kd + 1))))

    kernel = orthonormal_tall_kernel(1, 3)
    for size, expected in ((4, 1.20), (8, 1.09)):
        conv = torch.nn.Conv2d(1, 9, 3, padding=1, bias=False).double()
        with torch.no_grad():
            conv.weight.copy_(kernel * deel_lip_coefficient(3, size, size))
        norm = spectral_norm_np(jacobian_matrix(conv, torch.zeros(1, 1, size, size, dtype=torch.float64)))
        assert norm == pytest.approx(expected, abs=0.01)
        with torch.no_grad():
            conv.weight.copy_(kernel * N.conv_coefficient(3, 1, 1))
        norm = spectral_norm_np(jacobian_matrix(conv, torch.zeros(1, 1, size, size, dtype=torch.float64)))
        assert norm <= 1 + 1e-12


def test_count_bound_rejects_bad_arguments():
    with pytest.raises(ValueError, match="padding_mode"):
        N.conv_count_bound(3, padding=1, padding_mode="symmetric")
    with pytest.raises(ValueError, match="same"):
        N.conv_count_bound(3, stride=2, padding="same")
    with pytest.raises(ValueError, match="kernel_size"):
        N.conv_count_bound(0)


@pytest.mark.parametrize("call", [
    lambda w: N.power_iteration(w, eps=1e-6),
    lambda w: N.spectral_normalize(w, eps=1e-6),
    lambda w: N.bjorck_orthonormalize(w / 10, eps=1e-6),
])
def test_the_former_tolerance_keyword_still_works_with_a_warning(call):
    with pytest.warns(DeprecationWarning, match=r"\(eps=\.\.\.\) is renamed tol="):
        call(torch.randn(5, 4, dtype=torch.float64))
