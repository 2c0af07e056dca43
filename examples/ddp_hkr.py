"""
Data-parallel HKR training and W1 estimation with torchrun
==========================================================

One machine, 2 processes (CPU: gloo; one GPU per process: NCCL)::

    torchrun --nproc_per_node 2 examples/ddp_hkr.py [--epochs 3] [--out /tmp/ddp.pt]

Several nodes: the same script on every node, e.g. ``torchrun --nnodes 2 --node_rank 0|1
--nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 examples/ddp_hkr.py``.
Without torchrun it runs in one process. The data are two overlapping Gaussian blobs in 16-D
(means +-0.3 per coordinate: the best possible accuracy is Phi(1.2) = 88.5 %, and W1 between the
classes is 2.4); the model is validated on 1024 held-out points of the same distribution.

Output of a run (``torchrun --nproc_per_node 2 examples/ddp_hkr.py --epochs 3``, 2 CPU processes,
9.7 s)::

    epoch 1: loss 0.0405 acc 0.8203 KR 1.4788 (0.6 s) | val acc 0.8760 cert@0.5 0.7139 | L<=1.0000
    epoch 2: loss -0.0986 acc 0.8828 KR 2.2666 (0.4 s) | val acc 0.8799 cert@0.5 0.7363 | L<=1.0000
    epoch 3: loss -0.1062 acc 0.8850 KR 2.3468 (0.6 s) | val acc 0.8877 cert@0.5 0.7402 | L<=1.0000
    world size 2: final loss -0.1062, val accuracy 0.8877, certified@0.5 0.7402
    W1 between the classes: 2.4164 +- 0.0313 (truth 2.4; critics: ('linear', 'linear'))
"""

import argparse

import torch

import lipot
from lipot import distributed

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=64, help="per process")
parser.add_argument("--out", default=None, help="checkpoint (written by rank 0)")
args = parser.parse_args()

device = distributed.setup(seed=0)  # process group from torchrun's environment; this rank's device
gen = torch.Generator().manual_seed(0)  # every rank builds the same data set ...
labels = torch.where(torch.arange(4096 + 1024) % 2 == 0, 1.0, -1.0)
points = torch.randn(4096 + 1024, 16, generator=gen) + 0.3 * labels[:, None]
x, y = points[:4096], labels[:4096]  # training set
x_val, y_val = points[4096:], labels[4096:]  # held out
torch.manual_seed(0)  # ... and the same initial network (DDP broadcasts rank 0's anyway)
model = lipot.models.dense_classifier(16, (64, 64), 1)
parallel = distributed.world_size() > 1
loader = lipot.training.make_loader(x, y, args.batch_size, seed=0, distributed=parallel)  # ... and takes its shard
history = lipot.training.fit(model, lipot.losses.HKRLoss(0.9, 1.0), loader, args.epochs, lr=3e-3,
                             val_data=(x_val, y_val), eps=[0.5], checkpoint=args.out,
                             device=device, progress=False, distributed=parallel)

# W1 between the two classes: every rank passes the same samples, the work is split.
res = lipot.estimate_w1(x[y > 0], x[y < 0], epochs=5, folds=2, device=device, distributed=parallel)
if distributed.is_main():
    print(f"world size {distributed.world_size()}: final loss {history[-1]['loss']:.4f}, "
          f"val accuracy {history[-1]['val_accuracy']:.4f}, certified@0.5 {history[-1]['certified'][0.5]:.4f}")
    print(f"W1 between the classes: {res.value:.4f} +- {res.stderr:.4f} (truth 2.4; critics: {res.selected})")
distributed.cleanup()
