"""lipot quickstart: build a 1-Lipschitz convolutional network, train it a few steps, measure its
Lipschitz constant independently, and export it to plain torch.nn.

Run: python examples/quickstart.py   (a few seconds on CPU)
"""

import numpy as np
import torch
from torch import nn

import lipot

torch.manual_seed(0)

# A k-Lipschitz network: lipot layers keep torch.nn names and arguments, plus k_coef_lip.
model = lipot.Sequential(
    lipot.SpectralConv2d(1, 16, 3, padding=1),
    lipot.GroupSort2(),
    lipot.ScaledL2NormPool2d(2),
    lipot.SpectralConv2d(16, 32, 3, padding=1),
    lipot.GroupSort2(),
    lipot.ScaledL2NormPool2d(2),
    nn.Flatten(),
    lipot.SpectralLinear(32 * 7 * 7, 64),
    lipot.GroupSort2(),
    lipot.FrobeniusLinear(64, 1),
    k_coef_lip=1.0,
)

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

# Independent check: the gradient norm of the scalar output is the local Lipschitz constant.
model.eval()
point = torch.randn(8, 1, 28, 28, requires_grad=True)
(grad,) = torch.autograd.grad(model(point).sum(), point)
norms = grad.flatten(1).norm(dim=1)
print(f"input-gradient norms at 8 random points: max {norms.max():.4f} (bound: 1)")
assert norms.max() <= 1 + 1e-4

# The dense layer is orthonormal (gradient-norm preserving): all singular values are 1.
with torch.no_grad():
    sv = np.linalg.svd(model[7].weight.double().numpy(), compute_uv=False)
print(f"SpectralLinear singular values in [{sv.min():.6f}, {sv.max():.6f}]")

# Export to plain torch.nn (Conv2d/Linear + torch.fx modules): same outputs, no lipot needed.
plain = lipot.vanilla_export(model)
with torch.no_grad():
    gap = (plain(x) - model(x)).abs().max().item()
print(f"exported model: {type(plain).__name__}, max output difference {gap:.2e}")
assert gap < 1e-5
