"""Certified MNIST (10 classes) with a named recipe, for a wall-clock training budget: one epoch at a
time through ``lipot.training.fit`` (atomic checkpoint after each, so a killed or later run
resumes where it stopped), validation after each epoch (on the 10 000 test images, or on a split
held out of the training set with ``--val-split``), and a CSV of

    train_minutes, epoch, lr, train_eps, clean, cert_0.5, cert_1, cert_1.58

(training minutes exclude validation) plus a plot of certified accuracy at --eps against
minutes for every CSV in the output folder (one line per recipe), and with ``--val-split`` a plot
of the final models' test-set certified accuracy against eps beside the published MNIST points.

Run (2-core CPU, 90 minutes of training)::

    python benchmarks/certified_mnist.py --recipe emma --minutes 90 --epochs 60 \
        --data-root MNIST_DIR --out runs/certified-mnist

``--val-split N`` holds out N training images (a fixed permutation, the same for every recipe) as
the validation set that the choices between recipes are made on; the test set is then evaluated
once, after the last epoch, and written to ``TAG-test.json``. ``--dataset fashion-mnist`` trains
on Fashion-MNIST (``--data-root`` defaults to where ``apt-get install dataset-fashion-mnist`` puts it)::

    python benchmarks/certified_mnist.py --recipe la --epochs 6 --minutes 60 --val-split 10000 \
        --data-root MNIST_DIR --out runs/recipes

Run it again with the same arguments to resume (a larger --minutes continues the same run). The
checkpoint works with ``lipot certify`` and ``lipot audit``. ``--plot-only --out DIR`` redraws
the plot from the CSVs in DIR (copy several runs' CSVs into one folder to compare them).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

import lipot
from lipot.training.recipes import RECIPES, build_recipe

EPS = (0.5, 1.0, 1.58)


def _rows(history: list[dict]) -> list[list]:
    rows, minutes = [], 0.0
    for m in history:
        minutes += m["train_seconds"] / 60
        cert = [m["certified"][e] for e in EPS]
        rows.append([f"{minutes:.2f}", m["epoch"], f"{m['lr']:.3g}", f"{m.get('train_eps', float('nan')):.3f}",
                     f"{m['val_accuracy']:.4f}", *(f"{c:.4f}" for c in cert)])
    return rows


def _write_csv(path: Path, history: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["train_minutes", "epoch", "lr", "train_eps", "clean", *(f"cert_{e:g}" for e in EPS)])
        writer.writerows(_rows(history))


def _pyplot():
    """matplotlib's pyplot on the Agg backend, or ``None`` (with a note) when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e .[dev])")
        return None
    return plt


