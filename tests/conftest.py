"""Shared helpers: independent Lipschitz measurements (dense Jacobians) and training loops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

# (no thread count is forced: OMP_NUM_THREADS / torch's own default apply)


def jacobian_matrix(f, x: torch.Tensor) -> torch.Tensor:
    """Dense Jacobian of ``f`` at ``x`` as a float64 matrix ``(out.numel(), x.numel())``.

    Computed by torch autograd on ``f`` as given (float32 layers keep their float32 weights, so
    the entries are the float32 operator's), then cast to float64.
    """
    x = x.detach().clone()
    jac = torch.autograd.functional.jacobian(f, x, vectorize=True)
    out_numel = jac.numel() // x.numel()
    return jac.reshape(out_numel, x.numel()).double()


def spectral_norm_np(matrix: torch.Tensor) -> float:
    """Largest singular value with numpy's float64 LAPACK (independent of lipot)."""
    return float(np.linalg.norm(matrix.detach().double().cpu().numpy(), 2))


def singular_values_np(matrix: torch.Tensor) -> np.ndarray:
    return np.linalg.svd(matrix.detach().double().cpu().numpy(), compute_uv=False)


def local_lipschitz(f, x: torch.Tensor) -> float:
    """Spectral norm of the dense Jacobian of ``f`` at ``x`` (float64 SVD)."""
    return spectral_norm_np(jacobian_matrix(f, x))


def train_steps(module: torch.nn.Module, x: torch.Tensor, steps: int = 4, lr: float = 0.05, seed: int = 0):
    """A few Adam steps of ``module`` towards random targets (MSE), in training mode."""
    gen = torch.Generator().manual_seed(seed)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return module
    opt = torch.optim.Adam(params, lr=lr)
    with torch.no_grad():
        target = torch.randn(module(x).shape, generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((module(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    return module


def lipschitz_all_modes(module: torch.nn.Module, x0: torch.Tensor, points: int = 2, seed: int = 1) -> dict:
    """Largest local Lipschitz constant at ``points`` random inputs of ``x0``'s shape, in train mode,
    eval mode, and for a float64 copy in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(x0.shape, generator=gen) for _ in range(points)]
    out = {}
    module.train()
    out["train"] = max(local_lipschitz(module, x) for x in xs)
    module.eval()
    frozen = [p for p in module.parameters() if p.requires_grad]
    for p in frozen:  # no weight gradient needed: the layers serve their cached weights
        p.requires_grad_(False)
    try:
        out["eval"] = max(local_lipschitz(module, x) for x in xs)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    double = copy.deepcopy(module).double().eval()
    out["float64"] = max(local_lipschitz(double, x.double()) for x in xs)
    module.train()
    return out


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    np.random.seed(1234)


def _mnist_root():
    """MNIST's four IDX files: $LIPOT_MNIST_ROOT, else the workplace's shared data folder."""
    import os
    from pathlib import Path

    candidates = [os.environ.get("LIPOT_MNIST_ROOT"), Path(__file__).resolve().parents[2] / "shared/data/mnist",
                  "/work/shared/data/mnist"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return Path(candidates[1])


MNIST_ROOT = _mnist_root()
