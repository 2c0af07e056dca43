r"""Wasserstein-1 estimation with a Kantorovich-Rubinstein (KR) dual critic.

.. math::
    W_1(\mu, \nu) = \sup_{\mathrm{Lip}(f)\le 1} \mathbb{E}_\mu f - \mathbb{E}_\nu f .

For any *fixed* 1-Lipschitz :math:`f`, the KR value :math:`\bar f_X - \bar f_Y` on samples the
critic never saw is an unbiased estimate of :math:`\mathbb{E}_\mu f - \mathbb{E}_\nu f \le
W_1(\mu, \nu)`; the in-sample value is not (a critic overfits). So each critic sees
three disjoint parts: *train* (fit it), *selection* (early stopping and model selection) and
*held-out* (the reported ``value``, with a standard error from the per-sample critic values and a
95 % normal interval). By default the held-out parts are the K folds of a cross-fitting
(``folds=5``): every sample is held out once and the value is the mean of the K held-out values.

**Model selection.** With the default ``critic=None`` each fold has two candidates, and the one
with the larger KR value on the selection part is kept:

* the best *linear* critic :math:`f(x) = \langle u, x\rangle`, :math:`\|u\|_2 = 1`, which has a
  closed form, :math:`u \propto \bar x - \bar y` (weighted means). It is optimal for a shift of
  the distribution and does not overfit noise directions the way a network does in high
  dimension (Gaussian shift in d = 784: a GNP network's held-out value is 1.0-1.6 for W1 = 2);
* a GNP network (:func:`lipot.models.dense_critic`, or :func:`lipot.models.conv_critic` for
  square images, orthogonal convolutions by default) trained with Adam on the training part
  and early-stopped on the selection part. The inputs are rescaled by one scalar :math:`s`
  (RMS distance to the pooled mean of the training part): :math:`g(x) = s\,f(x/s)` is
  1-Lipschitz when :math:`f` is.

**Data.** Arrays and tensors are held in memory. A ``torch.utils.data.Dataset`` or ``DataLoader``
is *streamed*: each pass reads it in order, samples are assigned to folds and parts by a hash of
their position (constant memory), and only per-part sums are kept, so the sample may be larger
than memory. A stream must yield the same samples in the same order on every pass (no
``shuffle=True``), batches of samples or ``(samples, weights)`` pairs.

References: Arjovsky, Chintala & Bottou, arXiv:1701.07875; Anil, Lucas & Grosse,
arXiv:1811.05381 (GNP critics); Chernozhukov et al., arXiv:1608.00060 (cross-fitting).
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from . import distributed as _dist
from . import models
from .ot import _check_dims, as_points, as_weights

__all__ = ["estimate_w1", "W1Estimator", "W1Result", "ScaledCritic", "MeanCritic", "LinearCritic"]

_EVAL_BATCH = 4096


class ScaledCritic(nn.Module):
    r""":math:`g(x) = s\,f(x/s)`: as Lipschitz as :math:`f` (a rescaling of the domain and the
    range by the same factor)."""

    def __init__(self, critic: nn.Module, scale: float) -> None:
        super().__init__()
        self.critic = critic
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.critic(x / self.scale).reshape(x.shape[0])


class MeanCritic(nn.Module):
    """The average of several critics: 1-Lipschitz when each of them is."""

    def __init__(self, critics) -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([c(x).reshape(x.shape[0]) for c in self.critics]).mean(0)


class LinearCritic(nn.Sequential):
    r""":math:`f(x) = \langle u, \mathrm{vec}(x)\rangle` with :math:`\|u\|_2 = 1` (or
    :math:`u = 0`): exactly 1-Lipschitz. A ``Flatten -> Linear`` Sequential, so
    :func:`lipot.certify.lipschitz_bound` verifies it."""

    def __init__(self, direction: Tensor) -> None:
        u = direction.detach().reshape(-1).double()
        norm = float(u.norm())
        linear = nn.Linear(u.numel(), 1, bias=False)
        with torch.no_grad():
            linear.weight.copy_((u / norm if norm > 0 else u).reshape(1, -1))
        linear.weight.requires_grad_(False)
        super().__init__(nn.Flatten(), linear)


@dataclass
class W1Result:
    """An estimate of :math:`W_1`: ``value`` (held-out KR value) ± ``stderr``, ``ci`` (95 %).

    ``selected`` names the critic kept in each fold (``"linear"``, ``"gnp"`` or ``"custom"``);
    ``history`` holds one record per epoch of every trained network."""

    value: float
    stderr: float
    ci: tuple[float, float]
    in_sample: float
    critic: nn.Module = field(repr=False)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    n_heldout: tuple[int, int] = (0, 0)
    seconds: float = 0.0
    selected: tuple[str, ...] = ()


def _weighted_kr(fx: Tensor, fy: Tensor, wx: Tensor, wy: Tensor) -> Tensor:
    """:math:`\\sum_i a_i f(x_i) - \\sum_j b_j f(y_j)` with weights normalized here."""
    return (fx * wx).sum() / wx.sum() - (fy * wy).sum() / wy.sum()


def _default_critic(shape: tuple[int, ...]) -> nn.Module:
    if len(shape) == 3 and shape[1] == shape[2] and shape[1] % 4 == 0:
        return models.conv_critic(shape[0], shape[1])
    return models.dense_critic(int(np.prod(shape)))


# ------------------------------------------------------------------------------- parts
#
# Every sample gets a *cell* ``2 * group + sel``. Critic k holds out group k (with folds = 1:
# group 0 is the held-out part); among the other groups, ``sel = 1`` marks the selection part
# and ``sel = 0`` the training part.


def _groups(folds: int) -> int:
    return folds if folds > 1 else 2


def _part_masks(k: int, folds: int) -> dict[str, Tensor]:
    """Boolean masks over the cells: the train / selection / held-out parts of critic ``k``."""
    group = torch.arange(2 * _groups(folds)) // 2
    sel = torch.arange(2 * _groups(folds)) % 2 == 1
    held = group == k
    return {"train": ~held & ~sel, "selection": ~held & sel, "heldout": held}


def _cells_by_rank(n: int, folds: int, fractions: tuple[float, float], rng: np.random.Generator) -> Tensor:
    """Exactly balanced cells for an in-memory sample of size ``n`` (two random permutations)."""
    rank = np.empty(n, dtype=np.int64)
    rank[rng.permutation(n)] = np.arange(n)
    if folds > 1:
        group = rank * folds // n
        rank2 = np.empty(n, dtype=np.int64)
        rank2[rng.permutation(n)] = np.arange(n)
        sel = rank2 < max(1, int(round(fractions[1] * n)))
    else:
        n_out, n_sel = max(1, int(round(fractions[0] * n))), max(1, int(round(fractions[1] * n)))
        group = (rank >= n_out).astype(np.int64)
        sel = (rank >= n_out) & (rank < n_out + n_sel)
    return torch.from_numpy(2 * group + sel)


_MASK64 = (1 << 64) - 1


def _uniform_hash(pos: np.ndarray, key: int) -> np.ndarray:
    """SplitMix64 of ``pos + key``: a pseudo-random uniform in [0, 1) per position, computed
    without storing anything per sample."""
    z = pos.astype(np.uint64) + np.uint64((key * 0x9E3779B97F4A7C15) & _MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _cells_by_hash(pos: np.ndarray, folds: int, fractions: tuple[float, float], key: int) -> Tensor:
    """Cells for a streamed sample: i.i.d. in expectation, from the sample's position only."""
    u, v = _uniform_hash(pos, 2 * key), _uniform_hash(pos, 2 * key + 1)
    if folds > 1:
        group = np.minimum((u * folds).astype(np.int64), folds - 1)
        sel = v < fractions[1]
    else:
        group = (u >= fractions[0]).astype(np.int64)
        sel = (group == 1) & (v < fractions[1] / (1.0 - fractions[0]))
    return torch.from_numpy(2 * group + sel)


