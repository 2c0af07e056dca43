r"""The W1 estimator: :class:`W1Estimator` and :func:`estimate_w1`.

.. math::
    W_1(\mu, \nu) = \sup_{\mathrm{Lip}(f)\le 1} \mathbb{E}_\mu f - \mathbb{E}_\nu f .

For any *fixed* 1-Lipschitz :math:`f`, the KR value :math:`\bar f_X - \bar f_Y` on samples the
critic never saw is an unbiased estimate of :math:`\mathbb{E}_\mu f - \mathbb{E}_\nu f \le
W_1(\mu, \nu)`; the in-sample value is not (a critic overfits). So each critic sees three
disjoint parts (:mod:`lipot.wasserstein.folds`): *train* (fit it), *selection* (early stopping
and model selection) and *held-out* (the reported ``value``, with a standard error from the
per-sample critic values and a 95 % normal interval). By default the held-out parts are the K
folds of a cross-fitting (``folds=5``): every sample is held out once and the value is the mean
of the K held-out values.

**Model selection.** With the default ``critic=None`` each fold has three or four candidates
(:func:`default_candidates`), and the one with the larger KR value on the selection part is kept:

* the best *linear* critic :math:`f(x) = \langle u, x\rangle`, :math:`\|u\|_2 = 1`, in closed
  form, :math:`u \propto \bar x - \bar y` (weighted means). It is optimal for a shift of the
  distribution and does not overfit noise directions the way a network does in high dimension;
* for inputs of at most :data:`~lipot.wasserstein.critics.CONE_MAX_FEATURES` features (2-D
  data), a *cone* critic (:class:`lipot.nn.ConePotential`: the mean of a minimum and a maximum
  of :data:`~lipot.wasserstein.critics.DEFAULT_CONES` learned cones, the shape of a
  Kantorovich potential), its centers started on training points of the fold;
* for vectors of at most :data:`~lipot.wasserstein.defaults.ENVELOPE_MAX_FEATURES` features
  with at least :data:`~lipot.wasserstein.defaults.ENVELOPE_MIN_TRAIN` training samples per
  side, an *envelope* critic (:class:`lipot.nn.ConeEnvelope`: the minimum, or maximum, of
  :func:`~lipot.wasserstein.defaults.auto_envelope_cones` learned cones, with
  a soft minimum annealed to the exact one while it trains), oriented and started from the
  fold's training samples (:func:`~lipot.wasserstein.critics.envelope_orientation`,
  :func:`~lipot.wasserstein.critics.envelope_start`). Its gradient has norm 1 almost
  everywhere, and it is the shape of transport toward (or away from) clusters: on the funnel
  pairs of Korotin, Kolesov & Burnaev's benchmark (:mod:`lipot.data.funnels`) it is what brought
  the 16- to 128-dimensional rows from -18 % ... -55 % of the true W1 to the figures of
  ``docs/results.md``;
* a GNP network (:func:`lipot.models.dense_critic` for vectors, :func:`lipot.models.conv_critic`
  for square images).

The networks train with Adam on the training part and are early-stopped on the selection part.
The K fold networks of one kind train **together**, as one stacked network, and the stacks of
the different kinds train side by side on the same batches (:mod:`lipot.wasserstein.fitting`).
They *race*: a fold's network whose smoothed selection KR has not risen above the best
selection KR of the linear critic and of the other networks of its fold within ``patience``
epochs stops there, and a stack whose networks have all stopped costs nothing more (on a pure
shift, where the linear critic is optimal, a network would otherwise train to its own plateau
only to lose the selection; on smooth 2-D data the cone critic falls behind the GNP network
within a few epochs).
Inputs are centered on the pooled mean in float64 (:mod:`lipot.wasserstein.sources`) and
rescaled by one scalar :math:`s` per fold (RMS distance to the mean of the training part):
:math:`g(x) = s\,f((x - c)/s)` is 1-Lipschitz when :math:`f` is.

References: Arjovsky, Chintala & Bottou, arXiv:1701.07875; Anil, Lucas & Grosse,
arXiv:1811.05381 (GNP critics); Chernozhukov et al., arXiv:1608.00060 (cross-fitting).
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import distributed as _dist
from .critics import (DEFAULT_CONES, LinearCritic, MeanCritic, ScaledCritic, StackedConeCritic,
                      StackedEnvelopeCritic, envelope_orientation, envelope_start, fold_critics, is_square_image)
from ..ot import exact_w1
from .defaults import auto_batch_size, auto_envelope_cones, auto_exact, auto_hidden, auto_tol, default_candidates
from .fitting import Schedule, critic_moments, train_fold_critics
from .folds import FoldPlan
from .moments import Stats, input_scale, kr_from
from .result import W1Result
from .samplers import DEFAULT_DRAWS, Sampled, check_draws, is_sampler, make_sampled, sampler_plan
from .settings import check_settings
from .sources import is_stream, make_sources, sample_points

__all__ = ["estimate_w1", "W1Estimator", "W1Result"]


ENVELOPE_PILOT = 4096
"""Training samples per side (of each fold) that orient and start the envelope critics."""


class _Stack(nn.Module):
    """Critic ``k`` of a list evaluated on the same batch: ``(B, ...) -> (K, B)``."""

    def __init__(self, critics: Sequence[nn.Module]) -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([c(x).reshape(x.shape[0]) for c in self.critics])


class W1Estimator:
    """Fit KR critics once (:meth:`W1Estimator.fit`), then evaluate them on any samples (:meth:`W1Estimator.evaluate`).

    Args:
        critic: ``None`` (default): per fold, the best on the selection part of the
            candidates of :func:`default_candidates`: the closed-form linear critic, the cone
            critic (2-D data) and a GNP network (:func:`lipot.models.dense_critic` for
            vectors, :func:`lipot.models.conv_critic` for square images ``(N, C, H, W)`` with
            ``H`` divisible by 4; pass ``critic=lipot.models.conv_critic(C, H, conv="aol")`` to
            choose its convolution); ``"linear"``, ``"cone"`` or ``"gnp"``: only that one; or a
            1-Lipschitz module mapping a batch to ``(N,)`` or ``(N, 1)`` values (trained as the
            network candidate, alone, one copy per fold).
        epochs: maximum number of epochs; the selection KR is measured after each.
        batch_size: samples per side and step for in-memory data (``None``:
            :func:`auto_batch_size`); a streamed ``DataLoader`` keeps its own batches.
        lr: initial Adam learning rate.
        lr_patience: the learning rate is halved when the mean smoothed selection KR has not
            improved for this many epochs.
        hidden: hidden widths of the default dense critic, for vectors (``None``:
            :func:`auto_hidden`); images use :func:`lipot.models.conv_critic` and ignore it.
        cones: centers of the cone critics; ``None``: :data:`~lipot.wasserstein.critics.DEFAULT_CONES`
            per term of the cone critic (:class:`lipot.nn.ConePotential`),
            :func:`~lipot.wasserstein.defaults.auto_envelope_cones` of the training part for the
            envelope critic (:class:`lipot.nn.ConeEnvelope`; all
            :data:`~lipot.wasserstein.critics.ENVELOPE_CONES` with samplers).
        patience: a fold's network stops when the moving average of its selection KR has not
            improved for this many epochs (its best state is kept).
        smoothing: factor of that moving average (0: none).
        tol: an epoch improves that moving average only if it rises by more than ``tol`` times
            its best value (relative, as ``ReduceLROnPlateau``'s threshold; ``None``:
            :func:`auto_tol`).
        min_epoch_steps: an epoch is one pass over the training samples, repeated until it has
            made at least this many optimizer steps.
        val_fraction: with ``folds=1``, the share of each sample held out for the reported value.
        selection_fraction: share of each sample used for early stopping and model selection.
        folds: ``K > 1`` cross-fits K critics so that every sample is held out once; ``1`` uses
            one train / selection / held-out split.
        device: where to train (default: CUDA if available, else CPU).
        seed: seeds the split, the initialization and the batches.
        progress: show a progress bar (epochs, active folds, mean best selection KR) on stderr
            (tqdm; ``None``: only when stderr is a terminal).
        distributed: run on the initialized process group (``torchrun``; see
            :mod:`lipot.distributed`). Every rank passes the same ``X`` and ``Y`` and gets the
            same result; the batches of every pass are dealt out to the ranks in turn and the
            network steps as one DistributedDataParallel step on ``world_size`` pairs of batches
            with global weight sums.
        exact: also compute POT's exact W1 of the two samples (``W1Result.exact``, an upper
            companion of the held-out ``value``): ``None`` (default) for in-memory samples of
            at most :data:`~lipot.wasserstein.defaults.EXACT_MAX_FEATURES` features and
            ``n * m <=`` :data:`~lipot.wasserstein.defaults.EXACT_MAX_PAIRS` (not under
            ``distributed``); ``True`` always (in-memory samples); ``False`` never.
        draws: for samplers (``X`` and ``Y`` callables ``draw(n)`` or iterators of batches,
            :mod:`lipot.wasserstein.samplers`): samples per side drawn for every training
            pass, for the selection part and for the held-out part (one split, no folds).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(400, 2, generator=gen), torch.randn(400, 2, generator=gen) + 2.0
        >>> est = lipot.W1Estimator(critic="linear", seed=0).fit(x, y)
        >>> round(est.result_.value, 1)                       # W1 = ||(2, 2)|| = 2.83
        2.8
        >>> new = est.evaluate(x + 1.0, y)                    # the fitted critic on other samples
        >>> new.value < est.result_.value
        True
    """

    def __init__(
        self,
        critic: nn.Module | str | None = None,
        *,
        epochs: int = 200,
        batch_size: int | None = None,
        lr: float = 3e-3,
        lr_patience: int = 2,
        hidden: Sequence[int] | None = None,
        cones: int | None = None,
        patience: int = 6,
        smoothing: float = 0.5,
        tol: float | None = None,
        min_epoch_steps: int = 10,
        val_fraction: float = 0.3,
        selection_fraction: float = 0.15,
        folds: int = 5,
        device: str | torch.device | None = None,
        seed: int = 0,
        progress: bool | None = False,
        distributed: bool = False,
        exact: bool | None = None,
        draws: Sequence[int] = DEFAULT_DRAWS,
    ) -> None:
        # scikit-learn's convention: every argument is stored as given, under its own name, and
        # validated by fit (so that get_params / set_params / sklearn.base.clone work).
        self.critic, self.epochs, self.batch_size, self.lr, self.lr_patience = critic, epochs, batch_size, lr, lr_patience
        self.hidden, self.cones, self.patience, self.smoothing, self.tol = hidden, cones, patience, smoothing, tol
        self.min_epoch_steps, self.val_fraction, self.selection_fraction = min_epoch_steps, val_fraction, selection_fraction
        self.folds, self.device, self.seed, self.progress = folds, device, seed, progress
        self.distributed, self.exact, self.draws = distributed, exact, draws
        self.critic_: nn.Module | None = None
        self.result_: W1Result | None = None
        self.center_: np.ndarray | None = None
        self._inner: nn.Module | None = None

    # --------------------------------------------------------------------------- parameters

    @classmethod
    def _param_names(cls) -> list[str]:
        return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as given (scikit-learn's estimator interface; ``deep`` is
        accepted for compatibility: no argument is itself an estimator with parameters)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "W1Estimator":
        """Set constructor arguments by name (validated by the next :meth:`fit`); returns
        ``self``."""
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"W1Estimator has no parameter {name!r}; its parameters are {', '.join(names)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items() if n != "self"}
        changed = [f"{n}={v!r}" for n, v in self.get_params().items() if not _same(v, defaults[n])]
        return f"W1Estimator({', '.join(changed)})"

    def _validate(self) -> None:
        """Check the arguments and derive the settings fit uses (``device_``, ``distributed_``
        and the private ``_hidden``, ``_fractions``, ``_draws``)."""
        if self.distributed:
            _dist.require_initialized("W1Estimator(distributed=True)")
        self._hidden = check_settings(self.critic, self.epochs, self.batch_size, self.lr, self.lr_patience,
                                      self.hidden, self.cones, self.patience, self.smoothing, self.tol,
                                      self.min_epoch_steps, self.val_fraction, self.selection_fraction, self.folds)
        self._fractions = (float(self.val_fraction), float(self.selection_fraction))
        if self.exact is not None and not isinstance(self.exact, bool):
            raise TypeError(f"exact must be None, True or False, got {self.exact!r}")
        self._draws = check_draws(self.draws)
        self.distributed_ = bool(self.distributed) and _dist.world_size() > 1
        self.device_ = torch.device(self.device) if self.device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")

    # --------------------------------------------------------------------------- data

    def _sources(self, X, Y, weights_x, weights_y, center: np.ndarray | None = None):
        """Both samples as sources centered on ``center`` (default: their pooled mean)."""
        if is_sampler(X) or is_sampler(Y):
            if center is not None:
                raise TypeError("evaluate takes samples (arrays, tensors, streams): draw them from the samplers first")
            if weights_x is not None or weights_y is not None or self.distributed_:
                raise ValueError("samplers take no weights_x / weights_y and do not run distributed")
            return make_sampled(X, Y, self._draws, self.device_)
        return make_sources(X, Y, weights_x, weights_y, self.batch_size, self.device_, center)

    # --------------------------------------------------------------------------- fit

    def _check_parts(self, plan: FoldPlan, stats: list[Stats]) -> None:
        for k in range(plan.folds):
            for part, mask in plan.masks(k).items():
                for name, st in zip("XY", stats):
                    if float(st.sum_w[mask].sum()) <= 0:
                        raise ValueError(f"{name} has no sample (or only zero weights) in the {part} part of fold {k}; "
                                         f"pass more samples, or fewer folds / larger fractions")

    def _linear(self, st: list[Stats], masks: dict[str, Tensor]) -> tuple[float, LinearCritic]:
        """The closed-form linear critic: its selection KR when fitted on the training part,
        and the critic refitted on training + selection."""
        u = st[0].weighted_mean(masks["train"]) - st[1].weighted_mean(masks["train"])
        u = u / u.norm() if float(u.norm()) > 0 else u
        sel = float(u @ (st[0].weighted_mean(masks["selection"]) - st[1].weighted_mean(masks["selection"])))
        fit = masks["train"] | masks["selection"]
        refit = LinearCritic(st[0].weighted_mean(fit) - st[1].weighted_mean(fit))
        return sel, refit.to(self.device_)

    def _kinds(self, shape: tuple[int, ...], n_train: int) -> tuple[str, ...]:
        """The candidates to fit, in order: see :func:`default_candidates`."""
        if self.critic is None:
            kinds = default_candidates(int(np.prod(shape)), n_train)
            return tuple(k for k in kinds if k != "envelope") if is_square_image(shape) else kinds
        return ("custom",) if isinstance(self.critic, nn.Module) else (self.critic,)

    def _fold_networks(self, kind: str, sx, sy, plan: FoldPlan, scales: list[float], n_train: int) -> nn.Module:
        """The K untrained fold networks of ``kind``; cone centers on training points of each fold."""
        if kind == "envelope":
            return self._envelopes(sx, sy, plan, scales,
                                  self.cones or auto_envelope_cones(n_train, fresh=isinstance(sx, Sampled)))
        if kind != "cone":
            base = self.critic if kind == "custom" else None
            hidden = self._hidden or auto_hidden(int(np.prod(sx.shape)))
            return fold_critics(base, sx.shape, scales, self.seed, hidden).to(self.device_)
        torch.manual_seed(self.seed)
        cones = self.cones or DEFAULT_CONES
        critics = StackedConeCritic(plan.folds, int(np.prod(sx.shape)), scales, cones).to(self.device_)
        gen = torch.Generator().manual_seed(self.seed)
        for k in range(plan.folds):
            train = plan.masks(k)["train"]
            critics.place(k, low=sample_points(sy, train, cones, gen), high=sample_points(sx, train, cones, gen))
        return critics

    def _envelopes(self, sx, sy, plan: FoldPlan, scales: list[float], cones: int) -> StackedEnvelopeCritic:
        """The K envelope critics, each oriented and started from (at most ``ENVELOPE_PILOT``)
        training samples of its fold (:func:`envelope_orientation`, :func:`envelope_start`)."""
        features = int(np.prod(sx.shape))
        torch.manual_seed(self.seed)
        critics = StackedEnvelopeCritic(plan.folds, features, scales, cones).to(self.device_)
        gen = torch.Generator().manual_seed(self.seed)
        for k in range(plan.folds):
            train = plan.masks(k)["train"]
            x, y = (sample_points(s, train, ENVELOPE_PILOT, gen).reshape(ENVELOPE_PILOT, features).float()
                    for s in (sx, sy))
            lower = envelope_orientation(x, y)
            critics.place(k, lower, envelope_start(y if lower else x, critics.cones, gen))
        return critics

    def _networks(self, kinds: Sequence[str], sx, sy, plan: FoldPlan, stats: list[Stats],
                  rivals: list[float] | None = None) -> tuple[dict[str, list[float]], dict[str, list], list]:
        """Train the K fold networks of every kind in ``kinds`` together (one stack per kind, all
        on the same batches); returns per kind their best selection KRs and critics
        (``ScaledCritic``, one per fold), and the history. ``rivals``: the best selection KRs of
        the closed-form candidate, which each network must beat within ``patience`` epochs to
        go on, as it must beat the other kinds."""
        scales = [input_scale(*stats, plan.masks(k)["train"]) for k in range(plan.folds)]
        n_train = _train_count(stats, plan)
        stacks = {kind: self._fold_networks(kind, sx, sy, plan, scales, n_train) for kind in kinds}
        schedule = Schedule(self.epochs, self.batch_size or auto_batch_size(n_train), self.lr, self.patience,
                            self.min_epoch_steps, float(self.smoothing), self.lr_patience,
                            auto_tol(int(np.prod(sx.shape))) if self.tol is None else float(self.tol))
        disable = True if not _dist.is_main() else (None if self.progress is None else not self.progress)
        with tqdm(total=self.epochs, desc=f"W1 {' + '.join(kinds)} critics ({plan.folds} folds)", unit="epoch",
                  disable=disable, leave=False) as bar:
            best, history = train_fold_critics(stacks, sx, sy, plan, schedule, seed=self.seed,
                                               distributed=self.distributed_, bar=bar, rivals=rivals)
        nets = {kind: [stack.member(k) for k in range(plan.folds)] for kind, stack in stacks.items()}
        return best, nets, history

    def fit(self, X, Y, weights_x=None, weights_y=None) -> "W1Estimator":
        """Train the critic(s) on ``X`` (first measure) and ``Y`` (second); sets ``result_``.

        With ``folds = K > 1`` (cross-fitting) every sample is held out once: critic ``k`` is
        fitted on the other folds and evaluated on fold ``k``; the value is the mean of the K
        held-out KR values (each one unbiased for its critic, so the mean is too), its standard
        error combines the folds' ones, and ``critic_`` is the average of the K critics (an
        average of 1-Lipschitz functions is 1-Lipschitz).
        """
        t0 = time.perf_counter()
        self._validate()
        sx, sy, center = self._sources(X, Y, weights_x, weights_y)
        plan = sampler_plan(self._draws) if is_sampler(X) else FoldPlan(self.folds, self._fractions)
        rng = np.random.default_rng(self.seed)
        for i, s in enumerate((sx, sy)):
            s.assign(plan, rng, self.seed * 2 + i)
        stats = [Stats(s, plan.cells, self.distributed_) for s in (sx, sy)]
        self._check_parts(plan, stats)
        candidates: list[list[tuple[float, str, nn.Module]]] = [[] for _ in range(plan.folds)]
        history: list[dict] = []
        kinds = self._kinds(sx.shape, _train_count(stats, plan))
        if "linear" in kinds:
            for k in range(plan.folds):
                sel, lin = self._linear(stats, plan.masks(k))
                sel = _dist.from_main(sel) if self.distributed_ else sel
                candidates[k].append((sel, "linear", lin))
                history.append({"fold": k, "candidate": "linear", "selection_kr": sel})
        networks = [kind for kind in kinds if kind != "linear"]
        if networks:
            rivals = [c[0][0] for c in candidates] if candidates[0] else None
            best, nets, hist = self._networks(networks, sx, sy, plan, stats, rivals)
            for kind in networks:
                for k in range(plan.folds):
                    candidates[k].append((best[kind][k], kind, nets[kind][k]))
            history += hist
        chosen = [max(c, key=lambda t: t[0]) for c in candidates]
        self._finish(sx, sy, plan, stats, chosen, center, history, t0)
        self.result_.exact = self._exact(X, Y, weights_x, weights_y, int(np.prod(sx.shape)))
        self.result_.n_drawn = (getattr(sx, "drawn", 0), getattr(sy, "drawn", 0))
        return self

    def _exact(self, X, Y, weights_x, weights_y, features: int) -> float | None:
        """POT's exact W1 of the samples, when ``exact`` asks for it (see the class docstring)."""
        if self.exact is False:
            return None
        if is_stream(X) or is_stream(Y) or is_sampler(X):
            if self.exact:
                raise ValueError("exact=True needs X and Y in memory (arrays or tensors), not streams or samplers")
            return None
        n, m = len(X), len(Y)
        if self.exact is None and (self.distributed_ or not auto_exact(features, n, m)):
            return None
        return exact_w1(X, Y, weights_x, weights_y)

    def _finish(self, sx, sy, plan: FoldPlan, stats, chosen, center, history, t0: float) -> None:
        """Held-out values of the chosen critics, the returned critic and the result."""
        inner = _Stack([c for _, _, c in chosen])
        mx = critic_moments(inner, sx, None, plan.folds, plan.cells, self.distributed_)
        my = critic_moments(inner, sy, None, plan.folds, plan.cells, self.distributed_)
        values, variances, in_sample = [], [], []
        for k in range(plan.folds):
            v, e = kr_from(mx, my, k, plan.masks(k)["heldout"])
            values.append(v)
            variances.append(e * e)
            in_sample.append(kr_from(mx, my, k, plan.masks(k)["train"])[0])
        self._inner = inner.critics[0] if plan.folds == 1 else MeanCritic(inner.critics)
        self.center_ = np.asarray(center, dtype=np.float64)
        self.critic_ = _with_center(self._inner, self.center_)
        value, stderr = float(np.mean(values)), math.sqrt(sum(variances)) / len(variances)
        n_held = tuple(int(st.count[plan.union("heldout")].sum()) for st in stats)
        self.result_ = W1Result(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr),
                                float(np.mean(in_sample)), self.critic_, history, n_held,
                                time.perf_counter() - t0, tuple(name for _, name, _ in chosen))

    def evaluate(self, X, Y, weights_x=None, weights_y=None) -> W1Result:
        """KR value of the fitted critic on new samples (arrays, tensors or streams), with its
        standard error and 95 % CI. For samples independent of the fit, it estimates a lower
        bound on :math:`W_1`."""
        if self._inner is None:
            raise RuntimeError("call fit(X, Y) before evaluate")
        sx, sy, _ = self._sources(X, Y, weights_x, weights_y, center=self.center_)
        cells = FoldPlan(1, self._fractions).cells
        mask = torch.ones(cells, dtype=torch.bool)  # unassigned samples: any cell
        mx, my = (critic_moments(self._inner, s, None, 1, cells, self.distributed_) for s in (sx, sy))
        value, stderr = kr_from(mx, my, 0, mask)
        n = (mx.count(0, mask), my.count(0, mask))
        return W1Result(value, stderr, (value - 1.96 * stderr, value + 1.96 * stderr), math.nan, self.critic_,
                        n_heldout=n)


