"""Command line: ``lipot train``, ``lipot certify``, ``lipot audit`` and ``lipot estimate`` (built on
:mod:`lipot.training`, :mod:`lipot.certify`, :mod:`lipot.models`, :mod:`lipot.data`,
:mod:`lipot.wasserstein` and :mod:`lipot.ot`).

Examples::

    lipot train --dataset mnist --binary 0 8 --data-root MNIST_DIR --arch dense \\
        --hidden 32 16 --loss hkr --alpha 0.9090909 --min-margin 1 --epochs 10 --lr 3e-3 --out m08.pt
    lipot certify m08.pt --data-root MNIST_DIR --eps 0.5 1 1.58
    lipot audit m08.pt --data-root MNIST_DIR --n 1000
    lipot estimate a.npy b.npy --exact
    lipot estimate MNIST_DIR MNIST_DIR --class-a 0 --class-b 8

``train`` and ``estimate`` run data-parallel when launched by torchrun (``--batch-size`` is then
per process)::

    torchrun --nproc_per_node 2 -m lipot.cli train --dataset mnist --data-root ... --out m.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import torch

import numpy as np

from . import data, distributed, losses, models
from .certify import certified_accuracy, lipschitz_report
from .nn import nominal_lipschitz
from .recipes import RECIPES, build_recipe
from .schedules import LR_DECAYS, RadiusRamp, lr_decay
from .checkpoints import load_checkpoint, load_model_state
from .training import DEFAULT_LR, fit, make_loader

__all__ = ["main"]

_LOSSES = ("hkr", "hkr-multiclass", "lse-hkr", "soft-hkr", "tau-ce")
_MARGIN_LOSSES = {"emma": losses.EMMALoss, "gloro": losses.GloroTradesLoss, "la": losses.LogitAnnealingLoss,
                  "margin-ce": losses.MarginCrossEntropyLoss}
_BATCH_SIZE = 128  # without --recipe


def _dataset(name: str, root: str | None, split: str, binary: Sequence[int] | None):
    if name == "mnist":
        if root is None:
            raise ValueError("--data-root is required for mnist (the folder with the 4 IDX files)")
        x, y = data.mnist(root, split)
    elif name == "fashion-mnist":
        if root is None and not os.path.isdir(data.FASHION_MNIST_ROOT):
            raise FileNotFoundError(
                f"Fashion-MNIST is not in {data.FASHION_MNIST_ROOT}: install it with "
                "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or pass --data-root"
            )
        x, y = data.fashion_mnist(root or data.FASHION_MNIST_ROOT, split)
    else:
        raise ValueError(f"unknown dataset {name!r}: use mnist or fashion-mnist")
    if binary:
        x, y = data.binary_subset(x, y, binary[0], binary[1])
    return x, y


def _set(args, **names: str) -> dict:
    """``{keyword: value}`` for the options the user set (the library keeps the defaults)."""
    return {key: getattr(args, opt) for key, opt in names.items() if getattr(args, opt) is not None}


def _train_eps(args) -> float:
    if args.train_eps is not None:
        return args.train_eps
    if not args.eps:
        raise ValueError("--train-eps is required when --eps is empty (the radius to train for)")
    return max(args.eps)


def _radius_ramp(args) -> RadiusRamp:
    return RadiusRamp(_train_eps(args), **_set(args, overshoot="overshoot", epochs="ramp_epochs"))


def _loss(args, model) -> torch.nn.Module:
    if args.loss in _MARGIN_LOSSES:
        return _MARGIN_LOSSES[args.loss](0.0, head=model[-1])  # the radius ramp sets eps
    if args.loss == "hkr":
        return losses.HKRLoss(args.alpha, args.min_margin)
    if args.loss == "hkr-multiclass":
        return losses.HKRMulticlassLoss(args.alpha, args.min_margin)
    if args.loss == "lse-hkr":
        return losses.LseHKRMulticlassLoss(args.alpha, args.temperature, min_margin=args.min_margin)
    if args.loss == "soft-hkr":
        return losses.SoftHKRMulticlassLoss(args.alpha, args.min_margin, temperature=args.temperature)
    return losses.TauCrossEntropyLoss(args.temperature)


def _arch_kwargs(args, x, num_outputs: int) -> dict:
    if args.arch == "dense":
        kwargs = {"in_features": int(x[0].numel()), "hidden": list(args.hidden), "num_classes": num_outputs}
        return {**kwargs, "head": args.head} if args.head is not None else kwargs
    kwargs = {"in_channels": int(x.shape[1]), "input_size": int(x.shape[-1]), "channels": list(args.channels),
              "dense": list(args.dense), "num_classes": num_outputs, "convs_per_block": args.convs_per_block}
    # recorded in the checkpoint as resolved, so that it rebuilds the same layers later
    kwargs["conv"] = args.conv if args.conv is not None else models.DEFAULT_CONV
    if args.downsample is not None:
        kwargs["downsample"] = args.downsample
    if args.head is not None:
        kwargs["head"] = args.head
    if args.arch == "4c3f":
        return {k: kwargs[k] for k in ("in_channels", "input_size", "num_classes", "conv", "head") if k in kwargs}
    return kwargs


def _launch(device: str | None) -> tuple[bool, str | torch.device | None]:
    """Under torchrun (``WORLD_SIZE`` > 1): initialize the process group and use this rank's
    device (unless ``--device`` is given). Returns (distributed, device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False, device
    own = distributed.setup()
    return True, device or own


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


def _train(args) -> int:
    _check_out(args)  # with --force the old checkpoint stays until the first new epoch replaces it
    try:
        return _run_training(args)
    except KeyboardInterrupt:
        return _interrupted(args)


def _run_training(args) -> int:
    parallel, device = _launch(args.device)
    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP also broadcasts them)
    x, y = _dataset(args.dataset, args.data_root, "train", args.binary)
    xv, yv = _dataset(args.dataset, args.data_root, "test", args.binary)
    num_outputs = 1 if args.binary else int(y.max()) + 1
    if args.recipe is not None:
        if args.binary:
            raise ValueError("--recipe trains a multiclass classifier; drop --binary")
        recipe = build_recipe(args.recipe, _train_eps(args), args.epochs, int(x.shape[1]), int(x.shape[-1]),
                              num_outputs, **_set(args, conv="conv", lr="lr", final_lr="final_lr",
                                                  overshoot="overshoot"))
        model, loss, optimizer = recipe.model, recipe.loss, recipe.optimizer
        scheduler, ramp, batch_size = recipe.scheduler, recipe.radius_ramp, recipe.batch_size
        config = {"arch": recipe.arch, "arch_kwargs": recipe.arch_kwargs, "loss": args.recipe}
    else:
        config = {"arch": args.arch, "arch_kwargs": _arch_kwargs(args, x, num_outputs), "loss": args.loss}
        model = models.build(args.arch, **config["arch_kwargs"])
        loss = _loss(args, model)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr if args.lr is not None else DEFAULT_LR)
        scheduler = None
        if args.schedule != "constant":  # per epoch, down to --final-lr at the last one
            scheduler = lr_decay(optimizer, args.epochs, args.schedule, **_set(args, final_lr="final_lr"))
        ramp = _radius_ramp(args) if args.loss in _MARGIN_LOSSES else None
        batch_size = _BATCH_SIZE
    config.update(dataset=args.dataset, binary=args.binary,
                  data_root=None if args.data_root is None else str(Path(args.data_root).resolve()))
    loader = make_loader(x, y, args.batch_size or batch_size, seed=args.seed, distributed=parallel)
    history = fit(model, loss, loader, args.epochs, optimizer=optimizer, val_data=(xv, yv),
                  eps=args.eps, checkpoint=args.out, resume=args.resume, device=device,
                  scheduler=scheduler, extra={"config": config}, distributed=parallel, radius_ramp=ramp,
                  progress=args.progress)
    if distributed.is_main():
        print(json.dumps(history[-1]))
    distributed.cleanup()
    return 0


