r"""Data sources of the W1 estimator: samples in memory or streamed, centered in float64.

W1 is translation invariant, so both samples are centered on their pooled mean :math:`c`
**in float64** before the float32 cast the critics need: float32 keeps 24 bits, so data offset by
1e8 would otherwise lose every digit below 8 (the estimate of a W1 of 2 collapses to 0.1).
Values beyond the float32 range are refused (they cannot reach a float32 critic).

* :class:`Memory`: arrays and tensors; float32 ``(n, *shape)`` on the device, weights, cells.
* :class:`Stream`: a ``torch.utils.data.Dataset`` or ``DataLoader`` read in order on every pass
  (constant memory); cells from a hash of the sample's position. It must yield the same samples
  in the same order on every pass, as batches of samples or ``(samples, weights)`` pairs.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler

from .. import distributed as _dist
from ..ot import check_same_features, as_points, as_weights, check_float32_range
from .folds import FoldPlan, cells_by_hash, cells_by_rank

__all__ = ["Memory", "Stream", "make_sources", "is_stream", "share", "zip_cycle", "sample_points"]


class Memory:
    """An in-memory sample ``x`` (float64 array ``(n, *shape)``), centered on ``center`` in
    float64 and stored as float32 on ``device``."""

    def __init__(self, name: str, x: np.ndarray, w: np.ndarray, device: torch.device,
                 center: np.ndarray | None = None) -> None:
        check_float32_range(name, x)
        self.name, self.shape, self.device = name, tuple(x.shape[1:]), device
        centered = x if center is None else x - center.reshape(self.shape)
        self.x = torch.as_tensor(centered, dtype=torch.float32).to(device)
        self.w = torch.as_tensor(w, dtype=torch.float32).to(device)
        self.cells = torch.zeros(x.shape[0], dtype=torch.int64, device=device)

    def assign(self, plan: FoldPlan, rng: np.random.Generator, key: int) -> None:
        self.cells = cells_by_rank(self.x.shape[0], plan, rng).to(self.device)

    def batches(self, mask: Tensor | None, batch_size: int, gen: torch.Generator | None = None
                ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Batches ``(x, w, cells)`` of the samples whose cell is in ``mask`` (all if None);
        shuffled with ``gen``, else in order."""
        if mask is None:
            idx = torch.arange(self.x.shape[0], device=self.device)
        else:
            idx = torch.nonzero(mask.to(self.device)[self.cells]).reshape(-1)
        if gen is not None:
            idx = idx[torch.randperm(idx.numel(), generator=gen).to(self.device)]
        if idx.numel() == self.x.shape[0] and gen is None and batch_size >= idx.numel():
            yield self.x, self.w, self.cells
            return
        for i in range(0, idx.numel(), batch_size):
            j = idx[i:i + batch_size]
            yield self.x[j], self.w[j], self.cells[j]


