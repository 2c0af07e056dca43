"""Certified MNIST, 10 classes, at L2 radius 1.58 with a record recipe: the 4C3F network of
orthogonal convolutions with a row-normalized (LLN) head, the EMMA margin loss on per-pair
certificates, a radius ramp and a cosine learning-rate decay (lipot.recipes.build_recipe), then the
per-pair certificates checked by hand.

Run: python examples/certified_mnist_recipe.py [MNIST_ROOT] [EPOCHS] [LIMIT]
     (defaults: $LIPOT_MNIST_ROOT or data/mnist, 50 epochs, all 60 000 training images: about an hour on
     2 CPU cores for 65 % certified accuracy at 1.58; `3 2048` runs in seconds)
"""

import os
import sys

import torch

from lipot import data, losses
from lipot.certify import certified_accuracy, certified_radius, lipschitz_bound
from lipot.recipes import build_recipe
from lipot.training import fit, make_loader

root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LIPOT_MNIST_ROOT", "data/mnist")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
torch.manual_seed(0)

x, y = data.mnist(root, "train")
x_test, y_test = data.mnist(root, "test")
if limit is not None:
    x, y, x_test, y_test = x[:limit], y[:limit], x_test[:limit], y_test[:limit]

recipe = build_recipe("emma", eps=1.58, epochs=epochs)   # model, loss, optimizer, scheduler, ramp
fit(recipe.model, recipe.loss, make_loader(x, y, min(recipe.batch_size, len(x))), epochs,
    optimizer=recipe.optimizer, scheduler=recipe.scheduler, radius_ramp=recipe.radius_ramp,
    val_data=(x_test, y_test), eps=[0.5, 1.0, 1.58])

model = recipe.model.eval()
result = certified_accuracy(model, (x_test, y_test), [0.5, 1.0, 1.58])
print(f"{result.method}: clean accuracy {result.accuracy:.4f}; certified accuracy {result.certified}")

# The same certificate by hand: a verified bound L of the body (everything before the head), the
# head's rows w_i, and the per-pair radius min_j (z_y - z_j) / (L ||w_y - w_j||) -- the quantity
# the EMMA loss trained.
body, head = model[:-1], model[-1]
L = lipschitz_bound(body, (1, 28, 28))
with torch.no_grad():
    logits = model(x_test[:5])
    radii = losses.pairwise_radius(logits, losses.pairwise_lipschitz(head.weight, L))
print(f"body bound {L:.6f}; radii of 5 test images: {[round(r, 4) for r in radii.tolist()]}")
assert torch.allclose(radii, certified_radius(logits, L, last_layer_weight=head.weight))
