r"""Samplers as sources of the W1 estimator: fresh samples on demand.

A *sampler* is a callable ``draw(n)`` that returns ``n`` new samples (an array or tensor
``(n, ...)``: a generative model against a dataset, a simulator, a benchmark pair), or an
iterator whose ``next()`` returns a batch of new samples. The estimator then needs no fixed
dataset: it draws

* a **held-out** part and a **selection** part once (their sizes set by the user): the reported
  value is the KR value of the critic on the held-out draw, which the critic never saw, so it is
  unbiased for :math:`\mathbb E_\mu f - \mathbb E_\nu f \le W_1`, with its standard error;
* a first **training** part (for the input scale and the closed-form linear critic), and then a
  fresh training draw of the same size for every pass over the training part, so the networks
  train on new samples at every epoch and cannot overfit a finite sample.

This is how a W1 critic evaluates a generative model (Arjovsky, Chintala & Bottou,
arXiv:1701.07875) and how the solvers of Korotin, Kolesov & Burnaev's W1 benchmark (NeurIPS
2022) were trained. :class:`Sampled` counts what it drew (``W1Result.n_drawn``).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .. import _checks
from ..ot import check_float32_range
from .folds import FoldPlan
from .sources import Memory

__all__ = ["Sampled", "is_sampler", "sampler_plan", "DEFAULT_DRAWS"]

DEFAULT_DRAWS = (8192, 4096, 8192)
"""Default ``draws``: samples per side for each training pass, the selection part and the
held-out part."""


def is_sampler(data) -> bool:
    """A callable or an iterator (not an array, tensor, Dataset or DataLoader)."""
    if isinstance(data, (np.ndarray, Tensor, Dataset, DataLoader, list, tuple)):
        return False
    return callable(data) or isinstance(data, Iterator)


def check_draws(draws) -> tuple[int, int, int]:
    """``draws`` as three positive ints (train pass, selection, held-out)."""
    if not isinstance(draws, (tuple, list)) or len(draws) != 3:
        raise ValueError(f"draws must be (train, selection, heldout) sample counts, got {draws!r}")
    return tuple(_checks.positive_int(name, int(v) if isinstance(v, (np.integer,)) else v)
                 for name, v in zip(("draws[0] (train)", "draws[1] (selection)", "draws[2] (heldout)"), draws))


def sampler_plan(draws: tuple[int, int, int]) -> FoldPlan:
    """One train / selection / held-out split whose shares match ``draws`` on the first draw."""
    total = sum(draws)
    return FoldPlan(1, (draws[2] / total, draws[1] / total))


class Sampled(Memory):
    """A sampler as a source: a first draw of ``sum(draws)`` samples stored like an in-memory
    sample (its cells split it into train / selection / held-out parts), and a fresh draw of
    ``draws[0]`` samples for every pass over the training part."""

    def __init__(self, name: str, sampler, draws: tuple[int, int, int], device: torch.device) -> None:
        self.name, self.sampler, self.draws, self.drawn, self.device_ = name, sampler, draws, 0, device
        self._buffer: np.ndarray | None = None
        self.train_mask: Tensor | None = None
        self._center: np.ndarray | None = None
        self.first = self.draw(sum(draws))

    def draw(self, n: int) -> np.ndarray:
        """``n`` new samples as a float64 array ``(n, ...)`` (counted in ``drawn``)."""
        name = self.name
        parts, total = [] if self._buffer is None else [self._buffer], 0 if self._buffer is None else len(self._buffer)
        self._buffer = None
        while total < n:
            batch = self.sampler(n - total) if callable(self.sampler) else next(self.sampler, None)
            if batch is None:
                raise ValueError(f"{name}: the sampler is exhausted after {self.drawn + total} samples; "
                                 f"the estimator needs {n - total} more")
            if isinstance(batch, Tensor):
                batch = batch.detach().cpu().numpy()
            arr = np.asarray(batch, dtype=np.float64)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim < 2 or arr.shape[0] == 0:
                raise ValueError(f"{name}: the sampler returned shape {arr.shape}; it must return a batch (n, ...) "
                                 "of samples")
            if not np.isfinite(arr).all():
                raise ValueError(f"{name}: the sampler returned NaN or Inf values")
            if parts and arr.shape[1:] != parts[0].shape[1:]:
                raise ValueError(f"{name}: the sampler changed the sample shape from {parts[0].shape[1:]} to "
                                 f"{arr.shape[1:]}")
            parts.append(arr)
            total += arr.shape[0]
        out = np.concatenate(parts)
        if out.shape[0] > n:  # an iterator's batch larger than needed: keep the rest for later
            self._buffer = out[n:]
        self.drawn += n
        check_float32_range(name, out[:n])
        return out[:n]

    def store(self, center: np.ndarray) -> None:
        """Keep the first draw, centered on ``center``, as the in-memory sample."""
        self._center = center
        Memory.__init__(self, self.name, self.first, np.ones(self.first.shape[0]), self.device_, center)
        self.first = None

    def assign(self, plan: FoldPlan, rng: np.random.Generator, key: int) -> None:
        super().assign(plan, rng, key)
        self.train_mask = plan.union("train").to(self.device)
        self._train_cells = self.cells[self.train_mask[self.cells]]

    def batches(self, mask: Tensor | None, batch_size: int, gen: torch.Generator | None = None):
        """A pass over the training part draws new samples; other parts are the first draw's."""
        if mask is None or self.train_mask is None or not torch.equal(mask.to(self.device), self.train_mask):
            yield from super().batches(mask, batch_size, gen)
            return
        for start in range(0, self.draws[0], batch_size):  # drawn batch by batch, when needed
            fresh = self.draw(min(batch_size, self.draws[0] - start)) - self._center.reshape(self.shape)
            x = torch.as_tensor(fresh, dtype=torch.float32).to(self.device)
            pick = torch.randint(self._train_cells.numel(), (x.shape[0],), generator=gen).to(self.device)
            yield x, torch.ones(x.shape[0], device=self.device), self._train_cells[pick]


def make_sampled(X, Y, draws: tuple[int, int, int], device: torch.device):
    """``(X source, Y source, center)`` for two samplers, centered on the pooled mean of their
    first draws (in float64)."""
    if not (is_sampler(X) and is_sampler(Y)):
        raise TypeError("X and Y must both be samplers (callables or iterators) or both be data")
    sx, sy = Sampled("X", X, draws, device), Sampled("Y", Y, draws, device)
    if sx.first.shape[1:] != sy.first.shape[1:]:
        raise ValueError(f"X and Y must have the same sample shape, got {sx.first.shape[1:]} and {sy.first.shape[1:]}")
    flat = [s.first.reshape(s.first.shape[0], -1) for s in (sx, sy)]
    center = (flat[0].sum(0) + flat[1].sum(0)) / (flat[0].shape[0] + flat[1].shape[0])
    for s in (sx, sy):
        s.store(center)
    return sx, sy, center
