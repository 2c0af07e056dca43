"""The cached, full-precision base of lipot's weight parametrizations: a normalized weight is
computed with autocast off, and in eval mode (or without gradient) it is cached until the raw
weight changes."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from .._transforms import is_compiling, is_transformed_tensor

__all__ = ["CachedWeight", "autocast_enabled", "full_precision"]


def autocast_enabled(device_type: str) -> bool:
    """Whether torch.autocast is on for ``device_type`` (any torch version lipot supports)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def full_precision(weight: Tensor):
    """A context that turns torch.autocast off while a weight is normalized: under autocast the
    Björck and power-iteration products would run in float16/bfloat16 and the weight's spectral
    norm could exceed its bound (1.002 measured for a 64x64 layer under CPU bfloat16). The layer's
    own product with its input still runs under autocast."""
    device_type = weight.device.type
    if device_type in ("cpu", "cuda") and autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class CachedWeight(nn.Module):
    """Base of lipot's weight parametrizations: ``raw -> k_coef_lip * coefficient * f(raw)``
    with the no-grad cache described in the module docstring.

    Subclasses set ``k_coef_lip`` and ``coefficient`` and implement ``_compute`` (the
    weight, differentiable w.r.t. ``raw``); ``forward`` serves the cache when no gradient is
    needed.
    """

    k_coef_lip: float
    coefficient: float
    _cache: tuple[tuple, Tensor] | None = None

    @property
    def scale(self) -> float:
        """The factor ``k_coef_lip * coefficient`` applied after normalization."""
        return self.k_coef_lip * self.coefficient

    def _scaled(self, w: Tensor) -> Tensor:
        return w if self.scale == 1.0 else self.scale * w

    def _compute(self, raw: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _needs_graph(raw: Tensor) -> bool:
        return is_compiling() or (torch.is_grad_enabled() and raw.requires_grad) or is_transformed_tensor(raw)

    def forward(self, raw: Tensor) -> Tensor:
        with full_precision(raw):
            if self._needs_graph(raw):
                return self._compute(raw)
            return self._cached(raw)

    def _cache_key(self, x: Tensor) -> tuple:
        # (coefficient is fixed at construction; k_coef_lip can change)
        return (x._version, x.data_ptr(), x.dtype, x.device, self.k_coef_lip, self.training)

    def _cache_hit(self, x: Tensor) -> Tensor | None:
        cache = self._cache
        if cache is None or cache[0] != self._cache_key(x):
            return None
        return cache[1]

    def _cached(self, x: Tensor) -> Tensor:
        hit = self._cache_hit(x)
        if hit is not None:
            return hit
        with torch.no_grad():
            w = self._compute(x)
        self._cache = (self._cache_key(x), w)
        return w

    def cached_weight(self, x: Tensor) -> Tensor | None:
        """The cached weight for raw weight ``x`` if it is valid and no gradient is needed
        (the fast path of the layers' forward), else ``None``. The cache only ever holds a
        normalized weight, so a hit is always within the bound."""
        if self._needs_graph(x):
            return None
        return self._cache_hit(x)

    def train(self, mode: bool = True) -> "CachedWeight":
        self._cache = None
        return super().train(mode)

    def __getstate__(self):
        state = super().__getstate__().copy()
        state["_cache"] = None
        return state
