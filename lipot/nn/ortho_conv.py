r"""Exactly orthogonal convolutions: :class:`OrthoConv2d` and :class:`OrthoConvTranspose2d`.

The kernel is *built* from orthonormal factors, each kept orthonormal by the shared
:class:`lipot.nn.parametrization.LipschitzWeight` (Björck with in-place re-projection and the
exact polar backward), then composed by kernel convolution (BCOP, Li et al., arXiv:1911.00937;
AOC, Boissin et al., arXiv:2501.07930):

.. math::
    K = R \circledast B(P_1) \circledast \dots \circledast B(P_n), \qquad
    B(P) = [\,P,\; I - P\,] \text{ along one spatial axis}, \quad P = U U^\top,

* :math:`R` is an orthonormal matrix (rows or columns) reshaped to an
  :math:`e_1 \times e_2` kernel with :math:`e_d = \min(k_d, s_d)`: for stride 1 a 1×1 conv, for
  stride :math:`s` the :math:`s \times s` stride-:math:`s` "reshaped kernel" (RKO) conv, which
  reads disjoint windows and is therefore exactly (co-)isometric;
* each :math:`B(P)` is a two-tap block on one axis with a symmetric projector
  :math:`P = U U^\top` (:math:`U` with orthonormal columns, rank :math:`\lceil c/2\rceil`). Its
  symbol :math:`P + (I - P)\,z` is unitary on the unit circle, so its circular convolution is
  orthogonal; there are :math:`k_d - e_d` of them per axis, which makes the kernel
  :math:`k_1 \times k_2`.

The blocks act on the input channels (applied before :math:`R`), except for stride 1 with
more output than input channels, where they act on the output channels (after :math:`R`).
Composing a block adds one tap: :math:`K'[t] = K[t-1] (I - P) + K[t]\,P`, one thin matrix
product and two pads. Inference is one plain ``conv2d`` with the cached effective kernel.

What is guaranteed (:math:`N` input size, :math:`s` stride, per axis):

* **circular padding** with output size :math:`\times s \le N` (checked at every forward):
  the layer is a crop of an orthogonal block-circulant operator, so it is
  ``k_coef_lip``-Lipschitz; with :math:`N = s \cdot` output size and kernel :math:`\ge`
  stride it is exactly ``k_coef_lip`` times an isometry (:math:`c_{out} \ge c_{in} s^2`) or a
  co-isometry (otherwise): every singular value equals ``k_coef_lip``. (Wider outputs would
  read pixels twice and are refused.)
* **zero padding**: a crop of a circular convolution on a larger torus: ``k_coef_lip``-Lipschitz
  on every input size, orthogonal away from the border.
* **reflect / replicate padding**: the padding copies pixels; the kernel is divided by
  :func:`lipot.normalizers.padding_copy_bound` (sound, not gradient-norm preserving).

Soundness does not rest on the factors being exactly orthonormal: :math:`\lVert R\rVert \le 1`
and :math:`0 \preceq P \preceq I` (true for any :math:`\lVert U\rVert \le 1`, which Björck
guarantees) already make every factor a contraction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import _checks
from ..normalizers import (
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK_ORTHO,
    DEFAULT_EPS_SPECTRAL,
    DEFAULT_MAXITER_BJORCK,
    DEFAULT_MAXITER_SPECTRAL,
)
from .conv import (
    _check_conv_settings,
    _ConvMixin,
    _TorusConvMixin,
    _TransposedConvMixin,
    copy_coefficient,
)
from .cached import CachedWeight
from .parametrization import LipschitzWeight, check_weight_dtype

__all__ = ["OrthoConv2d", "OrthoConvTranspose2d", "OrthogonalKernel", "compose_projector_block"]


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
    before = [0, 0] * (5 - axis)  # F.pad lists (left, right) widths from the last axis backwards
    early, late = before[:-2] + [1, 0], before[:-2] + [0, 1]
    return F.pad(kernel - b, early) + F.pad(b, late)


def _wide(shape: tuple[int, int]) -> tuple[int, int]:
    return (min(shape), max(shape))


class _KernelPlan:
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

    def _bases(self, q: Tensor) -> Tensor:
        """The ``(bases, r, c)`` matrices :math:`U^\top` on the diagonals of the basis slots:
        the top-left ``(j r, j c)`` corner of a slot viewed as ``(j, r, j, c)``, whose diagonal
        over the two ``j`` axes holds the ``j`` blocks."""
        j, r, c = self.per_slot, self.rank, self.block_channels
        diag = q[self.groups:, :j * r, :j * c].unflatten(2, (j, c)).unflatten(1, (j, r))
        bases = torch.diagonal(diag, dim1=1, dim2=3).permute(0, 3, 1, 2).reshape(-1, r, c)
        return bases[:self.bases]

    def compose(self, packed: Tensor) -> Tensor:
        """The kernel ``(g c_out_g, c_in_g, k_1, k_2)`` from the orthonormalized packed factors.

        The composition runs in the layout ``(g, k_1, k_2, other channels, block channels)``
        (see :func:`compose_projector_block`). :math:`R`'s columns are read in the order
        ``(e_1, e_2, c_in)``; for blocks on the output side (:math:`e = 1`) the stored
        :math:`R^\top` is read as ``(1, 1, c_in, c_out)`` directly. The final kernel is permuted
        once to the ``conv2d`` layout.
        """
        q = packed.view(self.count, self.rows, self.cols)
        m, n = _wide(self.r_shape)
        r = q[:self.groups, :m, :n]
        e1, e2 = self.extent
        if self.side == "out":  # R is tall (c_out_g > c_in_g) and stored as R^T: (c_in, c_out)
            kernel = r.reshape(self.groups, 1, 1, self.in_g, self.out_g)
            back = (0, 4, 3, 1, 2)
        else:
            if self.r_shape[0] > self.r_shape[1]:
                r = r.mT
            kernel = r.reshape(self.groups, self.out_g, e1, e2, self.in_g).permute(0, 2, 3, 1, 4)
            back = (0, 3, 4, 1, 2)
        if self.axes:
            kernel = kernel.contiguous()
            ut = self._bases(q)  # U^T, (blocks * g, r, c)
            projectors = torch.bmm(ut.mT, ut).view(len(self.axes), self.groups, *ut.shape[-1:] * 2)
            for projector, axis in zip(projectors.unbind(0), self.axes):
                kernel = compose_projector_block(kernel, projector, axis)
        kernel = kernel.permute(back).contiguous()  # conv2d is slow on a permuted weight
        return kernel.view(self.groups * self.out_g, self.in_g, *self.kernel)


class OrthogonalKernel(CachedWeight):
    """Parametrization ``packed factors -> k_coef_lip * coefficient * K(R, U)`` registered on a
    conv's ``weight`` (the original is the packed factor tensor of :class:`_KernelPlan`).

    The packed factors go through one :class:`LipschitzWeight` (``method="bjorck"``, one matrix
    per factor): in training mode they are re-projected in place onto the orthonormal matrices,
    and the backward pass is the exact polar derivative. When no gradient is needed the composed
    kernel is cached until the factors change (:class:`CachedWeight`).
    """

    def __init__(self, plan: _KernelPlan, k_coef_lip: float, coefficient: float, device=None,
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


def _check_eps(eps_bjorck) -> float:
    if eps_bjorck is None:
        raise ValueError(
            "eps_bjorck=None (spectral normalization only) is not available for orthogonal "
            "convolutions: their factors must be orthonormal; use SpectralConv2d for that mode"
        )
    return _checks.positive_float("eps_bjorck", eps_bjorck)


class _OrthoConvMixin(_ConvMixin):
    """Registration of the orthogonal kernel (``k_coef_lip``, the eval cache and export come
    from :class:`LipschitzWeightLayer`, through the kernel parametrization)."""

    _coefficient = staticmethod(copy_coefficient)

    def _init_ortho(self, rows: int, cols_per_group: int, padding, k_coef_lip: float,
                    bjorck: dict, device, dtype) -> None:
        coefficient = self._setup_conv(padding)
        check_weight_dtype(self.weight.dtype)
        self._init_lipschitz(k_coef_lip)
        plan = _KernelPlan(rows, cols_per_group, tuple(self.kernel_size), tuple(self.stride), self.groups)
        param = OrthogonalKernel(plan, self._k_coef_lip, coefficient, device, dtype, **bjorck)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()
        nn.utils.parametrize.register_parametrization(self, "weight", param)


def _bjorck_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck) -> dict:
    return dict(eps_spectral=eps_spectral, maxiter_spectral=maxiter_spectral,
                eps_bjorck=_check_eps(eps_bjorck), maxiter_bjorck=maxiter_bjorck,
                beta_bjorck=beta_bjorck)


_ORTHO_ARGS_DOC = """
    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as the torch.nn layer (stride and dilation cannot both
            exceed 1).
        k_coef_lip: Lipschitz factor (every singular value equals it where the layer is
            orthogonal).
        eps_spectral, maxiter_spectral: power iteration that pre-scales each factor.
        eps_bjorck, maxiter_bjorck, beta_bjorck: Björck accuracy of each orthonormal factor
            (default 1e-6: float32 accuracy), iteration limit, step (only 0.5 is accepted).

    References:
        Li et al., *Preventing gradient attenuation in Lipschitz constrained convolutional
        networks* (BCOP), arXiv:1911.00937; Boissin et al., *An adaptive orthogonal convolution
        scheme* (AOC), arXiv:2501.07930.
