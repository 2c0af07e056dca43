r"""Training the K fold critics together, each on its own training part.

Every step reads one pair of batches ``(x, y)`` drawn from the samples that train at least one
critic, and gives critic ``k`` the weights :math:`a_{ki} = w_i\,[\text{cell}_i \in
\text{train}_k]` (zero for the samples it must not see), so the K critics step on K different
training sets through one batched forward and backward pass:

.. math::
    \mathcal L = -\sum_k \mathbb 1[k\ \text{active}]\;\mathrm{KR}_k, \qquad
    \mathrm{KR}_k = \frac{\sum_i a_{ki} g_k(x_i)}{\sum_i a_{ki}} -
    \frac{\sum_j b_{kj} g_k(y_j)}{\sum_j b_{kj}} .

The critics share no parameter, so the gradient of :math:`\mathcal L` with respect to critic
``k``'s parameters is that of its own :math:`-\mathrm{KR}_k`, and Adam (element-wise) moves each
critic exactly as it would move it alone (tested against K separately trained critics).

After every epoch (a pass over the training samples, repeated to at least ``min_epoch_steps``
steps) each critic's KR value on its selection part is measured. Per critic, the best value so
far is kept as a snapshot (model selection), and the critic stops (its snapshot is restored and
it no longer moves) once an exponential moving average of its selection values has not risen
by more than a relative ``tol`` above its best for ``patience`` epochs. Several stacks (one per
kind of network) can train side by side on the same batches, each with its own optimizer: they
*race*, critic ``k`` of each stack must also rise above the best selection value of critic
``k`` of the other stacks and of a fixed *rival* (the closed-form linear critic), so the loser
stops within ``patience`` epochs of falling behind; training ends when every critic has
stopped or after ``epochs``. The learning rate of each stack is halved whenever the sum of its
active critics' averaged selection values has not improved for ``lr_patience`` epochs
(``ReduceLROnPlateau``): the large early steps find the shape of the critic fast, the small
late ones sharpen it (on the 8-ring vs 5x5-grid mixture, n = 5000, with patience 10: from
-3.3 % to -2.5 % of exact OT).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
from torch import Tensor, nn

from .. import distributed as _dist
from ..losses import weighted_kr
from .folds import FoldPlan
from .moments import EVAL_BATCH, Moments, kr_from
from .sources import share, zip_cycle

__all__ = ["Schedule", "train_fold_critics", "critic_moments"]


@dataclass(frozen=True)
class Schedule:
    """The training schedule of the fold critics (the estimator fills it from its arguments)."""

    epochs: int
    batch_size: int
    lr: float
    patience: int
    min_epoch_steps: int
    smoothing: float
    lr_patience: int
    tol: float


@torch.no_grad()
def critic_moments(critics: nn.Module, source, mask: Tensor | None, members: int, cells: int,
                   distributed: bool) -> Moments:
    """Per-cell sums of the K critics' values over the samples whose cell is in ``mask``."""
    critics.eval()
    out = Moments(members, cells)
    for x, w, c in share(source.batches(mask, EVAL_BATCH), distributed):
        f = critics(x)
        out.add(f.reshape(members, x.shape[0]), w, c)
    if distributed:
        out.all_sum()
    return out


def _pairs(sx, sy, mask: Tensor, batch_size: int, gen: torch.Generator, distributed: bool) -> Iterator[tuple]:
    """One pass of training pairs ``((x, wx, cells), (y, wy, cells))`` for this rank. In a
    distributed run the pairs are dealt out in groups of ``world_size``; a last incomplete group
    is completed by repeating its pairs, so every rank makes the same number of steps (DDP
    needs it)."""
    pairs = zip_cycle(lambda: sx.batches(mask, batch_size, gen), lambda: sy.batches(mask, batch_size, gen))
    if not distributed:
        yield from pairs
        return
    world, r = _dist.world_size(), _dist.rank()
    while group := list(itertools.islice(pairs, world)):
        yield group[r % len(group)]


