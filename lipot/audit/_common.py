"""Helpers shared by the audit modules: input checks, per-sample norms, the model as logits,
labels and margins."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import _checks


def as_inputs(name: str, X) -> Tensor:
    x = torch.as_tensor(X)
    if not x.is_floating_point():
        x = x.float()
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def sample_norms(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class Logits:
    """The model as a map to ``(N, C >= 2)`` logits (one logit ``f`` becomes ``(0, f)``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.binary: bool | None = None

    def __call__(self, x: Tensor) -> Tensor:
        z = self.model(x)
        if z.dim() == 1 or (z.dim() == 2 and z.shape[1] == 1):
            self.binary = True
            z = z.reshape(-1, 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)
        if z.dim() != 2:
            raise ValueError(f"the model must return (N,), (N, 1) or (N, C) logits, got {tuple(z.shape)}")
        self.binary = False
        return z


def check_labels(fn: Logits, x: Tensor, y, n: int | None = None) -> Tensor:
    """Class indices: +-1 / {0, 1} for one logit, indices or one-hot for C logits. The model runs
    on ``x[:1]`` only (for its number of outputs); ``n``: the number of labels expected
    (default ``len(x)``)."""
    y = torch.as_tensor(y, device=x.device)
    with torch.no_grad():
        z = fn(x[:1])
    n = x.shape[0] if n is None else n
    if fn.binary:
        if y.numel() != n:
            raise ValueError(f"y: expected {n} binary labels (+-1 or 0/1), got shape {tuple(y.shape)}")
        return (_checks.binary_labels("y", y).reshape(-1) > 0).long()
    if y.dim() == 2 and y.shape == (n, z.shape[1]):
        y = _checks.binary_labels("y (one-hot)", y).argmax(1)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"y: expected {n} class indices or one-hot labels {(n, z.shape[1])}, "
                         f"got shape {tuple(y.shape)}")
    return _checks.class_indices("y", y, z.shape[1]).long()


def logit_margin(z: Tensor, y: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j``: > 0 iff correctly classified (ties count as errors)."""
    other = z.masked_fill(nn.functional.one_hot(y, z.shape[1]).bool(), -math.inf).max(1).values
    return z.gather(1, y[:, None])[:, 0] - other


def is_misclassified(fn: Logits, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return fn(x).argmax(1) != y