def _load_model(path: str):
    """(model in eval mode, its training config) from a `lipot train` checkpoint."""
    state = load_checkpoint(path)
    config = state.get("extra", {}).get("config")
    if config is None:
        raise ValueError(f"{path} has no model config (was it written by `lipot train`?)")
    kwargs = dict(config["arch_kwargs"])
    if config["arch"] == "conv":
        kwargs.setdefault("conv", "spectral")  # checkpoints written before the conv= choice
    model = models.build(config["arch"], **kwargs)
    load_model_state(model, state, path)
    return model.eval(), config


def _certify(args) -> int:
    model, config = _load_model(args.model)
    xv, yv = _dataset(config["dataset"], args.data_root or config.get("data_root"), "test", config["binary"])
    bound, report = lipschitz_report(model, tuple(xv.shape[1:]))
    result = certified_accuracy(model, (xv, yv), args.eps)
    nominal = nominal_lipschitz(model)
    nominal_result = certified_accuracy(model, (xv, yv), args.eps, lipschitz=nominal, per_pair=False)
    for entry in report:
        print(f"  {entry.name:>4} {entry.kind:<26} bound {entry.bound:.6f} (nominal {entry.nominal}) {entry.method}")
    print(f"verified Lipschitz bound {bound:.6f} (nominal {nominal:.6f}); certificate: {result.method}")
    print(f"clean accuracy {result.accuracy:.4f} on {result.n} test samples")
    for e in result.certified:
        print(f"certified accuracy at eps={e:g}: {result.certified[e]:.4f} "
              f"(with the nominal bound: {nominal_result.certified[e]:.4f})")
    ratio = (result.radii / nominal_result.radii.clamp(min=1e-12)).median()
    print(f"median radius ratio verified/nominal: {float(ratio):.4f}")
    return 0


