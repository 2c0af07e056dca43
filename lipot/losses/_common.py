"""Shared checks of the losses: reductions, labels (binary signs, one-hot / class indices),
finite inputs, and the distributed-aware batch reduction."""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
from torch import Tensor
from torch.nn import functional as F

from .. import _checks
from .._transforms import is_compiling
from .. import distributed as _dist

_REDUCTIONS = ("mean", "sum", "none", "auto")


# ----------------------------------------------------------------------------- checks


def checks_enabled() -> bool:
    """Data-dependent label checks need a host sync; they are skipped under torch.compile."""
    return not is_compiling()


def check_reduction(reduction: str) -> str:
    """Validate ``reduction`` ('auto' is 'mean')."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return "mean" if reduction == "auto" else reduction


def reduce_loss(values: Tensor, reduction: str) -> Tensor:
    """Mean / sum / none over the batch. Inside :func:`lipot.distributed.global_batch` a rank
    returns its share scaled so that the average over the ranks is the global-batch mean (sum)."""
    reduction = check_reduction(reduction)
    if reduction == "none":
        return values
    if _dist.active():
        scale = _dist.batch_scale(values.shape[0], values) if reduction == "mean" else _dist.group_size()
        return values.sum() * scale
    return values.mean() if reduction == "mean" else values.sum()


def check_alpha(alpha: float) -> float:
    """HKR weight: ``0 <= alpha <= 1`` (deel-torchlip >= 1.0 / deel-lip >= 1.5 convention)."""
    try:
        return _checks.fraction("alpha", alpha)
    except ValueError:
        alpha = float(alpha)
        hint = ""
        if alpha > 1.0:
            hint = (
                f"; deel-lip < 1.5 used loss = alpha * hinge - KR, which for alpha={alpha:g} is "
                f"the same minimizer as alpha={alpha / (1 + alpha):.6g} here"
            )
        raise ValueError(f"alpha must be in [0, 1], got {alpha:g}{hint}") from None


def check_input(input: Tensor) -> None:
    if not isinstance(input, Tensor) or not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {type(input).__name__}")
    if input.dim() == 0 or input.shape[0] == 0:
        raise ValueError(f"input must hold a non-empty batch, got shape {tuple(input.shape)}")
    if checks_enabled() and not bool(torch.isfinite(input).all()):
        raise ValueError("input contains NaN or Inf (check the model and the learning rate)")


def binary_sign(input: Tensor, target: Tensor) -> Tensor:
    """Target as +-1 in ``input``'s dtype and shape; checks shape and values.

    ``(N,)`` or ``(N, 1)`` inputs take a target with as many entries; a multilabel ``(N, C)``
    input takes a target of the same shape (each column its own binary problem)."""
    check_input(input)
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a tensor, got {type(target).__name__}")
    multilabel = input.dim() == 2 and input.shape[1] > 1
    if multilabel:
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(
                f"a multilabel input {tuple(input.shape)} needs a target of the same shape (one "
                f"+-1 or 0/1 label per column), got {tuple(target.shape)}; for class indices "
                "(one class per sample) use the *_multiclass losses"
            )
    elif target.numel() != input.numel() or input.dim() > 2:
        raise ValueError(
            f"binary losses need input of shape (N,), (N, 1) or multilabel (N, C) and a target "
            f"with as many entries; got input {tuple(input.shape)} and target "
            f"{tuple(target.shape)} (for class indices use the *_multiclass losses)"
        )
    target = target.reshape(input.shape)
    if checks_enabled():
        _checks.binary_labels("target labels", target)
    return torch.where(target > 0, 1.0, -1.0).to(input.dtype)


def multiclass_sign(input: Tensor, target: Tensor) -> Tensor:
    """Target as a +-1 one-hot matrix of ``input``'s shape; accepts class indices."""
    check_input(input)
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a tensor, got {type(target).__name__}")
    if input.dim() != 2:
        raise ValueError(f"multiclass losses need input of shape (N, C), got {tuple(input.shape)}")
    n, c = input.shape
    if target.dim() == 1:
        target = _checks.integral_indices("target", target)
    if target.dim() == 1 and not target.is_floating_point():
        if target.shape[0] != n:
            raise ValueError(f"target has {target.shape[0]} labels for a batch of {n}")
        if checks_enabled():
            _checks.class_indices("target", target, c)
        target = F.one_hot(target, c)
    elif tuple(target.shape) != (n, c):
        raise ValueError(
            f"target must be one-hot of shape {(n, c)} or class indices of shape ({n},), "
            f"got {tuple(target.shape)}"
        )
    elif checks_enabled():
        _checks.binary_labels("one-hot target values", target)
    return torch.where(target > 0, 1.0, -1.0).to(input.dtype)


def true_class_mask(sign: Tensor) -> Tensor:
    if checks_enabled() and not bool(((sign > 0).sum(-1) == 1).all()):
        raise ValueError("this loss needs exactly one positive class per sample in target")
    return sign > 0


def check_multi_gpu(multi_gpu: bool) -> bool:
    """deel-torchlip's ``multi_gpu`` flag must be a bool."""
    if not isinstance(multi_gpu, bool):
        raise TypeError(f"multi_gpu must be True or False, got {multi_gpu!r}")
    return multi_gpu


def global_batch_if(multi_gpu: bool):
    """deel-torchlip's ``multi_gpu`` flag: ``True`` computes the batch statistics over the union of
    the ranks' batches (:func:`lipot.distributed.global_batch`) inside a process group; outside
    one there is a single process, whose batch is the global one, so the value is the
    single-process value (as deel-torchlip computes it)."""
    if check_multi_gpu(multi_gpu) and _dist.is_distributed():
        return _dist.global_batch()
    return contextlib.nullcontext()


def with_multi_gpu(fn):
    """Add deel-torchlip's keyword ``multi_gpu=False`` to a loss function (see
    :func:`global_batch_if`)."""

    @functools.wraps(fn)
    def wrapper(*args, multi_gpu: bool = False, **kwargs):
        with global_batch_if(multi_gpu):
            return fn(*args, **kwargs)

    signature = inspect.signature(fn)
    extra = inspect.Parameter("multi_gpu", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool")
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    return wrapper
