"""
A 1-Lipschitz, gradient-norm-preserving convolutional network
=============================================================

Build a 1-Lipschitz, gradient-norm-preserving convolutional network, train it
a few steps, measure its Lipschitz constant independently, and export it to plain torch.nn.

Run it (a few seconds on CPU)::

    python examples/quickstart.py
"""

import numpy as np
import torch
from torch import nn

import lipot

torch.manual_seed(0)


def network(conv=lipot.OrthoConv2d):
    """Every layer keeps or reduces the dimension (1x28x28 = 4x14x14 = 16x7x7 = 784 -> 64 -> 1):
    strided orthogonal convolutions trade resolution for channels instead of pooling. With
    circular padding each orthogonal convolution is exactly orthogonal, so the backward pass keeps
    the gradient norm through the whole stack."""
    ortho = dict(padding=1, padding_mode="circular")
    return lipot.Sequential(
        conv(1, 4, 4, stride=2, **ortho),      # 1x28x28 -> 4x14x14, an orthogonal map
        lipot.GroupSort2(),
        conv(4, 4, 3, **ortho),
        lipot.GroupSort2(),
        conv(4, 16, 4, stride=2, **ortho),     # -> 16x7x7
        lipot.GroupSort2(),
        conv(16, 16, 3, **ortho),
        lipot.GroupSort2(),
        nn.Flatten(),
        lipot.SpectralLinear(16 * 7 * 7, 64),
        lipot.GroupSort2(),
        lipot.FrobeniusLinear(64, 1),
        k_coef_lip=1.0,                        # the whole model is 1-Lipschitz
    )


def input_gradient_norms(model, points):
    model.eval()
    points = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(points).sum(), points)
    model.train()
    return grad.flatten(1).norm(dim=1)


model = network()

# Train a few steps on random data (any loss, any optimizer: the constraint is in the layers).
x = torch.randn(64, 1, 28, 28)
y = torch.randn(64, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(20):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print(f"loss after 20 steps: {loss.item():.4f}")

# Independent check: the input-gradient norm of the scalar output is the local Lipschitz
# constant. A GNP network has norm 1 almost everywhere; a 1-Lipschitz one only <= 1.
points = torch.randn(8, 1, 28, 28)
norms = input_gradient_norms(model, points)
print(f"input-gradient norms at 8 random points: min {norms.min():.4f}, max {norms.max():.4f} (bound: 1)")
assert norms.max() <= 1 + 1e-4 and norms.min() >= 0.9
spectral = input_gradient_norms(network(lipot.SpectralConv2d), points)
print(f"the same network with SpectralConv2d (1-Lipschitz, not GNP): max {spectral.max():.4f}")

# The verified bound, computed from the actual weights (exact FFT norms of the convolutions).
print(f"verified Lipschitz bound: {lipot.lipschitz_bound(model, (1, 28, 28)):.6f}")

# The dense layer is orthonormal (gradient-norm preserving): all singular values are 1.
with torch.no_grad():
    sv = np.linalg.svd(model[9].weight.double().numpy(), compute_uv=False)
print(f"SpectralLinear singular values in [{sv.min():.6f}, {sv.max():.6f}]")

# Export to plain torch.nn (Conv2d/Linear + torch.fx modules): same outputs, no lipot needed.
plain = lipot.vanilla_export(model)
with torch.no_grad():
    gap = (plain(x) - model.eval()(x)).abs().max().item()  # the export reproduces eval mode
print(f"exported model: {type(plain).__name__}, max output difference {gap:.2e}")
assert gap < 1e-5