def _audit(args) -> int:
    from .audit import audit_certificates

    model, config = _load_model(args.model)
    if args.device:
        model.to(args.device)
    x, y = _dataset(config["dataset"], args.data_root or config.get("data_root"), args.split, config["binary"])
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(args.seed))[:args.n]
    report = audit_certificates(model, x[idx], y[idx], lipschitz=args.lipschitz,
                                attack={"steps": args.steps, "attacks": args.attacks, "progress": args.progress},
                                device=args.device)
    print(report)
    return 0 if report.verdict == "ok" else 1


def _points(path: str, cls: int | None, split: str, limit: int | None) -> np.ndarray:
    """Samples from a .npy / .npz (one array, or ``file.npz:key``) / .csv file, or an MNIST-format
    folder."""
    p, key = Path(path), None
    if not p.exists() and ":" in path and path.rsplit(":", 1)[0].endswith(".npz"):
        base, key = path.rsplit(":", 1)
        p = Path(base)
    if cls is not None and not p.is_dir():
        raise ValueError("--class-a/--class-b only apply to MNIST-format folders")
    if p.is_dir():
        x, y = data.mnist(p, split)
        if cls is not None:
            present = sorted(int(c) for c in torch.unique(y))
            if cls not in present:
                raise ValueError(f"{p} ({split} split) has no sample of class {cls}; its classes are {present}")
            x = x[y == cls]
        out = x.numpy()
    elif not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    elif p.suffix == ".npy":
        out = _numeric(p, lambda: np.load(p, allow_pickle=False))
    elif p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as archive:
            if key is not None and key not in archive.files:
                raise ValueError(f"{p} has no array {key!r}; its arrays are {archive.files}")
            if key is None and len(archive.files) != 1:
                raise ValueError(f"{p} holds {len(archive.files)} arrays ({archive.files}); select one "
                                 f"as {p}:{archive.files[0]}")
            out = _numeric(p, lambda: archive[key or archive.files[0]])
    elif p.suffix == ".csv":
        out = _numeric(p, lambda: _read_csv(p))
    else:
        raise ValueError(f"{p}: expected a .npy, .npz or .csv file or an MNIST-format folder")
    return out[:limit] if limit else out


def _read_csv(p) -> np.ndarray:
    """Comma-separated numbers, one sample per row; a first row that is not numeric (a header)
    is skipped."""
    with open(p) as f:
        first = f.readline()
    try:
        [float(v) for v in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(p, delimiter=",", ndmin=2, skiprows=skip)


def _numeric(p, load) -> np.ndarray:
    """A finite numeric array with at least one sample, or an error naming the file."""
    try:
        out = load()
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{p} holds Python objects (dtype object); save a numeric array, e.g. "
                             "np.save(path, np.asarray(x, dtype=np.float32))") from None
        raise ValueError(f"{p}: {err}") from None
    if out.dtype.kind not in "biuf":
        raise ValueError(f"{p} holds {out.dtype} values; save a numeric array")
    if out.ndim == 0 or out.shape[0] == 0:
        raise ValueError(f"{p} holds no samples (shape {out.shape})")
    return out


