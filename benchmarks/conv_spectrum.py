"""How close to 1 the spectrum of each Lipschitz convolution is: the singular values of the dense
Jacobian (float64 SVD by numpy) of a 16 -> 16 channel, 3x3 convolution on 16x16 inputs, fresh and
after 20 Adam steps (lr 0.01) towards random targets.

Run: python benchmarks/conv_spectrum.py   (about a minute on 2 CPU cores)

Columns: largest and smallest singular value, the median, and the share of singular values
at or above 0.99 (1.0 for an orthogonal layer, lower for a contracting one).
"""

from __future__ import annotations

import numpy as np
import torch

import lipot

LAYERS = {
    "OrthoConv2d circular": lambda: lipot.OrthoConv2d(16, 16, 3, padding=1, padding_mode="circular"),
    "OrthoConv2d zeros": lambda: lipot.OrthoConv2d(16, 16, 3, padding=1),
    "AOLConv2d zeros": lambda: lipot.AOLConv2d(16, 16, 3, padding=1),
    "SpectralConv2d zeros": lambda: lipot.SpectralConv2d(16, 16, 3, padding=1),
}


def spectrum(layer: torch.nn.Module) -> np.ndarray:
    layer.eval()
    x = torch.zeros(1, 16, 16, 16, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: layer(z.float()).double(), x, vectorize=True)
    layer.train()
    return np.linalg.svd(jac.reshape(16 * 256, 16 * 256).numpy(), compute_uv=False)


def train(layer: torch.nn.Module, steps: int = 20) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 16, 16, 16, generator=gen)
    target = torch.randn(16, 16, 16, 16, generator=gen)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(layer(x), target).backward()
        opt.step()


def main() -> None:
    torch.set_num_threads(2)
    print(f"{'layer':<24}{'stage':<8}{'sigma_max':>11}{'sigma_min':>11}{'median':>9}{'>= 0.99':>9}")
    for name, make in LAYERS.items():
        torch.manual_seed(0)
        layer = make()
        for stage in ("fresh", "trained"):
            if stage == "trained":
                train(layer)
            sv = spectrum(layer)
            print(f"{name:<24}{stage:<8}{sv.max():>11.6f}{sv.min():>11.6f}{np.median(sv):>9.4f}"
                  f"{(sv >= 0.99).mean():>9.1%}")


if __name__ == "__main__":
    main()
