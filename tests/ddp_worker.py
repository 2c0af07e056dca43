"""The distributed half of tests/test_distributed.py, run by ``torchrun --nproc_per_node 2``
(gloo, CPU). Rank 0 saves what every rank computed to ``OUT``; the test compares it with the
same computation done in one process. The builders below are shared by both sides.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT
"""

from __future__ import annotations

import sys

import torch

import lipot
from lipot import distributed as ldist
from lipot import losses, models

N = 25  # global batch: shards of 13 and 12 samples
LOSSES = {
    "kr": (1, lambda: losses.NegKRLoss()),
    "hkr": (1, lambda: losses.HKRLoss(0.9, 1.0)),
    "hkr-multiclass": (4, lambda: losses.HKRMulticlassLoss(0.9, 1.0)),
    "soft-hkr": (4, lambda: losses.SoftHKRMulticlassLoss(0.9, 1.0, alpha_mean=0.5, temperature=2.0)),
    "lse-hkr": (4, lambda: losses.LseHKRMulticlassLoss(0.9, 5.0, min_margin=1.0)),
    "tau-ce": (4, lambda: losses.TauCrossEntropyLoss(4.0)),
}


def gnp_model(outputs: int) -> torch.nn.Module:
    """A small conv GNP network (OrthoConv2d, GroupSort2, L2-norm pooling, SpectralLinear)."""
    torch.manual_seed(0)
    return models.conv_classifier(1, 8, (4, 8), (8,), outputs)


def global_batch(outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels; the classes are unevenly split between the two shards, so that
    per-rank class means differ from the global ones."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(N, 1, 8, 8, generator=gen)
    if outputs == 1:
        y = torch.tensor([1.0] * 10 + [-1.0] * 3 + [1.0] * 2 + [-1.0] * 10)
    else:
        y = torch.tensor([0] * 8 + [1] * 5 + [2] * 6 + [3] * 4 + [0, 1])
    return x, y


def fit_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(96, 1, 8, 8, generator=gen)
    y = (x.mean((1, 2, 3)) > 0).float() * 2 - 1
    return x, y


def w1_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(300, 3, generator=gen), torch.randn(260, 3, generator=gen) * 1.5 + 0.5


W1_SETTINGS = {"epochs": 3, "batch_size": 32, "min_epoch_steps": 4, "folds": 2, "seed": 0, "device": "cpu"}


def _step(name: str, use_global_batch: bool, make_loss=None) -> dict:
    outputs, default_loss = LOSSES[name]
    model, loss_fn = gnp_model(outputs), (make_loss or default_loss)()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    x, y = global_batch(outputs)
    part = ldist.shard_slice(N)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if use_global_batch:
        with ldist.global_batch():
            loss = loss_fn(ddp(x[part]), y[part])
    else:
        loss = loss_fn(ddp(x[part]), y[part])
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    state = {"loss": float(ldist.all_sum(loss.detach())) / ldist.world_size(), "grads": grads,
             "params": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    if hasattr(loss_fn, "current_mean"):
        state["current_mean"] = float(loss_fn.current_mean)
    return state


def _fit(checkpoint: str) -> dict:
    x, y = fit_data()
    model = gnp_model(1)
    loader = lipot.training.make_loader(x, y, 16, seed=0, distributed=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    history = lipot.training.fit(model, losses.HKRLoss(0.9, 1.0), loader, 2, optimizer=opt,
                                 val_data=(x[:32], y[:32]), eps=[0.1], checkpoint=checkpoint,
                                 progress=False, log=None, distributed=True)
    out = {"history": history, "params": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    # resume from rank 0's checkpoint in a fresh model for a third epoch
    model = gnp_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = lipot.training.make_loader(x, y, 16, seed=123, distributed=True)  # its RNG comes from the checkpoint
    resumed = lipot.training.fit(model, losses.HKRLoss(0.9, 1.0), loader, 3, optimizer=opt, checkpoint=checkpoint,
                                 progress=False, log=None, distributed=True)
    out["resumed"] = {"epochs": [h["epoch"] for h in resumed],
                      "params": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    return out


def _w1() -> dict:
    x, y = w1_data()
    out = {}
    for critic in ("linear", "gnp"):
        res = lipot.estimate_w1(x, y, critic=critic, distributed=True, **W1_SETTINGS)
        out[critic] = (res.value, res.stderr, res.in_sample, res.selected)
    return out


def main(out: str) -> None:
    ldist.setup(backend="gloo")
    result = {"world_size": ldist.world_size()}
    for name in LOSSES:
        result[f"step/{name}"] = _step(name, True)
    result["step/kr/local-statistics"] = _step("kr", False)
    # deel-torchlip's flag instead of the context: the same global statistics inside a group
    result["step/kr/multi_gpu-flag"] = _step("kr", False, lambda: losses.NegKRLoss(multi_gpu=True))
    result["fit"] = _fit(out + ".ckpt")
    result["w1"] = _w1()
    gathered = [None] * ldist.world_size()
    torch.distributed.all_gather_object(gathered, result)
    if ldist.is_main():
        torch.save(gathered, out)
    ldist.cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
