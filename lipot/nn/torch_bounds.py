r"""Lipschitz bounds of the weight-free ``torch.nn`` modules that lipot accepts.

Two entry points, one per use:

* :func:`nominal_torch_bound` (no input shape): a bound valid for *every* input size, for the
  claims of :class:`lipot.Sequential` and :class:`lipot.LipResidual`;
* :func:`shaped_torch_bound` (one sample's shape): the bound on that input size, tighter where
  the size matters (pooling windows at the edges, padding copies), for
  :func:`lipot.certify.lipschitz_bound`.

Both return ``None`` for a module they do not know and raise ``ValueError`` naming the module and
the argument for a setting that has no finite bound (e.g. ``nn.Softplus`` with a low
``threshold``, whose switch to the identity is a jump).

**Window operators.** Max pooling takes, per window, the largest input; each window map is
1-Lipschitz, so with :math:`c_i` the number of windows that contain input :math:`i`,

.. math::
    \lVert P(x) - P(y)\rVert^2 = \sum_w \big(\max_w x - \max_w y\big)^2
    \le \sum_w \max_{i\in w}(x_i - y_i)^2 \le \max_i c_i\,\lVert x - y\rVert^2 ,

and a unit impulse at the pixel with the largest count attains :math:`\sqrt{\max_i c_i}`. The
windows of ``MaxPool{1,2,3}d`` and ``AdaptiveMaxPool{1,2,3}d`` are products of per-axis
intervals, so :math:`c` is a product of per-axis counts. Without an input size, an axis with
kernel :math:`k`, stride :math:`s` and dilation :math:`d` has at most
:math:`\lceil k\gcd(d, s)/s\rceil` windows through one input (a window reads the taps
:math:`t d`, :math:`t < k`, and one input is read by a window of a given start only through taps
with :math:`t d \equiv r \pmod s`: every :math:`s/\gcd(d,s)`-th tap). With an input size lipot
counts the windows by feeding torch's own module indicator hyperplanes (one input position per
axis), so padding, dilation and ``ceil_mode`` follow torch exactly.

Average pooling, adaptive average pooling, interpolation with non-negative weights (nearest,
linear, bilinear, trilinear, area) and padding (zeros, constant, reflect, replicate, circular)
are affine maps :math:`x \mapsto Ax + b` with :math:`A \ge 0` entrywise. Schur's test bounds them
by :math:`\lVert A\rVert_2 \le \sqrt{\max_j \sum_i A_{ij}\,\max_i \sum_j A_{ij}}`; the column sums
:math:`A^\top\mathbf 1` come from torch's own backward and the row sums from
:math:`f(\mathbf 1) - f(0)`. The bound is exact for copies (padding, nearest upsampling by an
integer factor: :math:`\sqrt{\text{largest number of copies}}`) and for non-overlapping average
pooling (:math:`1/\sqrt{|w|}`).

References: Anil, Lucas & Grosse, arXiv:1811.05381 (pooling in Lipschitz networks); Schur,
J. reine angew. Math. 140 (1911), for the row/column-sum bound.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["nominal_torch_bound", "shaped_torch_bound", "ONE_LIPSCHITZ"]

# Modules that are 1-Lipschitz (l2 -> l2) whatever their arguments.
ONE_LIPSCHITZ = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.ReLU,
    nn.ReLU6,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Softsign,
    nn.Tanhshrink,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.Softmax,  # Jacobian diag(p) - p p^T, norm <= 1/2 per slice
)

_MAX_POOLS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}
_ADAPTIVE_MAX_POOLS = {nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3}
_AVG_POOLS = {nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}
_ADAPTIVE_AVG_POOLS = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}
_PADS = (
    nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
    nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d,
)
_NON_NEGATIVE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")

# Softplus switches to the identity at beta * x > threshold with a jump of log(1 + e^-t) / beta;
# it is accepted when the jump is below float32 rounding of the output there (t >= 15).
_SOFTPLUS_MIN_THRESHOLD = 15.0


def _axes(value, n: int, name: str, module: nn.Module) -> tuple[int, ...]:
    """An int or tuple argument of a pooling module as ``n`` ints (torch accepts both forms)."""
    out = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(out) == 1 and n > 1:
        out = out * n
    if len(out) != n:
        raise ValueError(f"{type(module).__name__}: {name}={value!r} does not have {n} entries")
    return tuple(int(v) for v in out)


def _activation_bound(module: nn.Module) -> float | None:
    if isinstance(module, ONE_LIPSCHITZ):
        return 1.0
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(float(module.negative_slope)))
    if isinstance(module, nn.ELU):  # slope alpha * e^x on x < 0, up to |alpha| at 0
        return max(1.0, abs(float(module.alpha)))
    if isinstance(module, nn.Softplus):
        beta, threshold = float(module.beta), float(module.threshold)
        if not math.isfinite(beta) or beta == 0:
            raise ValueError(f"Softplus: beta={module.beta!r} must be a finite non-zero number")
        if threshold < _SOFTPLUS_MIN_THRESHOLD:
            raise ValueError(
                f"Softplus: threshold={module.threshold!r} makes the switch to the identity at "
                f"beta * x = threshold a jump of log(1 + exp(-threshold)) / beta = "
                f"{math.log1p(math.exp(-threshold)) / abs(beta):.3g}, so the module has no "
                f"Lipschitz bound; use threshold >= {_SOFTPLUS_MIN_THRESHOLD:g} (torch's default "
                "is 20)"
            )
        return 1.0
    return None


def _max_pool_nominal(module: nn.Module, n: int) -> float:
    ks = _axes(module.kernel_size, n, "kernel_size", module)
    st = _axes(module.stride if module.stride else module.kernel_size, n, "stride", module)
    dl = _axes(module.dilation, n, "dilation", module)
    count = math.prod(math.ceil(k * math.gcd(d, s) / s) for k, s, d in zip(ks, st, dl))
    return math.sqrt(count)


def _refuse_indices(module: nn.Module) -> None:
    if getattr(module, "return_indices", False):
        raise ValueError(
            f"{type(module).__name__}: return_indices=True returns a tuple; lipot bounds the "
            "pooling itself (use return_indices=False inside the model)"
        )


def nominal_torch_bound(module: nn.Module) -> float | None:
    """A bound of the ``torch.nn`` module ``module`` that holds for every input size, or
    ``None`` if lipot does not know one (see the module docstring)."""
    bound = _activation_bound(module)
    if bound is not None:
        return bound
    n = _MAX_POOLS.get(type(module))
    if n is not None:
        _refuse_indices(module)
        return _max_pool_nominal(module, n)
    return None


def _channel_axes(shape: tuple[int, ...], n: int, module: nn.Module) -> int:
    """Number of leading (channel) axes of one sample before its ``n`` spatial axes."""
    lead = len(shape) - n
    if lead not in (0, 1):
        raise ValueError(
            f"{type(module).__name__} acts on {n} spatial axes with an optional channel axis; "
            f"one sample of shape {shape} does not fit"
        )
    return lead


def _window_counts(module: nn.Module, shape: tuple[int, ...], n: int) -> int:
    """Largest number of windows of a max-type pooling that contain one input position, counted
    through the module itself: along each spatial axis, a batch of indicator hyperplanes (one per
    position); a window outputs 1 exactly when it contains the hyperplane (padding is -inf)."""
    lead = _channel_axes(shape, n, module)
    shape = (1,) * lead + shape[lead:]  # channels are pooled alike: one is enough
    total = 1
    for a in range(n):
        axis = 1 + lead + a  # in the (batch, *shape) tensor
        length = shape[lead + a]
        x = torch.zeros(length, *shape, dtype=torch.float64)
        x.movedim(axis, 1).diagonal(0, 0, 1).fill_(1.0)  # x[i] = 1 where coordinate `axis` is i
        with torch.no_grad():
            y = module(x)
        per_hyperplane = y[0].numel() // y.shape[axis]
        counts = y.reshape(length, -1).sum(1) / per_hyperplane
        rounded = counts.round()
        if not torch.allclose(counts, rounded, rtol=0, atol=1e-9):
            raise ValueError(f"{type(module).__name__}: its windows could not be counted on {shape}")
        total *= int(rounded.max())
    return total


def _schur_bound(module: nn.Module, shape: tuple[int, ...]) -> float:
    """Schur's bound sqrt(max column sum * max row sum) of an affine map with non-negative
    coefficients: the row sums from torch's forward, the column sums from its backward, which a
    dot-product test checks against the forward (<A x, 1> = <x, A^T 1> for random x)."""
    zero = torch.zeros(1, *shape, dtype=torch.float64)
    ones = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        out = module(ones)
        (columns,) = torch.autograd.grad(out.sum(), ones)
    with torch.no_grad():
        offset = module(zero)
        rows = out.detach() - offset
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            x = torch.randn(zero.shape, generator=gen, dtype=torch.float64)
            forward = float((module(x) - offset).sum())
            adjoint = float((x * columns).sum())
            if abs(forward - adjoint) > 1e-9 * (abs(forward) + float(x.abs().sum() * columns.abs().max()) + 1):
                raise ValueError(
                    f"cannot bound {module}: torch's backward for it is not the adjoint of its "
                    f"forward on inputs of shape {shape} (e.g. circular padding with a negative "
                    "amount), so lipot cannot count how often it copies each input; use "
                    "non-negative padding amounts"
                )
    if columns.numel() == 0 or rows.numel() == 0:
        return 0.0
    return math.sqrt(float(columns.max().clamp_min(0)) * float(rows.max().clamp_min(0)))


def _is_empty_output(module: nn.Module, shape: tuple[int, ...]) -> bool:
    """Whether the output is empty (a map into a zero-dimensional space is 0-Lipschitz); refuse a
    setting whose output is not a function of the input with finite values: a max window that
    reads only padding (``-inf``), an average over no input pixel (``nan``)."""
    with torch.no_grad():
        out = module(torch.zeros(1, *shape, dtype=torch.float64))
    if out.numel() == 0:
        return True
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"cannot bound {module} on inputs of shape {shape}: some of its windows read only "
            "padding, so its output is not finite (-inf or nan) whatever the input; reduce padding "
            "or dilation, or use a larger input"
        )
    return False


def _check_circular_padding(module: nn.Module) -> None:
    if isinstance(module, (nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)) and min(module.padding) < 0:
        raise ValueError(
            f"cannot bound {module}: padding={module.padding} has a negative amount; torch's "
            "circular padding with negative amounts reads the wrong entries (its output can hold "
            "uninitialized memory and its backward is not the adjoint), so lipot refuses it; crop "
            "with slicing instead"
        )


def _check_non_negative(module: nn.Module) -> None:
    name = type(module).__name__
    divisor = getattr(module, "divisor_override", None)
    if divisor is not None and divisor <= 0:
        raise ValueError(f"{name}: divisor_override={divisor!r} must be > 0 "
                         "(a negative divisor flips the sign of the average)")
    if isinstance(module, nn.Upsample) and module.mode not in _NON_NEGATIVE_MODES:
        raise ValueError(
            f"{name}: mode={module.mode!r} has negative interpolation weights; lipot bounds the "
            f"modes {_NON_NEGATIVE_MODES}"
        )


def _is_non_negative_affine(module: nn.Module) -> bool:
    return isinstance(module, (*_AVG_POOLS, *_ADAPTIVE_AVG_POOLS, *_PADS, nn.Upsample))


def shaped_torch_bound(module: nn.Module, shape: tuple[int, ...]) -> float | None:
    """A bound of the ``torch.nn`` module ``module`` on one sample of ``shape`` (no batch axis),
    or ``None`` if lipot does not know one (see the module docstring)."""
    bound = _activation_bound(module)
    if bound is not None:
        return bound
    n = _MAX_POOLS.get(type(module)) or _ADAPTIVE_MAX_POOLS.get(type(module))
    if n is not None:
        _refuse_indices(module)
        return 0.0 if _is_empty_output(module, shape) else math.sqrt(_window_counts(module, shape, n))
    if _is_non_negative_affine(module):
        _check_non_negative(module)
        _check_circular_padding(module)
        return 0.0 if _is_empty_output(module, shape) else _schur_bound(module, shape)
    return None
