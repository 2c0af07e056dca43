"""``lipot train``: an HKR or certified-margin classifier on MNIST or Fashion-MNIST, with a
checkpoint each epoch (``--resume`` continues it), data-parallel under torchrun.

Every option left unset keeps the library's default (the builders of :mod:`lipot.models`, the
losses of :mod:`lipot.losses`, :func:`lipot.training.fit`); the checkpoint records the
architecture's arguments as resolved, so that it rebuilds the same layers later."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import torch

from .. import data, distributed, losses, models
from ..training.checkpoints import load_checkpoint
from ..training.recipes import RECIPES, build_recipe
from ..training.schedules import LR_DECAYS, RadiusRamp, lr_decay
from ..training.loop import DEFAULT_LR, fit, make_loader
from ._args import (NONNEGATIVE, NONNEGATIVE_INT, POSITIVE, POSITIVE_INT, dataset, launch, library_default,
                    unit_interval, user_set)

__all__ = ["add_parser", "run", "arch_kwargs", "loss_from_args", "train_eps", "radius_ramp", "HKR_ALPHA", "TAU"]

LOSSES = ("hkr", "hkr-multiclass", "lse-hkr", "soft-hkr", "tau-ce")
MARGIN_LOSSES = {"emma": losses.EMMALoss, "gloro": losses.GloroTradesLoss, "la": losses.LogitAnnealingLoss,
                 "margin-ce": losses.MarginCrossEntropyLoss}
BATCH_SIZE = 128
"""Batch size without ``--recipe`` (a recipe brings its own)."""
HKR_ALPHA = 0.9
"""``--alpha`` for ``hkr`` and ``hkr-multiclass``, whose loss classes require one (as in
deel-torchlip); ``lse-hkr`` and ``soft-hkr`` keep their classes' defaults."""
TAU = 1.0
"""``--temperature`` (tau) for ``tau-ce``, whose loss class requires one."""


def train_eps(args) -> float:
    """The radius the margin losses train for: ``--train-eps``, else the largest ``--eps``."""
    if args.train_eps is not None:
        return args.train_eps
    if not args.eps:
        raise ValueError("--train-eps is required when --eps is empty (the radius to train for)")
    return max(args.eps)


def radius_ramp(args) -> RadiusRamp:
    return RadiusRamp(train_eps(args), **user_set(args, overshoot="overshoot", epochs="ramp_epochs"))


_LOSS_OPTIONS = ("alpha", "min_margin", "temperature")
_LOSS_TAKES = {"hkr": ("alpha", "min_margin"), "hkr-multiclass": ("alpha", "min_margin"), "lse-hkr": _LOSS_OPTIONS,
               "soft-hkr": _LOSS_OPTIONS, "tau-ce": ("temperature",)}
"""The loss options each HKR-family loss takes (the margin losses take none: the radius ramp
sets their radius)."""
_ARCH_OPTIONS = ("hidden", "channels", "dense", "convs_per_block", "conv", "downsample", "head", "width")


def _refuse_unused(args, options, takes, context: str) -> None:
    """An option the user set that ``context`` does not take is an error, not silently dropped."""
    extra = [o for o in options if o not in takes and getattr(args, o) is not None]
    if extra:
        flags = ", ".join("--" + o.replace("_", "-") for o in extra)
        raise ValueError(f"{flags}: not an option of {context}; drop it or choose another")


def loss_from_args(args, model) -> torch.nn.Module:
    """The ``--loss`` module with the options the user set (the loss class's defaults otherwise,
    :data:`HKR_ALPHA` / :data:`TAU` where the class requires a value)."""
    _refuse_unused(args, _LOSS_OPTIONS, _LOSS_TAKES.get(args.loss, ()), f"--loss {args.loss}")
    if args.loss in MARGIN_LOSSES:
        return MARGIN_LOSSES[args.loss](0.0, head=model[-1])  # the radius ramp sets eps
    given = user_set(args, **{o: o for o in _LOSS_OPTIONS})
    if args.loss in ("hkr", "hkr-multiclass"):
        cls = losses.HKRLoss if args.loss == "hkr" else losses.HKRMulticlassLoss
        return cls(given.pop("alpha", HKR_ALPHA), **given)
    if args.loss == "tau-ce":
        return losses.TauCrossEntropyLoss(given.get("temperature", TAU))
    cls = losses.LseHKRMulticlassLoss if args.loss == "lse-hkr" else losses.SoftHKRMulticlassLoss
    return cls(**given)


def arch_kwargs(args, x, num_outputs: int) -> dict:
    """The builder's arguments for ``--arch``: the data's shape, the options the user set, and
    the builder's own defaults for the rest (recorded, so that the checkpoint rebuilds the same
    network even if a default changes later). An option the architecture does not take raises."""
    builder = models.ARCHITECTURES[args.arch]
    signature = inspect.signature(builder)
    _refuse_unused(args, _ARCH_OPTIONS, signature.parameters, f"--arch {args.arch} (lipot.models.{builder.__name__})")
    given = user_set(args, **{o: o for o in _ARCH_OPTIONS})
    if "in_features" in signature.parameters:
        given.update(in_features=int(x[0].numel()))
    else:
        given.update(in_channels=int(x.shape[1]), input_size=int(x.shape[-1]))
    bound = signature.bind(num_classes=num_outputs, **given)
    bound.apply_defaults()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items()}


