"""Train step and eval forward of lipot layers, side by side with torch.nn and deel-torchlip.

Run (all in one run, one table per case)::

    python -m pytest benchmarks/test_layers.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds --benchmark-sort=name

A train step is ``zero_grad; forward; MSE loss; backward; Adam step (lr 1e-3)``: the optimizer
step changes the weights every iteration, so a constrained layer must re-normalize each time, as
in real training. Eval is a forward pass in eval mode under ``torch.no_grad()``. deel-torchlip
(``pip install -e .[bench]``) is skipped if absent. After the timed rounds the benchmark checks
the singular values of the SpectralLinear weights and records them (``extra_info``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lipot
from _timing import eval_fn, train_step_fn

IMPLS = ["torch", "lipot", "deel"]


def make_linear(impl: str, width: int) -> torch.nn.Module:
    if impl == "torch":
        return torch.nn.Linear(width, width)
    if impl == "lipot":
        return lipot.SpectralLinear(width, width)
    deel = pytest.importorskip("deel.torchlip")
    return deel.SpectralLinear(width, width)


def make_conv(impl: str) -> torch.nn.Module:
    if impl == "torch":
        return torch.nn.Conv2d(64, 64, 3, padding=1)
    if impl == "lipot":
        return lipot.SpectralConv2d(64, 64, 3, padding=1)
    deel = pytest.importorskip("deel.torchlip")
    return deel.SpectralConv2d(64, 64, 3, padding=1)


def record_singular_values(benchmark, layer):
    layer.train()
    with torch.no_grad():
        layer(torch.zeros(1, layer.in_features))  # one more training forward: current weights
        sv = np.linalg.svd(layer.weight.detach().double().numpy(), compute_uv=False)
    benchmark.extra_info["sigma_min"] = float(sv.min())
    benchmark.extra_info["sigma_max"] = float(sv.max())
    return sv


ROUNDS = {256: 30, 1024: 8, 2048: 3}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("width", [256, 1024, 2048])
def test_linear_train_step(benchmark, impl, width):
    torch.manual_seed(0)
    layer = make_linear(impl, width)
    x, target = torch.randn(256, width), torch.randn(256, width)
    benchmark.group = f"linear-{width}-train"
    benchmark.pedantic(train_step_fn(layer, x, target), rounds=ROUNDS[width], warmup_rounds=2)
    if impl != "torch":
        sv = record_singular_values(benchmark, layer)
        if impl == "lipot":
            assert sv.max() <= 1 + 1e-5 and sv.min() >= 1 - 1e-3


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("width", [256, 1024, 2048])
def test_linear_eval_forward(benchmark, impl, width):
    torch.manual_seed(0)
    layer = make_linear(impl, width)
    x = torch.randn(256, width)
    benchmark.group = f"linear-{width}-eval"
    benchmark.pedantic(eval_fn(layer, x), rounds=20 * ROUNDS[width], warmup_rounds=5)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_train_step(benchmark, impl):
    torch.manual_seed(0)
    layer = make_conv(impl)
    x, target = torch.randn(32, 64, 32, 32), torch.randn(32, 64, 32, 32)
    benchmark.group = "conv64-32x32-train"
    benchmark.pedantic(train_step_fn(layer, x, target), rounds=8, warmup_rounds=2)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_eval_forward(benchmark, impl):
    torch.manual_seed(0)
    layer = make_conv(impl)
    x = torch.randn(32, 64, 32, 32)
    benchmark.group = "conv64-32x32-eval"
    benchmark.pedantic(eval_fn(layer, x), rounds=80, warmup_rounds=5)


# ---- eval overhead, interleaved ---------------------------------------------------------------
# Sequential benchmarks on a shared 2-core machine drift by +-10 % between tests, more than the
# overhead being measured. Here torch.nn and lipot calls alternate within one benchmark, so both
# see the same machine state; the median ratio is reported at the end of the run.

EVAL_CASES = {
    "linear-256": (lambda: torch.nn.Linear(256, 256), lambda: lipot.SpectralLinear(256, 256), (256, 256)),
    "linear-1024": (lambda: torch.nn.Linear(1024, 1024), lambda: lipot.SpectralLinear(1024, 1024), (256, 1024)),
    "linear-2048": (lambda: torch.nn.Linear(2048, 2048), lambda: lipot.SpectralLinear(2048, 2048), (256, 2048)),
    "conv64-32x32": (
        lambda: torch.nn.Conv2d(64, 64, 3, padding=1),
        lambda: lipot.SpectralConv2d(64, 64, 3, padding=1),
        (32, 64, 32, 32),
    ),
}
INTERLEAVED_RESULTS: list[tuple[str, float, float, float]] = []


@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_eval_overhead_interleaved(benchmark, case):
    import time

    torch.manual_seed(0)
    make_torch, make_lipot, shape = EVAL_CASES[case]
    plain, constrained = make_torch().eval(), make_lipot().eval()
    x = torch.randn(*shape)
    times = {"torch": [], "lipot": []}
    order = [("torch", plain), ("lipot", constrained)]

    def pair():
        order.reverse()  # alternate which one runs first
        with torch.no_grad():
            for name, module in order:
                start = time.perf_counter()
                module(x)
                times[name].append(time.perf_counter() - start)

    benchmark.group = "eval-overhead-interleaved"
    benchmark.pedantic(pair, rounds=max(40, int(2e5 / np.prod(shape[1:]))), warmup_rounds=5)
    t_torch, t_lipot = float(np.median(times["torch"])), float(np.median(times["lipot"]))
    benchmark.extra_info.update(torch_median_s=t_torch, lipot_median_s=t_lipot, ratio=t_lipot / t_torch)
    INTERLEAVED_RESULTS.append((case, t_torch, t_lipot, t_lipot / t_torch))
