r"""Per-cell float64 sums: of the samples (:class:`Stats`) and of the critics' values
(:class:`Moments`), from which every reported number is computed.

For critic values :math:`f_i` with weights :math:`w_i` over the cells of a part, the weighted mean
is :math:`\bar f = \sum w f / \sum w` and its variance (Kish effective size)
:math:`\mathrm{Var}(\bar f) \approx (\overline{f^2} - \bar f^2) \sum w^2 / (\sum w)^2`; the KR
value of a part is :math:`\bar f_X - \bar f_Y` with standard error
:math:`\sqrt{\mathrm{Var}\bar f_X + \mathrm{Var}\bar f_Y}`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .. import distributed as _dist
from .sources import share

__all__ = ["Moments", "Stats", "input_scale", "kr_from", "EVAL_BATCH"]

EVAL_BATCH = 4096
"""Samples per forward pass when the critics are only evaluated."""


class Moments:
    """Per-cell float64 sums of K critics' values: ``n, sum w, sum w^2, sum w f, sum w f^2``
    (shape ``(K, 5, cells)``)."""

    def __init__(self, members: int, cells: int) -> None:
        self.s = torch.zeros(members, 5, cells, dtype=torch.float64)

    def add(self, f: Tensor, w: Tensor, cells: Tensor) -> None:
        """``f``: ``(K, B)`` values, ``w`` and ``cells``: ``(B,)``."""
        f, w, c = f.detach().double().cpu(), w.double().cpu(), cells.cpu()
        rows = torch.stack([torch.ones_like(f), w.expand_as(f), (w * w).expand_as(f), w * f, w * f * f], 1)
        self.s.index_add_(2, c, rows)

    def all_sum(self) -> None:
        self.s = _dist.all_sum(self.s)

    def count(self, k: int, mask: Tensor) -> int:
        return int(self.s[k, 0, mask].sum())

    def mean_and_var(self, k: int, mask: Tensor) -> tuple[float, float]:
        """Weighted mean of critic ``k``'s values over the cells in ``mask`` and its variance."""
        sw, sw2, swf, swf2 = (float(v) for v in self.s[k, 1:, mask].sum(1))
        if sw <= 0:
            raise ValueError("a sample has no point with a positive weight; pass at least one")
        mean = swf / sw
        return mean, max(swf2 / sw - mean * mean, 0.0) * sw2 / (sw * sw)


def kr_from(mx: Moments, my: Moments, k: int, mask: Tensor) -> tuple[float, float]:
    """KR value of critic ``k`` on the cells of ``mask`` and its standard error."""
    ax, vx = mx.mean_and_var(k, mask)
    ay, vy = my.mean_and_var(k, mask)
    return ax - ay, math.sqrt(vx + vy)


class Stats:
    """Per-cell sums of the (centered) samples themselves, one pass: counts, ``sum x``,
    ``sum |x|^2`` and the weighted ``sum w``, ``sum w x``. They give the closed-form linear
    critic, its selection value, the input scale of the networks and the part sizes."""

    def __init__(self, source, cells: int, distributed: bool = False) -> None:
        d = int(np.prod(source.shape))
        self.count = torch.zeros(cells, dtype=torch.float64)
        self.sum_x = torch.zeros(cells, d, dtype=torch.float64)
        self.sum_sq = torch.zeros(cells, dtype=torch.float64)
        self.sum_w = torch.zeros(cells, dtype=torch.float64)
        self.sum_wx = torch.zeros(cells, d, dtype=torch.float64)
        for x, w, c in share(source.batches(None, EVAL_BATCH), distributed):
            x, w, c = x.reshape(x.shape[0], -1).double().cpu(), w.double().cpu(), c.cpu()
            self.count.index_add_(0, c, torch.ones_like(w))
            self.sum_x.index_add_(0, c, x)
            self.sum_sq.index_add_(0, c, x.pow(2).sum(1))
            self.sum_w.index_add_(0, c, w)
            self.sum_wx.index_add_(0, c, w[:, None] * x)
        if distributed:  # every rank summed its share of the batches
            for name in ("count", "sum_x", "sum_sq", "sum_w", "sum_wx"):
                setattr(self, name, _dist.all_sum(getattr(self, name)))

    def weighted_mean(self, mask: Tensor) -> Tensor:
        return self.sum_wx[mask].sum(0) / self.sum_w[mask].sum()


def input_scale(sx: Stats, sy: Stats, mask: Tensor) -> float:
    """RMS distance to the pooled mean of the samples in the cells of ``mask`` (both sides)."""
    n = float(sx.count[mask].sum() + sy.count[mask].sum())
    mean = (sx.sum_x[mask].sum(0) + sy.sum_x[mask].sum(0)) / n
    ms = float(sx.sum_sq[mask].sum() + sy.sum_sq[mask].sum()) / n - float(mean @ mean)
    return math.sqrt(ms) if ms > 0 else 1.0