def _check_out(args) -> None:
    """``--out`` must not silently replace an earlier run's checkpoint."""
    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a directory; give a checkpoint file name")
    if out.exists() and not (args.resume or args.force):
        raise FileExistsError(f"--out {out} already exists: add --resume to continue that run, or "
                              "--force to start over and replace it")
    if args.resume and out.is_file():
        load_checkpoint(out)  # an unreadable checkpoint fails now, before the data is loaded


def _interrupted(args) -> int:
    """Ctrl-C during training: say what the checkpoint holds and how to resume."""
    out = Path(args.out)
    if out.is_file():
        try:
            epoch = int(load_checkpoint(out)["epoch"])
            held = f"{out} holds the last finished epoch ({epoch})"
        except ValueError as err:
            held = f"{out} could not be read back ({err})"
        print(f"lipot train: interrupted; {held}. Resume with the same command and --resume",
              file=sys.stderr)
    else:
        print("lipot train: interrupted before the first epoch finished; no checkpoint was written",
              file=sys.stderr)
    return 130


def run(args) -> int:
    """The ``train`` command."""
    _check_out(args)  # with --force the old checkpoint stays until the first new epoch replaces it
    try:
        return _run_training(args)
    except KeyboardInterrupt:
        return _interrupted(args)


def _setup(args, x, num_outputs: int):
    """(config, model, loss, optimizer, scheduler, radius ramp, batch size) from a recipe or
    from the options."""
    if args.recipe is not None:
        if args.binary:
            raise ValueError("--recipe trains a multiclass classifier; drop --binary")
        _refuse_unused(args, _ARCH_OPTIONS + _LOSS_OPTIONS, ("conv", "width", "convs_per_block"), f"--recipe {args.recipe} (it sets them)")
        recipe = build_recipe(args.recipe, train_eps(args), args.epochs, int(x.shape[1]), int(x.shape[-1]),
                              num_outputs, **user_set(args, conv="conv", lr="lr", final_lr="final_lr",
                                                      overshoot="overshoot", width="width",
                                                      convs_per_block="convs_per_block"))
        config = {"arch": recipe.arch, "arch_kwargs": recipe.arch_kwargs, "loss": args.recipe}
        return (config, recipe.model, recipe.loss, recipe.optimizer, recipe.scheduler, recipe.radius_ramp,
                recipe.batch_size)
    config = {"arch": args.arch, "arch_kwargs": arch_kwargs(args, x, num_outputs), "loss": args.loss}
    model = models.build(args.arch, **config["arch_kwargs"])
    loss = loss_from_args(args, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr if args.lr is not None else DEFAULT_LR)
    scheduler = None
    if args.schedule != "constant":  # per epoch, down to --final-lr at the last one
        scheduler = lr_decay(optimizer, args.epochs, args.schedule, **user_set(args, final_lr="final_lr"))
    ramp = radius_ramp(args) if args.loss in MARGIN_LOSSES else None
    return config, model, loss, optimizer, scheduler, ramp, BATCH_SIZE


def _run_training(args) -> int:
    parallel, device = launch(args.device)
    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP also broadcasts them)
    x, y = dataset(args.dataset, args.data_root, "train", args.binary)
    xv, yv = dataset(args.dataset, args.data_root, "test", args.binary)
    num_outputs = 1 if args.binary else int(y.max()) + 1
    config, model, loss, optimizer, scheduler, ramp, batch_size = _setup(args, x, num_outputs)
    config.update(dataset=args.dataset, binary=args.binary,
                  data_root=None if args.data_root is None else str(Path(args.data_root).resolve()))
    augment = data.RandomTranslate(args.translate) if args.translate else None
    loader = make_loader(x, y, args.batch_size or batch_size, seed=args.seed, distributed=parallel,
                         transform=augment)
    history = fit(model, loss, loader, args.epochs, optimizer=optimizer, val_data=(xv, yv),
                  eps=args.eps, checkpoint=args.out, resume=args.resume, device=device,
                  scheduler=scheduler, extra={"config": config}, distributed=parallel, radius_ramp=ramp,
                  progress=args.progress)
    if distributed.is_main():
        print(json.dumps(history[-1]))
    distributed.cleanup()
    return 0


def _widths(builder, name: str) -> str:
    return " ".join(str(w) for w in library_default(builder, name))


