"""Timing helpers shared by the benchmark files.

``LIPOT_BENCH_DEVICE`` (default ``cpu``) selects the device of the benchmarks that honour it
(``test_conv_layers.py``); on CUDA every timed function ends with a synchronization, so the
times are those of the finished work.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import torch


DEVICE = torch.device(os.environ.get("LIPOT_BENCH_DEVICE", "cpu"))


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def train_step_fn(layer, x, target):
    """``zero_grad; forward; MSE; backward; Adam step (lr 1e-3)`` on ``layer``."""
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(layer(x), target)
        loss.backward()
        opt.step()
        _sync(x)

    return step


def eval_fn(layer, x):
    """A forward pass in eval mode under ``torch.no_grad()``."""
    layer.eval()

    def forward():
        with torch.no_grad():
            out = layer(x)
        _sync(x)
        return out

    return forward


def interleaved_round(fns: dict[str, Callable[[], object]], times: dict[str, list[float]]):
    """One benchmark round that runs every function once, rotating which goes first, and
    appends each one's duration to ``times``: on a shared machine all see the same state."""
    order = list(fns)

    def one_round():
        order.append(order.pop(0))
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)

    return one_round


def medians(times: dict[str, list[float]], skip: int) -> dict[str, float]:
    """Median of each list after its first ``skip`` (warm-up) entries."""
    return {name: float(np.median(t[skip:])) for name, t in times.items()}