def _batch_kr(model: nn.Module, xb, yb, ax: Tensor, ay: Tensor, distributed: bool) -> Tensor:
    """The K critics' KR values on a pair of batches (one forward pass for both). Distributed:
    this rank's share of the KR value of the union of the ranks' batches (global weight sums),
    times ``world_size`` (DDP averages the gradients)."""
    f = model(torch.cat([xb, yb]))  # one forward: the weights are normalized once per step
    n = xb.shape[0]
    if not distributed:
        return weighted_kr(f[:, :n], f[:, n:], ax, ay)
    totals = _dist.all_sum(torch.stack([ax.sum(-1), ay.sum(-1)]))
    return _dist.world_size() * weighted_kr(f[:, :n], f[:, n:], ax, ay, totals=(totals[0], totals[1]))


class _Selection:
    """Per-critic model selection and stopping for one stack of K critics: best raw selection
    KR (snapshot) and the patience counter on its exponential moving average. Each update is
    given the critic's *rival*: the best selection KR of the candidates it competes with (the
    closed-form linear critic, the other networks trained alongside); the moving average must
    rise above it, so a network that cannot beat its rival stops after ``patience`` epochs
    instead of training to its own plateau. ``tol``: relative margin an improvement must
    clear."""

    def __init__(self, members: int, patience: int, smoothing: float, tol: float) -> None:
        self.best = [-math.inf] * members
        self.smooth: list[float | None] = [None] * members
        self.best_smooth = [-math.inf] * members
        self.stale = [0] * members
        self.active = [True] * members
        self.state: list[dict | None] = [None] * members
        self.patience, self.smoothing, self.tol = patience, smoothing, tol

    def _threshold(self, k: int, rival: float) -> float:
        """The value the moving average must exceed to count as an improvement."""
        b = max(self.best_smooth[k], rival)
        return b + self.tol * abs(b) if math.isfinite(b) else b

    def record(self, k: int, value: float, critics) -> None:
        """Keep a snapshot of critic ``k`` if ``value`` is its best selection KR so far."""
        if value > self.best[k]:
            self.best[k], self.state[k] = value, critics.fold_state(k)

    def judge(self, k: int, value: float, critics, rival: float = -math.inf, hold: bool = False) -> None:
        """Update the moving average with ``value``; stop critic ``k`` (back to its snapshot)
        after ``patience`` epochs without rising above its best and ``rival``. ``hold``: the
        critic is still warming up (an envelope whose temperature has not reached 0) and is
        judged against its own best only: it goes on while it keeps rising, even below its
        rival, and stops like any other critic once it levels off."""
        s = self.smooth[k]
        s = value if s is None else self.smoothing * s + (1 - self.smoothing) * value
        self.smooth[k] = s
        if s > self._threshold(k, -math.inf if hold else rival):
            self.best_smooth[k], self.stale[k] = s, 0
        else:
            self.stale[k] += 1
            if self.stale[k] >= self.patience:
                self.active[k] = False
                critics.load_fold_state(k, self.state[k])


class _Run:
    """One stack of K critics in training: its optimizer, learning-rate schedule, model
    selection and (distributed) DDP wrapper."""

    def __init__(self, critics: nn.Module, schedule: Schedule, members: int, device, distributed: bool) -> None:
        self.critics = critics
        self.opt = torch.optim.Adam(critics.parameters(), lr=schedule.lr * getattr(critics, "lr_factor", 1.0))
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, "max", factor=0.5,
                                                                  patience=schedule.lr_patience)
        self.model = _dist.wrap_ddp(critics, device) if distributed else critics
        self.track = _Selection(members, schedule.patience, schedule.smoothing, schedule.tol)
        self.last = torch.zeros(members)

    @property
    def running(self) -> bool:
        return any(self.track.active)

    def step(self, xb, yb, ax: Tensor, ay: Tensor, distributed: bool) -> None:
        active = torch.tensor(self.track.active, dtype=torch.float32, device=xb.device)
        kr = _batch_kr(self.model, xb, yb, ax, ay, distributed)
        self.opt.zero_grad(set_to_none=True)
        (-(kr * active).sum()).backward()
        self.opt.step()
        _freeze_stopped(self.critics, self.track)
        self.last = kr.detach()

    def end_epoch(self) -> None:
        if self.running:
            self.plateau.step(sum(s for s, on in zip(self.track.smooth, self.track.active) if on))


