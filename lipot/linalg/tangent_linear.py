r"""A dense layer at an orthonormal weight whose backward pass gives the weight the *tangent*
gradient (the polar factor's derivative), computed from the batch instead of the weight.

For :math:`y = s\,X Q^\top + b` with :math:`Q \in \mathbb R^{m \times n}` orthonormal
(:math:`Q^\top Q = I` when :math:`m \ge n`, :math:`Q Q^\top = I` otherwise) and the output
gradient :math:`\Delta`, the gradient of the loss with respect to :math:`Q` is
:math:`G = s\,\Delta^\top X`. The layers of :mod:`lipot.nn` use :math:`\mathrm{polar}(W)` of a
raw weight kept orthonormal, so the weight receives the derivative of the polar factor at
:math:`Q`, the projection of :math:`G` onto the tangent space of the orthonormal matrices
(:func:`lipot.linalg.bjorck.polar_tangent_vjp`):

.. math::
    P(G) = G - \tfrac12 Q (Q^\top G + G^\top Q) \quad (m \ge n), \qquad
    P(G) = G - \tfrac12 (G Q^\top + Q G^\top) Q \quad (m < n).

Computed on the weight this costs two products of size :math:`m n \min(m, n)`. With the input
gradient :math:`g = s\,\Delta Q` (needed anyway) and the output without bias
:math:`y_0 = X Q^\top` (known from the forward pass), the same matrix is

.. math::
    P(G) = (s\Delta - \tfrac12\, g Q^\top)^\top X - \tfrac12\, y_0^\top g \quad (m \ge n),
    \qquad
    P(G) = s\,\Delta^\top (X - \tfrac12\, y_0 Q) - \tfrac12\, y_0^\top g \quad (m < n),

since :math:`Q^\top G = g^\top X`, :math:`G^\top Q = X^\top g`, :math:`Q X^\top = y_0^\top`
and :math:`G Q^\top = s\,\Delta^\top y_0`. That is two extra products of size :math:`N m n` for
a batch of :math:`N` rows: cheaper whenever :math:`N < \min(m, n)` (a batch of 256 through a
1024-wide layer: a quarter of the cost). :func:`tangent_linear` takes whichever is cheaper.

Reference: Absil, Mahony & Sepulchre, *Optimization Algorithms on Matrix Manifolds* (2008),
§3.6 (the Riemannian gradient on the Stiefel manifold is the tangent projection of the Euclidean
gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .bjorck import polar_tangent_vjp

__all__ = ["tangent_linear"]


def _batch_tangent(q: Tensor, x: Tensor, delta: Tensor, y0: Tensor, g: Tensor, scale: float) -> Tensor:
    """``P(G)`` from the batch (module docstring): ``q`` (K, m, n), ``x`` (K, N, n), ``delta``
    and ``y0`` (K, N, m), ``g`` (K, N, n)."""
    if q.shape[-2] >= q.shape[-1]:
        left = torch.baddbmm(delta, g, q.mT, beta=scale, alpha=-0.5)  # s delta - g Q^T / 2
        return torch.baddbmm(left.mT @ x, y0.mT, g, alpha=-0.5)
    right = torch.baddbmm(x, y0, q, alpha=-0.5)  # X - y0 Q / 2
    return torch.baddbmm((delta.mT @ right) * scale, y0.mT, g, alpha=-0.5)


class _TangentLinear(torch.autograd.Function):
    """``y = s x Q^T + b`` per group; backward: the input, bias and tangent weight gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, q: Tensor, bias: Tensor | None, scale: float) -> Tensor:  # type: ignore[override]
        y0 = x @ q.mT  # (K, N, m)
        ctx.scale = scale
        ctx.save_for_backward(x, q, y0)
        out = y0 * scale if scale != 1.0 else y0.clone()
        return out if bias is None else out + bias[:, None, :]

    @staticmethod
    @once_differentiable
    def backward(ctx, delta: Tensor):  # type: ignore[override]
        x, q, y0 = ctx.saved_tensors
        s = ctx.scale
        g = (delta @ q) * s  # (K, N, n): the input gradient
        rows, (m, n) = x.shape[-2], q.shape[-2:]
        xs = x.expand(q.shape[0], -1, -1)
        if rows < min(m, n):
            grad_q = _batch_tangent(q, xs, delta, y0, g, s)
        else:
            grad_q = polar_tangent_vjp(q, (delta.mT @ xs) * s)
        grad_x = g if x.shape[0] == q.shape[0] else g.sum(0, keepdim=True)
        grad_b = delta.sum(-2) if ctx.needs_input_grad[2] else None
        return grad_x, grad_q, grad_b, None


def tangent_linear(x: Tensor, q: Tensor, bias: Tensor | None = None, scale: float = 1.0) -> Tensor:
    r"""``scale * x @ q.mT + bias`` for K stacked orthonormal matrices, with the tangent gradient
    for ``q`` (module docstring): the gradient of ``polar(W)`` at ``W = q``, at the cost of two
    batch-sized products when the batch is smaller than the matrices.

    Args:
        x: ``(K, N, n)`` inputs, or ``(1, N, n)`` shared by the K matrices.
        q: ``(K, m, n)`` matrices with orthonormal columns (``m >= n``) or rows (``m < n``), to
            the accuracy the gradient should have.
        bias: ``(K, m)`` or ``None``.
        scale: the factor :math:`s` of the effective weight :math:`s\,Q`.

    Returns:
        ``(K, N, m)``.

    Example:
        >>> q = torch.linalg.qr(torch.randn(1, 6, 4)).Q.requires_grad_()
        >>> x = torch.randn(1, 3, 4)
        >>> lipot.linalg.tangent_linear.tangent_linear(x, q).sum().backward()
        >>> g = torch.ones(1, 3, 6).mT @ x                         # the plain gradient
        >>> p = g - 0.5 * q @ (q.mT @ g + g.mT @ q)                # its tangent projection
        >>> torch.allclose(q.grad, p.detach(), atol=1e-5)
        True
    """
    return _TangentLinear.apply(x, q, bias, float(scale))
