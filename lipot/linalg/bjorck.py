r"""Björck orthonormalization with a guaranteed bound, and the derivative of the polar factor.

:func:`bjorck_orthonormalize` (any input), :func:`bjorck_near_orthonormal` (a weight
re-projected before its last optimizer update: fewer operations), :func:`polar_tangent` and
:func:`polar_tangent_vjp` (the exact backward pass at an orthonormal point). Re-exported by
:mod:`lipot.linalg.normalizers`, which holds the other weight normalizations.

Soundness facts used below (all singular values :math:`\sigma \ge 0`):

* A Björck step :math:`W \leftarrow (1+\beta) W - \beta W W^\top W` acts on each singular value as
  :math:`p(\sigma) = (1+\beta)\sigma - \beta\sigma^3`. For :math:`\beta = 1/2`,
  :math:`1 - p(\sigma) = \tfrac12(\sigma-1)^2(\sigma+2) \ge 0` and :math:`p(\sigma) \ge 0` on
  :math:`[0, \sqrt3]`: **one step maps any spectrum inside** :math:`[0, \sqrt3]` **into**
  :math:`[0, 1]`, so an unconverged Björck stays contractive. Every other :math:`\beta`
  overshoots 1 for some :math:`\sigma` near 1 (:math:`\beta < 1/2`: for :math:`\sigma` slightly
  above 1, e.g. :math:`\beta=0.25` reaches 1.076; :math:`\beta > 1/2`: already for
  :math:`\sigma < 1`), and power iteration can only under-estimate :math:`\sigma_{max}`, so lipot
  accepts only :math:`\beta = 1/2`.
* :math:`\sigma_{max}(W)^2 = \lambda_{max}(W^\top W) \le \lVert W^\top W \rVert_\infty`
  (max absolute row sum), a guaranteed bound that costs nothing once the Gram matrix is formed.
* A successful Cholesky factorization of :math:`c^2 I - W^\top W` certifies
  :math:`\sigma_{max}(W) \le c`.

References: Björck & Bowie 1971; Anil, Lucas & Grosse, *Sorting out Lipschitz function
approximation*, arXiv:1811.05381; Serrurier et al., *Achieving robustness in classification using
optimal transport with hinge regularization*, arXiv:2006.06520.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _checks
from .._transforms import is_static as _static

__all__ = [
    "bjorck_retract",
    "DEFAULT_EPS_BJORCK",
    "DEFAULT_MAXITER_BJORCK",
    "DEFAULT_BETA_BJORCK",
    "DEFAULT_EPS_BJORCK_ORTHO",
    "check_bjorck_beta",
    "bjorck_orthonormalize",
    "bjorck_near_orthonormal",
    "polar_tangent",
    "polar_tangent_vjp",
]

DEFAULT_EPS_BJORCK = 1e-3
DEFAULT_MAXITER_BJORCK = 15
DEFAULT_BETA_BJORCK = 0.5
DEFAULT_EPS_BJORCK_ORTHO = 1e-6
"""Björck target for the factors of the orthogonal convolutions (:mod:`lipot.nn.ortho_conv`):
several factors compose into one kernel, so each is made orthonormal to float32 accuracy (one
Björck step more than ``DEFAULT_EPS_BJORCK`` near convergence) for the convolution's singular
values to be within 1e-4 of 1."""

# Spectrum ceiling certified before the first Björck step (< sqrt(3) with room for float32
# rounding of the Gram matrix).
_PRESCALE_CEILING = 2.9


# --------------------------------------------------------------------------------------------
# Björck orthonormalization
# --------------------------------------------------------------------------------------------


def check_bjorck_beta(beta: float) -> float:
    """Validate a Björck step size; only beta = 0.5 is contractive for every input lipot feeds it.

    Raises:
        ValueError: for any other value, explaining why it is unsafe.
    """
    beta = _checks.positive_float("beta_bjorck", beta)
    if beta != DEFAULT_BETA_BJORCK:
        raise ValueError(
            f"beta_bjorck={beta} is unsafe: a non-converged Björck step with beta != 0.5 maps some "
            "singular value near 1 above 1 (beta < 0.5 for inputs slightly above 1, which power "
            "iteration cannot exclude; beta > 0.5 even for inputs below 1), so the layer would "
            "not be 1-Lipschitz. Use beta_bjorck=0.5 (the default); raise maxiter_bjorck if you "
            "need more iterations."
        )
    return beta


def gram_matrix(w: Tensor) -> Tensor:
    """The smaller Gram matrix: W^T W for tall W, W W^T for wide W."""
    return w.mT @ w if w.shape[-2] >= w.shape[-1] else w @ w.mT


def _bjorck_step(w: Tensor, gram: Tensor) -> Tensor:
    """One beta = 0.5 Björck step given the Gram matrix of ``w``: 1.5 W - 0.5 W W^T W."""
    left, right = (w, gram) if w.shape[-2] >= w.shape[-1] else (gram, w)
    if w.dim() == 3:
        return torch.baddbmm(w, left, right, beta=1.5, alpha=-0.5)
    if w.dim() == 2:
        return torch.addmm(w, left, right, beta=1.5, alpha=-0.5)
    return 1.5 * w - 0.5 * (left @ right)


def check_finite(value: Tensor | float) -> None:
    """Raise a clear error when a weight norm is NaN/Inf (a diverged training run)."""
    finite = math.isfinite(value) if isinstance(value, float) else bool(torch.isfinite(value).all())
    if not finite:
        raise ValueError(
            "weight contains NaN or Inf values (or overflows float32): training has probably "
            "diverged; lower the learning rate or reload a checkpoint"
        )


def identity_like(gram: Tensor) -> Tensor:
    return torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)


def _uncertified(gram: Tensor) -> tuple[Tensor, Tensor | None]:
    r"""Per matrix, the infinity norm of the Gram matrix and whether :math:`\sigma_{max}^2 \le 2.9`
    is **not** certified, by that norm (free) or, where it exceeds the ceiling, by a Cholesky
    factorization of :math:`2.9 I - G` (eager mode only); ``None`` for the flags when every
    matrix is certified by the norm (no further host read). In eager mode the same bound (one host
    read) also checks that the weight is finite: it is NaN/Inf iff some Gram entry is."""
    bound = gram.abs().sum(-1).amax(-1)
    if _static(bound):
        return bound, bound > _PRESCALE_CEILING
    top = float(bound.detach().max())
    check_finite(top)
    if top <= _PRESCALE_CEILING:
        return bound, None
    certificate = torch.linalg.cholesky_ex(_PRESCALE_CEILING * identity_like(gram) - gram).info
    return bound, (bound > _PRESCALE_CEILING) & (certificate != 0)


def _certified_prescale(w: Tensor, gram: Tensor) -> tuple[Tensor, Tensor]:
    r"""Rescale each matrix so that :math:`\sigma_{max}^2 \le 2.9 < 3`, guaranteed: only the
    matrices ``_uncertified`` flags are divided by :math:`\sqrt{\lVert G\rVert_\infty / 2.9}`."""
    bound, needs = _uncertified(gram)
    if needs is None:
        return w, gram
    factor = torch.where(needs, bound / _PRESCALE_CEILING, torch.ones_like(bound))
    w = w / factor.sqrt()[..., None, None]
    gram = gram / factor[..., None, None]
    return w, gram


# Gram matrices up to this size use only the Frobenius norm to decide when to stop: an extra
# Björck step on such a matrix costs less than a tighter estimate.
_SMALL_GRAM = 256


def _gram_deviation(gram: Tensor) -> Tensor:
    r"""The largest over the batch of :func:`_gram_deviations`."""
    return _gram_deviations(gram).amax()


def _gram_deviations(gram: Tensor) -> Tensor:
    r"""Estimate of :math:`\max_i |\sigma_i^2 - 1| = \lVert G - I\rVert_2`, per matrix.

    The Frobenius norm of :math:`G - I` (a guaranteed upper bound) for Gram matrices up to
    ``_SMALL_GRAM``; above, the minimum of it, the infinity norm (also an upper bound) and 1.1
    times a four-step power-iteration estimate started from the largest row. Used to decide
    when to stop iterating: it affects how close to 1 the singular values get, never the upper
    bound (the Frobenius norm, a guaranteed bound, may also certify the starting spectrum).
    """
    e = gram.detach() - identity_like(gram)
    frob = e.flatten(-2).norm(dim=-1)
    if e.shape[-1] <= _SMALL_GRAM:
        return frob
    inf = e.abs().sum(-1).amax(-1)
    rows = e.norm(dim=-1)
    idx = rows.argmax(-1)
    v = torch.gather(e, -2, idx[..., None, None].expand(*e.shape[:-2], 1, e.shape[-1]))
    v = v.squeeze(-2)
    est = rows.amax(-1)
    for _ in range(4):
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
        ev = (e @ v.unsqueeze(-1)).squeeze(-1)
        est = ev.norm(dim=-1)
        v = ev
    return torch.minimum(torch.minimum(frob, inf), 1.1 * est)


_PROBES: dict[tuple, Tensor] = {}


def _probe(gram: Tensor) -> Tensor:
    """A fixed pseudo-random unit vector of the Gram matrices' width (``(n, 1)``, cached per
    width, device and dtype; the global random state is not touched)."""
    n = gram.shape[-1]
    key = (n, gram.device, gram.dtype)
    if key not in _PROBES:
        v = torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        _PROBES[key] = (v / v.norm()).to(gram.device, gram.dtype)
    return _PROBES[key]


def _deviation_estimate(gram: Tensor, iterations: int = 6) -> Tensor:
    r"""Quick estimate of :math:`\lVert G - I\rVert_2 = \max_i|\sigma_i^2 - 1|` per matrix:
    ``1.1`` times ``iterations`` steps of power iteration on :math:`G - I` from :func:`_probe`,
    matrix-vector products only (no pass over :math:`G - I` itself). An estimate, not a bound:
    it plans steps for accuracy, never for soundness."""
    g = gram.detach()
    v = _probe(g)
    for _ in range(iterations):
        w = g @ v - v
        v = w / w.norm(dim=-2, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
    return 1.1 * (g @ v - v).norm(dim=-2).squeeze(-1)


def _sigma_deviation(gram_dev: float) -> float:
    """Bound on |sigma - 1| given |sigma^2 - 1| <= gram_dev."""
    if gram_dev >= 1.0:
        return math.inf
    return 1.0 - math.sqrt(1.0 - gram_dev)


def _planned_steps(gram_dev: float, tol: float, maxiter: int) -> int | None:
    r"""The number of Björck steps that provably brings every singular value within ``tol``
    of 1, given ``gram_dev`` :math:`\ge \max_i |\sigma_i^2 - 1|`; ``None`` if the bound does not
    get there within ``maxiter`` steps.

    Every :math:`\sigma` lies in :math:`[1 - l, 1 + h]` with :math:`l = 1 - \sqrt{1 - e}` and
    :math:`h = \sqrt{1 + e} - 1`. A step maps :math:`1 - \sigma` to
    :math:`\tfrac12 (1 - \sigma)^2 (\sigma + 2) \ge 0`, decreasing in :math:`\sigma` below 1
    and increasing above, so after it every :math:`\sigma \le 1` and the deviation is at most
    :math:`d_1 = \max(\tfrac12 l^2 (3 - l), \tfrac12 h^2 (3 + h))`, then
    :math:`d_{t+1} = \tfrac12 d_t^2 (3 - d_t)`.
    """
    if not gram_dev < 1.0:
        return None
    low, high = 1.0 - math.sqrt(1.0 - gram_dev), math.sqrt(1.0 + gram_dev) - 1.0
    dev = max(0.5 * low * low * (3.0 - low), 0.5 * high * high * (3.0 + high))
    steps = 1
    while dev > tol:
        if steps >= maxiter or dev >= 1.0:
            return None
        dev, steps = 0.5 * dev * dev * (3.0 - dev), steps + 1
    return steps


def _bjorck_steps(w: Tensor, gram: Tensor, steps: int) -> Tensor:
    """``steps`` Björck steps with no test in between (``gram`` is that of ``w``)."""
    for i in range(steps):
        if i > 0:
            gram = gram_matrix(w)
        w = _bjorck_step(w, gram)
    return w


def bjorck_retract(weight: Tensor, tol: float | None = None,
                   maxiter: int = DEFAULT_MAXITER_BJORCK) -> tuple[Tensor, Tensor | None] | None:
    r"""Björck steps :math:`W \leftarrow \tfrac32 W - \tfrac12 W W^\top W` from a matrix that was
    orthonormal before one optimizer update: the retraction of the ``"retraction"`` update.

    Each singular value moves to :math:`\sigma' = \tfrac12\sigma(3 - \sigma^2)`, which is at
    most 1 for every :math:`\sigma \le \sqrt3` and brings :math:`1 - \sigma` to
    :math:`\tfrac12(1-\sigma)^2(\sigma+2)`: quadratic convergence, so an update of relative size
    :math:`\delta` leaves a deviation of about :math:`\tfrac32\delta^2`. The condition
    :math:`\sigma_{max}^2 \le 2.9` is certified by the infinity norm of the Gram matrix (one pass
    over it once the step has computed it) or, where that bound is too loose (wide matrices), by a
    Cholesky factorization of :math:`2.9 I - W^\top W` (about a sixth of a matrix product): the
    output is 1-Lipschitz whatever the number of steps. One step costs two matrix products (the
    Gram matrix and the step), the floor for keeping a weight orthonormal.

    Args:
        weight: ``(..., m, n)`` matrices.
        tol: ``None``: exactly one step. Else the number of steps is planned in advance to bring
            every singular value within ``tol`` of 1 (as :func:`bjorck_near_orthonormal` plans
            them) from an *estimate* of :math:`\rho = \max_i|\sigma_i^2 - 1|` (the Frobenius
            norm of :math:`W^\top W - I` for Gram matrices up to 256 wide, six steps of power
            iteration on it above: one more host read; the plan sets the accuracy, never the
            bound; measured: 2.47x ``nn.Linear`` at width 32 with power iteration there, 2.08x
            with the Frobenius norm, polar 2.06x): one step while
            :math:`\rho \lesssim 2\sqrt{tol/1.5}` (0.05 for ``tol=1e-3``), two or three after
            larger updates.
        maxiter: most steps planned.

    Returns:
        ``(stepped, far)``: the stepped matrices and, per matrix, whether they must not be used
        (the starting spectrum is not certified: use :func:`bjorck_orthonormalize` for those);
        ``far`` is ``None`` when every matrix is certified. Each matrix takes its own number of
        steps (the result for one does not depend on the others). ``None`` when an estimate is
        too large for ``maxiter`` planned steps (:math:`\rho \ge 1`, e.g. Adam on a loss that
        shrinks every output) or control flow cannot depend on the data (``is_static``).

    Raises:
        ValueError: the weight holds NaN or Inf.
    """
    if _static(weight):
        return None
    gram = gram_matrix(weight)
    far = _uncertified(gram)[1]  # (raises for NaN/Inf, as the full projection would)
    if far is not None and not bool(far.any()):
        far = None
    if tol is None:
        return _bjorck_step(weight, gram), far
    small = gram.shape[-1] <= _SMALL_GRAM  # the Frobenius bound: one reduction, tight enough there
    deviations = _gram_deviations(gram) if small else _deviation_estimate(gram)
    plans = [_planned_steps(d, tol, maxiter) for d in deviations.reshape(-1).tolist()]
    flags = far.reshape(-1).tolist() if far is not None else [False] * len(plans)
    steps = [1 if bad else plan for plan, bad in zip(plans, flags)]
    if None in steps:
        return None
    return _member_steps(weight, gram, steps), far


def _member_steps(w: Tensor, gram: Tensor, steps: list[int]) -> Tensor:
    """``steps[i]`` Björck steps for matrix ``i`` of the batch (flattened), each as it would be
    stepped alone: a matrix that has taken its steps is left as it is."""
    top = max(steps)
    if w.dim() == 2 or min(steps) == top:
        return _bjorck_steps(w, gram, top)
    count = torch.tensor(steps, device=w.device).reshape(w.shape[:-2])[..., None, None]
    for i in range(top):
        if i > 0:
            gram = gram_matrix(w)
        w = torch.where(count > i, _bjorck_step(w, gram), w)
    return w


def bjorck_near_orthonormal(
    weight: Tensor, tol: float = DEFAULT_EPS_BJORCK, maxiter: int = DEFAULT_MAXITER_BJORCK,
    max_width: int | None = _SMALL_GRAM,
) -> tuple[Tensor, int] | None:
    r"""Björck orthonormalization of a matrix known to be near orthonormal (e.g. a weight
    re-projected before its last optimizer update), with no estimate between steps.

    The Frobenius distance :math:`e = \lVert W^\top W - I\rVert_F` (smaller Gram matrix)
    bounds every :math:`|\sigma^2 - 1|`. When :math:`e < 1`, :math:`\sigma_{max}^2 < 2 < 3`
    certifies the starting spectrum (no rescaling), and ``_planned_steps`` fixes in advance
    the number of steps :math:`\tfrac32 W - \tfrac12 W W^\top W` that bring every singular
    value within ``tol`` of 1; they run without any test. The output has
    :math:`\sigma_{max} \le 1` up to rounding, as for :func:`bjorck_orthonormalize`.

    Args:
        weight: ``(..., m, n)``.
        tol: the accuracy of the singular values, guaranteed by the plan.
        maxiter: the most steps planned.
        max_width: the widest Gram matrix accepted (default 256): beyond, the Frobenius norm is
            so loose that the plan takes more steps than :func:`bjorck_orthonormalize`'s
            estimates; ``None`` accepts any width (for a one-time projection that must be
            guaranteed).

    Returns:
        ``(orthonormalized weight, steps)``, or ``None`` (after one Gram product and one norm)
        when the matrix is not that close, its Gram matrix is wider than ``max_width``, it holds
        NaN/Inf, or data-dependent control flow is impossible (``is_static``): use
        :func:`bjorck_orthonormalize` then.
    """
    if _static(weight) or (max_width is not None and min(weight.shape[-2:]) > max_width):
        return None
    gram = gram_matrix(weight)
    steps = _planned_steps(float(_gram_deviation(gram)), tol, maxiter)
    return None if steps is None else (_bjorck_steps(weight, gram, steps), steps)


def bjorck_orthonormalize(
    weight: Tensor,
    tol: float = DEFAULT_EPS_BJORCK,
    maxiter: int = DEFAULT_MAXITER_BJORCK,
    beta: float = DEFAULT_BETA_BJORCK,
    fixed_iterations: int | None = None,
    return_info: bool = False,
    *,
    eps: float | None = None,
) -> Tensor | tuple[Tensor, int, bool]:
    r"""Björck orthonormalization with a guaranteed upper bound: the output has
    :math:`\sigma_{max} \le 1` (up to floating-point rounding) for **any** input.

    .. math::
        W_0 = W / c, \qquad W_{t+1} = \tfrac32 W_t - \tfrac12 W_t W_t^\top W_t

    where :math:`c \ge 1` is chosen from a certificate so that :math:`\sigma_{max}(W_0)^2 \le 2.9`
    (see ``_certified_prescale``). Every step then keeps the spectrum in :math:`[0, 1]` and
    drives it to 1 quadratically (:math:`1-\sigma \mapsto \tfrac12(1-\sigma)^2(\sigma+2)`).
    Iteration stops once the estimated :math:`\max|\sigma-1|` is below ``tol`` (or predicted to
    be after the next step, which is then taken), after at least one step, or after ``maxiter``
    steps. Scale the input so that its singular values are near 1 first (spectral
    normalization) for fast convergence; for a matrix already near orthonormal,
    :func:`bjorck_near_orthonormal` needs fewer operations.

    Args:
        weight: ``(m, n)`` or ``(..., m, n)``; tall matrices get orthonormal columns, wide ones
            orthonormal rows.
        tol: target accuracy on the singular values (``eps=``, its former name, still works with
            a ``DeprecationWarning``).
        maxiter: maximum number of steps.
        beta: step size; only 0.5 is accepted (see :func:`check_bjorck_beta`).
        fixed_iterations: run exactly this many steps with no data-dependent control flow
            (used under ``torch.compile``).
        return_info: also return the number of steps taken and whether the target accuracy was
            reached (``False`` when ``maxiter`` ran out, e.g. for an ill-conditioned input: the
            output is then still contractive, but not orthonormal).

    The function is differentiable (autograd through every step). The lipot layers instead run it
    without gradient and use :func:`polar_tangent` for the backward pass.
    """
    tol = _checks.renamed("bjorck_orthonormalize", "eps", "tol", eps, tol)
    check_bjorck_beta(beta)
    _checks.positive_int("maxiter_bjorck", maxiter)
    w = weight
    gram = gram_matrix(w)
    w, gram = _certified_prescale(w, gram)  # (also raises on NaN/Inf in eager mode)
    steps, converged = 0, False
    if fixed_iterations is not None:
        w = _bjorck_steps(w, gram, fixed_iterations)
        steps = fixed_iterations
    else:
        # The deviation of the current Gram matrix predicts the next step's (1 - sigma ->
        # (1 - sigma)^2 (sigma + 2) / 2). For a large matrix it is estimated before the first
        # step too (that may save a Gram product); for a small one, estimates cost more than
        # the products, so the first comes after the first step.
        dev = None if gram.shape[-1] <= _SMALL_GRAM else _sigma_deviation(float(_gram_deviation(gram)))
        while True:
            w = _bjorck_step(w, gram)
            steps += 1
            if dev is not None and 0.5 * dev * dev * (3.0 + dev) <= tol:
                converged = True
                break
            if steps >= maxiter:
                converged = _sigma_deviation(float(_gram_deviation(gram_matrix(w)))) <= tol
                break
            gram = gram_matrix(w)
            dev = _sigma_deviation(float(_gram_deviation(gram)))
            if dev <= tol:
                converged = True
                break
    if return_info:
        return w, steps, converged
    return w


def polar_tangent_vjp(q: Tensor, d: Tensor) -> Tensor:
    """``d - 1/2 Q (Q^T d + d^T Q)`` (tall ``q``) or ``d - 1/2 (d Q^T + Q d^T) Q`` (wide): the
    derivative of the polar factor at an orthonormal ``q``, applied to ``d``. The map is
    self-adjoint, so it is both the JVP and the VJP (the backward pass of
    :func:`polar_tangent`, for code that writes its own backward through a polar factor)."""
    if q.shape[-2] >= q.shape[-1]:
        s = q.mT @ d
        return _subtract_half_product(d, q, s + s.mT)
    s = d @ q.mT
    return _subtract_half_product(d, s + s.mT, q)


def _subtract_half_product(d: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``d - a b / 2``, in one fused product when the shapes allow it."""
    if d.dim() == 3 and a.dim() == 3 and b.dim() == 3:
        return torch.baddbmm(d, a, b, alpha=-0.5)
    return d - 0.5 * (a @ b)


