r"""The orthogonal kernel of :class:`lipot.nn.OrthoConv2d`: its factors, their composition and
the parametrization that builds it.

.. math::
    K = R \circledast B(P_1) \circledast \dots \circledast B(P_n), \qquad
    B(P) = [\,P,\; I - P\,] \text{ along one spatial axis}, \quad P = U U^\top

(BCOP, Li et al., arXiv:1911.00937; AOC, Boissin et al., arXiv:2501.07930; see
:mod:`lipot.nn.ortho_conv` for what the layer guarantees). :math:`R` and the bases :math:`U`
are orthonormal matrices packed into one raw tensor (:class:`KernelPlan`) and kept orthonormal
by the shared :class:`lipot.nn.parametrization.LipschitzWeight`.

Training speed: in eager training mode the raw factors have just been re-projected onto the
orthonormal matrices, so the kernel's gradient is the composition's vector-Jacobian product
followed by the exact polar derivative at those factors
(:func:`lipot.linalg.normalizers.polar_tangent_vjp`). ``_ComposeAtOrthonormal`` computes the
composition once without recording a graph and applies that backward by hand: the same
gradient as autograd through :meth:`KernelPlan.compose` and
:func:`lipot.linalg.normalizers.polar_tangent`, with fewer tensor operations and no autograd
nodes for the many small products (in such a chain of small products the per-operation
overhead, not the arithmetic, sets the cost). Everywhere else
(``torch.compile``, ``torch.func`` transforms, evaluation) autograd runs through the same
:meth:`KernelPlan.compose`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import _checks
from .._transforms import is_compiling
from ..linalg.normalizers import polar_tangent, polar_tangent_vjp
from .cached import CachedWeight
from .parametrization import LipschitzWeight

__all__ = ["OrthogonalKernel", "KernelPlan", "compose_projector_block"]


def _pads(axis: int) -> tuple[list[int], list[int]]:
    """``F.pad`` widths adding one tap before / after ``axis`` of a 5-D kernel (``F.pad`` lists
    (left, right) widths from the last axis backwards)."""
    before = [0, 0] * (5 - axis)
    return before[:-2] + [1, 0], before[:-2] + [0, 1]


def compose_projector_block(kernel: Tensor, projector: Tensor, axis: int) -> Tensor:
    r"""Compose a kernel with the two-tap block :math:`[P, I - P]` along one spatial axis.

    Args:
        kernel: ``(g, k_1, k_2, a, c)`` per-group kernels, spatial axes first and the channels
            the block acts on last (input channels when it is applied before the kernel, output
            channels after): the taps are then contiguous blocks, which pads copy fast.
        projector: ``(g, c, c)``, symmetric :math:`P = U U^\top`.
        axis: 1 (height) or 2 (width) of ``kernel``.

    Returns:
        the composed kernel, one tap longer on ``axis``:
        :math:`K'[t] = K[t-1] (I - P) + K[t] P` with :math:`K[-1] = K[k] = 0` (:math:`P` is
        symmetric, so the same formula serves both sides), computed as :math:`B = K P`,
        :math:`K' = \mathrm{shift}(K - B) + B`: one batched product and two pads (whose
        backward passes are views).
    """
    b = torch.bmm(kernel.flatten(1, 3), projector).view(kernel.shape)
    early, late = _pads(axis)
    return F.pad(kernel - b, early) + F.pad(b, late)


def _compose_projector_block_inplace(kernel: Tensor, projector: Tensor, axis: int) -> Tensor:
    """:func:`compose_projector_block` without a graph: the same values (the same floating-point
    operations, in the same order) in three kernels instead of a pad's fill and copy twice."""
    b = torch.bmm(kernel.flatten(1, 3), projector).view(kernel.shape)
    n = kernel.shape[axis]
    shape = list(kernel.shape)
    shape[axis] = n + 1
    out = kernel.new_empty(shape)
    torch.sub(kernel, b, out=out.narrow(axis, 1, n))
    out.narrow(axis, 0, 1).zero_()
    out.narrow(axis, 0, n).add_(b)
    return out


def _projector_block_vjp(kernel: Tensor, projector: Tensor, axis: int, grad: Tensor) -> tuple[Tensor, Tensor]:
    r"""The vector-Jacobian product of :func:`compose_projector_block`.

    With :math:`K' = \mathrm{shift}(K - B) + B`, :math:`B = K P` and :math:`G` the gradient of
    :math:`K'`: the later taps :math:`G_\uparrow = G[1:]` reach :math:`K - B`, the earlier
    :math:`G_\downarrow = G[:-1]` reach :math:`B`; with :math:`D = G_\downarrow - G_\uparrow`,

    .. math::
        \partial K = G_\uparrow + D P^\top, \qquad \partial P = K^\top D

    (each product batched over groups, taps and the other channels).

    Returns:
        ``(grad of kernel, grad of projector)``.
    """
    n = kernel.shape[axis]
    later, earlier = grad.narrow(axis, 1, n), grad.narrow(axis, 0, n)
    d = earlier - later
    d_flat = d.flatten(1, 3)
    d_projector = torch.bmm(kernel.flatten(1, 3).mT, d_flat)
    d_kernel = torch.bmm(d_flat, projector.mT).view(d.shape).add_(later)
    return d_kernel, d_projector


