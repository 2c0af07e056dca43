"""Cholesky orthogonalization against lipot's polar scheme for dense layers, at equal soundness.

Run::

    python -m pytest benchmarks/test_dense_orthogonalization.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds --benchmark-sort=name

Candidates (each a 1-Lipschitz dense layer whose weight has orthonormal rows or columns):

* ``polar``: :class:`lipot.SpectralLinear` (Björck to the polar factor, the raw weight re-projected
  in place each training step, exact polar backward);
* ``cholesky``: :math:`Q = L^{-1} W` with :math:`L L^\\top = W W^\\top + \\varepsilon I` (for the
  smaller Gram side), autograd through ``torch.linalg.cholesky`` and the triangular solve.
  :math:`Q Q^\\top = I - \\varepsilon L^{-1} L^{-\\top}`, so :math:`\\lVert Q\\rVert < 1` in exact
  arithmetic; :math:`\\varepsilon = 10^{-6}` times the mean diagonal of the Gram matrix.
* ``torch``: a plain ``nn.Linear`` (the cost floor).

Soundness is measured, not assumed: after the timed training steps the float64 singular values
of both constrained weights are recorded (``extra_info``) and must be ``<= 1 + 1e-5``. The
interleaved benchmark prints the median train-step time of each candidate per case at the end of
the run. The Cholesky layer lives here only, as a measured candidate: lipot keeps the scheme
that wins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import lipot
from _timing import interleaved_round, medians, train_step_fn

CASES = {"1024x1024": (1024, 1024), "2048x2048": (2048, 2048), "4096->512": (4096, 512)}
ROUNDS = {"1024x1024": 12, "2048x2048": 5, "4096->512": 12}
INTERLEAVED_DENSE_RESULTS: list[tuple[str, dict[str, float], dict[str, tuple[float, float]]]] = []


class _Cholesky(nn.Module):
    """Parametrization ``W -> L^{-1} W`` (rows orthonormal up to eps), or its transpose for a
    tall weight."""

    def forward(self, w):
        tall = w.shape[0] > w.shape[1]
        a = w.mT if tall else w
        gram = a @ a.mT
        eps = 1e-6 * gram.diagonal().mean()
        chol = torch.linalg.cholesky(gram + eps * torch.eye(gram.shape[0], dtype=w.dtype, device=w.device))
        q = torch.linalg.solve_triangular(chol, a, upper=False)
        return q.mT if tall else q


def make(impl: str, case: str) -> nn.Module:
    n_in, n_out = CASES[case]
    if impl == "torch":
        return nn.Linear(n_in, n_out)
    if impl == "polar":
        return lipot.SpectralLinear(n_in, n_out)
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight)
    parametrize.register_parametrization(layer, "weight", _Cholesky())
    return layer


def singular_values(layer: nn.Module) -> np.ndarray:
    layer.train()
    with torch.no_grad():
        layer(torch.zeros(1, layer.in_features))  # one more training forward: current weights
        return np.linalg.svd(layer.weight.detach().double().numpy(), compute_uv=False)


@pytest.mark.parametrize("impl", ["torch", "polar", "cholesky"])
@pytest.mark.parametrize("case", list(CASES))
def test_dense_train_step(benchmark, case, impl):
    torch.manual_seed(0)
    layer = make(impl, case)
    n_in, n_out = CASES[case]
    x, target = torch.randn(256, n_in), torch.randn(256, n_out)
    benchmark.group = f"dense-{case}-train"
    benchmark.pedantic(train_step_fn(layer, x, target), rounds=ROUNDS[case], warmup_rounds=2)
    if impl != "torch":
        sv = singular_values(layer)
        benchmark.extra_info.update(sigma_min=float(sv.min()), sigma_max=float(sv.max()))
        assert sv.max() <= 1 + 1e-5


@pytest.mark.parametrize("case", list(CASES))
def test_dense_interleaved(benchmark, case):
    torch.manual_seed(0)
    n_in, n_out = CASES[case]
    x, target = torch.randn(256, n_in), torch.randn(256, n_out)
    layers = {impl: make(impl, case) for impl in ("torch", "polar", "cholesky")}
    fns = {impl: train_step_fn(layer, x, target) for impl, layer in layers.items()}
    times: dict[str, list[float]] = {impl: [] for impl in fns}
    benchmark.group = f"dense-{case}-interleaved"
    benchmark.pedantic(interleaved_round(fns, times), rounds=ROUNDS[case], warmup_rounds=2)
    spectra = {}
    for impl in ("polar", "cholesky"):
        sv = singular_values(layers[impl])
        spectra[impl] = (float(sv.min()), float(sv.max()))
        assert sv.max() <= 1 + 1e-5
    INTERLEAVED_DENSE_RESULTS.append((case, medians(times, skip=2), spectra))
