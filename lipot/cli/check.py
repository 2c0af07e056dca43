"""``lipot certify`` (verified Lipschitz bound and certified accuracy of a checkpoint) and
``lipot audit`` (attack it: certificates against attack radii, empirical lower bound against the
verified upper one)."""

from __future__ import annotations

import argparse

import torch

from .. import models
from ..audit import attack_radius, audit_certificates
from ..certify.certificates import certified_accuracy, lipschitz_report
from ..training.checkpoints import load_checkpoint, load_model_state
from ..nn import nominal_lipschitz
from ._args import NONNEGATIVE, POSITIVE, POSITIVE_INT, dataset, library_default, user_set

__all__ = ["add_parsers", "load_model", "certify", "audit"]


def load_model(path: str):
    """(model in eval mode, its training config) from a ``lipot train`` checkpoint."""
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


def certify(args) -> int:
    """The ``certify`` command."""
    model, config = load_model(args.model)
    xv, yv = dataset(config["dataset"], args.data_root or config.get("data_root"), "test", config["binary"])
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


def audit(args) -> int:
    """The ``audit`` command: exit status 1 when the verdict is not ``ok``."""
    model, config = load_model(args.model)
    if args.device:
        model.to(args.device)
    x, y = dataset(config["dataset"], args.data_root or config.get("data_root"), args.split, config["binary"])
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(args.seed))[:args.n]
    attack = {"progress": args.progress, **user_set(args, steps="steps", attacks="attacks")}
    report = audit_certificates(model, x[idx], y[idx], lipschitz=args.lipschitz, attack=attack, device=args.device)
    print(report)
    return 0 if report.verdict == "ok" else 1


def add_parsers(add_command) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``certify`` and ``audit`` subcommands' options."""
    c = add_command("certify", help="verified Lipschitz bound and certified accuracy of a checkpoint")
    c.add_argument("model", help="checkpoint written by `lipot train`")
    c.add_argument("--data-root", default=None, help="data folder (default: the one the model was trained on)")
    c.add_argument("--eps", type=NONNEGATIVE, nargs="+", default=[0.5, 1.0, 1.58], help="radii to certify")
    c.set_defaults(func=certify)
    a = add_command("audit", help="attack a checkpoint and check its certificates and Lipschitz bound")
    a.add_argument("model", help="checkpoint written by `lipot train`")
    a.add_argument("--data-root", default=None, help="data folder (default: the one the model was trained on)")
    a.add_argument("--split", default="test", choices=["train", "test"], help="split to draw the samples from")
    a.add_argument("--n", type=POSITIVE_INT, default=1000, help="random samples to audit")
    a.add_argument("--lipschitz", type=POSITIVE, default=None, help="bound to certify with (default: verified)")
    a.add_argument("--attacks", nargs="+", default=None,
                   help=f"attacks of the ensemble (default {' '.join(library_default(attack_radius, 'attacks'))})")
    a.add_argument("--steps", type=POSITIVE_INT, default=None,
                   help=f"iterations per attack (default {library_default(attack_radius, 'steps')})")
    a.add_argument("--device", default=None, help="torch device of the attacks")
    a.add_argument("--seed", type=int, default=0, help="seed of the sample draw")
    a.set_defaults(func=audit)
    return c, a
