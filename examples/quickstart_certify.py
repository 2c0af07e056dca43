"""
Train and certify a 1-Lipschitz classifier
==========================================

Train a 1-Lipschitz classifier with an HKR loss, then
certify it (a margin of z_y - z_j over L * ||w_y - w_j|| is an l2 radius no attack can beat).

Run it::

    python examples/quickstart_certify.py
"""

import torch

import lipot

torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
centers = 1.2 * torch.randn(3, 8, generator=gen)  # three overlapping Gaussian classes in 8-D
y = torch.arange(3000) % 3
x = centers[y] + torch.randn(3000, 8, generator=gen)
x_train, y_train, x_test, y_test = x[:2400], y[:2400], x[2400:], y[2400:]

model = lipot.models.dense_classifier(8, (64, 64), 3)  # SpectralLinear + GroupSort2: 1-Lipschitz
loss = lipot.HKRMulticlassLoss(alpha=0.9, min_margin=1.0)
loader = lipot.training.make_loader(x_train, y_train, batch_size=64)
lipot.training.fit(model, loss, loader, epochs=5, lr=3e-3, log=None, progress=False)

result = lipot.certified_accuracy(model, (x_test, y_test), eps=[0.25, 0.5])
print(f"verified Lipschitz bound {result.lipschitz:.4f}; certificate: {result.method}")
print(f"clean accuracy {result.accuracy:.3f}; certified accuracy {result.certified}")
assert result.lipschitz <= 1.0 + 1e-4 and result.accuracy > 0.6
