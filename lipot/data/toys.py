r"""Seeded toy pairs of samples with a known or exact Wasserstein-1 distance: the built-in data of
``lipot estimate --toy NAME`` and of the W1 validation benchmarks (also in :mod:`lipot.data`).

* ``"shift"``: :math:`N(0, I_d)` vs :math:`N(m, I_d)`; :math:`W_1 = \lVert m\rVert` (a translation
  moves every point by :math:`m`, and no plan moves mass less: the means differ by :math:`m`).
* ``"scaled"``: :math:`N(0, I_d)` vs :math:`N(0, s^2 I_d)`; :math:`W_1 = |s - 1|\,E\lVert X\rVert`
  (the map :math:`x \mapsto s x` is the gradient of a convex function, hence optimal, and the
  critic :math:`\mathrm{sign}(s-1)\lVert x\rVert` attains the same value), with
  :math:`E\lVert X\rVert = \sqrt2\,\Gamma(\frac{d+1}2)/\Gamma(\frac d2)`.
* ``"moons"``: the two half-moons of scikit-learn's ``make_moons`` shape, with uniformly drawn
  angles (noise 0.1); reference: the exact
  :math:`W_1` of the two samples (POT's network simplex).
* ``"ring-grid"``: 8 Gaussians on a circle of radius 2 vs a 5 x 5 grid of Gaussians (sd 0.05);
  reference: the exact :math:`W_1` of the two samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _checks
from ..ot import exact_w1

__all__ = ["TOYS", "ToyPair", "toy_pair", "two_moons", "gaussian_shift", "scaled_gaussians", "ring_vs_grid",
           "mean_norm"]

TOYS = ("moons", "shift", "scaled", "ring-grid")


def mean_norm(d: int) -> float:
    r""":math:`E\lVert X\rVert` for :math:`X \sim N(0, I_d)` (the chi distribution's mean)."""
    return math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def two_moons(n: int, rng: np.random.Generator, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The upper and lower half-moons, ``n`` points each, Gaussian noise of sd ``noise``."""
    t = rng.uniform(0, np.pi, n)
    upper = np.c_[np.cos(t), np.sin(t)]
    t = rng.uniform(0, np.pi, n)
    lower = np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    return upper + noise * rng.normal(size=upper.shape), lower + noise * rng.normal(size=lower.shape)


def gaussian_shift(d: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """``N(0, I)`` vs ``N(m, I)`` with ``||m|| = 2`` (ones on 4 coordinates, or ``2 e_1`` for
    ``d < 4``); returns ``(x, y, 2.0)``."""
    m = np.zeros(d)
    m[:4] = 1.0 if d >= 4 else 0.0
    if d < 4:
        m[0] = 2.0
    return rng.normal(size=(n, d)), rng.normal(size=(n, d)) + m, 2.0


def scaled_gaussians(d: int, n: int, rng: np.random.Generator, s: float = 1.5) -> tuple[np.ndarray, np.ndarray, float]:
    """``N(0, I)`` vs ``N(0, s^2 I)``; returns ``(x, y, |s - 1| E||X||)``."""
    return rng.normal(size=(n, d)), s * rng.normal(size=(n, d)), abs(s - 1) * mean_norm(d)


def ring_vs_grid(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """2-D mixtures: 8 Gaussians on a circle of radius 2 vs a 5 x 5 grid of Gaussians (sd 0.05)."""
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    x = 2 * np.c_[np.cos(angles), np.sin(angles)] + 0.05 * rng.normal(size=(n, 2))
    y = rng.integers(-2, 3, (n, 2)).astype(float) + 0.05 * rng.normal(size=(n, 2))
    return x, y


@dataclass
class ToyPair:
    """Two samples and their reference distance: ``w1`` is the truth (``reference == "truth"``)
    or the exact W1 of these two samples (``"exact"``, POT)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    w1: float
    reference: str


def toy_pair(name: str = "moons", n: int = 2000, seed: int = 0, d: int = 10) -> ToyPair:
    """The toy pair ``name`` (one of :data:`TOYS`) with ``n`` points per side, drawn with
    ``numpy.random.default_rng(seed)``; ``d``: the dimension of ``"shift"`` and ``"scaled"``.
    The exact references are computed here (about a second for ``n = 2000``)."""
    if name not in TOYS:
        raise ValueError(f"name must be one of {TOYS}, got {name!r}")
    _checks.positive_int("n", n)
    _checks.positive_int("d", d)
    rng = np.random.default_rng(seed)
    if name == "shift":
        return ToyPair(name, *gaussian_shift(d, n, rng), "truth")
    if name == "scaled":
        return ToyPair(name, *scaled_gaussians(d, n, rng), "truth")
    x, y = two_moons(n, rng) if name == "moons" else ring_vs_grid(n, rng)
    return ToyPair(name, x, y, exact_w1(x, y), "exact")
