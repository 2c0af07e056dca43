"""Train step of the gradient-norm-preserving dense layers against a plain ``nn.Linear``, side by
side in one interleaved run: lipot's ``SpectralLinear`` with the ``"retraction"`` update (the
default) and the ``"polar"`` update, deel-torchlip's ``SpectralLinear`` and orthogonium's
``OrthoLinear`` (both from the ``[bench]`` extra; skipped when not installed).

Run::

    python -m pytest benchmarks/test_dense_gnp_step.py --benchmark-only -q \\
        --benchmark-columns=median,rounds --benchmark-group-by=group

A step is ``zero_grad; forward; MSE; backward; Adam step (lr 1e-3)`` on a square layer, batch 64
and 256, widths 256 to 2048. Each round runs every candidate once, rotating which goes first, so
all see the same machine state; the summary prints the median step of each and its ratio to
``nn.Linear``, and the singular values of each constrained weight (float64 SVD of the weight the
layer uses in eval mode) after the timed steps (100 rounds, 30 at width 2048, after 2 warm-up ones).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lipot
from _peers import dense_peers
from _timing import interleaved_round, medians, train_step_fn

WIDTHS = (256, 512, 1024, 2048)
BATCHES = (64, 256)
ROUNDS = {256: 100, 512: 100, 1024: 100, 2048: 30}  # 2048: the peers take seconds per step
INTERLEAVED_GNP_RESULTS: list[tuple[str, dict[str, float], dict[str, tuple[float, float]]]] = []


def make_all(n: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    layers = {
        "nn.Linear": nn.Linear(n, n),
        "lipot polar": lipot.SpectralLinear(n, n, update="polar"),
        "lipot retraction": lipot.SpectralLinear(n, n),  # the default update
    }
    layers.update({name: make(n) for name, make in dense_peers().items()})
    return layers


def eval_spectrum(layer: nn.Module, n: int) -> tuple[float, float]:
    """Singular values of the weight the layer uses in eval mode: its Jacobian (it is linear)."""
    layer.eval()
    jac = torch.autograd.functional.jacobian(layer, torch.zeros(n))
    sv = np.linalg.svd(jac.detach().double().numpy(), compute_uv=False)
    layer.train()
    return float(sv.min()), float(sv.max())


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", WIDTHS)
def test_gnp_dense_train_step(benchmark, n, batch):
    layers = make_all(n)
    x, target = torch.randn(batch, n), torch.randn(batch, n)
    fns = {name: train_step_fn(layer, x, target) for name, layer in layers.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    benchmark.group = f"gnp-dense-{n}-batch{batch}"
    benchmark.pedantic(interleaved_round(fns, times), rounds=ROUNDS[n], warmup_rounds=2)
    spectra = {name: eval_spectrum(layer, n) for name, layer in layers.items() if name != "nn.Linear"}
    for name in ("lipot polar", "lipot retraction"):
        low, high = spectra[name]
        assert high <= 1 + 1e-5, (name, spectra[name])
    assert spectra["lipot retraction"][0] >= 1 - 1e-4, spectra["lipot retraction"]
    INTERLEAVED_GNP_RESULTS.append((f"{n} x {n}, batch {batch}", medians(times, skip=2), spectra))