def _toy(args):
    """The built-in toy pair of ``--toy`` (``None`` without it); files are refused alongside."""
    if args.toy is None:
        if args.a is None or args.b is None:
            raise ValueError("give two samples A B (files or MNIST folders), or --toy NAME for built-in data")
        return None
    if args.a is not None or args.b is not None:
        raise ValueError("--toy replaces the samples A B: give one or the other")
    return data.toy_pair(args.toy, args.n, args.seed)


def _estimate(args) -> int:
    from .ot import DEFAULT_MAX_PAIRS, exact_w1
    from .wasserstein import estimate_w1

    toy = _toy(args)
    if toy is not None:
        a, b = toy.x, toy.y
    else:
        if (args.class_a is None) != (args.class_b is None):
            raise ValueError("--class-a and --class-b go together (with only one, a class would be "
                             "compared with a whole dataset)")
        a = _points(args.a, args.class_a, args.split, args.limit)
        b = _points(args.b, args.class_b, args.split, args.limit)
    if args.flatten:
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    parallel, device = _launch(args.device)
    # only the options the user set: the defaults live in lipot.W1Estimator
    settings = {k: getattr(args, k) for k in ("folds", "epochs", "lr", "batch_size", "cones")
                if getattr(args, k) is not None}
    progress = None if args.progress is None else (args.progress and distributed.is_main())
    res = estimate_w1(a, b, critic=None if args.critic == "auto" else args.critic, seed=args.seed,
                      device=device, progress=progress, distributed=parallel, **settings)
    main_rank = distributed.is_main()
    distributed.cleanup()
    if not main_rank:
        return 0
    kinds = ", ".join(f"{k} x{res.selected.count(k)}" for k in sorted(set(res.selected)))
    print(f"W1 estimate (held-out KR, {res.n_heldout[0]}+{res.n_heldout[1]} samples): "
          f"{res.value:.5f} +- {res.stderr:.5f} (95% CI {res.ci[0]:.5f} .. {res.ci[1]:.5f}); "
          f"in-sample {res.in_sample:.5f}; critics: {kinds}; {res.seconds:.1f} s")
    if toy is not None:
        print(f"toy {toy.name!r} ({a.shape[0]} + {b.shape[0]} points in {a.shape[1]}-D): W1 = {toy.w1:.5f} "
              f"({'the truth' if toy.reference == 'truth' else 'exact OT of these samples'}); the estimate is "
              f"{100 * (res.value / toy.w1 - 1):+.2f} % off")
    if args.exact:
        n, m = a.shape[0], b.shape[0]
        if n * m > DEFAULT_MAX_PAIRS:
            print(f"exact W1: skipped (n*m = {n * m} > {DEFAULT_MAX_PAIRS}; use --limit)")
        else:
            print(f"exact W1 of these samples (plug-in, biased upward in high dimension): "
                  f"{exact_w1(a.reshape(n, -1), b.reshape(m, -1)):.5f}")
    return 0


