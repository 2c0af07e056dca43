r"""Reference Wasserstein-1 values through POT (exact transport, Sinkhorn, sliced), with the
checks POT leaves to the caller.

* :func:`exact_w1` solves the transport LP (``ot.emd2``) on the **Euclidean** cost (``ot.dist``
  defaults to the *squared* Euclidean one), with a large iteration limit, and raises if the
  solver did not reach optimality (``emd2`` otherwise returns a sub-optimal value with only a
  warning). The dense cost matrix takes ``8 n m`` bytes (more at peak), so it refuses above
  ``max_pairs``.
* :func:`sinkhorn_w1` is entropic OT: it **over**-estimates W1 (by the entropic blur).
* :func:`sliced_w1` is the sliced distance: a different, smaller quantity (an average of 1-D W1
  over random directions), not an estimate of W1.

Caution: the plug-in value ``exact_w1(X_sample, Y_sample)`` is biased upward in high dimension
(two samples of the same 784-d Gaussian are far apart); compare a critic to it only on the same
samples, where ``KR(critic) <= exact_w1`` must hold.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["exact_w1", "sinkhorn_w1", "sliced_w1", "DEFAULT_MAX_PAIRS", "as_points", "as_weights", "center_pair",
           "check_float32_range"]

DEFAULT_MAX_PAIRS = 110_000_000
"""Largest ``n * m`` :func:`exact_w1` accepts by default (10k x 10k fits: ~0.8 GB of cost matrix,
a few GB at the solver's peak)."""


def as_points(name: str, points, min_points: int = 1) -> np.ndarray:
    """``points`` as a finite float64 array ``(n, d)`` (1-D input is ``(n, 1)``; images are
    flattened); raises ``ValueError`` naming ``name`` otherwise."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers, got {type(points).__name__}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2 or array.shape[0] < min_points or array.shape[1] == 0:
        raise ValueError(f"{name} must hold at least {min_points} point(s) of dimension >= 1, "
                         f"got shape {np.shape(points)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf; clean or drop those samples first")
    return array


def as_weights(name: str, weights, n: int) -> np.ndarray:
    """Sample weights as a probability vector of length ``n`` (uniform if ``None``)."""
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} entries for {n} points")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"{name} sums to 0: give at least one point a positive weight")
    return w / total


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(name: str, values) -> None:
    """Raise ``ValueError`` naming ``name`` if a value exceeds float32's range (about 3.4e38):
    the critics compute in float32, where such a value is Inf."""
    top = float(abs(values).max()) if np.size(values) else 0.0
    if top > FLOAT32_MAX:
        raise ValueError(
            f"{name} has values of magnitude up to {top:.3g}, beyond float32's range ({FLOAT32_MAX:.3g}), "
            "which the critics compute in; rescale the data first (W1 is homogeneous: "
            "W1(aX, aY) = a * W1(X, Y) for a > 0)"
        )


def center_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``(x - c, y - c, c)`` with :math:`c` the pooled mean of both samples, in float64.

    W1 is translation invariant; centering first keeps the digits that a large common offset
    would otherwise take (POT's Euclidean cost, computed from :math:`\lVert x\rVert^2 +
    \lVert y\rVert^2 - 2\langle x, y\rangle`, loses every one of them at an offset of 1e8, and
    a float32 cast keeps 24 bits in all)."""
    c = (x.sum(0) + y.sum(0)) / (x.shape[0] + y.shape[0])
    return x - c, y - c, c


def check_same_features(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X and Y must have the same number of features, got {x.shape[1]} and {y.shape[1]}")


def _weights(fn: str, weights_x, weights_y, a, b):
    """``weights_x, weights_y``, or POT's ``a=`` / ``b=`` spellings with a ``DeprecationWarning``."""
    for old, new, given, value in (("a", "weights_x", weights_x, a), ("b", "weights_y", weights_y, b)):
        if value is not None:
            if given is not None:
                raise TypeError(f"{fn}: pass {new} only ({old} is its former name)")
            warnings.warn(f"{fn}({old}=...) is renamed {new}=... (the name lipot uses everywhere)",
                          DeprecationWarning, stacklevel=3)
    return (weights_x if a is None else a), (weights_y if b is None else b)


def exact_w1(
    X, Y, weights_x=None, weights_y=None, max_pairs: int = DEFAULT_MAX_PAIRS, num_itermax: int = 100_000_000,
    *, a=None, b=None,
) -> float:
    r"""Exact :math:`W_1` between the empirical measures :math:`\sum_i a_i\delta_{x_i}` and
    :math:`\sum_j b_j\delta_{y_j}` (uniform weights by default) for the Euclidean cost, with
    POT's network simplex (``ot.emd2``).

    Args:
        X, Y: the samples, ``(n, d)`` and ``(m, d)``.
        weights_x, weights_y: the weights :math:`a`, :math:`b` (non-negative, any scale; ``None``:
            uniform). ``a=`` / ``b=`` (POT's names) still work, with a ``DeprecationWarning``.
        max_pairs: the largest ``n * m`` accepted (the cost matrix takes ``8 n m`` bytes).
        num_itermax: the network simplex's iteration limit.

    Raises:
        ValueError: bad points or weights, or ``n * m > max_pairs`` (the memory guard: subsample,
            or use :func:`lipot.estimate_w1`, or raise ``max_pairs`` if you have the memory).
        RuntimeError: the network simplex did not reach optimality within ``num_itermax``.
    """
    import ot

    weights_x, weights_y = _weights("exact_w1", weights_x, weights_y, a, b)
    x, y = as_points("X", X), as_points("Y", Y)
    check_same_features(x, y)
    x, y, _ = center_pair(x, y)
    n, m = x.shape[0], y.shape[0]
    if n * m > max_pairs:
        raise ValueError(
            f"exact_w1: n*m = {n}*{m} = {n * m} exceeds max_pairs={max_pairs} (the cost matrix alone "
            f"takes {8 * n * m / 1e9:.1f} GB); subsample, use lipot.estimate_w1, or pass a larger "
            "max_pairs if the machine has the memory"
        )
    a_, b_ = as_weights("weights_x", weights_x, n), as_weights("weights_y", weights_y, m)
    cost = ot.dist(x, y, metric="euclidean")
    with warnings.catch_warnings():  # POT only warns on a sub-optimal stop; we raise below
        warnings.filterwarnings("ignore", message="numItermax reached", category=UserWarning)
        value, log = ot.emd2(a_, b_, cost, numItermax=int(num_itermax), log=True)
    if log.get("result_code") != 1:
        raise RuntimeError(
            f"exact_w1: POT's emd2 stopped without an optimal plan (result_code="
            f"{log.get('result_code')}, {log.get('warning')}); raise num_itermax (now {num_itermax})"
        )
    return float(value)


def sinkhorn_w1(X, Y, weights_x=None, weights_y=None, reg: float = 0.05, num_itermax: int = 10_000,
                stop_thr: float = 1e-9, *, a=None, b=None) -> float:
    r"""Entropic OT cost :math:`\langle P_\varepsilon, C\rangle` (at convergence) with the Euclidean cost ``C`` and
    regularization ``reg`` **relative to the mean cost** (``reg * mean(C)``). It is >= W1 (the
    entropic plan is feasible, not optimal): a baseline, not an estimate to trust. Weights as
    :func:`exact_w1`."""
    import ot

    weights_x, weights_y = _weights("sinkhorn_w1", weights_x, weights_y, a, b)
    x, y = as_points("X", X), as_points("Y", Y)
    check_same_features(x, y)
    x, y, _ = center_pair(x, y)
    if not reg > 0:
        raise ValueError(f"reg must be > 0, got {reg!r}")
    a_, b_ = as_weights("weights_x", weights_x, x.shape[0]), as_weights("weights_y", weights_y, y.shape[0])
    cost = ot.dist(x, y, metric="euclidean")
    scale = float(cost.mean()) or 1.0
    plan = ot.sinkhorn(a_, b_, cost / scale, reg, numItermax=num_itermax, stopThr=stop_thr)
    return float((plan * cost).sum())


def sliced_w1(X, Y, weights_x=None, weights_y=None, n_projections: int = 500, seed: int = 0, *,
              a=None, b=None) -> float:
    r"""Sliced Wasserstein-1: the mean over ``n_projections`` random unit directions of the 1-D
    :math:`W_1` of the projections. Always <= W1 and a different quantity (at d = 784 it was
    0.035 x W1 in a measured case): use it as a cheap, dimension-free comparison only. Weights
    as :func:`exact_w1`."""
    import ot

    weights_x, weights_y = _weights("sliced_w1", weights_x, weights_y, a, b)
    x, y = as_points("X", X), as_points("Y", Y)
    check_same_features(x, y)
    x, y, _ = center_pair(x, y)
    a_, b_ = as_weights("weights_x", weights_x, x.shape[0]), as_weights("weights_y", weights_y, y.shape[0])
    return float(ot.sliced_wasserstein_distance(x, y, a_, b_, n_projections=n_projections, p=1, seed=seed))