def _same(a: Any, b: Any) -> bool:
    """``a`` is ``b`` or equal to it (``==`` may not give a bool, e.g. for tensors or modules)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def _train_count(stats: list[Stats], plan: FoldPlan) -> int:
    """Training samples of fold 0 on the smaller side (what the batch size and the envelope's
    defaults are sized on)."""
    return int(min(st.count[plan.masks(0)["train"]].sum() for st in stats))


def _with_center(critic: nn.Module, center: np.ndarray) -> nn.Module:
    """The fitted critic for raw (uncentered) inputs: every ``ScaledCritic`` gets the center.
    (A linear critic needs none: a constant shift of :math:`f` leaves every KR value unchanged.)"""
    out = copy.deepcopy(critic)
    c = torch.as_tensor(center, dtype=torch.float64)
    for m in out.modules():
        if isinstance(m, ScaledCritic):
            m.center = c.clone().to(m.scale.device)
    return out


def estimate_w1(X, Y, *, critic: nn.Module | str | None = None, weights_x=None, weights_y=None,
                **settings: Any) -> W1Result:
    """Estimate :math:`W_1` between the samples ``X`` and ``Y`` with KR critics:
    ``W1Estimator(critic, **settings).fit(X, Y, weights_x, weights_y).result_``; ``settings``
    are :class:`W1Estimator`'s keyword arguments (their defaults are defined there only).

    ``X``, ``Y``: arrays or tensors ``(n, d)`` or images ``(n, C, H, W)``, or torch Datasets /
    DataLoaders for samples larger than memory (streamed in order; see
    :mod:`lipot.wasserstein.sources`). Returns a :class:`W1Result`: ``value`` is the held-out KR
    value of the selected critics (use it, not ``in_sample``), ``stderr`` and ``ci`` its
    standard error and 95 % interval.

    Args:
        X, Y: the two samples: arrays or tensors ``(n, d)`` and ``(m, d)``, images
            ``(n, C, H, W)``, torch Datasets / DataLoaders (streamed), or samplers (callables
            ``draw(n) -> (n, d)``).
        critic: ``None`` (the estimator chooses per fold), ``"linear"``, ``"cone"``,
            ``"envelope"``, ``"gnp"`` or a 1-Lipschitz ``torch.nn.Module``.
        weights_x, weights_y: sample weights (non-negative, any scale), or ``None`` for uniform.
        **settings: the keyword arguments of :class:`W1Estimator` (``folds``, ``epochs``,
            ``seed``, ``device``...).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 3, generator=gen)
        >>> y = torch.randn(500, 3, generator=gen) + torch.tensor([1.0, 0.0, 0.0])   # W1 = 1
        >>> result = lipot.estimate_w1(x, y, seed=0)
        >>> 0.8 < result.value < 1.2, result.ci[0] < result.value < result.ci[1]
        (True, True)
        >>> result.critic(x[:2]).shape            # the fitted 1-Lipschitz critic: one value per point
        torch.Size([2])
    """
    return W1Estimator(critic, **settings).fit(X, Y, weights_x, weights_y).result_


def _signature_with_settings() -> inspect.Signature:
    """``estimate_w1``'s signature with W1Estimator's keyword arguments spelled out (for
    ``help()`` and IDEs)."""
    own = list(inspect.signature(estimate_w1).parameters.values())[:-1]
    est = [p for p in inspect.signature(W1Estimator.__init__).parameters.values()
           if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return inspect.Signature(own + est, return_annotation=W1Result)


estimate_w1.__signature__ = _signature_with_settings()  # type: ignore[attr-defined]
