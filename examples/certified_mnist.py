"""Certifiably robust MNIST 0-vs-8 classifier with the Python API: HKR loss, training with
per-epoch certified accuracy, a verified Lipschitz bound, and certificates checked by hand.

Run: python examples/certified_mnist.py [MNIST_ROOT] [EPOCHS]
     (default root $LIPOT_MNIST_ROOT or data/mnist, 10 epochs: about 10 s on 2 CPU cores)
"""

import os
import sys

import torch

from lipot import data, losses, models
from lipot.certify import certified_accuracy, certified_radius, lipschitz_report
from lipot.training import fit, make_loader

root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LIPOT_MNIST_ROOT", "data/mnist")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.manual_seed(0)

# Two classes -> labels +1 / -1 and a single output whose sign is the class.
x, y = data.binary_subset(*data.mnist(root, "train"), positive=0, negative=8)
x_test, y_test = data.binary_subset(*data.mnist(root, "test"), positive=0, negative=8)

model = models.dense_classifier(784, hidden=(32, 16), num_classes=1)  # 784-32-16-1 GroupSort2
# HKR = alpha * hinge - (1 - alpha) * KR, minimized. deel-lip's "alpha=10" is alpha = 10/11 here.
loss = losses.HKRLoss(alpha=10 / 11, min_margin=1.0)
history = fit(model, loss, make_loader(x, y, 128), epochs, lr=3e-3,
              val_data=(x_test, y_test), eps=[0.5, 1.0, 1.58])

# The verified bound: exact per-layer norms of the trained weights (float64 SVD).
bound, report = lipschitz_report(model, (1, 28, 28))
for layer in report:
    print(f"{layer.name:>3} {layer.kind:<16} {layer.bound:.8f} ({layer.method})")
print(f"verified Lipschitz bound: {bound:.8f}")

result = certified_accuracy(model, (x_test, y_test), [0.5, 1.0, 1.58])
print(f"test accuracy {result.accuracy:.4f}; certified accuracy {result.certified}")

# A certificate by hand for a binary model: |f(x)| / L.
with torch.no_grad():
    logits = model(x_test[:5])
print("radii of 5 test images:", certified_radius(logits, bound).tolist())
assert torch.allclose(certified_radius(logits, bound), logits.abs().ravel() / bound)
assert result.accuracy > 0.95
