r"""Multi-process training on ``torch.distributed`` (DDP, launched with ``torchrun``).

lipot does not ship its own parallel scheme: models are wrapped in
:class:`torch.nn.parallel.DistributedDataParallel` and every rank runs the same program on its
own shard of each global batch. What lipot adds is what DDP alone gets wrong for these losses:

* **Global batch statistics.** The KR term is a difference of class means,
  :math:`\mathrm{mean}_{P} f - \mathrm{mean}_{N} f`. Computed per rank, it would use the rank's
  own class counts, and DDP's gradient average would then be the average of per-rank KR
  gradients, not the gradient of the global-batch KR. Inside :func:`global_batch`, the losses
  of :mod:`lipot.losses` all-reduce the counts (one small all-reduce, no gradient), weight each
  local sample by the global counts and scale the reduction so that

  .. math::
      \frac1W \sum_{r=1}^{W} \ell_r = \ell(\text{global batch}),

  which makes DDP's averaged gradient the exact global-batch gradient (up to float rounding),
  even when the ranks hold batches of different sizes. SoftHKR's running mean of :math:`|f|`
  is updated with the global mean, so its temperature stays identical on every rank.
* **Helpers for the rest:** :func:`setup` (process group from torchrun's environment, NCCL on
  GPUs, gloo on CPUs), :func:`rank_seed` (per-rank seeding), :func:`is_main` (rank-0-only
  logging and checkpoints), :func:`all_sum` and :func:`shard_slice`.

:func:`lipot.training.fit` (``distributed=True``) and :class:`lipot.W1Estimator`
(``distributed=True``) use these; a hand-written loop needs only ``DDP(model)`` and
``with lipot.distributed.global_batch(): loss = loss_fn(model(x), y)``.

References: Li et al., *PyTorch Distributed: Experiences on Accelerating Data Parallel
Training*, VLDB 2020 (DDP); PyTorch documentation, *torchrun (Elastic Launch)*.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

import torch
from torch import Tensor
from torch import distributed as dist

__all__ = ["setup", "cleanup", "global_batch", "active", "is_distributed", "rank", "world_size",
           "is_main", "rank_seed", "all_sum", "from_main", "group_size", "batch_scale", "shard_slice",
           "require_initialized", "wrap_ddp"]

_ACTIVE: contextvars.ContextVar[object | None] = contextvars.ContextVar("lipot_global_batch", default=None)
_NO_GROUP = object()


def is_distributed() -> bool:
    """True when a default process group is initialized (with any world size)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that logs and writes checkpoints."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """``seed + rank``: a different random stream per rank (dropout, noise), reproducible for a
    given world size. Data order and initial weights must *not* use it: lipot shares the data
    seed across ranks (each takes its shard of the same permutation) and DDP broadcasts rank
    0's weights."""
    return int(seed) + rank()


def require_initialized(what: str) -> None:
    """Raise a clear error when ``what`` asks for distributed work without a process group."""
    if not is_distributed():
        raise RuntimeError(f"{what} needs an initialized process group: launch with torchrun and call "
                           "lipot.distributed.setup() first (or torch.distributed.init_process_group)")


def setup(backend: str | None = None, seed: int | None = None) -> torch.device:
    """Initialize the default process group from torchrun's environment and return this rank's
    device.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by
    ``torchrun``). ``backend`` defaults to ``"nccl"`` when CUDA is available (one GPU per
    process: ``cuda:LOCAL_RANK``) and ``"gloo"`` otherwise (CPU). Without torchrun's variables
    it does nothing and returns the single-process device. ``seed``: seeds torch with
    :func:`rank_seed`.
    """
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        cuda = torch.cuda.is_available() and backend in (None, "nccl")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            if local >= torch.cuda.device_count():
                raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs are visible; "
                                   "pass --nproc_per_node <= the number of GPUs")
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        if not is_distributed():
            dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    if seed is not None:
        torch.manual_seed(rank_seed(seed))
    return device


def cleanup() -> None:
    """Destroy the default process group if there is one, after a barrier: tearing down while
    another rank still finishes a collective can abort the process (seen with gloo)."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def global_batch(group: dist.ProcessGroup | None = None) -> Iterator[None]:
    """Within this context, lipot's losses compute their batch statistics over the union of
    the ranks' batches (see the module docstring). Every rank must call the loss the same
    number of times. Outside a process group it raises."""
    require_initialized("global_batch()")
    token = _ACTIVE.set(_NO_GROUP if group is None else group)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active() -> bool:
    """True inside :func:`global_batch` (losses then all-reduce their statistics)."""
    return _ACTIVE.get() is not None


def _group() -> dist.ProcessGroup | None:
    """The group given to :func:`global_batch`, or ``None`` for the default group."""
    group = _ACTIVE.get()
    return None if group is None or group is _NO_GROUP else group


def all_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over the ranks of the active group (or the default one); a new tensor, no
    gradient. Unchanged without a process group."""
    if not is_distributed():
        return t.detach().clone()
    group = _group()
    out = t.detach().clone()
    if dist.get_backend(group) == "nccl" and not out.is_cuda:  # NCCL reduces GPU tensors only
        out = out.cuda()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return out.to(t.device)


def from_main(value: float) -> float:
    """Rank 0's ``value`` on every rank (decisions such as early stopping must agree exactly)."""
    if not is_distributed():
        return float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t[0])


def group_size() -> int:
    """World size of the active :func:`global_batch` group (of the default group outside it)."""
    return dist.get_world_size(_group())


def batch_scale(n_local: int, reference: Tensor) -> Tensor:
    """``W / N_global`` (``N_global`` the sum of the ranks' ``n_local``): a local *sum* times
    it is this rank's share of the global *mean*, so that the average of the shares over the
    ranks is the global-batch mean."""
    n = all_sum(torch.tensor(float(n_local), dtype=torch.float64, device=reference.device))
    return (group_size() / n).to(reference.dtype)


def shard_slice(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """The contiguous part of ``range(n)`` that rank ``rank_`` of ``world`` processes: sizes
    differ by at most one and the parts, in rank order, tile ``range(n)``."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` on ``device`` (its CUDA index, or CPU with gloo)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        raise TypeError("pass the plain model; lipot wraps it in DistributedDataParallel itself")
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