class _PolarTangent(torch.autograd.Function):
    """Identity in the forward pass; exact derivative of the polar factor at an orthonormal
    point in the backward and forward-mode passes (``setup_context`` form with a generated
    vmap rule, so ``torch.func`` transforms work through it)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(q: Tensor) -> Tensor:  # type: ignore[override]
        return q.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        (q,) = inputs
        ctx.save_for_backward(q)
        ctx.save_for_forward(q)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (q,) = ctx.saved_tensors
        return polar_tangent_vjp(q, grad)

    @staticmethod
    def jvp(ctx, tangent: Tensor) -> Tensor:  # type: ignore[override]
        (q,) = ctx.saved_tensors
        return polar_tangent_vjp(q, tangent)


def polar_tangent(q: Tensor) -> Tensor:
    r"""Return ``q`` unchanged, with the gradient of the polar factor :math:`\mathrm{polar}(W) =
    W (W^\top W)^{-1/2}` at :math:`W = q`, assuming ``q`` has orthonormal columns (tall) or rows
    (wide).

    At such a point :math:`d\,\mathrm{polar} = dW - \tfrac12 Q (dW^\top Q + Q^\top dW)` (tall), so
    the vector-Jacobian product is :math:`G - \tfrac12 Q (Q^\top G + G^\top Q)`: two matrix
    products instead of back-propagating through every Björck step. lipot keeps the raw weight
    equal to its own polar factor (the function computed is unchanged, since
    :math:`\mathrm{polar}(\mathrm{polar}(W)) = \mathrm{polar}(W)`), which makes this exact to the
    Björck tolerance.
    """
    return _PolarTangent.apply(q)