def _plot(folder: Path, eps: float, title: str) -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for path in sorted(folder.glob("*.csv")):
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if rows:
            ax.plot([float(r["train_minutes"]) for r in rows], [100 * float(r[f"cert_{eps:g}"]) for r in rows],
                    marker=".", label=path.stem)
    ax.set_xlabel("training minutes (2-core CPU)")
    ax.set_ylabel(f"certified accuracy at eps={eps:g} (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    out = folder / f"certified-mnist-eps{eps:g}.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return out


PUBLISHED_MNIST = {  # certified accuracy (%) at eps = 1.58 (and BCOP's clean accuracy), from the papers
    "GloRo 4C3F (Leino et al. 2021)": [(1.58, 62.8)],
    "CRM (published)": [(1.58, 63.4)],
    "BCOP-Large (Li et al. 2019)": [(0.0, 98.8), (1.58, 56.7)],
}


def _plot_curves(folder: Path) -> Path | None:
    """Certified accuracy against eps for every ``*-test.json`` in ``folder`` (the final models'
    test-set curves), with the published MNIST points."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for path in sorted(folder.glob("*-test.json")):
        report = json.loads(path.read_text())
        if "test_curve" in report:
            curve = report["test_curve"]
            ax.plot(curve["eps"], [100 * c for c in curve["certified"]],
                    label=f"{path.stem[:-5]} ({report.get('dataset', 'mnist')})")
    for (name, points), marker in zip(PUBLISHED_MNIST.items(), "^sv"):
        ax.scatter(*zip(*points), marker=marker, color="k", label=f"{name}, MNIST", zorder=3)
    ax.set_xlabel("L2 radius eps")
    ax.set_ylabel("certified accuracy, test set (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    out = folder / "certified-vs-eps.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=RECIPES, help="required unless --plot-only")
    p.add_argument("--minutes", type=float, default=90.0, help="training budget (minutes, validation excluded)")
    p.add_argument("--epochs", type=int, default=60, help="length of the LR decay and radius ramp")
    p.add_argument("--eps", type=float, default=1.58, help="radius to certify (and to train for)")
    p.add_argument("--conv", default=lipot.models.DEFAULT_CONV, choices=sorted(lipot.models.CONV_LAYERS))
    p.add_argument("--data-root", help="folder with the four MNIST IDX files (required unless --plot-only)")
    p.add_argument("--out", default="runs/certified-mnist", help="folder for checkpoint, CSV and plot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--val-split", type=int, default=0,
                   help="hold out this many training images for validation (0: validate on the test set)")
    p.add_argument("--width", type=int, default=None,
                   help="channel multiplier of the 4C3F network (default: the recipe's, 1; 2: 64 and 128)")
    p.add_argument("--convs-per-block", type=int, default=None,
                   help="3x3 convolutions before each strided one in the 4C3F network (default: the recipe's, 1; "
                        "2: a 6C3F)")
    p.add_argument("--overshoot", type=float, default=None,
                   help="final training radius / --eps of the margin recipes (default: the recipe's, 1.1)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size (default: the recipe's)")
    p.add_argument("--translate", type=int, default=0,
                   help="augment with random translations of up to this many pixels (lipot.data.RandomTranslate)")
    p.add_argument("--limit", type=int, default=None, help="train on the first LIMIT training images only (smoke runs)")
    p.add_argument("--tag", help="name of the run's files in --out (default: the recipe, and the conv if not the default)")
    p.add_argument("--plot-only", action="store_true",
                   help="only redraw the plots from the CSVs and *-test.json files in --out (one line per file, "
                        "labelled by its name)")
    args = p.parse_args()
    if args.plot_only:
        for plot in (_plot(Path(args.out), args.eps, _title(args)), _plot_curves(Path(args.out))):
            if plot is not None:
                print(f"plot: {plot}")
        return
    if args.recipe is None:
        p.error("--recipe is required (unless --plot-only)")
    if args.data_root is None and args.dataset == "mnist":
        p.error("--data-root is required for MNIST (unless --plot-only)")
    if not 0 <= args.val_split < 60_000:
        p.error(f"--val-split must be in [0, 60000), got {args.val_split}")

    torch.manual_seed(args.seed)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    tag = args.tag or (args.recipe if args.conv == lipot.models.DEFAULT_CONV else f"{args.recipe}-{args.conv}")
    checkpoint = folder / f"{tag}.pt"
    options = {k: getattr(args, k) for k in ("width", "convs_per_block", "overshoot")
               if getattr(args, k) is not None}  # the recipe's defaults for the rest
    recipe = build_recipe(args.recipe, args.eps, args.epochs, conv=args.conv, **options)
    batch_size = recipe.batch_size if args.batch_size is None else args.batch_size
    x, y, val, test = _data(args.dataset, args.data_root, args.val_split)
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    augment = lipot.data.RandomTranslate(args.translate) if args.translate else None
    loader = lipot.training.make_loader(x, y, batch_size, seed=args.seed, transform=augment)
    # what `lipot certify` / `lipot audit` need to rebuild the network from the checkpoint
    config = {"arch": recipe.arch, "arch_kwargs": recipe.arch_kwargs, "dataset": args.dataset, "binary": None,
              "data_root": None if args.data_root is None else str(Path(args.data_root).resolve()),
              "loss": args.recipe}
    history: list[dict] = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        history = lipot.training.fit(
            recipe.model, recipe.loss, loader, epoch, optimizer=recipe.optimizer, val_data=val, eps=EPS,
            checkpoint=checkpoint, resume=True, progress=False, log=None, scheduler=recipe.scheduler,
            radius_ramp=recipe.radius_ramp, extra={"config": config, "epochs": args.epochs, "eps": args.eps},
        )
        _write_csv(folder / f"{tag}.csv", history)
        if len(history) == epoch:
            print(" | ".join(f"{k} {v}" for k, v in zip(
                ["minutes", "epoch", "lr", "train_eps", "clean", *(f"cert@{e:g}" for e in EPS)],
                _rows(history)[-1])), flush=True)
        if sum(m["train_seconds"] for m in history) / 60 >= args.minutes:
            break
    best = max(history, key=lambda m: m["certified"][args.eps] if args.eps in m["certified"] else 0.0)
    print(f"{tag}: {len(history)} epochs, {sum(m['train_seconds'] for m in history) / 60:.1f} training minutes "
          f"({(time.perf_counter() - start) / 60:.1f} wall minutes this call); best certified accuracy at "
          f"eps={args.eps:g}: {best['certified'].get(args.eps, float('nan')):.4f} (epoch {best['epoch']}, "
          f"clean {best['val_accuracy']:.4f})")
    if test is not None:  # the final model on the test set, once; and the curves of every such report
        _test_report(recipe.model, test, args.eps, folder / f"{tag}-test.json", history, args.dataset, (x, y))
    for plot in (_plot(folder, args.eps, _title(args)), _plot_curves(folder)):
        if plot is not None:
            print(f"plot: {plot}")


def _title(args) -> str:
    split = f"{args.val_split} held-out training images" if args.val_split else "test set"
    return f"{'MNIST' if args.dataset == 'mnist' else 'Fashion-MNIST'}, 10 classes, {split}"


def _data(dataset: str, root: str | None, val_split: int):
    """``(x, y, val, test)``: training images, the validation pair, and the test pair when the
    validation pair is held out of the training set (``None`` when it is the test set)."""
    read = lipot.data.mnist if dataset == "mnist" else lipot.data.fashion_mnist
    x, y = read(root, "train") if root is not None else read(split="train")
    test = read(root, "test") if root is not None else read(split="test")
    if val_split == 0:
        return x, y, test, None
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(12345))
    held, kept = order[:val_split], order[val_split:]
    return x[kept], y[kept], (x[held], y[held]), test


def _test_report(model, test, eps: float, path: Path, history: list[dict], dataset: str, train) -> None:
    """Certify the final model on the test set once and write it beside the run's CSV, with the
    same figures on the (unaugmented) training images: certified accuracy on the training part
    close to the validation figure means the run is limited by what the network and loss can fit
    (capacity), not by overfitting."""
    radii = sorted({*EPS, eps})
    result = lipot.certify.certified_accuracy(model, test, radii)
    fit = lipot.certify.certified_accuracy(model, train, radii)
    grid = [round(0.05 * i, 2) for i in range(61)]  # the curve over eps in [0, 3]
    curve = [float((result.correct & (result.radii > e)).float().mean()) for e in grid]
    report = {"dataset": dataset, "epochs": len(history), "train_minutes": sum(m["train_seconds"] for m in history) / 60,
              "test_clean": result.accuracy, "test_certified": {str(e): result.certified[e] for e in radii},
              "test_curve": {"eps": grid, "certified": curve},
              "val_clean": history[-1]["val_accuracy"],
              "val_certified": {str(e): v for e, v in history[-1]["certified"].items()},
              "train_clean": fit.accuracy, "train_certified": {str(e): fit.certified[e] for e in radii}}
    path.write_text(json.dumps(report, indent=1))
    print(f"test set, final model: clean {result.accuracy:.4f}; certified "
          + ", ".join(f"{e:g}: {result.certified[e]:.4f}" for e in radii) + f" ({path})")
    print(f"training images ({len(train[0])}), final model: clean {fit.accuracy:.4f}; certified "
          + ", ".join(f"{e:g}: {fit.certified[e]:.4f}" for e in radii))


if __name__ == "__main__":
    main()