"""


class OrthoConv2d(_OrthoConvMixin, _TorusConvMixin, nn.Conv2d):
    __doc__ = (
        r"""``torch.nn.Conv2d`` with an exactly orthogonal kernel (times ``k_coef_lip``).

    Gradient-norm preserving where :class:`SpectralConv2d` cannot be: with circular padding,
    stride 1 and ``in_channels == out_channels`` every singular value of the layer is
    ``k_coef_lip``; see the module docstring for strides, other channel counts and paddings.
    With ``kernel_size < stride`` some pixels are never read (sound, not orthogonal).
    """
        + _ORTHO_ARGS_DOC
    )

    _plain_class = nn.Conv2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        k_coef_lip: float = 1.0,
        eps_spectral: float = DEFAULT_EPS_SPECTRAL,
        eps_bjorck: float = DEFAULT_EPS_BJORCK_ORTHO,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
        device=None,
        dtype=None,
    ) -> None:
        _check_conv_settings(self.layer_name, padding_mode, (1,), (1,))
        bjorck = _bjorck_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck)
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device=device, dtype=dtype,
        )
        self._init_ortho(out_channels, in_channels // groups, padding, k_coef_lip, bjorck, device, dtype)


class OrthoConvTranspose2d(_OrthoConvMixin, _TransposedConvMixin, nn.ConvTranspose2d):
    __doc__ = (
        r"""``torch.nn.ConvTranspose2d`` whose kernel is that of an orthogonal convolution from
    ``out_channels`` to ``in_channels``: the layer is its adjoint, with the same singular values
    (an isometry where the convolution is a co-isometry, e.g. the up-sampling adjoint of a
    stride-2 :class:`OrthoConv2d`). Only zero padding exists for transposed convolutions in
    torch: ``k_coef_lip``-Lipschitz on every input size, orthogonal away from the border.
    """
        + _ORTHO_ARGS_DOC
    )

    _plain_class = nn.ConvTranspose2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        k_coef_lip: float = 1.0,
        eps_spectral: float = DEFAULT_EPS_SPECTRAL,
        eps_bjorck: float = DEFAULT_EPS_BJORCK_ORTHO,
        *,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
    ) -> None:
        self._check_padding(padding)
        bjorck = _bjorck_kwargs(eps_spectral, eps_bjorck, maxiter_spectral, maxiter_bjorck, beta_bjorck)
        nn.ConvTranspose2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, output_padding,
            groups, bias, dilation, padding_mode, device=device, dtype=dtype,
        )
        self._init_ortho(in_channels, out_channels // groups, padding, k_coef_lip, bjorck, device, dtype)