def _wide(shape: tuple[int, int]) -> tuple[int, int]:
    return (min(shape), max(shape))


def _inverse(permutation: tuple[int, ...]) -> tuple[int, ...]:
    inverse = [0] * len(permutation)
    for i, p in enumerate(permutation):
        inverse[p] = i
    return tuple(inverse)


class KernelPlan:
    r"""Shapes of the factors of an orthogonal kernel ``(c_out, c_in_g, k_1, k_2)`` and their
    packing into one raw tensor.

    The factors are :math:`R` (per group, ``(c_out_g, c_in_g e_1 e_2)``) and the projector
    bases :math:`U_b^\top` (per block and group, ``(r, c)``). They are stored *wide* (transposed
    if tall) in the slots of a ``(count, M, N)`` tensor: one slot per :math:`R`,
    :math:`[[R, 0], [0, I]]`, and the bases ``per_slot`` at a time on the diagonal,
    :math:`[[U_1^\top, 0, 0], [0, U_2^\top, 0], [0, 0, I]]`. The polar factor of a block-diagonal
    matrix is the block-diagonal matrix of the polar factors, and the identity rows are a fixed
    point of Björck that gets exactly zero gradient (the polar derivative is block diagonal)
    while keeping the slot's Gram matrix full rank. So one batched Björck, one polar backward and
    one optimizer tensor serve every factor of the layer; ``per_slot`` is chosen to minimize
    the batched products' cost, :math:`\text{count} \cdot M^2 N`.
    """

    def __init__(self, out_channels: int, in_per_group: int, kernel: tuple[int, int],
                 stride: tuple[int, int], groups: int) -> None:
        self.groups = groups
        self.out_g = out_channels // groups
        self.in_g = in_per_group
        self.kernel = kernel
        self.extent = tuple(min(k, s) for k, s in zip(kernel, stride))
        blocks = [k - e for k, e in zip(kernel, self.extent)]
        # alternate height and width blocks (axes 1 and 2 of the (g, k_1, k_2, a, c) kernel)
        self.axes: list[int] = []
        for i in range(max(blocks)):
            self.axes += [1] * (i < blocks[0]) + [2] * (i < blocks[1])
        self.side = "out" if all(s == 1 for s in stride) and self.out_g > self.in_g else "in"
        self.block_channels = self.out_g if self.side == "out" else self.in_g
        self.rank = math.ceil(self.block_channels / 2)
        self.r_shape = (self.out_g, self.in_g * self.extent[0] * self.extent[1])
        self.bases = groups * len(self.axes)
        self.per_slot, self.rows, self.cols = min(
            (self._layout(j) for j in range(1, self.bases + 1)),
            key=lambda layout: self._cost(*layout), default=self._layout(1),
        )
        self.count = groups + -(-self.bases // self.per_slot)
        # the composition runs in the layout (g, k_1, k_2, other channels, block channels);
        # ``back`` permutes it to (g, c_out_g, c_in_g, k_1, k_2)
        self.back = (0, 4, 3, 1, 2) if self.side == "out" else (0, 3, 4, 1, 2)
        self.forth = _inverse(self.back)  # (g, c_out_g, c_in_g, k_1, k_2) -> working layout

    def _layout(self, per_slot: int) -> tuple[int, int, int]:
        """``(per_slot, rows, cols)`` of the slots holding ``per_slot`` bases each."""
        m, n = _wide(self.r_shape)
        r, c = self.rank, self.block_channels
        rows = max(m, per_slot * r)
        cols = max(n + rows - m, per_slot * c + rows - per_slot * r)
        return per_slot, rows, cols

    def _cost(self, per_slot: int, rows: int, cols: int) -> int:
        return (self.groups + -(-self.bases // per_slot)) * rows * rows * cols

    def _slot(self, blocks: list[Tensor]) -> Tensor:
        """``diag(A_1, ..., A_j, I)`` of shape ``(rows, cols)`` for wide ``A_i``."""
        slot = blocks[0].new_zeros(self.rows, self.cols)
        m = n = 0
        for a in blocks:
            slot[m:m + a.shape[0], n:n + a.shape[1]] = a
            m, n = m + a.shape[0], n + a.shape[1]
        slot[m:, n:n + self.rows - m] = torch.eye(self.rows - m, dtype=slot.dtype, device=slot.device)
        return slot

    @staticmethod
    def _orthogonal(shape: tuple[int, int], device, dtype) -> Tensor:
        a = torch.empty(shape, device=device, dtype=dtype)
        return nn.init.orthogonal_(a)

    def initial(self, device, dtype) -> Tensor:
        """Random orthonormal factors, packed: ``(count * rows, cols)``."""
        slots = [self._slot([self._orthogonal(_wide(self.r_shape), device, dtype)])
                 for _ in range(self.groups)]
        bases = [self._orthogonal((self.rank, self.block_channels), device, dtype)
                 for _ in range(self.bases)]
        slots += [self._slot(bases[i:i + self.per_slot]) for i in range(0, self.bases, self.per_slot)]
        return torch.stack(slots).reshape(self.count * self.rows, self.cols)

    def _diagonal(self, q: Tensor) -> Tensor:
        """The ``(slots, j, r, c)`` view of the basis blocks on the diagonals of the basis
        slots: the top-left ``(j r, j c)`` corner of a slot viewed as ``(j, r, j, c)``, whose
        diagonal over the two ``j`` axes holds the ``j`` blocks."""
        j, r, c = self.per_slot, self.rank, self.block_channels
        corner = q[self.groups:, :j * r, :j * c].unflatten(2, (j, c)).unflatten(1, (j, r))
        return torch.diagonal(corner, dim1=1, dim2=3).permute(0, 3, 1, 2)

    def _bases(self, q: Tensor) -> Tensor:
        r"""The ``(bases, r, c)`` matrices :math:`U^\top` (block-major, then group)."""
        return self._diagonal(q).reshape(-1, self.rank, self.block_channels)[:self.bases]

    def _projectors(self, ut: Tensor) -> Tensor:
        r""":math:`P = U U^\top` for every block and group: ``(blocks, g, c, c)``."""
        c = self.block_channels
        return torch.bmm(ut.mT, ut).view(len(self.axes), self.groups, c, c)

    def _r_slot_kernel(self, q: Tensor) -> Tensor:
        r"""A view of the :math:`R` slots of ``q`` as a kernel in the working layout
        ``(g, e_1, e_2, a, c)`` (to read :math:`R`, or to write its gradient). Its columns are
        read in the order ``(e_1, e_2, c_in)``; for blocks on the output side (:math:`e = 1`)
        the stored :math:`R^\top` is read as ``(1, 1, c_in, c_out)`` directly."""
        m, n = _wide(self.r_shape)
        r = q[:self.groups, :m, :n]
        if self.side == "out":  # R is tall (c_out_g > c_in_g) and stored as R^T: (c_in, c_out)
            return r.unflatten(1, (1, 1, self.in_g))
        if self.r_shape[0] > self.r_shape[1]:
            r = r.mT
        e1, e2 = self.extent
        return r.unflatten(-1, (e1, e2, self.in_g)).permute(0, 2, 3, 1, 4)

    def compose(self, packed: Tensor, kept: list[Tensor] | None = None) -> Tensor:
        """The kernel ``(g c_out_g, c_in_g, k_1, k_2)`` from the orthonormalized packed factors
        (see :func:`compose_projector_block`); the final kernel is permuted once to the
        ``conv2d`` layout (``conv2d`` is slow on a permuted weight). ``kept``, if given, receives
        the intermediates :meth:`compose_vjp` needs: the bases, the projectors, then the kernel
        entering each block (nothing when there are no blocks)."""
        q = packed.view(self.count, self.rows, self.cols)
        kernel = self._r_slot_kernel(q)
        if self.axes:
            kernel = kernel.contiguous()
            ut = self._bases(q)
            projectors = self._projectors(ut)
            if kept is not None:
                kept += [ut, projectors]
            eager_no_grad = not torch.is_grad_enabled() and not is_compiling()
            block = _compose_projector_block_inplace if eager_no_grad else compose_projector_block
            for projector, axis in zip(projectors.unbind(0), self.axes):
                if kept is not None:
                    kept.append(kernel)
                kernel = block(kernel, projector, axis)
        kernel = kernel.permute(self.back).contiguous()
        return kernel.view(self.groups * self.out_g, self.in_g, *self.kernel)

    def compose_vjp(self, packed: Tensor, grad: Tensor, kept: list[Tensor] | None = None) -> Tensor:
        r"""The vector-Jacobian product of :meth:`compose` at ``packed``: the gradient, shaped
        like ``packed``, of :math:`\langle \mathrm{grad}, \mathrm{compose(packed)}\rangle`.

        ``kept``: the intermediates saved by :meth:`compose` (recomputed from ``packed`` when
        ``None``). The projectors' gradients go to the bases by
        :math:`\partial U^\top = U^\top (\partial P + \partial P^\top)`; the identity parts of
        the slots get zero.
        """
        if kept is None:
            kept = []
            self.compose(packed, kept)
        g = grad.view(self.groups, self.out_g, self.in_g, *self.kernel).permute(self.forth)
        d_packed = grad.new_zeros(self.count, self.rows, self.cols)
        if self.axes:
            ut, projectors, *block_inputs = kept
            d_projectors = []
            for i in reversed(range(len(self.axes))):
                g, dp = _projector_block_vjp(block_inputs[i], projectors[i], self.axes[i], g)
                d_projectors.append(dp)
            dp = torch.stack(d_projectors[::-1]).view(-1, *ut.shape[-1:] * 2)
            d_ut = torch.bmm(ut, dp + dp.mT)
            view = self._diagonal(d_packed)
            missing = view.shape[0] * view.shape[1] - self.bases
            if missing:
                d_ut = F.pad(d_ut, (0, 0, 0, 0, 0, missing))
            view.copy_(d_ut.view(view.shape))
        self._r_slot_kernel(d_packed).copy_(g)
        return d_packed.view(packed.shape)


class _ComposeAtOrthonormal(torch.autograd.Function):
    r"""``compose(Q)`` for packed factors :math:`Q` that are their own polar factor (just
    re-projected), with the backward ``polar_tangent_vjp(Q, compose_vjp(Q, G))``: the
    gradient autograd gives for ``compose(polar_tangent(Q))``, from a hand-written
    backward (module docstring).

    Higher derivatives equal those of the unfused path: under ``create_graph`` the backward
    recomputes the intermediate kernels from ``polar_tangent(Q)`` with autograd on instead of
    using the saved ones.
    """

    @staticmethod
    def forward(ctx, q: Tensor, plan: KernelPlan) -> Tensor:  # type: ignore[override]
        kept: list[Tensor] = []
        kernel = plan.compose(q, kept)
        ctx.plan = plan
        ctx.save_for_backward(q, *kept)
        return kernel

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        q, *kept = ctx.saved_tensors
        at = q
        if torch.is_grad_enabled():  # differentiable backward: rebuild the graph from q
            at, kept = polar_tangent(q), None
        d_q = ctx.plan.compose_vjp(at, grad, kept)
        return polar_tangent_vjp(q, d_q), None


class OrthogonalKernel(CachedWeight):
    """Parametrization ``packed factors -> k_coef_lip * coefficient * K(R, U)`` registered on a
    conv's ``weight`` (the original is the packed factor tensor of :class:`KernelPlan`).

    The packed factors go through one :class:`LipschitzWeight` (``method="bjorck"``, one matrix
    per factor): in training mode they are re-projected in place onto the orthonormal matrices,
    and the backward pass is the exact polar derivative (fused with the composition's backward
    in eager mode: ``_ComposeAtOrthonormal``). When no gradient is needed the composed
    kernel is cached until the factors change (:class:`CachedWeight`).
    """

    def __init__(self, plan: KernelPlan, k_coef_lip: float, coefficient: float, device=None,
                 dtype=None, **bjorck) -> None:
        super().__init__()
        self.plan = plan
        self.k_coef_lip = _checks.positive_float("k_coef_lip", k_coef_lip)
        self.coefficient = _checks.positive_float("coefficient", coefficient)
        initial = plan.initial(device, dtype)
        self.factors = LipschitzWeight(initial, "bjorck", groups=plan.count, **bjorck)
        self._initial: Tensor | None = initial
        self._cache: tuple[tuple, Tensor] | None = None

    def extra_repr(self) -> str:
        p = self.plan
        return (f"extent={p.extent}, blocks={len(p.axes)} on the {p.side}put side "
                f"(rank {p.rank} of {p.block_channels}), scale={self.scale:.6g}")

    def _compute(self, raw: Tensor) -> Tensor:
        q = self.factors.orthonormal_for_training(raw)
        if q is not None:
            return self._scaled(_ComposeAtOrthonormal.apply(q, self.plan))
        return self._scaled(self.plan.compose(self.factors(raw)))

    def right_inverse(self, weight: Tensor) -> Tensor:
        """At registration: the initial packed factors. Afterwards assigning a kernel is
        refused (an arbitrary kernel has no orthogonal factorization)."""
        if self._initial is None:
            raise ValueError(
                "the weight of an orthogonal convolution is built from orthonormal factors and "
                "cannot be assigned; load a state_dict of the same layer, or copy its factors "
                "(layer.parametrizations.weight.original)"
            )
        initial, self._initial = self._initial, None
        return initial
