r"""Pure tensor functions that constrain weights: power iteration, Björck orthonormalization,
Frobenius and AOL normalization, verified spectral normalization; the convolution correction
coefficients of :mod:`lipot.linalg.conv_coefficients` are re-exported here.

Everything here works on a matrix ``(m, n)`` or a batch of matrices ``(..., m, n)`` (one per
convolution group) and is device- and dtype-agnostic. The layers in :mod:`lipot.nn` call these
functions through a single parametrization (:class:`lipot.nn.parametrization.LipschitzWeight`).

Björck orthonormalization and the polar factor's derivative live in :mod:`lipot.linalg.bjorck`
(re-exported here, with their defaults); its module docstring states the soundness facts.

A successful Cholesky factorization of :math:`c^2 I - W^\top W` certifies
:math:`\sigma_{max}(W) \le c` (used by :func:`spectral_normalize`).

"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .. import _checks
from .._transforms import is_static as _static
from .bjorck import (  # re-exported: the public API of lipot.linalg.normalizers
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK,
    DEFAULT_EPS_BJORCK_ORTHO,
    DEFAULT_MAXITER_BJORCK,
    check_finite,
    gram_matrix,
    identity_like,
    bjorck_near_orthonormal,
    bjorck_retract,
    bjorck_orthonormalize,
    check_bjorck_beta,
    polar_tangent,
    polar_tangent_vjp,
)
from .conv_coefficients import (  # re-exported: the public API of lipot.linalg.normalizers
    conv_coefficient,
    conv_count_bound,
    deel_conv_coefficient,
    padding_copy_bound,
)

__all__ = [
    "DEFAULT_EPS_SPECTRAL",
    "DEFAULT_MAXITER_SPECTRAL",
    "DEFAULT_EPS_BJORCK",
    "DEFAULT_MAXITER_BJORCK",
    "DEFAULT_BETA_BJORCK",
    "DEFAULT_EPS_BJORCK_ORTHO",
    "power_iteration",
    "operator_power_iteration",
    "check_bjorck_beta",
    "bjorck_orthonormalize",
    "bjorck_near_orthonormal",
    "bjorck_retract",
    "polar_tangent",
    "polar_tangent_vjp",
    "frobenius_normalize",
    "aol_normalize",
    "spectral_normalize",
    "conv_count_bound",
    "conv_coefficient",
    "padding_copy_bound",
    "deel_conv_coefficient",
]

DEFAULT_EPS_SPECTRAL = 1e-3
DEFAULT_MAXITER_SPECTRAL = 10
# --------------------------------------------------------------------------------------------
# Power iteration
# --------------------------------------------------------------------------------------------


def operator_power_iteration(
    apply: Callable[[Tensor], Tensor],
    apply_adjoint: Callable[[Tensor], Tensor],
    u: Tensor,
    tol: float = DEFAULT_EPS_SPECTRAL,
    maxiter: int = DEFAULT_MAXITER_SPECTRAL,
    *,
    eps: float | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Power iteration on :math:`T^* T` for a linear operator :math:`T` given as two callables.

    Iterates :math:`u \leftarrow T^*T u / \lVert T^*T u \rVert` until the estimate
    :math:`\sigma = \lVert T u\rVert` changes by less than ``tol`` relatively (largest over the
    batch) or ``maxiter`` steps. (Stopping on the estimate rather than on the vector matters for
    near-orthonormal operators, whose top singular vector is ill-defined.) ``u`` has a leading
    batch dimension (one vector per independent operator). Returns ``(sigma, u)`` with
    :math:`\sigma = \lVert T u\rVert` — differentiable through ``apply``, with ``u`` detached —
    and the final unit vector.

    Any finite number of steps gives a **lower** estimate of :math:`\lVert T \rVert_2`; never use
    it alone as a bound.
    """
    tol = _checks.renamed("operator_power_iteration", "eps", "tol", eps, tol)
    if maxiter < 0:
        raise ValueError(f"maxiter must be >= 0, got {maxiter}")

    def sample_norms(v: Tensor) -> Tensor:
        return v.flatten(1).norm(dim=1).clamp_min(torch.finfo(v.dtype).tiny)

    def _unit(v: Tensor) -> Tensor:
        return v / sample_norms(v).view((-1,) + (1,) * (v.dim() - 1))

    with torch.no_grad():
        u = _unit(u)
        sigma = None
        for _ in range(maxiter):
            image = apply(u)
            new_sigma = sample_norms(image)
            u = _unit(apply_adjoint(image))
            if sigma is not None and not _static(image):
                change = ((new_sigma - sigma).abs() / new_sigma).max()
                if float(change) <= tol:
                    break
            sigma = new_sigma
    u = u.detach()
    sigma = apply(u).flatten(1).norm(dim=1)
    return sigma, u


