"""Where the code runs: under ``torch.compile``, or inside a ``torch.func`` transform (``vmap``,
``grad``, ``jacrev``, ``jvp``...).

Inside a transform a module must behave as a pure function: the tensors it sees are wrapped
(batched or gradient-tracking), and writing them into a module buffer in place is an error
(vmap) or would leak a wrapped tensor out of the transform. lipot's layers therefore compute the
same outputs but skip their state updates there: the power-iteration vector, the in-place
re-projection of the raw weight, and ``BatchCentering``'s running mean.
"""

from __future__ import annotations

import torch

__all__ = ["is_compiling", "in_functorch_transform", "is_transformed_tensor", "is_batched_tensor", "is_static"]


def is_compiling() -> bool:
    """True while ``torch.compile`` captures the code (data-dependent checks and host reads are
    skipped then; the one place lipot asks)."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def in_functorch_transform() -> bool:
    """True inside any ``torch.func`` transform (the functorch interpreter stack is not empty)."""
    peek = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", None)
    return peek is not None and peek() is not None


def is_transformed_tensor(tensor: torch.Tensor) -> bool:
    """True for a tensor wrapped by a ``torch.func`` transform (e.g. parameters substituted by
    ``functional_call`` inside ``grad``): it has no storage of its own to cache or write."""
    check = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    return check is not None and bool(check(tensor))


def is_batched_tensor(tensor: torch.Tensor) -> bool:
    """True for a tensor batched by ``vmap`` at some level of its wrappers: its values cannot be
    read on the host (``float(t)`` fails), so data-dependent control flow is impossible. (Inside
    ``grad`` / ``jacrev`` alone every intermediate is wrapped, but its value can be read.)"""
    functorch = getattr(torch._C, "_functorch", None)
    if functorch is None or not hasattr(functorch, "is_batchedtensor"):
        return False
    while functorch.is_functorch_wrapped_tensor(tensor):
        if functorch.is_batchedtensor(tensor):
            return True
        tensor = functorch.get_unwrapped(tensor)
    return False


def is_static(tensor: torch.Tensor) -> bool:
    """Whether data-dependent control flow on ``tensor`` is impossible: while torch.compile
    captures, or for a tensor batched by ``vmap`` (e.g. weights batched over
    ``stack_module_state``, whose values cannot be read on the host). The algorithms then run
    fixed iteration counts and their conservative branches."""
    return is_compiling() or is_batched_tensor(tensor)
