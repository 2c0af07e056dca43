r"""The fold plan: which samples train, select and evaluate each critic.

Every sample gets a *cell* ``2 * group + sel``. Critic ``k`` holds out group ``k`` (with
``folds = 1``, group 0 is the held-out part); among the other groups, ``sel = 1`` marks the
selection part (early stopping and model selection) and ``sel = 0`` the training part. A
:class:`FoldPlan` holds the boolean masks over the cells for every critic, so a batch of samples
with their cells gives each critic's training weights in one indexing operation.

In-memory samples get exactly balanced cells (two random permutations); streamed samples get
cells from a hash of their position (i.i.d. in expectation, nothing stored per sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["FoldPlan", "cells_by_rank", "cells_by_hash"]


@dataclass(frozen=True)
class FoldPlan:
    """Cells and masks of a cross-fitting with ``folds`` critics (``folds = 1``: one split with
    ``fractions[0]`` held out), ``fractions = (held-out share for folds = 1, selection share)``."""

    folds: int
    fractions: tuple[float, float]

    @property
    def groups(self) -> int:
        return self.folds if self.folds > 1 else 2

    @property
    def cells(self) -> int:
        return 2 * self.groups

    def _group_sel(self) -> tuple[Tensor, Tensor]:
        idx = torch.arange(self.cells)
        return idx // 2, idx % 2 == 1

    def masks(self, k: int) -> dict[str, Tensor]:
        """Boolean masks over the cells: the train / selection / held-out parts of critic ``k``."""
        group, sel = self._group_sel()
        held = group == k
        return {"train": ~held & ~sel, "selection": ~held & sel, "heldout": held}

    def stacked(self, part: str) -> Tensor:
        """``(folds, cells)`` boolean: row ``k`` is :meth:`masks` ``(k)[part]``."""
        return torch.stack([self.masks(k)[part] for k in range(self.folds)])

    def union(self, part: str) -> Tensor:
        """Cells in ``part`` for at least one critic."""
        return self.stacked(part).any(0)


def cells_by_rank(n: int, plan: FoldPlan, rng: np.random.Generator) -> Tensor:
    """Exactly balanced cells for an in-memory sample of size ``n`` (two random permutations)."""
    rank = np.empty(n, dtype=np.int64)
    rank[rng.permutation(n)] = np.arange(n)
    held, sel_share = plan.fractions
    if plan.folds > 1:
        group = rank * plan.folds // n
        rank2 = np.empty(n, dtype=np.int64)
        rank2[rng.permutation(n)] = np.arange(n)
        sel = rank2 < max(1, int(round(sel_share * n)))
    else:
        n_out, n_sel = max(1, int(round(held * n))), max(1, int(round(sel_share * n)))
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


def cells_by_hash(pos: np.ndarray, plan: FoldPlan, key: int) -> Tensor:
    """Cells for a streamed sample: i.i.d. in expectation, from the sample's position only."""
    u, v = _uniform_hash(pos, 2 * key), _uniform_hash(pos, 2 * key + 1)
    held, sel_share = plan.fractions
    if plan.folds > 1:
        group = np.minimum((u * plan.folds).astype(np.int64), plan.folds - 1)
        sel = v < sel_share
    else:
        group = (u >= held).astype(np.int64)
        sel = (group == 1) & (v < sel_share / (1.0 - held))
    return torch.from_numpy(2 * group + sel)
