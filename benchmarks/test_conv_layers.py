"""Lipschitz convolutions side by side: torch.nn.Conv2d, SpectralConv2d, OrthoConv2d, AOLConv2d
and orthogonium 0.0.4's AOC conv (``AdaptiveOrthoConv2d``), in one run.

Run::

    python -m pytest benchmarks/test_conv_layers.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds --benchmark-sort=name

Cases (batch 32, 32×32 inputs, zero padding 1, as the lipot model builders use):
``conv64``: 64→64, 3×3, stride 1; ``strided32-64``: 32→64, 3×3, stride 2;
``strided32-64-k4``: 32→64, 4×4, stride 2 (the down-sampling convolution of
``lipot.models.conv_classifier(downsample="stride")`` and of the 4C3F record network).

A train step is ``zero_grad; forward; MSE; backward; Adam step (lr 1e-3)``: the weights change
every step, so every constrained layer re-normalizes each time, as in real training. Eval is a
forward pass in eval mode under ``torch.no_grad()``. ``LIPOT_BENCH_DEVICE=cuda`` runs the
same benchmark on a GPU (synchronized timings). orthogonium (``pip install -e .[bench]``)
is skipped cleanly if it is not installed.

Two measurements per case:

* one pytest-benchmark per implementation (tables grouped by case);
* one *interleaved* benchmark running every implementation in turn within each round (rotating
  the order): on a shared, noisy machine this is what the ratios to ``torch.nn.Conv2d`` printed
  at the end of the run come from (medians over the rounds).
"""

from __future__ import annotations

import pytest
import torch

import lipot
from _peers import orthogonium_conv as _orthogonium
from _timing import DEVICE, eval_fn, interleaved_round, medians, train_step_fn

IMPLS = ["torch", "spectral", "ortho", "aol", "orthogonium"]
CASES = {"conv64": (64, 64, 3, 1), "strided32-64": (32, 64, 3, 2), "strided32-64-k4": (32, 64, 4, 2)}
ROUNDS = {"train": 60, "eval": 60}
INTERLEAVED_CONV_RESULTS: list[tuple[str, str, dict[str, float]]] = []


def make(impl: str, case: str) -> torch.nn.Module:
    return _make(impl, case).to(DEVICE)


def _make(impl: str, case: str) -> torch.nn.Module:
    c_in, c_out, kernel, stride = CASES[case]
    args = (c_in, c_out, kernel)
    kwargs = dict(stride=stride, padding=1)
    if impl == "torch":
        return torch.nn.Conv2d(*args, **kwargs)
    if impl == "spectral":
        return lipot.SpectralConv2d(*args, **kwargs)
    if impl == "ortho":
        return lipot.OrthoConv2d(*args, **kwargs)
    if impl == "aol":
        return lipot.AOLConv2d(*args, **kwargs)
    aoc = _orthogonium()
    if aoc is None:
        pytest.skip("orthogonium is not installed (pip install -e .[bench])")
    return aoc(*args, padding_mode="zeros", **kwargs)


def inputs(case: str, seed: int = 0):
    c_in, c_out, _, stride = CASES[case]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, c_in, 32, 32, generator=gen)
    target = torch.randn(32, c_out, 32 // stride, 32 // stride, generator=gen)
    return x.to(DEVICE), target.to(DEVICE)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_conv_train_step(benchmark, case, impl):
    torch.manual_seed(0)
    layer = make(impl, case)
    x, target = inputs(case)
    benchmark.group = f"{case}-train"
    benchmark.pedantic(train_step_fn(layer, x, target), rounds=ROUNDS["train"], warmup_rounds=3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_conv_eval_forward(benchmark, case, impl):
    torch.manual_seed(0)
    layer = make(impl, case)
    x, _ = inputs(case)
    benchmark.group = f"{case}-eval"
    benchmark.pedantic(eval_fn(layer, x), rounds=ROUNDS["eval"], warmup_rounds=3)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_conv_interleaved(benchmark, case, mode):
    torch.manual_seed(0)
    x, target = inputs(case)
    impls = [i for i in IMPLS if i != "orthogonium" or _orthogonium() is not None]
    fns = {}
    for impl in impls:
        layer = make(impl, case)
        fns[impl] = train_step_fn(layer, x, target) if mode == "train" else eval_fn(layer, x)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    benchmark.group = f"{case}-{mode}-interleaved"
    benchmark.pedantic(interleaved_round(fns, times), rounds=ROUNDS[mode], warmup_rounds=3)
    result = medians(times, skip=3)
    benchmark.extra_info.update({f"{impl}_median_s": t for impl, t in result.items()})
    INTERLEAVED_CONV_RESULTS.append((case, mode, result))