def add_parser(add_command) -> argparse.ArgumentParser:
    """The ``train`` subcommand's options (``add_command(name, help=...)`` makes the parser)."""
    t = add_command("train", help="train an HKR classifier on MNIST or Fashion-MNIST")
    t.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"], help="training data")
    t.add_argument("--data-root", default=None,
                   help="folder with the 4 IDX files (mnist: required; fashion-mnist: its Debian package folder)")
    t.add_argument("--binary", type=NONNEGATIVE_INT, nargs=2, default=None, metavar=("POS", "NEG"),
                   help="two classes -> labels +1 / -1 and one output")
    t.add_argument("--arch", default="dense", choices=sorted(models.ARCHITECTURES), help="network of lipot.models")
    t.add_argument("--hidden", type=POSITIVE_INT, nargs="+", default=None,
                   help=f"dense: hidden widths (default {_widths(models.dense_classifier, 'hidden')})")
    t.add_argument("--channels", type=POSITIVE_INT, nargs="+", default=None,
                   help=f"conv: channels per block (default {_widths(models.conv_classifier, 'channels')})")
    t.add_argument("--dense", type=POSITIVE_INT, nargs="*", default=None,
                   help=f"conv: dense widths (default {_widths(models.conv_classifier, 'dense')})")
    t.add_argument("--convs-per-block", type=POSITIVE_INT, default=None,
                   help=f"conv, 4c3f: 3x3 convolutions per resolution (default "
                        f"{library_default(models.conv_classifier, 'convs_per_block')})")
    t.add_argument("--conv", default=None, choices=sorted(models.CONV_LAYERS),
                   help=f"conv, 4c3f: convolution layer (default {models.DEFAULT_CONV}: exactly orthogonal)")
    t.add_argument("--downsample", default=None, choices=models.DOWNSAMPLING,
                   help="conv: halve the resolution by L2-norm pooling or a stride-2 conv (default "
                        f"{library_default(models.conv_classifier, 'downsample')})")
    t.add_argument("--width", type=POSITIVE_INT, default=None,
                   help="4c3f: channel multiplier of the convolutions (default "
                        f"{library_default(models.cnn_4c3f, 'width')}; 2: 64 and 128 channels)")
    t.add_argument("--translate", type=NONNEGATIVE_INT, default=0,
                   help="augment the training images with random shifts of up to this many pixels "
                        "(lipot.data.RandomTranslate; default 0: none)")
    t.add_argument("--recipe", default=None, choices=RECIPES,
                   help="a certified-training recipe of lipot.training.recipes (network, loss, optimizer, schedules, "
                        "batch size); --epochs, --lr, --final-lr, --overshoot, --conv, --width, --convs-per-block, --train-eps still apply")
    t.add_argument("--head", default=None, choices=models.HEADS,
                   help="last layer (lln: row-normalized, certified per pair; default: the builder's)")
    t.add_argument("--loss", default="hkr", choices=LOSSES + tuple(MARGIN_LOSSES),
                   help="training loss (HKR family or a certified-margin loss)")
    t.add_argument("--train-eps", type=POSITIVE, default=None,
                   help="margin losses: radius to train for (default: the largest --eps)")
    t.add_argument("--overshoot", type=POSITIVE, default=None,
                   help="margin losses: the radius ramps up to overshoot * train-eps (default "
                        f"{library_default(RadiusRamp, 'overshoot'):g})")
    t.add_argument("--ramp-epochs", type=NONNEGATIVE, default=None,
                   help="margin losses: epochs over which the radius ramps up from 0 (default "
                        f"{library_default(RadiusRamp, 'epochs'):g})")
    t.add_argument("--alpha", type=unit_interval, default=None,
                   help=f"HKR weight of the hinge term, in [0, 1] (default {HKR_ALPHA:g} for hkr and "
                        "hkr-multiclass; the loss class's for lse-hkr and soft-hkr)")
    t.add_argument("--min-margin", type=POSITIVE, default=None, help="HKR / hinge margin (default: the loss class's)")
    t.add_argument("--temperature", type=POSITIVE, default=None,
                   help=f"lse/soft HKR temperature (default: the loss class's) or tau of tau-ce (default {TAU:g})")
    t.add_argument("--epochs", type=POSITIVE_INT, default=10, help="total epochs (with --resume: up to this many)")
    t.add_argument("--batch-size", type=POSITIVE_INT, default=None,
                   help=f"per process under torchrun (default {BATCH_SIZE}, or the recipe's)")
    t.add_argument("--lr", type=POSITIVE, default=None, help=f"Adam learning rate (default {DEFAULT_LR:g})")
    t.add_argument("--schedule", default="constant", choices=("constant",) + LR_DECAYS,
                   help="learning rate: constant, or a per-epoch decay down to --final-lr at the last epoch")
    t.add_argument("--final-lr", type=POSITIVE, default=None,
                   help=f"last learning rate of the decay (default {library_default(lr_decay, 'final_lr'):g})")
    t.add_argument("--eps", type=NONNEGATIVE, nargs="*", default=[0.5, 1.0, 1.58],
                   help="radii of the certified accuracy reported each epoch")
    t.add_argument("--out", required=True, help="checkpoint file (written atomically each epoch)")
    t.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    t.add_argument("--force", action="store_true", help="replace an existing --out and start over")
    t.add_argument("--device", default=None, help="torch device (default: cpu, or this rank's GPU under torchrun)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch order")
    t.set_defaults(func=run)
    return t
