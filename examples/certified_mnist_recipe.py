"""
Certified MNIST at radius 1.58 with the EMMA recipe
===================================================

Certified MNIST, 10 classes, at L2 radius 1.58 with a record recipe: the 4C3F network of
orthogonal convolutions with a row-normalized (LLN) head, the EMMA margin loss on per-pair
certificates, a radius ramp and a cosine learning-rate decay (``lipot.training.recipes.build_recipe``), then the
per-pair certificates checked by hand.

Run it::

    python examples/certified_mnist_recipe.py [MNIST_ROOT] [EPOCHS] [LIMIT]

(defaults: ``$LIPOT_MNIST_ROOT`` or ``data/mnist``, 50 epochs, all 60 000 training images: about an
hour on 2 CPU cores for 65 % certified accuracy at 1.58; ``3 2048`` runs in seconds)

Output of a short run (``python examples/certified_mnist_recipe.py MNIST_DIR 3 2048``: 3 epochs on
2048 images, 22 s on a 2-core CPU; the full run is the ``emma`` row of the results page)::

    epoch 1: loss 2.3254 acc 0.4893 KR 0.5000 (2.1 s) train eps 1.69 | val acc 0.6758 cert@0.5 0.3369 cert@1 0.0605 cert@1.58 0.0059 | L<=1.0000
    epoch 2: loss 2.2512 acc 0.7412 KR 1.5953 (2.2 s) train eps 1.74 | val acc 0.6416 cert@0.5 0.4536 cert@1 0.2275 cert@1.58 0.0620 | L<=1.0000
    epoch 3: loss 2.0732 acc 0.7666 KR 2.1691 (2.0 s) train eps 1.74 | val acc 0.7373 cert@0.5 0.5283 cert@1 0.3252 cert@1.58 0.1206 | L<=1.0000
    per-pair (verified body bound): clean accuracy 0.7373; certified accuracy {0.5: 0.5283203125, 1.0: 0.3251953125, 1.58: 0.12060546875}
    body bound 1.000002; radii of 5 test images: [1.917, 0.1978, 1.6332, 1.3941, 1.3481]
"""

import os
import sys

import torch

from lipot import data, losses
from lipot.certify import certified_accuracy, certified_radius, lipschitz_bound
from lipot.training.recipes import build_recipe
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
