r"""Wasserstein-1 estimation with a Kantorovich-Rubinstein (KR) dual critic.

.. math::
    W_1(\mu, \nu) = \sup_{\mathrm{Lip}(f)\le 1} \mathbb{E}_\mu f - \mathbb{E}_\nu f .

A 1-Lipschitz GNP network :math:`f` is trained to maximize the KR value on a training split.
For any *fixed* 1-Lipschitz :math:`f`, the KR value on samples the critic never saw is an
unbiased estimate of :math:`\mathbb{E}_\mu f - \mathbb{E}_\nu f \le W_1(\mu, \nu)`; the in-sample
value is not (a critic overfits, GUIDE §3). So each critic sees three disjoint parts: *train*
(fit it), *selection* (early stopping and model selection) and *held-out* (the reported
``value``, with a standard error from the per-sample critic values and a 95 % normal interval).
By default the held-out parts are the K folds of a cross-fitting (``folds=5``): every sample is
held out once, and the value is the mean of the K held-out KR values.

The inputs are rescaled by one scalar :math:`s` (the RMS distance to the pooled mean) before
training: :math:`g(x) = s\,f(x/s)` is 1-Lipschitz when :math:`f` is, so nothing is lost, and the
critic sees inputs of unit scale whatever the units of the data. Reference: Arjovsky, Chintala &
Bottou, arXiv:1701.07875; Anil, Lucas & Grosse, arXiv:1811.05381 (GNP critics).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import models
from .ot import _check_dims, as_points, as_weights

__all__ = ["estimate_w1", "W1Estimator", "W1Result", "ScaledCritic", "MeanCritic"]


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


@dataclass
class W1Result:
    """An estimate of :math:`W_1`: ``value`` (held-out KR value) ± ``stderr``, ``ci`` (95 %)."""

    value: float
    stderr: float
    ci: tuple[float, float]
    in_sample: float
    critic: nn.Module = field(repr=False)
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    n_heldout: tuple[int, int] = (0, 0)
    seconds: float = 0.0


def _weighted_kr(fx: Tensor, fy: Tensor, wx: Tensor, wy: Tensor) -> Tensor:
    """:math:`\\sum_i a_i f(x_i) - \\sum_j b_j f(y_j)` with weights normalized here."""
    return (fx * wx).sum() / wx.sum() - (fy * wy).sum() / wy.sum()


def _kr_with_stderr(fx: np.ndarray, fy: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> tuple[float, float]:
    """Weighted KR value and its standard error (independent samples; Kish effective sizes)."""
    wx, wy = wx / wx.sum(), wy / wy.sum()
    mx, my = float(fx @ wx), float(fy @ wy)
    var = sum(float(((f - m) ** 2) @ w) * float((w**2).sum()) for f, m, w in ((fx, mx, wx), (fy, my, wy)))
    return mx - my, math.sqrt(var)


def _default_critic(shape: tuple[int, ...]) -> nn.Module:
    if len(shape) == 3 and shape[1] == shape[2] and shape[1] % 4 == 0:
        return models.conv_classifier(shape[0], shape[1], (16, 32), (64,), 1)
    return models.dense_critic(int(np.prod(shape)))


def _split(n: int, fractions: tuple[float, float], rng: np.random.Generator):
    order = rng.permutation(n)
    n_out = max(1, int(round(fractions[0] * n)))
    n_sel = max(1, int(round(fractions[1] * n)))
    if n - n_out - n_sel < 1:
        raise ValueError(f"{n} samples are too few to split into train / selection / held-out parts")
    return order[n_out + n_sel:], order[n_out:n_out + n_sel], order[:n_out]


class W1Estimator:
    """Fit a KR critic once (:meth:`fit`), then evaluate it on any samples (:meth:`evaluate`).

    Args:
        critic: a 1-Lipschitz module mapping a batch to ``(N,)`` or ``(N, 1)`` values; default a
            GNP dense critic (:func:`lipot.models.dense_critic`) for vectors, a conv GNP critic
            for square images ``(N, C, H, W)`` with ``H`` divisible by 4.
        epochs: maximum number of passes over the training split.
        batch_size: samples per side and step.
        lr: Adam learning rate.
        val_fraction: with ``folds=1``, the share of each sample held out for the reported value.
        selection_fraction: share of the training part used for early stopping and model
            selection.
        folds: ``K > 1`` cross-fits K critics so that every sample is held out once (lower
            variance, and each critic trains on (K-1)/K of the data); ``1`` uses one
            train / selection / held-out split.
        patience: epochs without improvement of the selection KR before stopping.
        device: where to train (default: CUDA if available, else CPU).
        seed: seeds the split, the initialization and the batches.
        progress: print one line per epoch to stderr.
    """

    def __init__(
        self,
        critic: nn.Module | None = None,
        *,
        epochs: int = 60,
        batch_size: int = 256,
        lr: float = 1e-3,
        val_fraction: float = 0.3,
        selection_fraction: float = 0.15,
        patience: int = 10,
        folds: int = 5,
        device: str | torch.device | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        for name, v in (("val_fraction", val_fraction), ("selection_fraction", selection_fraction)):
            if not 0.0 < float(v) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v!r}")
        if val_fraction + selection_fraction >= 0.9:
            raise ValueError("val_fraction + selection_fraction must leave at least 10 % for training")
        for name, v in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience), ("folds", folds)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.critic, self.epochs, self.batch_size, self.lr = critic, epochs, batch_size, lr
        self.fractions = (float(val_fraction), float(selection_fraction))
        self.patience, self.seed, self.progress, self.folds = patience, seed, progress, folds
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.critic_: ScaledCritic | None = None
        self.result_: W1Result | None = None

    # --------------------------------------------------------------------------- data

    def _tensors(self, X, Y, weights_x, weights_y):
        x = as_points("X", X, min_points=2)
        y = as_points("Y", Y, min_points=2)
        _check_dims(x, y)
        shape, shape_y = tuple(np.shape(X)[1:]) or (1,), tuple(np.shape(Y)[1:]) or (1,)
        if shape != shape_y:
            raise ValueError(f"X and Y must have the same sample shape, got {shape} and {shape_y}")
        wx, wy = as_weights("weights_x", weights_x, x.shape[0]), as_weights("weights_y", weights_y, y.shape[0])
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32).reshape(a.shape[0], *shape)  # noqa: E731
        return as_tensor(x), as_tensor(y), torch.as_tensor(wx, dtype=torch.float32), \
            torch.as_tensor(wy, dtype=torch.float32), shape

    @torch.no_grad()
    def _values(self, critic: nn.Module, data: Tensor) -> Tensor:
        return torch.cat([critic(data[i:i + 4096].to(self.device)).reshape(-1).float().cpu()
                          for i in range(0, data.shape[0], 4096)])

    # --------------------------------------------------------------------------- fit

    def _parts(self, n: int, m: int, rng: np.random.Generator):
        """Per fold, per side: (train, selection, held-out) index arrays."""
        if self.folds == 1:
            return [(_split(n, self.fractions, rng), _split(m, self.fractions, rng))]
        out = []
        orders = [rng.permutation(n), rng.permutation(m)]
        for k in range(self.folds):
            sides = []
            for order in orders:
                chunks = np.array_split(order, self.folds)
                rest = np.concatenate([c for j, c in enumerate(chunks) if j != k])
                n_sel = max(1, int(round(self.fractions[1] * len(rest))))
                if len(rest) - n_sel < 1 or len(chunks[k]) < 1:
                    raise ValueError(f"{len(order)} samples are too few for {self.folds} folds")
                sides.append((rest[n_sel:], rest[:n_sel], chunks[k]))
            out.append(tuple(sides))
        return out

    def _train_one(self, x, y, wx, wy, shape, tx, sx, ty, sy, seed: int):
        """Train one critic on (tx, ty), early-stopped on the selection KR of (sx, sy). The
        input scale comes from the training part only, so held-out samples stay unseen."""
        torch.manual_seed(seed)
        flat = torch.cat([x[tx], y[ty]]).reshape(len(tx) + len(ty), -1)
        scale = float((flat - flat.mean(0)).pow(2).sum(1).mean().sqrt()) or 1.0
        base = self.critic if self.critic is not None else _default_critic(shape)
        critic = ScaledCritic(copy.deepcopy(base), scale).to(self.device)
        opt = torch.optim.Adam(critic.parameters(), lr=self.lr)
        x_tr, y_tr = x[tx].to(self.device), y[ty].to(self.device)
        wx_tr, wy_tr = wx[tx].to(self.device), wy[ty].to(self.device)
        steps = max(1, max(len(tx), len(ty)) // self.batch_size)
        best, best_state, stale, history = -math.inf, None, 0, []
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(self.epochs):
            critic.train()
            for _ in range(steps):
                ix = torch.randint(len(tx), (min(self.batch_size, len(tx)),), generator=gen).to(self.device)
                iy = torch.randint(len(ty), (min(self.batch_size, len(ty)),), generator=gen).to(self.device)
                loss = -_weighted_kr(critic(x_tr[ix]), critic(y_tr[iy]), wx_tr[ix], wy_tr[iy])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            critic.eval()
            sel = float(_weighted_kr(self._values(critic, x[sx]), self._values(critic, y[sy]), wx[sx], wy[sy]))
            history.append({"epoch": epoch + 1, "train_batch_kr": -loss.item(), "selection_kr": sel})
            if self.progress:
                print(f"epoch {epoch + 1}: selection KR {sel:.5f}", file=sys.stderr)
            if sel > best:
                best, best_state, stale = sel, copy.deepcopy(critic.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        critic.load_state_dict(best_state)
        return critic.eval(), history

    def fit(self, X, Y, weights_x=None, weights_y=None) -> "W1Estimator":
        """Train the critic(s) on ``X`` (first measure) and ``Y`` (second); sets ``result_``.

        With ``folds = K > 1`` (cross-fitting) every sample is held out once: critic ``k`` trains
        on the other folds and is evaluated on fold ``k``; the value is the mean of the K
        held-out KR values (each one unbiased for its critic, so the mean is too), its standard
        error combines the folds' ones, and ``critic_`` is the average of the K critics (an
        average of 1-Lipschitz functions is 1-Lipschitz).
        """
        t0 = time.perf_counter()
        x, y, wx, wy, shape = self._tensors(X, Y, weights_x, weights_y)
        rng = np.random.default_rng(self.seed)
        critics, history, values, stderrs, in_sample = [], [], [], [], []
        n_held = [0, 0]
        for k, ((tx, sx, hx), (ty, sy, hy)) in enumerate(self._parts(x.shape[0], y.shape[0], rng)):
            critic, hist = self._train_one(x, y, wx, wy, shape, tx, sx, ty, sy, self.seed + k)
            critics.append(critic)
            history += [{"fold": k, **h} for h in hist]
            fx, fy = self._values(critic, x[hx]).double().numpy(), self._values(critic, y[hy]).double().numpy()
            v, e = _kr_with_stderr(fx, fy, wx[hx].double().numpy(), wy[hy].double().numpy())
            values.append(v)
            stderrs.append(e)
            in_sample.append(float(_weighted_kr(self._values(critic, x[tx]), self._values(critic, y[ty]), wx[tx], wy[ty])))
            n_held[0] += len(hx)
            n_held[1] += len(hy)
        self.critic_ = critics[0] if len(critics) == 1 else MeanCritic(critics)
        value = float(np.mean(values))
        stderr = math.sqrt(sum(e * e for e in stderrs)) / len(stderrs)
        self.result_ = W1Result(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr),
                                float(np.mean(in_sample)), self.critic_, history, tuple(n_held),
                                time.perf_counter() - t0)
        return self

    def evaluate(self, X, Y, weights_x=None, weights_y=None) -> W1Result:
        """KR value of the fitted critic on new samples, with its standard error and 95 % CI.
        For samples independent of the fit, it estimates a lower bound on :math:`W_1`."""
        if self.critic_ is None:
            raise RuntimeError("call fit(X, Y) before evaluate")
        x, y, wx, wy, _ = self._tensors(X, Y, weights_x, weights_y)
        fx, fy = self._values(self.critic_, x).double().numpy(), self._values(self.critic_, y).double().numpy()
        value, stderr = _kr_with_stderr(fx, fy, wx.double().numpy(), wy.double().numpy())
        return W1Result(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr), math.nan, self.critic_,
                        n_heldout=(x.shape[0], y.shape[0]))


def estimate_w1(X, Y, *, critic: nn.Module | None = None, weights_x=None, weights_y=None, **settings: Any) -> W1Result:
    """Estimate :math:`W_1` between the samples ``X`` and ``Y`` (arrays or tensors, ``(n, d)`` or
    images ``(n, C, H, W)``) with a KR critic: ``W1Estimator(critic, **settings).fit(...)``.

    Returns a :class:`W1Result`: ``value`` is the held-out KR value of the selected critic (use
    it, not ``in_sample``), ``stderr`` and ``ci`` its standard error and 95 % interval.
    """
    return W1Estimator(critic, **settings).fit(X, Y, weights_x, weights_y).result_