def train_fold_critics(stacks: Mapping[str, nn.Module], sx, sy, plan: FoldPlan, schedule: Schedule, *, seed: int,
                       distributed: bool = False, bar=None,
                       rivals: list[float] | None = None) -> tuple[dict[str, list[float]], list[dict]]:
    """Train the K fold critics of each stack in ``stacks`` (name -> a module ``(B, *shape) ->
    (K, B)`` with ``fold_state`` / ``load_fold_state``; see :mod:`lipot.wasserstein.critics`)
    together, on the same batches, each stack with its own Adam optimizer and learning-rate
    schedule.

    The stacks *race*: critic ``k`` of one stack must beat, within ``patience`` epochs, the best
    selection KR so far of critic ``k`` of every other stack, and ``rivals[k]`` (e.g. the
    closed-form linear critic; ``None``: no fixed rival). A stack with a true ``challenger``
    attribute must beat the others but is no rival to them: they train as if it were not there
    (the envelope critic, which rises fast and may level off below a network that would have
    overtaken it). A stack whose critics have all
    stopped no longer computes anything, so the loser of a race costs only the epochs it took
    to fall behind.

    Returns the best selection KR of every critic per stack (each critic is left at its best
    state) and the history (one record per critic and epoch, with the stack's name as
    ``"candidate"``). ``bar``: a tqdm bar advanced once per epoch.
    """
    members = plan.folds
    if rivals is not None and len(rivals) != members:
        raise ValueError(f"rivals must hold one value per critic ({members}), got {len(rivals)}")
    fixed = list(rivals) if rivals is not None else [-math.inf] * members
    train_rows = plan.stacked("train").to(sx.device, torch.float32)
    selection = plan.stacked("selection")
    union, sel_union = plan.union("train"), plan.union("selection")
    runs = {name: _Run(c, schedule, members, sx.device, distributed) for name, c in stacks.items()}
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    for epoch in range(schedule.epochs):
        live = {name: r for name, r in runs.items() if r.running}
        for r in live.values():
            r.critics.train()
        steps = 0
        while steps == 0 or steps < schedule.min_epoch_steps:
            for (xb, wxb, cx), (yb, wyb, cy) in _pairs(sx, sy, union, schedule.batch_size, gen, distributed):
                ax, ay = wxb * train_rows[:, cx], wyb * train_rows[:, cy]
                for r in live.values():
                    r.step(xb, yb, ax, ay, distributed)
                steps += 1
        values = {name: _selection_krs(r, sx, sy, plan, selection, sel_union, distributed)
                  for name, r in live.items()}
        for name, sel in values.items():  # every stack's bests first: the race is order-free
            for k, v in sel.items():
                live[name].track.record(k, v, live[name].critics)
        for name, sel in values.items():
            r = live[name]
            for k, v in sel.items():
                history.append({"fold": k, "epoch": epoch + 1, "train_batch_kr": float(r.last[k]),
                                "selection_kr": v, "candidate": name})
                rival = max([fixed[k]] + [o.track.best[k] for o in runs.values()
                                          if o is not r and not getattr(o.critics, "challenger", False)])
                warming = getattr(r.critics, "warming", None)
                r.track.judge(k, v, r.critics, rival, hold=bool(warming is not None and warming(k)))
        for r in live.values():
            r.end_epoch()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(active=sum(sum(r.track.active) for r in runs.values()),
                            selection_kr=f"{_mean([max(v) for v in zip(*(r.track.best for r in runs.values()))]):.4g}")
        if not any(r.running for r in runs.values()):
            break
    for r in runs.values():
        for k in range(members):
            if r.track.active[k]:
                r.critics.load_fold_state(k, r.track.state[k])
    return {name: r.track.best for name, r in runs.items()}, history


def _selection_krs(r: _Run, sx, sy, plan: FoldPlan, selection: Tensor, sel_union: Tensor,
                   distributed: bool) -> dict[int, float]:
    """The selection KR of every active critic of ``r``."""
    mx = critic_moments(r.critics, sx, sel_union, plan.folds, plan.cells, distributed)
    my = critic_moments(r.critics, sy, sel_union, plan.folds, plan.cells, distributed)
    return {k: kr_from(mx, my, k, selection[k])[0] for k in range(plan.folds) if r.track.active[k]}


def _freeze_stopped(critics: nn.Module, track: _Selection) -> None:
    """A stopped critic does not move: its snapshot is restored after every step (Adam's
    momentum would otherwise keep updating it)."""
    for k, on in enumerate(track.active):
        if not on:
            critics.load_fold_state(k, track.state[k])


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
