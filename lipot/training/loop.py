"""A small training loop for HKR classifiers (and KR critics): per-epoch metrics, certified
accuracy, atomic checkpoints and resume. The CLI (``lipot train``) is built on :func:`fit`.

Per epoch it records the mean training loss, training accuracy, the mean KR term of the
batches (one-vs-rest average for several classes), the epoch time, and -- with validation data
-- the clean and certified validation accuracy at each requested epsilon, from the verified
bound of :func:`lipot.certify.lipschitz_bound`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .. import _checks
from .checkpoints import RESUME_KEYS, load_checkpoint, load_model_state, save_checkpoint
from .. import distributed as _dist
from .. import losses
from ..certify.certificates import predicted_correct, certified_accuracy
from ..distributed import shard_slice
from .schedules import RadiusRamp

__all__ = ["fit", "save_checkpoint", "load_checkpoint", "load_model_state", "make_loader", "TensorLoader", "DEFAULT_LR"]

DEFAULT_LR = 1e-3
"""Adam learning rate of :func:`fit`, the recipes and the CLI."""


class TensorLoader:
    """Mini-batches of in-memory tensors, drawn by slicing a (seeded) permutation.

    A faster stand-in for ``DataLoader(TensorDataset(x, y))``, which indexes and collates one
    sample at a time: here a batch is one indexing operation on the device where ``x`` and
    ``y`` live (put them on the GPU once and no host transfer remains). The permutation is drawn
    on the CPU with ``generator``, so the order does not depend on the device.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, shuffle: bool = True,
                 drop_last: bool | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1 \
                or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        limit = x.shape[0] // world_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= limit:
            raise ValueError(f"batch_size (per rank) must be an integer in [1, {limit}], got {batch_size!r}")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.rank, self.world_size = rank, world_size
        self.drop_last = shuffle if drop_last is None else drop_last
        self.generator = torch.Generator().manual_seed(seed)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a callable batch -> batch (e.g. lipot.data.RandomTranslate(2)), "
                            f"got {transform!r}")
        self.transform = transform

    def __len__(self) -> int:
        n, step = self.x.shape[0], self.batch_size * self.world_size
        if self.drop_last or n % step < self.world_size:  # every rank needs a non-empty shard
            return n // step
        return n // step + 1

    def __iter__(self):
        """Global batch ``i`` is ``batch_size * world_size`` consecutive entries of the
        (shared-seed) permutation; this rank yields its contiguous shard of it."""
        n, step = self.x.shape[0], self.batch_size * self.world_size
        order = torch.randperm(n, generator=self.generator).to(self.x.device) if self.shuffle else None
        for i in range(len(self)):
            part = shard_slice(min(step, n - i * step), self.rank, self.world_size)
            lo, hi = i * step + part.start, i * step + part.stop
            if order is not None:
                index = order[lo:hi]
                x, y = self.x[index], self.y[index]
            else:
                x, y = self.x[lo:hi], self.y[lo:hi]
            yield (x if self.transform is None else self.transform(x)), y


def make_loader(x: Tensor, y: Tensor, batch_size: int, shuffle: bool = True, seed: int = 0,
                distributed: bool = False, transform: Callable[[Tensor], Tensor] | None = None) -> TensorLoader:
    """A :class:`TensorLoader`: shuffled with a seeded generator and, when shuffling,
    ``drop_last`` (the KR term needs both classes in every batch, and a tiny last batch gives a
    noisy KR estimate). ``transform``: applied to every batch of inputs (e.g.
    :class:`lipot.data.RandomTranslate`). ``distributed=True``: this rank's shard of every global batch of
    ``batch_size * world_size`` samples (same ``seed`` on every rank), as a
    ``DistributedSampler`` would give."""
    if distributed:
        _dist.require_initialized("make_loader(distributed=True)")
        return TensorLoader(x, y, batch_size, shuffle=shuffle, seed=seed, rank=_dist.rank(),
                            world_size=_dist.world_size(), transform=transform)
    return TensorLoader(x, y, batch_size, shuffle=shuffle, seed=seed, transform=transform)


def _kr_term(out: Tensor, y: Tensor) -> Tensor:
    if out.dim() == 1 or out.shape[1] == 1:
        return losses.kr_loss(out, y)
    return losses.kr_multiclass_loss(out, y)