class Stream:
    """A streamed sample (``Dataset`` or ``DataLoader``): read in order on every pass; cells
    from a hash of the position; batches are the loader's; centered on ``center`` (set after a
    first pass, :meth:`raw_mean`)."""

    def __init__(self, name: str, data, batch_size: int, device: torch.device) -> None:
        if isinstance(data, DataLoader):
            if isinstance(data.sampler, RandomSampler):
                raise ValueError(f"{name}: the DataLoader shuffles, but lipot assigns samples to folds by "
                                 "their position, which must be the same on every pass; pass shuffle=False "
                                 "(shuffle the data once on disk instead)")
            self.loader = data
        else:
            self.loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        self.name, self.device = name, device
        self.plan, self.key = FoldPlan(1, (0.3, 0.15)), 0
        self.center: Tensor | None = None
        first = next(iter(self.batches(None, 0)), None)
        if first is None:
            raise ValueError(f"{name} is empty; pass at least 2 samples")
        self.shape = tuple(first[0].shape[1:])

    def assign(self, plan: FoldPlan, rng: np.random.Generator, key: int) -> None:
        self.plan, self.key = plan, key

    def raw_mean(self) -> tuple[np.ndarray, int]:
        """``(sum of the samples, count)`` in float64 over one pass (before centering)."""
        total, count = None, 0
        for _, batch in self._raw_batches():
            x = batch[0].reshape(batch[0].shape[0], -1)
            s = x.sum(0)
            total = s if total is None else total + s
            count += x.shape[0]
        return total.cpu().numpy(), count

    def _parse(self, batch, pos: int) -> tuple[Tensor, Tensor]:
        if isinstance(batch, (tuple, list)) and len(batch) == 1:
            batch = batch[0]
        if isinstance(batch, Tensor):
            x, w = batch, None
        elif isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], Tensor) \
                and batch[1].is_floating_point():
            x, w = batch
        else:
            raise TypeError(f"{self.name} must yield batches of samples or (samples, float weights) pairs; got "
                            f"{type(batch).__name__} (a (samples, labels) dataset? select one class first)")
        x = torch.as_tensor(x)
        if x.ndim == 1:
            x = x[:, None]
        x = x.to(self.device, torch.float64)
        w = torch.ones(x.shape[0], device=self.device) if w is None else w.to(self.device, torch.float32).reshape(-1)
        if w.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: a batch has {x.shape[0]} samples but {w.shape[0]} weights")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{self.name} contains NaN or Inf (batch starting at sample {pos}); "
                             "clean or drop those samples first")
        check_float32_range(f"{self.name} (batch starting at sample {pos})", x)
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"{self.name}: weights must be finite and >= 0 (batch starting at sample {pos})")
        return x, w

    def _raw_batches(self) -> Iterator[tuple[int, tuple[Tensor, Tensor]]]:
        pos = 0
        for batch in self.loader:
            x, w = self._parse(batch, pos)
            yield pos, (x, w)
            pos += x.shape[0]

    def batches(self, mask: Tensor | None, batch_size: int, gen: torch.Generator | None = None
                ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for pos, (x, w) in self._raw_batches():
            if self.center is not None:
                x = x - self.center.reshape(x.shape[1:])
            x = x.float()
            cells = cells_by_hash(np.arange(pos, pos + x.shape[0]), self.plan, self.key).to(self.device)
            if mask is None:
                yield x, w, cells
                continue
            keep = mask.to(self.device)[cells]
            if bool(keep.any()):
                yield x[keep], w[keep], cells[keep]


def sample_points(source, mask: Tensor, count: int, gen: torch.Generator) -> Tensor:
    """``count`` samples ``(count, *shape)`` of ``source`` (centered) whose cell is in ``mask``:
    a random subset (``gen``) of an in-memory sample, the first ones of a stream; repeated in
    turn when fewer samples are there."""
    taken, total = [], 0
    for x, _, _ in source.batches(mask, count, gen):
        taken.append(x[:count - total])
        total += taken[-1].shape[0]
        if total >= count:
            break
    if not total:
        raise ValueError(f"{source.name} has no sample in the requested part")
    points = torch.cat(taken)
    return points[torch.arange(count, device=points.device) % total]


def is_stream(data) -> bool:
    return isinstance(data, (Dataset, DataLoader))


def share(batches: Iterator, distributed: bool) -> Iterator:
    """This rank's batches: every ``world_size``-th one when ``distributed``, else all."""
    if not distributed:
        return iter(batches)
    return itertools.islice(batches, _dist.rank(), None, _dist.world_size())


def zip_cycle(make_x: Callable[[], Iterator], make_y: Callable[[], Iterator]) -> Iterator[tuple]:
    """Pairs of batches until both sides have been read once (the shorter one restarts)."""
    its, done = [make_x(), make_y()], [False, False]
    makers = (make_x, make_y)
    while True:
        pair = []
        for s in range(2):
            item = next(its[s], None)
            if item is None:
                done[s] = True
                if all(done):
                    return
                its[s] = makers[s]()
                item = next(its[s], None)
                if item is None:
                    return
            pair.append(item)
        yield tuple(pair)


def make_sources(X, Y, weights_x, weights_y, batch_size: int | None, device: torch.device,
                 center: np.ndarray | None = None):
    """``(X source, Y source, center)``: both samples in memory (arrays, tensors, with weights)
    or both streamed (Datasets / DataLoaders, batches of ``batch_size`` or 256), centered in
    float64 on ``center`` (default: their pooled mean). W1 is translation invariant, and
    centering before any float32 cast keeps the digits of data far from the origin."""
    if is_stream(X) or is_stream(Y):
        if not (is_stream(X) and is_stream(Y)):
            raise TypeError("X and Y must both be arrays/tensors or both be Datasets/DataLoaders")
        if weights_x is not None or weights_y is not None:
            raise ValueError("with Datasets or DataLoaders, yield (samples, weights) pairs instead of "
                             "passing weights_x / weights_y")
        sx, sy = (Stream(n, d, batch_size or 256, device) for n, d in (("X", X), ("Y", Y)))
        if sx.shape != sy.shape:
            raise ValueError(f"X and Y must have the same sample shape, got {sx.shape} and {sy.shape}")
        if center is None:
            (ax, nx), (ay, ny) = sx.raw_mean(), sy.raw_mean()
            center = (ax + ay) / (nx + ny)
        for s in (sx, sy):
            s.center = torch.as_tensor(center, dtype=torch.float64, device=device)
        return sx, sy, center
    x, y = as_points("X", X, min_points=2), as_points("Y", Y, min_points=2)
    check_same_features(x, y)
    shape = tuple(np.shape(X)[1:]) or (1,)
    if (tuple(np.shape(Y)[1:]) or (1,)) != shape:
        raise ValueError(f"X and Y must have the same sample shape, got {shape} and {tuple(np.shape(Y)[1:])}")
    if center is None:
        center = (x.sum(0) + y.sum(0)) / (x.shape[0] + y.shape[0])
    wx, wy = as_weights("weights_x", weights_x, x.shape[0]), as_weights("weights_y", weights_y, y.shape[0])
    sx, sy = (Memory(n, a.reshape(a.shape[0], *shape), w, device, center)
              for n, a, w in (("X", x, wx), ("Y", y, wy)))
    return sx, sy, center