class _HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, unless the help already says it or there is
    none to show (``None``, ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lipot")
    except PackageNotFoundError:  # a source checkout that is not installed
        return "unknown (not installed)"


def _number(kind, minimum: float, strict: bool):
    """An argparse ``type`` for numbers ``> minimum`` (``strict``) or ``>= minimum``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (
                value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


_POSITIVE_INT = _number(int, 0, strict=True)
_NONNEGATIVE_INT = _number(int, 0, strict=False)
_POSITIVE = _number(float, 0.0, strict=True)
_NONNEGATIVE = _number(float, 0.0, strict=False)


def _unit_interval(text: str) -> float:
    value = _NONNEGATIVE(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipot", allow_abbrev=False,
        description="1-Lipschitz networks: train and certify robust classifiers, audit them with "
                    "attacks, estimate Wasserstein-1 distances. `lipot <command> --help` for each.",
    )
    parser.add_argument("--version", action="version", version=f"lipot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars on stderr (default: when stderr is a terminal)")
    parser.commands = {}  # name -> its parser (main reports unknown options with its usage)

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], allow_abbrev=False,
                                 formatter_class=_HelpWithDefaults, **kwargs)
        parser.commands[name] = command
        return command

    t = add_command("train", help="train an HKR classifier on MNIST or Fashion-MNIST")
    t.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"], help="training data")
    t.add_argument("--data-root", default=None, help="folder with the 4 IDX files (mnist: required; fashion-mnist: its Debian package folder)")
    t.add_argument("--binary", type=_NONNEGATIVE_INT, nargs=2, default=None, metavar=("POS", "NEG"),
                   help="two classes -> labels +1 / -1 and one output")
    t.add_argument("--arch", default="dense", choices=sorted(models.ARCHITECTURES), help="network of lipot.models")
    t.add_argument("--hidden", type=_POSITIVE_INT, nargs="+", default=[32, 16], help="dense: hidden widths")
    t.add_argument("--channels", type=_POSITIVE_INT, nargs="+", default=[16, 32], help="conv: channels per block")
    t.add_argument("--dense", type=_POSITIVE_INT, nargs="*", default=[64], help="conv: dense widths")
    t.add_argument("--convs-per-block", type=_POSITIVE_INT, default=1, help="conv: convolutions per resolution")
    t.add_argument("--conv", default=None, choices=sorted(models.CONV_LAYERS),
                   help=f"conv: convolution layer (default {models.DEFAULT_CONV}: exactly orthogonal)")
    t.add_argument("--downsample", default=None, choices=models.DOWNSAMPLING,
                   help="conv: halve the resolution by L2-norm pooling (default) or a stride-2 conv")
    t.add_argument("--recipe", default=None, choices=RECIPES,
                   help="a certified-training recipe of lipot.recipes (network, loss, optimizer, schedules, "
                        "batch size); --epochs, --lr, --final-lr, --overshoot, --conv, --train-eps still apply")
    t.add_argument("--head", default=None, choices=models.HEADS,
                   help="conv/4c3f: last layer (lln: row-normalized, certified per pair)")
    t.add_argument("--loss", default="hkr", choices=_LOSSES + tuple(_MARGIN_LOSSES), help="training loss (HKR family or a certified-margin loss)")
    t.add_argument("--train-eps", type=_POSITIVE, default=None,
                   help="margin losses: radius to train for (default: the largest --eps)")
    t.add_argument("--overshoot", type=_POSITIVE, default=None,
                   help="margin losses: the radius ramps up to overshoot * train-eps (default 1.1)")
    t.add_argument("--ramp-epochs", type=_NONNEGATIVE, default=None,
                   help="margin losses: epochs over which the radius ramps up from 0 (default 10)")
    t.add_argument("--alpha", type=_unit_interval, default=0.9, help="HKR weight of the hinge term, in [0, 1]")
    t.add_argument("--min-margin", type=_POSITIVE, default=1.0, help="HKR / hinge margin")
    t.add_argument("--temperature", type=_POSITIVE, default=1.0, help="lse/soft HKR temperature or tau of tau-ce")
    t.add_argument("--epochs", type=_POSITIVE_INT, default=10, help="total epochs (with --resume: up to this many)")
    t.add_argument("--batch-size", type=_POSITIVE_INT, default=None,
                   help=f"per process under torchrun (default {_BATCH_SIZE}, or the recipe's)")
    t.add_argument("--lr", type=_POSITIVE, default=None, help=f"Adam learning rate (default {DEFAULT_LR:g})")
    t.add_argument("--schedule", default="constant", choices=("constant",) + LR_DECAYS,
                   help="learning rate: constant, or a per-epoch decay down to --final-lr at the last epoch")
    t.add_argument("--final-lr", type=_POSITIVE, default=None, help="last learning rate of the decay (default 1e-6)")
    t.add_argument("--eps", type=_NONNEGATIVE, nargs="*", default=[0.5, 1.0, 1.58], help="radii of the certified accuracy reported each epoch")
    t.add_argument("--out", required=True, help="checkpoint file (written atomically each epoch)")
    t.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    t.add_argument("--force", action="store_true", help="replace an existing --out and start over")
    t.add_argument("--device", default=None, help="torch device (default: cpu, or this rank's GPU under torchrun)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch order")
    t.set_defaults(func=_train)
    c = add_command("certify", help="verified Lipschitz bound and certified accuracy of a checkpoint")
    c.add_argument("model", help="checkpoint written by `lipot train`")
    c.add_argument("--data-root", default=None, help="data folder (default: the one the model was trained on)")
    c.add_argument("--eps", type=_NONNEGATIVE, nargs="+", default=[0.5, 1.0, 1.58], help="radii to certify")
    c.set_defaults(func=_certify)
    a = add_command("audit", help="attack a checkpoint and check its certificates and Lipschitz bound")
    a.add_argument("model", help="checkpoint written by `lipot train`")
    a.add_argument("--data-root", default=None, help="data folder (default: the one the model was trained on)")
    a.add_argument("--split", default="test", choices=["train", "test"], help="split to draw the samples from")
    a.add_argument("--n", type=_POSITIVE_INT, default=1000, help="random samples to audit")
    a.add_argument("--lipschitz", type=_POSITIVE, default=None, help="bound to certify with (default: verified)")
    a.add_argument("--attacks", nargs="+", default=["deepfool", "fab", "fmn", "apgd"], help="attacks of the ensemble")
    a.add_argument("--steps", type=_POSITIVE_INT, default=100, help="iterations per attack")
    a.add_argument("--device", default=None, help="torch device of the attacks")
    a.add_argument("--seed", type=int, default=0, help="seed of the sample draw")
    a.set_defaults(func=_audit)
    e = add_command("estimate", help="Wasserstein-1 distance between two samples (KR critic)")
    e.add_argument("a", nargs="?", help=".npy / .npz (FILE.npz:KEY for one of several arrays) / .csv file "
                                        "or MNIST-format folder")
    e.add_argument("b", nargs="?", help="the same for the second sample")
    e.add_argument("--toy", choices=data.TOYS, default=None,
                   help="built-in data with a known W1 instead of A B: two moons, Gaussian shift (d=10), "
                        "scaled Gaussians (d=10) or 8-ring vs 5x5-grid")
    e.add_argument("--n", type=_POSITIVE_INT, default=2000, help="--toy: points per side")
    e.add_argument("--class-a", type=_NONNEGATIVE_INT, default=None, help="MNIST folder: keep this class")
    e.add_argument("--class-b", type=_NONNEGATIVE_INT, default=None, help="MNIST folder: keep this class")
    e.add_argument("--split", default="train", choices=["train", "test"], help="MNIST folders: the split to read")
    e.add_argument("--limit", type=_POSITIVE_INT, default=None, help="use the first N samples of each")
    e.add_argument("--exact", action="store_true", help="also print exact_w1 (POT) when feasible")
    e.add_argument("--critic", choices=["auto", "linear", "cone", "gnp"], default="auto",
                   help="auto: per fold, the best of the closed-form linear critic, a cone critic (2-D data) "
                        "and a GNP network")
    e.add_argument("--cones", type=_POSITIVE_INT, default=None,
                   help="centers per term of the cone critic (default: lipot.W1Estimator's)")
    e.add_argument("--folds", type=_POSITIVE_INT, default=None,
                   help="cross-fitting folds (1: one held-out split; default: lipot.W1Estimator's)")
    e.add_argument("--flatten", action="store_true",
                   help="treat images as vectors (dense critic: much faster than the conv one on CPU)")
    e.add_argument("--epochs", type=_POSITIVE_INT, default=None, help="maximum epochs (default: lipot.W1Estimator's)")
    e.add_argument("--lr", type=_POSITIVE, default=None, help="initial learning rate (default: lipot.W1Estimator's)")
    e.add_argument("--batch-size", type=_POSITIVE_INT, default=None, help="default: lipot.W1Estimator's")
    e.add_argument("--seed", type=int, default=0, help="seed of the folds, critics and --toy data")
    e.add_argument("--device", default=None, help="torch device of the critics")
    e.set_defaults(func=_estimate)
    return parser


# user mistakes (bad values, files, settings) print one line; anything else is a bug: traceback
_USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user error prints ``lipot <command>: error: <message>`` and exits
    with status 2, as argparse does for a bad option (``--debug``: the traceback instead)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported with the command's own usage, not the top-level one
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except _USER_ERRORS as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        parser.exit(2, f"lipot {args.command}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
