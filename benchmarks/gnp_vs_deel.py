"""GNP after training: singular values of SpectralLinear(1024) after 36 Adam steps (lr 1e-3) on
the loss mean(y^2), lipot vs deel-torchlip.

Run: python benchmarks/gnp_vs_deel.py   (needs deel-torchlip: pip install -e .[bench])
"""

import numpy as np
import torch

import lipot

torch.set_num_threads(2)


def singular_values_after_training(layer: torch.nn.Module, steps: int = 36) -> np.ndarray:
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    x = torch.randn(256, 1024, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        (layer(x) ** 2).mean().backward()
        opt.step()
    layer.train()
    layer(x)  # the weight the next training step would use
    return np.linalg.svd(layer.weight.detach().double().numpy(), compute_uv=False)


def main() -> None:
    makers = {"lipot": lambda: lipot.SpectralLinear(1024, 1024)}
    try:
        from deel import torchlip

        makers["deel-torchlip"] = lambda: torchlip.SpectralLinear(1024, 1024)
    except ImportError:
        print("deel-torchlip not installed: pip install -e .[bench]")
    for name, make in makers.items():
        torch.manual_seed(0)
        sv = singular_values_after_training(make())
        print(f"{name:>14}: singular values in [{sv.min():.4f}, {sv.max():.6f}]")


if __name__ == "__main__":
    main()