def _check_finite_batch(x: Tensor, i: int) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"batch {i} of the training data contains NaN or Inf values; clean the data "
                         "(e.g. torch.nan_to_num or drop those samples)") from None


def _raise_non_finite(loss: Tensor, x: Tensor, out: Tensor, i: int) -> None:
    """Name the first culprit of a non-finite loss: the data, the model's outputs, or the loss."""
    _check_finite_batch(x, i)
    if not bool(torch.isfinite(out).all()):
        raise FloatingPointError(f"the model's outputs became NaN/Inf at batch {i} (finite inputs): "
                                 "training diverged; lower the learning rate")
    raise FloatingPointError(f"the loss became {float(loss)} at batch {i} (finite inputs and outputs); "
                             "lower the learning rate or check the loss settings")


def _epoch(model, loss_fn, loader, optimizer, device, progress: tqdm, distributed: bool = False,
           before_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; the metrics are summed on the device (no extra host syncs).
    ``distributed``: the losses use global-batch statistics and the metrics are summed over
    the ranks at the end. ``before_step(i)`` is called before batch ``i`` (the radius ramp)."""
    model.train()
    loss_fn.train()
    total_loss = total_kr = correct = torch.zeros((), device=device)
    seen = batches = 0
    context = _dist.global_batch if distributed else contextlib.nullcontext
    for i, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if before_step is not None:
            before_step(i)
        with context():
            out = model(x)
            try:
                loss = loss_fn(out, y)
            except ValueError:  # e.g. the loss refusing NaN logits: name the data if it is the cause
                _check_finite_batch(x, i)
                raise
            if not torch.isfinite(loss):  # before the step, so the weights are not corrupted
                _raise_non_finite(loss, x, out, i)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                total_loss = total_loss + loss.detach()
                total_kr = total_kr + _kr_term(out.detach(), y)
                correct = correct + predicted_correct(out.detach(), y, check=False).sum()
        seen += x.shape[0]
        batches += 1
        if not progress.disable:
            progress.update()
            if progress.n == len(progress) or i % 10 == 0:  # host reads only every 10 batches
                progress.set_postfix(loss=f"{float(total_loss) / batches:.4f}", acc=f"{float(correct) / seen:.4f}",
                                     refresh=False)
    progress.close()
    if batches == 0:
        raise ValueError("the training loader yielded no batch (batch_size larger than the data?)")
    if distributed:  # each rank's loss is its share x W: the global mean is the sum / W
        totals = _dist.all_sum(torch.stack([total_loss, total_kr, correct,
                                            torch.tensor(float(seen), device=device)]).double())
        w = _dist.world_size()
        return {"loss": float(totals[0]) / (w * batches), "accuracy": float(totals[2] / totals[3]),
                "kr": float(totals[1]) / (w * batches)}
    return {"loss": float(total_loss) / batches, "accuracy": float(correct) / seen, "kr": float(total_kr) / batches}


def fit(
    model: nn.Module,
    loss_fn: nn.Module | Callable[[Tensor, Tensor], Tensor],
    train_data: DataLoader,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = DEFAULT_LR,
    val_data: DataLoader | tuple[Tensor, Tensor] | None = None,
    eps: Sequence[float] = (),
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = print,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
    distributed: bool = False,
    radius_ramp: RadiusRamp | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` epochs; return one metrics dict per epoch.

    Args:
        model: the network (moved to ``device``).
        loss_fn: a loss to minimize, e.g. :class:`lipot.losses.HKRLoss` (its buffers, like
            SoftHKR's running mean, are checkpointed when it is a module).
        train_data: a DataLoader of ``(x, y)`` batches (see :func:`make_loader`).
        epochs: total number of epochs (with ``resume``, training continues up to it).
        optimizer: defaults to ``Adam(model.parameters(), lr)``.
        val_data: evaluated after each epoch: ``val_accuracy`` and ``certified`` (eps -> accuracy).
        eps: radii for the certified accuracy.
        checkpoint: file written atomically after each epoch (model, optimizer, loss state,
            scheduler, history, RNG state, ``extra``).
        resume: continue from ``checkpoint`` if it exists.
        progress: a tqdm progress bar per epoch (batches, loss, accuracy) on stderr; ``None``:
            only when stderr is a terminal.
        log: called with a one-line summary per epoch (``None``: silent).
        scheduler: an optional LR scheduler stepped once per epoch (e.g.
            :func:`lipot.training.schedules.lr_decay`).
        radius_ramp: a :class:`lipot.training.schedules.RadiusRamp`: before every batch, ``loss_fn.eps``
            is set to ``radius_ramp(t)`` (``t``: epochs done, fractional), for the certified-margin losses of :mod:`lipot.losses.margin`; the radius of
            the last batch is recorded as ``train_eps``.
        distributed: train with :class:`~torch.nn.parallel.DistributedDataParallel` on the
            initialized process group (launch with ``torchrun``, call
            :func:`lipot.distributed.setup`). ``train_data`` must give each rank its shard
            (:func:`make_loader` with ``distributed=True``, or a DataLoader with a
            ``DistributedSampler``; ``batch_size`` is per rank). The losses use global-batch
            statistics (:func:`lipot.distributed.global_batch`), so a step equals the
            single-process step on the union of the ranks' batches; the metrics are global;
            validation, logging and checkpoints happen on rank 0 only (the history is sent to
            every rank); ``model`` itself is trained in place (DDP wraps it).
    """
    _checks.positive_int("epochs", epochs)
    if checkpoint is not None:
        _checks.writable_file("checkpoint", checkpoint)  # now, not after the first epoch
    if radius_ramp is not None and not isinstance(getattr(loss_fn, "eps", None), float):
        raise ValueError("radius_ramp needs a loss with an eps attribute (a margin loss of "
                         "lipot.losses, e.g. EMMALoss or GloroTradesLoss)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    else:
        loss_fn = _FunctionLoss(loss_fn)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    trained = _wrap_ddp(model, train_data, device) if distributed else model
    main = _dist.is_main() if distributed else True
    log = log if main else None
    history: list[dict[str, Any]] = []
    start = 0
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        history = _resume(checkpoint, device, model, optimizer, loss_fn, scheduler, train_data)
        start = len(history)
        if log:
            log(f"resumed from {checkpoint} after epoch {start}")
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        if hasattr(getattr(train_data, "sampler", None), "set_epoch"):
            train_data.sampler.set_epoch(epoch)  # DistributedSampler: a new shuffle per epoch
        bar = tqdm(total=len(train_data), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False,
                   disable=True if not main else (None if progress is None else not progress))
        ramp = _ramp_setter(loss_fn, radius_ramp, epoch, len(train_data))
        metrics: dict[str, Any] = {"epoch": epoch + 1,
                                   **_epoch(trained, loss_fn, train_data, optimizer, device, bar, distributed, ramp)}
        metrics["train_seconds"] = time.perf_counter() - t0
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        if radius_ramp is not None:
            metrics["train_eps"] = loss_fn.eps
        if scheduler is not None:
            scheduler.step()
        history.append(_validate(model, val_data, eps, device, metrics, main, distributed))
        if checkpoint is not None:
            _save(checkpoint, model, optimizer, loss_fn, scheduler, train_data, history, extra, main, distributed)
        if log:
            log(_summary(metrics))
    return history


def _resume(checkpoint, device, model, optimizer, loss_fn, scheduler, train_data) -> list[dict[str, Any]]:
    """Restore a training checkpoint (model, optimizer, loss state, scheduler, RNG streams);
    returns its history (one record per finished epoch)."""
    state = load_checkpoint(checkpoint, device)
    missing = sorted(RESUME_KEYS - set(state))
    if missing:
        raise ValueError(f"checkpoint {checkpoint} holds a model but not the training state needed to "
                         f"resume (missing {missing}); train into another checkpoint file")
    _check_same_loss(checkpoint, state, loss_fn)
    load_model_state(model, state, checkpoint)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    torch.set_rng_state(rng[_dist.rank() % len(rng)] if isinstance(rng, list) else rng)
    if state.get("loader_rng") is not None and isinstance(getattr(train_data, "generator", None), torch.Generator):
        train_data.generator.set_state(state["loader_rng"])
    history = list(state["history"])
    if len(history) != int(state["epoch"]):
        raise ValueError(f"checkpoint {checkpoint}: {len(history)} history records for epoch {state['epoch']}")
    return history


def _check_same_loss(checkpoint, state: dict[str, Any], loss_fn) -> None:
    """Refuse, in one line, a checkpoint written while training with another loss (its class is
    recorded since this version; older checkpoints are told apart by the loss state's keys)."""
    written, ours = state.get("loss_class"), type(loss_fn).__name__
    if written is not None and written != ours:
        raise ValueError(f"checkpoint {checkpoint} was written while training with {written}, not {ours}; "
                         "resume with the same loss, or train into another checkpoint file")
    try:
        loss_fn.load_state_dict(state["loss"])
    except RuntimeError:
        raise ValueError(f"checkpoint {checkpoint} holds the state of another loss (keys "
                         f"{sorted(state['loss'])}, {ours} has {sorted(loss_fn.state_dict())}); resume "
                         "with the same loss, or train into another checkpoint file") from None


def _validate(model, val_data, eps, device, metrics: dict[str, Any], main: bool, distributed: bool) -> dict[str, Any]:
    """Add the validation accuracy and certified accuracies (rank 0), shared with every rank."""
    if val_data is not None and main:
        result = certified_accuracy(model, val_data, list(eps), device=device)
        metrics["val_accuracy"] = result.accuracy
        metrics["certified"] = {float(e): a for e, a in result.certified.items()}
        metrics["lipschitz"] = result.lipschitz
    if distributed:  # rank 0's validation metrics to every rank
        shared = [metrics]
        torch.distributed.broadcast_object_list(shared, src=0)
        metrics = shared[0]
    return metrics


def _save(checkpoint, model, optimizer, loss_fn, scheduler, train_data, history, extra, main: bool,
          distributed: bool) -> None:
    """Write the checkpoint after an epoch (rank 0; every rank's RNG stream)."""
    rng = torch.get_rng_state()
    if distributed:  # every rank's stream, restored per rank on resume
        gathered: list[Any] = [None] * _dist.world_size()
        torch.distributed.all_gather_object(gathered, rng)
        rng = gathered
    if main:
        save_checkpoint(checkpoint, {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "loss": loss_fn.state_dict(),
            "loss_class": type(loss_fn).__name__,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng,
            "loader_rng": _loader_rng(train_data),
            "epoch": len(history),
            "history": history,
            "extra": extra or {},
        })
    if distributed:
        torch.distributed.barrier()  # nobody reads a checkpoint that is being written


def _ramp_setter(loss_fn, radius_ramp: RadiusRamp | None, epoch: int, steps: int):
    """``before_step`` setting the loss's training radius from the ramp (None without one)."""
    if radius_ramp is None:
        return None

    def before_step(i: int) -> None:
        loss_fn.eps = radius_ramp(epoch + i / max(steps, 1))

    return before_step


def _wrap_ddp(model: nn.Module, train_data, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` after checking that ``train_data`` is sharded."""
    _dist.require_initialized("fit(distributed=True)")
    world = _dist.world_size()
    sharded = (isinstance(train_data, TensorLoader) and train_data.world_size == world) or \
        isinstance(getattr(train_data, "sampler", None), DistributedSampler)
    if world > 1 and not sharded:
        raise ValueError("train_data must give each rank its own shard: use make_loader(..., distributed=True) "
                         "or a DataLoader with a DistributedSampler")
    return _dist.wrap_ddp(model, device)


def _loader_rng(loader) -> Tensor | None:
    generator = getattr(loader, "generator", None)
    return generator.get_state() if isinstance(generator, torch.Generator) else None


class _FunctionLoss(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return self.fn(input, target)


def _summary(m: dict[str, Any]) -> str:
    text = (f"epoch {m['epoch']}: loss {m['loss']:.4f} acc {m['accuracy']:.4f} KR {m['kr']:.4f} "
            f"({m['train_seconds']:.1f} s)")
    if "train_eps" in m:
        text += f" train eps {m['train_eps']:.3g}"
    if "val_accuracy" in m:
        text += f" | val acc {m['val_accuracy']:.4f}"
        for e, a in m["certified"].items():
            text += f" cert@{e:g} {a:.4f}"
        text += f" | L<={m['lipschitz']:.4f}"
    return text if all(math.isfinite(v) for v in (m["loss"], m["kr"])) else text + " (non-finite)"