def power_iteration(
    weight: Tensor,
    u: Tensor | None = None,
    tol: float = DEFAULT_EPS_SPECTRAL,
    maxiter: int = DEFAULT_MAXITER_SPECTRAL,
    *,
    eps: float | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Largest singular value of a matrix (or a batch of matrices) by power iteration.

    Args:
        weight: ``(m, n)`` or ``(g, m, n)``.
        u: right singular vector estimate ``(n,)`` / ``(g, n)`` to warm-start from (persistent
            vectors converge in one or two steps when the weights change slowly); random if None.
        tol: stop when the estimate changes by less than ``tol`` (relative). (``eps=``, its
            former name, still works with a ``DeprecationWarning``.)
        maxiter: maximum number of iterations.

    Returns:
        ``(sigma, u)``: the estimate :math:`\lVert W u \rVert` (shape ``()`` or ``(g,)``,
        differentiable w.r.t. ``weight``; a lower bound on :math:`\sigma_{max}`) and the updated
        vector.
    """
    tol = _checks.renamed("power_iteration", "eps", "tol", eps, tol)
    squeeze = weight.dim() == 2
    w = weight.unsqueeze(0) if squeeze else weight
    if u is None:
        u = torch.randn(w.shape[0], w.shape[-1], device=w.device, dtype=w.dtype)
    else:
        u = u.reshape(w.shape[0], w.shape[-1]).to(device=w.device, dtype=w.dtype)
    sigma, u = operator_power_iteration(
        lambda v: torch.bmm(w, v.unsqueeze(-1)).squeeze(-1),
        lambda v: torch.bmm(w.detach().mT, v.unsqueeze(-1)).squeeze(-1),
        u,
        tol=tol,
        maxiter=maxiter,
    )
    if squeeze:
        return sigma[0], u[0]
    return sigma, u


# --------------------------------------------------------------------------------------------
# Frobenius and (verified) spectral normalization
# --------------------------------------------------------------------------------------------


def frobenius_normalize(weight: Tensor, disjoint_neurons: bool = False) -> Tensor:
    r"""Divide by the Frobenius norm: :math:`W / \lVert W\rVert_F` (per matrix of the batch), or
    each row by its own norm when ``disjoint_neurons`` (each output neuron is then 1-Lipschitz;
    the whole map is only :math:`\sqrt{m}`-Lipschitz in :math:`\ell_2`).

    Since :math:`\sigma_{max} \le \lVert W\rVert_F`, the normalized matrix has
    :math:`\sigma_{max} \le 1`, with equality iff :math:`W` has rank one.
    """
    tiny = torch.finfo(weight.dtype).tiny
    if disjoint_neurons:
        return weight / weight.norm(dim=-1, keepdim=True).clamp_min(tiny)
    return weight / weight.flatten(-2).norm(dim=-1).clamp_min(tiny)[..., None, None]


def aol_normalize(weight: Tensor, groups: int = 1) -> Tensor:
    r"""Almost-orthogonal Lipschitz (AOL) rescaling of a dense or convolution weight.

    For a matrix :math:`W` (``(m, n)``), returns :math:`W D` with
    :math:`D_{ii} = \big(\sum_j |W^\top W|_{ij}\big)^{-1/2}`. Then :math:`\lVert W D\rVert_2 \le 1`
    for every :math:`W` (Prach & Lampert, *Almost-orthogonal layers for efficient
    general-purpose Lipschitz networks*, arXiv:2208.03160, Thm. 1: :math:`D W^\top W D` has
    Gershgorin discs inside :math:`[-1, 1]`), with equality of all singular values to 1 when
    :math:`W` is already orthonormal (:math:`D = I`).

    For a kernel ``(c_out, c_in / groups, *k)`` the Gram matrix of the circular convolution has
    the entries of the kernel self-correlation
    :math:`P_{ij}(\delta) = \sum_{o,t} W_{o i t} W_{o j, t+\delta}`, and
    :math:`D_{ii} = (\sum_{j,\delta} |P_{ij}(\delta)|)^{-1/2}` scales input channel :math:`i`
    (Thm. 2 there). The bound holds on every torus (aliasing only merges terms), hence for zero
    padding (a crop of a circular convolution on a larger torus), any dilation, and any stride
    (a subsampling). The scale is differentiable.
    """
    _checks.positive_int("groups", groups)
    if weight.dim() == 2:
        return aol_normalize(weight[:, :, None, None], groups)[:, :, 0, 0]
    if weight.dim() == 3:
        return aol_normalize(weight[:, :, None, :], groups)[:, :, 0, :]
    if weight.dim() != 4:
        raise ValueError(f"aol_normalize: weight must be 2-D, 3-D or 4-D, got {weight.dim()}-D")
    c_out, c_in_g, kh, kw = weight.shape
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the weight's first dimension {c_out}")
    # batch = input channel i of the group, channels = (group, output channel): P per group
    x = weight.reshape(groups, c_out // groups, c_in_g, kh, kw).permute(2, 0, 1, 3, 4)
    x = x.reshape(c_in_g, c_out, kh, kw)
    w = weight.reshape(groups, c_out // groups, c_in_g, kh, kw).permute(0, 2, 1, 3, 4)
    w = w.reshape(groups * c_in_g, c_out // groups, kh, kw)
    corr = torch.nn.functional.conv2d(x, w, padding=(kh - 1, kw - 1), groups=groups)
    # corr[i, (G, j), delta] = P^G_{ji}(delta); sum |.| over j and delta for each (G, i)
    rows = corr.abs().reshape(c_in_g, groups, c_in_g, -1).sum(dim=(2, 3))  # (i, G)
    scale = rows.clamp_min(torch.finfo(weight.dtype).tiny).rsqrt().t()  # (G, i)
    scaled = weight.reshape(groups, c_out // groups, c_in_g, kh, kw) * scale[:, None, :, None, None]
    return scaled.reshape(weight.shape)


def _certified_below(weight: Tensor, bound: Tensor) -> Tensor:
    """True where a float64 Cholesky factorization certifies sigma_max(weight) <= bound."""
    w = weight.detach().double()
    gram = gram_matrix(w)
    b = bound.detach().double()
    return torch.linalg.cholesky_ex(b[..., None, None] ** 2 * identity_like(gram) - gram).info == 0


def spectral_normalize(
    weight: Tensor,
    u: Tensor | None = None,
    tol: float = DEFAULT_EPS_SPECTRAL,
    maxiter: int = DEFAULT_MAXITER_SPECTRAL,
    margin: float | None = None,
    *,
    eps: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Divide a matrix by a **verified** upper bound on its largest singular value.

    Power iteration gives :math:`\hat\sigma \le \sigma_{max}` (it can lag badly after a large
    update). lipot therefore checks :math:`(1+\text{margin})\hat\sigma \ge \sigma_{max}` with a
    float64 Cholesky certificate and, where it fails, uses the exact float64 spectral norm times
    :math:`(1+\text{margin})` instead (``margin`` defaults to ``tol``, the accuracy power iteration
    was asked for; ``eps=``, the former name of ``tol``, still works with a ``DeprecationWarning``). The result always satisfies
    :math:`1/(1+\text{margin}) \lesssim \sigma_{max} \le 1`.

    Returns:
        ``(normalized, u, sigma)`` where ``sigma`` is the divisor used (differentiable).
    """
    tol = _checks.renamed("spectral_normalize", "eps", "tol", eps, tol)
    margin = tol if margin is None else margin
    if not _static(weight):
        check_finite(weight.detach().flatten(-2).norm(dim=-1))
    sigma_est, u = power_iteration(weight, u, tol=tol, maxiter=maxiter)
    bound = sigma_est * (1.0 + margin)
    ok = _certified_below(weight, bound)
    if _static(ok) or not bool(ok.all()):
        exact = torch.linalg.matrix_norm(weight.double(), ord=2).to(weight.dtype) * (1.0 + margin)
        bound = torch.where(ok, bound, exact)
    if weight.dim() == 2:
        return weight / bound, u, bound
    return weight / bound[..., None, None], u, bound