# ------------------------------------------------------------------------------- sources


class _Memory:
    """An in-memory sample: a float32 tensor ``(n, *shape)`` on the device, weights, cells."""

    def __init__(self, name: str, x: Tensor, w: Tensor, device: torch.device) -> None:
        self.name, self.shape = name, tuple(x.shape[1:])
        self.x, self.w, self.device = x.to(device), w.to(device), device
        self.cells = torch.zeros(x.shape[0], dtype=torch.int64, device=device)

    def assign(self, folds: int, fractions, rng: np.random.Generator, key: int) -> None:
        self.cells = _cells_by_rank(self.x.shape[0], folds, fractions, rng).to(self.device)

    def batches(self, mask: Tensor, batch_size: int, gen: torch.Generator | None = None
                ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Batches ``(x, w, cells)`` of the samples whose cell is in ``mask``; shuffled with
        ``gen``, else in order."""
        idx = torch.nonzero(mask.to(self.device)[self.cells]).reshape(-1)
        if gen is not None:
            idx = idx[torch.randperm(idx.numel(), generator=gen).to(self.device)]
        for i in range(0, idx.numel(), batch_size):
            j = idx[i:i + batch_size]
            yield self.x[j], self.w[j], self.cells[j]


class _Stream:
    """A streamed sample (``Dataset`` or ``DataLoader``): read in order on every pass; cells
    from a hash of the position; batches are the loader's."""

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
        self.folds, self.fractions, self.key = 1, (0.3, 0.15), 0
        first = next(iter(self.batches(None, 0)), None)
        if first is None:
            raise ValueError(f"{name} is empty; pass at least 2 samples")
        self.shape = tuple(first[0].shape[1:])

    def assign(self, folds: int, fractions, rng: np.random.Generator, key: int) -> None:
        self.folds, self.fractions, self.key = folds, fractions, key

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
        x = x.to(self.device, torch.float32)
        w = torch.ones(x.shape[0], device=self.device) if w is None else w.to(self.device, torch.float32).reshape(-1)
        if w.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: a batch has {x.shape[0]} samples but {w.shape[0]} weights")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{self.name} contains NaN or Inf (batch starting at sample {pos}); "
                             "clean or drop those samples first")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"{self.name}: weights must be finite and >= 0 (batch starting at sample {pos})")
        return x, w

    def batches(self, mask: Tensor | None, batch_size: int, gen: torch.Generator | None = None
                ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        pos = 0
        for batch in self.loader:
            x, w = self._parse(batch, pos)
            cells = _cells_by_hash(np.arange(pos, pos + x.shape[0]), self.folds, self.fractions,
                                   self.key).to(self.device)
            pos += x.shape[0]
            if mask is None:
                yield x, w, cells
                continue
            keep = mask.to(self.device)[cells]
            if bool(keep.any()):
                yield x[keep], w[keep], cells[keep]


def _is_stream(data) -> bool:
    return isinstance(data, (Dataset, DataLoader))


def _zip_cycle(make_x: Callable[[], Iterator], make_y: Callable[[], Iterator]) -> Iterator[tuple]:
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


# ------------------------------------------------------------------------------- moments


class _Moments:
    """Per-cell float64 sums of a critic's values: ``n, sum w, sum w^2, sum w f, sum w f^2``."""

    def __init__(self, cells: int) -> None:
        self.s = torch.zeros(5, cells, dtype=torch.float64)

    def add(self, f: Tensor, w: Tensor, cells: Tensor) -> None:
        f, w, c = f.double().reshape(-1).cpu(), w.double().cpu(), cells.cpu()
        for row, v in enumerate((torch.ones_like(w), w, w * w, w * f, w * f * f)):
            self.s[row].index_add_(0, c, v)

    def count(self, mask: Tensor) -> int:
        return int(self.s[0, mask].sum())

    def mean_and_var(self, mask: Tensor) -> tuple[float, float]:
        """Weighted mean of f over the cells in ``mask`` and the variance of that mean (Kish
        effective size)."""
        sw, sw2, swf, swf2 = (float(v) for v in self.s[1:, mask].sum(1))
        if sw <= 0:
            raise ValueError("a sample has no point with a positive weight; pass at least one")
        mean = swf / sw
        return mean, max(swf2 / sw - mean * mean, 0.0) * sw2 / (sw * sw)


def _kr_from(mx: _Moments, my: _Moments, mask: Tensor) -> tuple[float, float]:
    ax, vx = mx.mean_and_var(mask)
    ay, vy = my.mean_and_var(mask)
    return ax - ay, math.sqrt(vx + vy)


def _share(batches: Iterator, distributed: bool) -> Iterator:
    """This rank's batches: every ``world_size``-th one when ``distributed``, else all."""
    if not distributed:
        return iter(batches)
    return itertools.islice(batches, _dist.rank(), None, _dist.world_size())


class _Stats:
    """Per-cell sums of the samples themselves (one pass): counts, ``sum x``, ``sum |x|^2`` and
    the weighted ``sum w``, ``sum w x``. They give the closed-form linear critic, its selection
    value, the input scale of the networks and the part sizes."""

    def __init__(self, source, cells: int, distributed: bool = False) -> None:
        d = int(np.prod(source.shape))
        self.count = torch.zeros(cells, dtype=torch.float64)
        self.sum_x = torch.zeros(cells, d, dtype=torch.float64)
        self.sum_sq = torch.zeros(cells, dtype=torch.float64)
        self.sum_w = torch.zeros(cells, dtype=torch.float64)
        self.sum_wx = torch.zeros(cells, d, dtype=torch.float64)
        for x, w, c in _share(source.batches(torch.ones(cells, dtype=torch.bool), _EVAL_BATCH), distributed):
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


def _scale(sx: _Stats, sy: _Stats, mask: Tensor) -> float:
    """RMS distance to the pooled mean of the samples in the cells of ``mask`` (both sides)."""
    n = float(sx.count[mask].sum() + sy.count[mask].sum())
    mean = (sx.sum_x[mask].sum(0) + sy.sum_x[mask].sum(0)) / n
    ms = float(sx.sum_sq[mask].sum() + sy.sum_sq[mask].sum()) / n - float(mean @ mean)
    return math.sqrt(ms) if ms > 0 else 1.0


# ------------------------------------------------------------------------------- estimator


class W1Estimator:
    """Fit KR critics once (:meth:`fit`), then evaluate them on any samples (:meth:`evaluate`).

    Args:
        critic: ``None`` (default): per fold, the better on the selection part of the
            closed-form linear critic and a GNP network (:func:`lipot.models.dense_critic` for
            vectors, :func:`lipot.models.conv_critic` for square images ``(N, C, H, W)`` with
            ``H`` divisible by 4; pass ``critic=lipot.models.conv_critic(C, H, conv="aol")`` to
            choose its convolution);
            ``"linear"`` or ``"gnp"``: only that one; or a 1-Lipschitz module mapping a batch to
            ``(N,)`` or ``(N, 1)`` values (trained as the network candidate, alone).
        epochs: maximum number of epochs (networks); the selection KR is measured, and early
            stopping decided, after each epoch.
        min_epoch_steps: an epoch is one pass over the training part, repeated until it has made
            at least this many optimizer steps (small samples would otherwise get a few steps
            between two selection checks).
        batch_size: samples per side and step for in-memory data (a streamed ``DataLoader``
            keeps its own batches).
        lr: Adam learning rate.
        val_fraction: with ``folds=1``, the share of each sample held out for the reported value.
        selection_fraction: share of each sample used for early stopping and model selection.
        folds: ``K > 1`` cross-fits K critics so that every sample is held out once (lower
            variance, and each critic trains on (K-1)/K of the data); ``1`` uses one
            train / selection / held-out split.
        patience: epochs without improvement of the selection KR before stopping.
        device: where to train (default: CUDA if available, else CPU).
        seed: seeds the split, the initialization and the batches.
        progress: print one line per epoch to stderr.
        distributed: run on the initialized process group (``torchrun``; see
            :mod:`lipot.distributed`). Every rank passes the same ``X`` and ``Y`` (arrays, or
            streams that every rank can read) and gets the same result. The batches of every
            pass are dealt out to the ranks in turn: each rank sums its share of the data
            statistics and critic values (then one all-reduce), and trains the network as one
            :class:`~torch.nn.parallel.DistributedDataParallel` step on ``world_size`` pairs
            of batches with global weight sums, so a step sees ``world_size * batch_size``
            samples per side. Early stopping and model selection use rank 0's numbers.
    """

    def __init__(
        self,
        critic: nn.Module | str | None = None,
        *,
        epochs: int = 60,
        batch_size: int = 256,
        lr: float = 1e-3,
        val_fraction: float = 0.3,
        selection_fraction: float = 0.15,
        patience: int = 10,
        folds: int = 5,
        min_epoch_steps: int = 50,
        device: str | torch.device | None = None,
        seed: int = 0,
        progress: bool = False,
        distributed: bool = False,
    ) -> None:
        if distributed:
            _dist.require_initialized("W1Estimator(distributed=True)")
        if critic is not None and not isinstance(critic, nn.Module) and critic not in ("linear", "gnp"):
            raise ValueError(f"critic must be None, 'linear', 'gnp' or a torch module, got {critic!r}")
        for name, v in (("val_fraction", val_fraction), ("selection_fraction", selection_fraction)):
            if not 0.0 < float(v) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v!r}")
        if val_fraction + selection_fraction >= 0.9:
            raise ValueError("val_fraction + selection_fraction must leave at least 10 % for training")
        for name, v in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience), ("folds", folds),
                        ("min_epoch_steps", min_epoch_steps)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.critic, self.epochs, self.batch_size, self.lr = critic, epochs, batch_size, lr
        self.fractions = (float(val_fraction), float(selection_fraction))
        self.patience, self.seed, self.progress, self.folds = patience, seed, progress, folds
        self.min_epoch_steps = min_epoch_steps
        self.distributed = bool(distributed) and _dist.world_size() > 1
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.critic_: nn.Module | None = None
        self.result_: W1Result | None = None

    # --------------------------------------------------------------------------- data

    def _sources(self, X, Y, weights_x, weights_y):
        """Both samples as sources (in memory, or streamed for Datasets and DataLoaders)."""
        if _is_stream(X) or _is_stream(Y):
            if not (_is_stream(X) and _is_stream(Y)):
                raise TypeError("X and Y must both be arrays/tensors or both be Datasets/DataLoaders")
            if weights_x is not None or weights_y is not None:
                raise ValueError("with Datasets or DataLoaders, yield (samples, weights) pairs instead of "
                                 "passing weights_x / weights_y")
            sx, sy = (_Stream(n, d, self.batch_size, self.device) for n, d in (("X", X), ("Y", Y)))
        else:
            x, y = as_points("X", X, min_points=2), as_points("Y", Y, min_points=2)
            _check_dims(x, y)
            shape = tuple(np.shape(X)[1:]) or (1,)
            wx, wy = as_weights("weights_x", weights_x, x.shape[0]), as_weights("weights_y", weights_y, y.shape[0])
            sx, sy = (_Memory(n, torch.as_tensor(a, dtype=torch.float32).reshape(a.shape[0], *shape),
                              torch.as_tensor(w, dtype=torch.float32), self.device)
                      for n, a, w in (("X", x, wx), ("Y", y, wy)))
        if sx.shape != sy.shape:
            raise ValueError(f"X and Y must have the same sample shape, got {sx.shape} and {sy.shape}")
        return sx, sy

    @torch.no_grad()
    def _moments(self, critic: nn.Module, source, mask: Tensor) -> _Moments:
        critic.eval()
        out = _Moments(mask.numel())
        for x, w, c in _share(source.batches(mask, _EVAL_BATCH), self.distributed):
            out.add(critic(x), w, c)
        if self.distributed:
            out.s = _dist.all_sum(out.s)
        return out

    def _steps(self, sx, sy, mask: Tensor, gen: torch.Generator) -> Iterator[tuple]:
        """One pass of training pairs ``((x, wx, cells), (y, wy, cells))`` for this rank. In a
        distributed run the pairs are dealt out in groups of ``world_size``; a last incomplete
        group is completed by repeating its pairs, so every rank makes the same number of
        steps (DDP needs it)."""
        pairs = _zip_cycle(lambda: sx.batches(mask, self.batch_size, gen),
                           lambda: sy.batches(mask, self.batch_size, gen))
        if not self.distributed:
            yield from pairs
            return
        world, r = _dist.world_size(), _dist.rank()
        while group := list(itertools.islice(pairs, world)):
            yield group[r % len(group)]

    # --------------------------------------------------------------------------- fit

    def _check_parts(self, stats: list[_Stats]) -> None:
        for k in range(self.folds):
            for part, mask in _part_masks(k, self.folds).items():
                for name, st in zip("XY", stats):
                    if float(st.sum_w[mask].sum()) <= 0:
                        raise ValueError(f"{name} has no sample (or only zero weights) in the {part} part of fold {k}; "
                                         f"pass more samples, or fewer folds / larger fractions")

    def _linear(self, st: list[_Stats], masks: dict[str, Tensor]) -> tuple[float, LinearCritic]:
        """The closed-form linear critic: its selection KR when fitted on the training part,
        and the critic refitted on training + selection."""
        u = st[0].weighted_mean(masks["train"]) - st[1].weighted_mean(masks["train"])
        u = u / u.norm() if float(u.norm()) > 0 else u
        sel = float(u @ (st[0].weighted_mean(masks["selection"]) - st[1].weighted_mean(masks["selection"])))
        fit = masks["train"] | masks["selection"]
        refit = LinearCritic(st[0].weighted_mean(fit) - st[1].weighted_mean(fit))
        return sel, refit.to(self.device)

    def _train_network(self, sx, sy, masks, shape, scale: float, seed: int, fold: int):
        """Train one network on the training part, early-stopped on the selection KR."""
        torch.manual_seed(seed)
        base = self.critic if isinstance(self.critic, nn.Module) else _default_critic(shape)
        critic = ScaledCritic(copy.deepcopy(base), scale).to(self.device)
        opt = torch.optim.Adam(critic.parameters(), lr=self.lr)
        trained = self._ddp(critic)
        gen = torch.Generator().manual_seed(seed)
        best, best_state, stale, history = -math.inf, None, 0, []
        for epoch in range(self.epochs):
            critic.train()
            last, steps = None, 0
            while steps == 0 or steps < self.min_epoch_steps:
                for (xb, wxb, _), (yb, wyb, _) in self._steps(sx, sy, masks["train"], gen):
                    loss = -self._batch_kr(trained, xb, yb, wxb, wyb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    last, steps = loss.detach(), steps + 1
            sel = _dist.from_main(_kr_from(self._moments(critic, sx, masks["selection"]),
                                           self._moments(critic, sy, masks["selection"]), masks["selection"])[0])
            history.append({"fold": fold, "epoch": epoch + 1,
                            "train_batch_kr": -float(last) if last is not None else math.nan, "selection_kr": sel})
            if self.progress:
                print(f"fold {fold} epoch {epoch + 1}: selection KR {sel:.5f}", file=sys.stderr)
            if sel > best:
                best, best_state, stale = sel, copy.deepcopy(critic.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        critic.load_state_dict(best_state)
        return best, critic.eval(), history

    def _ddp(self, critic: nn.Module) -> nn.Module:
        if not self.distributed:
            return critic
        ids = [torch.cuda.current_device()] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(critic, device_ids=ids)

    def _batch_kr(self, critic: nn.Module, xb: Tensor, yb: Tensor, wx: Tensor, wy: Tensor) -> Tensor:
        """KR value of a pair of batches (weighted means). Distributed: this rank's share of the
        KR value of the union of the ranks' batches, times ``world_size`` (DDP averages the
        gradients), with one forward pass for both sides."""
        if not self.distributed:
            return _weighted_kr(critic(xb).reshape(-1), critic(yb).reshape(-1), wx, wy)
        f = critic(torch.cat([xb, yb])).reshape(-1)
        sums = _dist.all_sum(torch.stack([wx.sum(), wy.sum()]))
        world = _dist.world_size()
        return world * ((f[:xb.shape[0]] * wx).sum() / sums[0] - (f[xb.shape[0]:] * wy).sum() / sums[1])

    def fit(self, X, Y, weights_x=None, weights_y=None) -> "W1Estimator":
        """Train the critic(s) on ``X`` (first measure) and ``Y`` (second); sets ``result_``.

        With ``folds = K > 1`` (cross-fitting) every sample is held out once: critic ``k`` is
        fitted on the other folds and evaluated on fold ``k``; the value is the mean of the K
        held-out KR values (each one unbiased for its critic, so the mean is too), its standard
        error combines the folds' ones, and ``critic_`` is the average of the K critics (an
        average of 1-Lipschitz functions is 1-Lipschitz).
        """
        t0 = time.perf_counter()
        sx, sy = self._sources(X, Y, weights_x, weights_y)
        rng = np.random.default_rng(self.seed)
        for i, s in enumerate((sx, sy)):
            s.assign(self.folds, self.fractions, rng, self.seed * 2 + i)
        n_cells = 2 * _groups(self.folds)
        stats = [_Stats(s, n_cells, self.distributed) for s in (sx, sy)]
        self._check_parts(stats)
        critics, selected, history, values, variances, in_sample = [], [], [], [], [], []
        for k in range(self.folds):
            masks = _part_masks(k, self.folds)
            candidates = []
            if self.critic is None or self.critic == "linear":
                sel, lin = self._linear(stats, masks)
                sel = _dist.from_main(sel) if self.distributed else sel
                candidates.append((sel, "linear", lin))
                history.append({"fold": k, "candidate": "linear", "selection_kr": sel})
            if self.critic != "linear":
                sel, net, hist = self._train_network(sx, sy, masks, sx.shape, _scale(*stats, masks["train"]),
                                                     self.seed + k, k)
                candidates.append((sel, "custom" if isinstance(self.critic, nn.Module) else "gnp", net))
                history += hist
            _, name, critic = max(candidates, key=lambda c: c[0])
            selected.append(name)
            critics.append(critic)
            everything = torch.ones(n_cells, dtype=torch.bool)
            mx, my = self._moments(critic, sx, everything), self._moments(critic, sy, everything)
            v, e = _kr_from(mx, my, masks["heldout"])
            values.append(v)
            variances.append(e * e)
            in_sample.append(_kr_from(mx, my, masks["train"])[0])
        self.critic_ = critics[0] if len(critics) == 1 else MeanCritic(critics)
        value, stderr = float(np.mean(values)), math.sqrt(sum(variances)) / len(variances)
        held_anywhere = torch.zeros(n_cells, dtype=torch.bool)
        for k in range(self.folds):
            held_anywhere |= _part_masks(k, self.folds)["heldout"]
        n_held = tuple(int(st.count[held_anywhere].sum()) for st in stats)
        self.result_ = W1Result(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr),
                                float(np.mean(in_sample)), self.critic_, history, n_held,
                                time.perf_counter() - t0, tuple(selected))
        return self

    def evaluate(self, X, Y, weights_x=None, weights_y=None) -> W1Result:
        """KR value of the fitted critic on new samples (arrays, tensors or streams), with its
        standard error and 95 % CI. For samples independent of the fit, it estimates a lower
        bound on :math:`W_1`."""
        if self.critic_ is None:
            raise RuntimeError("call fit(X, Y) before evaluate")
        sx, sy = self._sources(X, Y, weights_x, weights_y)
        mask = torch.ones(2 * _groups(1), dtype=torch.bool)  # unassigned samples: any cell
        mx, my = self._moments(self.critic_, sx, mask), self._moments(self.critic_, sy, mask)
        value, stderr = _kr_from(mx, my, mask)
        n = (mx.count(mask), my.count(mask))
        return W1Result(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr), math.nan, self.critic_,
                        n_heldout=n)


def estimate_w1(X, Y, *, critic: nn.Module | str | None = None, weights_x=None, weights_y=None,
                **settings: Any) -> W1Result:
    """Estimate :math:`W_1` between the samples ``X`` and ``Y`` with KR critics:
    ``W1Estimator(critic, **settings).fit(X, Y, weights_x, weights_y).result_``.

    ``X``, ``Y``: arrays or tensors ``(n, d)`` or images ``(n, C, H, W)``, or torch Datasets /
    DataLoaders for samples larger than memory (streamed in order; see the module docstring).
    Returns a :class:`W1Result`: ``value`` is the held-out KR value of the selected critics (use
    it, not ``in_sample``), ``stderr`` and ``ci`` its standard error and 95 % interval.
    """
    return W1Estimator(critic, **settings).fit(X, Y, weights_x, weights_y).result_
