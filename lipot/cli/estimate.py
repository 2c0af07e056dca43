"""``lipot estimate``: the Wasserstein-1 distance between two samples (files, MNIST-format
folders or a built-in toy pair) with KR critics (:func:`lipot.estimate_w1`), and optionally the
exact value (:func:`lipot.ot.exact_w1`). Options left unset keep :class:`lipot.W1Estimator`'s
defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..data import readers as data
from .. import distributed
from ..ot import DEFAULT_MAX_PAIRS, exact_w1
from ..wasserstein import W1Estimator, estimate_w1
from ..wasserstein.critics import DEFAULT_CONES, ENVELOPE_CONES
from ..wasserstein.settings import KINDS
from ._args import NONNEGATIVE_INT, POSITIVE, POSITIVE_INT, launch, library_default, user_set

__all__ = ["add_parser", "run", "read_points"]


def read_points(path: str, cls: int | None, split: str, limit: int | None) -> np.ndarray:
    """Samples from a .npy / .npz (one array, or ``file.npz:key``) / .csv file, or an MNIST-format
    folder (``cls``: keep that class only)."""
    p, key = Path(path), None
    if not p.exists() and ":" in path and path.rsplit(":", 1)[0].endswith(".npz"):
        base, key = path.rsplit(":", 1)
        p = Path(base)
    if cls is not None and not p.is_dir():
        raise ValueError("--class-a/--class-b only apply to MNIST-format folders")
    if p.is_dir():
        out = _mnist_class(p, cls, split)
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


def _mnist_class(p: Path, cls: int | None, split: str) -> np.ndarray:
    x, y = data.mnist(p, split)
    if cls is not None:
        present = sorted(int(c) for c in torch.unique(y))
        if cls not in present:
            raise ValueError(f"{p} ({split} split) has no sample of class {cls}; its classes are {present}")
        x = x[y == cls]
    return x.numpy()


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
        if args.n is not None:
            raise ValueError("--n sets the size of a --toy pair; to use the first N samples of A and B, "
                             "pass --limit N")
        return None
    if args.a is not None or args.b is not None:
        raise ValueError("--toy replaces the samples A B: give one or the other")
    return data.toy_pair(args.toy, seed=args.seed, **user_set(args, n="n"))


def _samples(args):
    """(A, B, the toy pair or ``None``)."""
    toy = _toy(args)
    if toy is not None:
        a, b = toy.x, toy.y
    else:
        if (args.class_a is None) != (args.class_b is None):
            raise ValueError("--class-a and --class-b go together (with only one, a class would be "
                             "compared with a whole dataset)")
        a = read_points(args.a, args.class_a, args.split, args.limit)
        b = read_points(args.b, args.class_b, args.split, args.limit)
    if args.flatten:
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return a, b, toy


def run(args) -> int:
    """The ``estimate`` command (prints on rank 0 only under torchrun)."""
    a, b, toy = _samples(args)
    parallel, device = launch(args.device)
    settings = user_set(args, folds="folds", epochs="epochs", lr="lr", batch_size="batch_size", cones="cones")
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
    exact = res.exact  # computed by the estimator for small 2-D samples
    if exact is None and args.exact:
        n, m = a.shape[0], b.shape[0]
        if n * m > DEFAULT_MAX_PAIRS:
            print(f"exact W1: skipped (n*m = {n * m} > {DEFAULT_MAX_PAIRS}; use --limit)")
        else:
            exact = exact_w1(a.reshape(n, -1), b.reshape(m, -1))
    if exact is not None:
        print(f"exact W1 of these samples (plug-in: at least the true W1 in expectation, as the estimate "
              f"is at most; small in 2-D, biased upward in high dimension): {exact:.5f}")
    return 0


def _estimator_default(name: str):
    return library_default(W1Estimator, name)


def add_parser(add_command) -> argparse.ArgumentParser:
    """The ``estimate`` subcommand's options."""
    e = add_command("estimate", help="Wasserstein-1 distance between two samples (KR critic)")
    e.add_argument("a", nargs="?", help=".npy / .npz (FILE.npz:KEY for one of several arrays) / .csv file "
                                        "or MNIST-format folder")
    e.add_argument("b", nargs="?", help="the same for the second sample")
    e.add_argument("--toy", choices=data.TOYS, default=None,
                   help="built-in data with a known W1 instead of A B: two moons, Gaussian shift (d=10), "
                        "scaled Gaussians (d=10) or 8-ring vs 5x5-grid")
    e.add_argument("--n", type=POSITIVE_INT, default=None,
                   help=f"--toy: points per side (default {library_default(data.toy_pair, 'n')})")
    e.add_argument("--class-a", type=NONNEGATIVE_INT, default=None, help="MNIST folder: keep this class")
    e.add_argument("--class-b", type=NONNEGATIVE_INT, default=None, help="MNIST folder: keep this class")
    e.add_argument("--split", default="train", choices=["train", "test"], help="MNIST folders: the split to read")
    e.add_argument("--limit", type=POSITIVE_INT, default=None, help="use the first N samples of each")
    e.add_argument("--exact", action="store_true", help="also print exact_w1 (POT) when feasible")
    e.add_argument("--critic", choices=["auto", *KINDS], default="auto",
                   help="auto: per fold, the best of the closed-form linear critic, a cone critic (2-D data) "
                        "and a GNP network")
    e.add_argument("--cones", type=POSITIVE_INT, default=None,
                   help=f"centers of the cone critics (default {DEFAULT_CONES} per term for 'cone', "
                        f"{ENVELOPE_CONES} for 'envelope')")
    e.add_argument("--folds", type=POSITIVE_INT, default=None,
                   help=f"cross-fitting folds (1: one held-out split; default {_estimator_default('folds')})")
    e.add_argument("--flatten", action="store_true",
                   help="treat images as vectors (dense critic: much faster than the conv one on CPU)")
    e.add_argument("--epochs", type=POSITIVE_INT, default=None, help=f"maximum epochs (default {_estimator_default('epochs')})")
    e.add_argument("--lr", type=POSITIVE, default=None, help=f"initial learning rate (default {_estimator_default('lr'):g})")
    e.add_argument("--batch-size", type=POSITIVE_INT, default=None, help="samples per side and step (default: the whole training part, up to 512)")
    e.add_argument("--seed", type=int, default=0, help="seed of the folds, critics and --toy data")
    e.add_argument("--device", default=None, help="torch device of the critics")
    e.set_defaults(func=run)
    return e
