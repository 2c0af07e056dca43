"""``lipot.linalg.tangent_linear``: the output of ``s x Q^T + b`` and, in the backward pass, the
input and bias gradients and the tangent projection of the weight gradient, computed from the
batch (batch smaller than the matrix) or on the weight, checked against numpy in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipot.linalg.tangent_linear import tangent_linear


def _orthonormal(k: int, m: int, n: int, rng: np.random.Generator) -> np.ndarray:
    q = np.stack([np.linalg.qr(rng.normal(size=(max(m, n), min(m, n))))[0] for _ in range(k)])
    return q if m >= n else q.transpose(0, 2, 1)


def _tangent(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    if q.shape[0] >= q.shape[1]:
        return g - 0.5 * q @ (q.T @ g + g.T @ q)
    return g - 0.5 * (g @ q.T + q @ g.T) @ q


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5)])
@pytest.mark.parametrize("rows", [2, 12])  # below min(m, n): from the batch; above: on the weight
@pytest.mark.parametrize("members, shared", [(1, False), (3, False), (3, True)])
def test_outputs_and_gradients_match_numpy(shape, rows, members, shared):
    m, n = shape
    rng = np.random.default_rng(0)
    q = _orthonormal(members, m, n, rng)
    x = rng.normal(size=(1 if shared else members, rows, n))
    b = rng.normal(size=(members, m))
    w = rng.normal(size=(members, rows, m))  # the loss is sum(w * out)
    s = 1.7
    qt, xt, bt = (torch.tensor(a, requires_grad=True) for a in (q, x, b))
    out = tangent_linear(xt, qt, bt, s)
    (out * torch.tensor(w)).sum().backward()
    xs = np.broadcast_to(x, (members, rows, n))
    np.testing.assert_allclose(out.detach().numpy(), s * xs @ q.transpose(0, 2, 1) + b[:, None], atol=1e-12)
    for k in range(members):
        np.testing.assert_allclose(qt.grad[k].numpy(), _tangent(q[k], s * w[k].T @ xs[k]), atol=1e-12)
    grad_x = s * w @ q
    np.testing.assert_allclose(xt.grad.numpy(), grad_x.sum(0, keepdims=True) if shared else grad_x, atol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), w.sum(1), atol=1e-12)


def test_no_bias():
    q = torch.linalg.qr(torch.randn(1, 6, 4, dtype=torch.float64)).Q.requires_grad_()
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    out = tangent_linear(x, q)
    out.sum().backward()
    assert out.shape == (1, 3, 6) and q.grad.shape == q.shape
