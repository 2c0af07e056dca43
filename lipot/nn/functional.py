r"""Functional forms of lipot's activations and pooling operators (like ``torch.nn.functional``;
:mod:`lipot.functional` re-exports them together with the loss functions).

Every function here is 1-Lipschitz in :math:`\ell_2` (times ``k_coef_lip`` where it takes one).
They contain no Python branching on tensor shapes besides argument checks, which are skipped
while ``torch.fx`` traces them, so that :func:`lipot.vanilla_export` can turn lipot modules into
``torch.fx.GraphModule`` objects that load without lipot.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from .._transforms import is_compiling

__all__ = [
    "group_sort",
    "group_sort_2",
    "full_sort",
    "max_min",
    "pair_norm",
    "group_sort_norm",
    "cone_potential",
    "cone_envelope",
    "householder",
    "lipschitz_prelu",
    "l2_norm_pool2d",
    "scaled_avg_pool2d",
    "scaled_adaptive_avg_pool2d",
    "scaled_adaptive_l2_norm_pool2d",
    "invertible_downsample",
    "invertible_upsample",
]


def is_tracing() -> bool:
    """True while torch.fx symbolically traces (argument checks are skipped then)."""
    check = getattr(torch.fx._symbolic_trace, "is_fx_symbolic_tracing", None)
    if check is None:  # torch < 2.6
        check = torch.fx._symbolic_trace.is_fx_tracing
    return check()


def _plain_ops() -> bool:
    """Use plain torch ops instead of lipot's custom autograd Functions: while torch.fx traces
    (the exported graph holds only torch functions) and while torch.compile captures (dynamo
    refuses the Functions' custom forward-mode rule, and inductor fuses the plain ops anyway)."""
    return is_tracing() or is_compiling()


def _group_axes(dim: int) -> tuple[int, int]:
    """After ``unflatten(dim, (-1, g))``: (axis of the groups, axis inside a group)."""
    return (dim, dim + 1) if dim >= 0 else (dim - 1, dim)


def group_sort(input: Tensor, group_size: int | None = None, dim: int = 1) -> Tensor:
    r"""Sort the entries of ``input`` along ``dim`` within consecutive groups of ``group_size``
    (all of them if ``None``: full sort).

    Each output is a permutation of the input that depends on the input, so the map is
    piecewise an isometry: 1-Lipschitz and gradient-norm preserving.
    Reference: Anil, Lucas & Grosse, arXiv:1811.05381.
    """
    if group_size is None:
        return input.sort(dim=dim).values
    if not is_tracing() and input.shape[dim] % group_size:
        raise ValueError(
            f"group_size={group_size} must divide the size {input.shape[dim]} of dimension {dim} "
            "(the channels); change group_size or the number of channels"
        )
    outer, inner = _group_axes(dim)
    grouped = input.unflatten(dim, (-1, group_size))
    if group_size == 2:
        first = grouped.narrow(inner, 0, 1)
        second = grouped.narrow(inner, 1, 1)
        if _plain_ops():
            pair = (torch.minimum(first, second), torch.maximum(first, second))
        else:
            pair = _SortPair.apply(first, second)
        grouped = torch.cat(pair, inner)
    else:
        grouped = grouped.sort(dim=inner).values
    return grouped.flatten(outer, inner)


class _SortPair(torch.autograd.Function):
    """``(min(a, b), max(a, b))`` with a one-mask backward: the gradient is routed back through
    the same permutation (3x faster than the backward of ``torch.minimum``/``maximum`` on CPU,
    identical values and gradients). ``setup_context`` form with forward-mode derivative and a
    generated vmap rule, so ``torch.func`` transforms work through it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: Tensor, b: Tensor):  # type: ignore[override]
        return torch.minimum(a, b), torch.maximum(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        a, b = inputs
        swapped = a > b
        ctx.save_for_backward(swapped)
        ctx.save_for_forward(swapped)

    @staticmethod
    def _route(swapped: Tensor, low: Tensor, high: Tensor):
        return torch.where(swapped, high, low), torch.where(swapped, low, high)

    @staticmethod
    def backward(ctx, grad_min: Tensor, grad_max: Tensor):  # type: ignore[override]
        (swapped,) = ctx.saved_tensors
        return _SortPair._route(swapped, grad_min, grad_max)

    @staticmethod
    def jvp(ctx, tangent_a: Tensor, tangent_b: Tensor):  # type: ignore[override]
        (swapped,) = ctx.saved_tensors
        # min takes b's tangent where a > b, max takes a's: the same routing
        return _SortPair._route(swapped, tangent_a, tangent_b)


def group_sort_2(input: Tensor, dim: int = 1) -> Tensor:
    """``group_sort(input, 2, dim)``: sorts pairs (min, max)."""
    return group_sort(input, 2, dim)


def full_sort(input: Tensor, dim: int = 1) -> Tensor:
    """``group_sort(input, None, dim)``: sorts the whole dimension."""
    return group_sort(input, None, dim)


def max_min(input: Tensor, dim: int | None = 1) -> Tensor:
    r"""Concatenate :math:`\max(x, 0)` and :math:`\max(-x, 0)` along ``dim`` (doubles its size).

    Exactly one of the two is non-zero per entry and equals :math:`|x|`, so the map is norm
    preserving and 1-Lipschitz. Reference: Blot, Cord & Thome, ICIP 2016. ``dim=None`` means 1
    (deel-torchlip's default).
    """
    return torch.cat((F.relu(input), F.relu(-input)), dim=1 if dim is None else dim)


def householder(input: Tensor, theta: Tensor, dim: int = 1) -> Tensor:
    r"""Householder activation on channel pairs :math:`z = (x, y)` (first half, second half of
    ``dim``): with unit normal :math:`n = (\sin\frac\theta2, -\cos\frac\theta2)`,

    .. math::
        \mathrm{HH}(z) = z - 2\max(0, n^\top z)\, n,

    the identity on one side of the line :math:`n^\top z = 0` and the reflection across it on the
    other. Continuous and piecewise orthogonal: 1-Lipschitz and gradient-norm preserving.
    Reference: Singla, Singla & Feizi, *Improved deterministic l2 robustness on CIFAR-10 and
    CIFAR-100*, arXiv:2108.04062.
    """
    if not is_tracing() and input.shape[dim] != 2 * theta.shape[0]:
        raise ValueError(
            f"householder: dimension {dim} has size {input.shape[dim]}, expected "
            f"2 * len(theta) = {2 * theta.shape[0]} (the layer's channels)"
        )
    z = input.movedim(dim, -1).unflatten(-1, (2, -1))
    x = z.select(-2, 0)
    y = z.select(-2, 1)
    half = 0.5 * theta
    selector = x * torch.sin(half) - y * torch.cos(half)
    reflected_x = x * torch.cos(theta) + y * torch.sin(theta)
    reflected_y = x * torch.sin(theta) - y * torch.cos(theta)
    keep = selector <= 0
    out = torch.stack([torch.where(keep, x, reflected_x), torch.where(keep, y, reflected_y)], -2)
    return out.flatten(-2).movedim(-1, dim)


def lipschitz_prelu(input: Tensor, weight: Tensor, k_coef_lip: float = 1.0) -> Tensor:
    r"""A :math:`k`-Lipschitz PReLU: :math:`c\,\mathrm{PReLU}_{a'}(x)` with :math:`c = \min(1, k)`
    and :math:`a' = \mathrm{clamp}(a, -k/c, k/c)`.

    For :math:`k \ge 1` this is deel-torchlip's definition (slope 1 for :math:`x \ge 0`, slope
    clamped to :math:`[-k, k]` below); for :math:`k < 1` both slopes are scaled so the function is
    really :math:`k`-Lipschitz (deel-torchlip's is 1-Lipschitz there).
    """
    c = min(1.0, k_coef_lip)
    bound = k_coef_lip / c
    out = F.prelu(input, weight.clamp(-bound, bound))
    return out if c == 1.0 else c * out


class _SafeSqrt(torch.autograd.Function):
    """``sqrt(x)`` for ``x >= 0`` with derivative ``1 / (2 sqrt(x))`` where ``x > 0`` and 0 at 0
    (``setup_context`` form with forward-mode derivative and a generated vmap rule)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:  # type: ignore[override]
        return x.sqrt()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def _derivative(y: Tensor, d: Tensor) -> Tensor:
        positive = y > 0
        return torch.where(positive, d / (2 * torch.where(positive, y, torch.ones_like(y))), 0.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return _SafeSqrt._derivative(y, grad)

    @staticmethod
    def jvp(ctx, tangent: Tensor) -> Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return _SafeSqrt._derivative(y, tangent)


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with a zero (not NaN) gradient at 0 (deel-lip #9)."""
    if _plain_ops():  # the masked branch never sees 0
        positive = x > 0
        return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))
    return _SafeSqrt.apply(x)


def pair_norm(input: Tensor, dim: int = 1) -> Tensor:
    r"""The :math:`\ell_2` norm of consecutive pairs along ``dim``:
    :math:`(a_1, b_1, a_2, b_2, \dots) \mapsto (\lVert(a_1, b_1)\rVert, \lVert(a_2, b_2)\rVert, \dots)`
    (halves ``dim``).

    1-Lipschitz (:math:`|\lVert u\rVert - \lVert v\rVert| \le \lVert u - v\rVert` per pair, summed
    in squares) with orthonormal Jacobian rows away from a zero pair, so the input gradient has the
    norm of the output gradient (gradient-norm preserving); the gradient at a zero pair is 0.
    """
    if not is_tracing() and input.shape[dim] % 2:
        raise ValueError(f"pair_norm: the size {input.shape[dim]} of dimension {dim} must be even")
    return _safe_sqrt(input.unflatten(dim, (-1, 2)).pow(2).sum(dim + 1 if dim >= 0 else dim))


def group_sort_norm(input: Tensor, dim: int = 1) -> Tensor:
    r"""GroupSort2 on the first half of ``dim`` and :func:`pair_norm` on the second half,
    concatenated: ``C -> C/2 + C/4`` features (``C`` divisible by 4).

    Each part is 1-Lipschitz and they act on disjoint coordinates, so the map is 1-Lipschitz and
    gradient-norm preserving (orthonormal Jacobian rows). The sorted half represents piecewise
    linear functions, the norm half radial ones: a GroupSort network approximates
    :math:`\lVert x\rVert` only coarsely, while one :func:`pair_norm` layer after an orthogonal
    map, then another, builds norms of growing subspaces exactly.
    """
    size = input.shape[dim]
    if not is_tracing() and size % 4:
        raise ValueError(f"group_sort_norm: the size {size} of dimension {dim} must be divisible by 4")
    half = size // 2
    return torch.cat([group_sort(input.narrow(dim, 0, half), 2, dim),
                      pair_norm(input.narrow(dim, half, size - half), dim)], dim)


def _best_cone(input: Tensor, centers: Tensor, offsets: Tensor, sign: float, exact: bool = True) -> Tensor:
    r"""``min_j (a_j + ||x - p_j||)`` (``sign = 1``) or ``max_j (a_j - ||x - p_j||)``
    (``sign = -1``) for ``input (..., B, d)``, ``centers (..., m, d)``, ``offsets (..., m)``:
    ``(..., B)``.

    The best cone of every input is found without autograd, then only its value is computed
    with it: the result and the gradient are those of the full minimum (whose gradient reaches
    only the minimizing cone), at ``O(B d)`` instead of ``O(B m d)`` autograd memory and time.
    Distances come from the coordinate differences (the expansion :math:`\lVert x\rVert^2 +
    \lVert p\rVert^2 - 2x\cdot p` errs by :math:`\sim\sqrt{\epsilon}\lVert x\rVert` near a
    center); the gradient at a center is 0. ``exact=False`` finds the best cone by the faster
    expansion (the chosen cone's value is still computed from coordinate differences).
    """
    with torch.no_grad():  # detached too: forward-mode AD (jacfwd) ignores no_grad
        dist = torch.cdist(input.detach(), centers.detach(), compute_mode=_CDIST[exact])
        score = offsets.detach().unsqueeze(-2) + sign * dist
        best = (score.argmin(-1) if sign > 0 else score.argmax(-1)).unsqueeze(-1)
    chosen = torch.take_along_dim(centers, best, dim=-2)  # (..., B, d): broadcasts the leading dims
    offset = torch.take_along_dim(offsets.unsqueeze(-1), best, dim=-2).squeeze(-1)
    return offset + sign * _safe_sqrt((input - chosen).pow(2).sum(-1))


def cone_potential(input: Tensor, low_centers: Tensor, low_offsets: Tensor, high_centers: Tensor,
                   high_offsets: Tensor) -> Tensor:
    r"""A 1-Lipschitz function made of cones:

    .. math::
        f(x) = \tfrac12\Big[\min_j \big(a_j + \lVert x - p_j\rVert_2\big)
        + \max_j \big(b_j - \lVert x - q_j\rVert_2\big)\Big]

    for ``input`` :math:`x` ``(..., B, d)``, ``low_centers`` :math:`p` ``(..., m, d)``,
    ``low_offsets`` :math:`a` ``(..., m)``, ``high_centers`` :math:`q` ``(..., m', d)`` and
    ``high_offsets`` :math:`b` ``(..., m')`` (leading dimensions broadcast: a stack of
    independent potentials). Returns ``(..., B)``.

    Every cone is 1-Lipschitz, and so are a minimum or a maximum of 1-Lipschitz functions and
    the average of two: :math:`f` is 1-Lipschitz for every parameter value (its gradient is the
    average of two unit vectors, one per term). The first term is the
    McShane extension, the second the Whitney extension of a function known on the centers
    (McShane, Bull. AMS 40, 1934; Whitney, Trans. AMS 36, 1934); the Kantorovich potential of
    two finite samples is such a minimum over the points of one of them (its c-transform), so a
    few hundred cones approximate it closely in low dimension.
    """
    return 0.5 * (_best_cone(input, low_centers, low_offsets, 1.0)
                  + _best_cone(input, high_centers, high_offsets, -1.0))


_CDIST = {True: "donot_use_mm_for_euclid_dist", False: "use_mm_for_euclid_dist"}


def cone_envelope(input: Tensor, centers: Tensor, offsets: Tensor, temperature: Tensor | float = 0.0,
                  sign: Tensor | float = 1.0, exact: bool = True) -> Tensor:
    r"""The lower (``sign = 1``) or upper (``sign = -1``) envelope of cones, smoothed by a
    temperature :math:`\tau \ge 0`:

    .. math::
        f(x) = \sigma\,\mathrm{softmin}_\tau\big(\lVert x - c_j\rVert_2 + \sigma b_j\big),
        \qquad \mathrm{softmin}_\tau(z) = -\tau \log \textstyle\sum_j e^{-z_j/\tau},

    so :math:`f = \min_j (\lVert x - c_j\rVert + b_j)` (McShane's extension) for :math:`\sigma = 1`,
    :math:`f = \max_j (b_j - \lVert x - c_j\rVert)` (Whitney's) for :math:`\sigma = -1`, when
    :math:`\tau = 0`. Its gradient :math:`\sigma \sum_j w_j u_j` (:math:`w` the softmin
    weights, :math:`u_j` the unit vector from :math:`c_j` to :math:`x`) is a convex combination of
    unit vectors: :math:`f` is 1-Lipschitz for *every* value of the parameters and of
    :math:`\tau`, and :math:`\lVert\nabla f\rVert = 1` wherever one cone dominates. A positive
    temperature gives every cone a gradient (a hard minimum moves only the closest cone, so cones
    that start away from the data never move).

    Shapes: ``input`` ``(..., B, d)``, ``centers`` ``(..., m, d)``, ``offsets`` ``(..., m)``,
    ``temperature`` and ``sign`` scalars or ``(...)`` (one per leading index: a stack of
    independent envelopes); returns ``(..., B)``. Distances come from coordinate differences,
    as in :func:`cone_potential`; ``exact=False`` computes them by the expansion
    :math:`\lVert x\rVert^2 + \lVert c\rVert^2 - 2x\cdot c` instead (about 5x faster in 128-D, but it
    errs by :math:`\sim\sqrt{\epsilon}\lVert x\rVert` near a center, so a function computed that
    way is not exactly 1-Lipschitz in floating point: for training only). Reference: McShane,
    Bull. AMS 40 (1934); Whitney, Trans. AMS 36 (1934).
    """
    if not isinstance(temperature, Tensor) and not isinstance(sign, Tensor):  # one envelope (traceable)
        if not temperature >= 0 or sign not in (1, -1):
            raise ValueError(f"cone_envelope: temperature must be >= 0 and sign +1 or -1, "
                             f"got {temperature!r} and {sign!r}")
        if temperature == 0:
            return _best_cone(input, centers, offsets, float(sign), exact)
        return sign * _softmin(_cone_distances(input, centers, exact) + sign * offsets.unsqueeze(-2), temperature)
    lead = centers.shape[:-2]
    tau = torch.as_tensor(temperature, dtype=input.dtype, device=input.device).expand(lead)[..., None]
    sgn = torch.as_tensor(sign, dtype=input.dtype, device=input.device).expand(lead)[..., None]
    if not bool((tau >= 0).all()) or not bool((sgn.abs() == 1).all()):
        raise ValueError("cone_envelope: temperature must be >= 0 and sign +1 or -1")
    if not bool(tau.any()):  # every member hard: the fast path of cone_potential
        return torch.where(sgn > 0, _best_cone(input, centers, offsets, 1.0, exact),
                           _best_cone(input, centers, offsets, -1.0, exact))
    z = _cone_distances(input, centers, exact, stacked=True) + sgn[..., None] * offsets.unsqueeze(-2)
    return sgn * _softmin(z, tau[..., None])


def _cone_distances(input: Tensor, centers: Tensor, exact: bool, stacked: bool = False) -> Tensor:
    r"""``||x_b - c_j||``: ``(..., B, m)``, without an ``(B, m, d)`` tensor.

    The squared distance is the polynomial :math:`q = \lVert x\rVert^2 - 2 x\cdot c + \lVert
    c\rVert^2` (matrix products: every derivative, forward and reverse, of any order, is exact);
    with ``exact`` its *value* is replaced by the one from coordinate differences
    (``torch.cdist``, which the expansion matches only to :math:`\sim\epsilon\lVert x\rVert^2`)
    while its derivatives are kept: :math:`q = q_0 + (q_{\text{poly}} -
    \mathrm{sg}(q_{\text{poly}}))`. The gradient at a center is 0 (:func:`_safe_sqrt`)."""
    poly = input.pow(2).sum(-1).unsqueeze(-1) + centers.pow(2).sum(-1).unsqueeze(-2) \
        - 2 * input @ centers.transpose(-1, -2)
    if not exact:
        return _safe_sqrt(poly.clamp_min(0))
    x, c = input.detach(), centers.detach()
    if stacked:  # leading dimensions: broadcast them for cdist (one envelope: traceable as is)
        shape = torch.broadcast_shapes(x.shape[:-2], c.shape[:-2])
        x, c = x.expand(*shape, *x.shape[-2:]), c.expand(*shape, *c.shape[-2:])
    exact_sq = torch.cdist(x, c, compute_mode=_CDIST[True]).pow(2)
    return _safe_sqrt(exact_sq + (poly - poly.detach()))


def _softmin(z: Tensor, tau: Tensor | float) -> Tensor:
    r""":math:`-\tau\log\sum_j e^{-z_j/\tau}` over the last axis (the minimum where
    :math:`\tau = 0`), computed from the shifted values :math:`z_j - \min z` (no overflow)."""
    hard = z.min(-1, keepdim=True).values
    if not isinstance(tau, Tensor):
        return (hard - tau * torch.logsumexp(-(z - hard) / tau, -1, keepdim=True)).squeeze(-1)
    safe = torch.where(tau > 0, tau, torch.ones_like(tau))
    smooth = hard - safe * torch.logsumexp(-(z - hard) / safe, -1, keepdim=True)
    return torch.where(tau > 0, smooth, hard).squeeze(-1)


def l2_norm_pool2d(
    input: Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    r"""The :math:`\ell_2` norm of each pooling window: :math:`\sqrt{\sum_{i\in w} x_i^2}`.

    With non-overlapping windows (``stride == kernel_size``) the map is 1-Lipschitz (the norm is
    1-Lipschitz on each window) and preserves the norm of the input. The gradient at an all-zero
    window is 0. Reference: Boureau, Ponce & LeCun, ICML 2010.
    """
    sums = F.avg_pool2d(input * input, kernel_size, stride, 0, ceil_mode, True, 1)
    return _safe_sqrt(sums)


def scaled_avg_pool2d(
    input: Tensor,
    kernel_size: int | Sequence[int],
    factor: float,
    ceil_mode: bool = False,
    divisor_override: int | None = None,
) -> Tensor:
    """Non-overlapping average pooling times ``factor`` (the module computes the factor)."""
    return F.avg_pool2d(input, kernel_size, kernel_size, 0, ceil_mode, True, divisor_override) * factor


def _window_area(input: Tensor, output_size: tuple[int | None, int | None]):
    h, w = input.shape[-2], input.shape[-1]
    oh = h if output_size[0] is None else output_size[0]
    ow = w if output_size[1] is None else output_size[1]
    if not is_tracing() and (h % oh or w % ow):
        raise ValueError(
            f"output_size={output_size} must divide the input size {(h, w)} so that pooling "
            "windows do not overlap (overlapping windows are not 1-Lipschitz after scaling)"
        )
    return (h // oh) * (w // ow), (oh, ow)


def scaled_adaptive_avg_pool2d(input: Tensor, output_size: tuple[int | None, int | None]) -> Tensor:
    r"""Adaptive average pooling over equal non-overlapping windows times :math:`\sqrt{|w|}`:
    :math:`\sum_{i\in w} x_i / \sqrt{|w|}` per window, 1-Lipschitz (Cauchy–Schwarz)."""
    area, size = _window_area(input, output_size)
    return F.adaptive_avg_pool2d(input, size) * area**0.5


def scaled_adaptive_l2_norm_pool2d(
    input: Tensor, output_size: tuple[int | None, int | None]
) -> Tensor:
    r"""Adaptive :math:`\ell_2`-norm pooling over equal non-overlapping windows (1-Lipschitz,
    norm preserving)."""
    area, size = _window_area(input, output_size)
    return _safe_sqrt(F.adaptive_avg_pool2d(input * input, size) * area)


def invertible_downsample(input: Tensor, kernel_size: int) -> Tensor:
    """``pixel_unshuffle``: a permutation of the entries (an isometry)."""
    if not is_tracing() and (input.shape[-2] % kernel_size or input.shape[-1] % kernel_size):
        raise ValueError(
            f"InvertibleDownSampling: the spatial size {tuple(input.shape[-2:])} must be divisible "
            f"by kernel_size={kernel_size}; pad or crop the input first"
        )
    return F.pixel_unshuffle(input, kernel_size)


def invertible_upsample(input: Tensor, kernel_size: int) -> Tensor:
    """``pixel_shuffle``: a permutation of the entries (an isometry)."""
    if not is_tracing() and input.shape[-3] % (kernel_size * kernel_size):
        raise ValueError(
            f"InvertibleUpSampling: the number of channels {input.shape[-3]} must be divisible by "
            f"kernel_size**2={kernel_size * kernel_size}"
        )
    return F.pixel_shuffle(input, kernel_size)
