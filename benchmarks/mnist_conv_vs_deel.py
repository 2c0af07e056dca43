"""MNIST 10-class conv GNP classifier: lipot vs deel-torchlip, same architecture, same loss, same
data order, same training loop; epoch times, clean and certified accuracy side by side.

    python benchmarks/mnist_conv_vs_deel.py --data-root MNIST_DIR --epochs 10

Certificates: lipot's model with the verified per-pair bound (lipot.certify); deel-torchlip's model
with its nominal bound (L = 1, (top1 - top2)/sqrt(2)) and, after copying its exported weights into
plain torch layers, with lipot's verified bound too.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from lipot import data, losses, models
from lipot.certify import certified_accuracy
from lipot.training import make_loader


def deel_model(channels, dense, num_classes=10, size=28):
    from deel import torchlip as dl

    layers, width = [], 1
    for c in channels:
        layers += [dl.SpectralConv2d(width, c, 3, padding=1), dl.GroupSort2(), dl.ScaledL2NormPool2d(2)]
        width, size = c, size // 2
    layers.append(nn.Flatten())
    features = width * size * size
    for h in dense:
        layers += [dl.SpectralLinear(features, h), dl.GroupSort2()]
        features = h
    layers.append(dl.SpectralLinear(features, num_classes))
    return dl.Sequential(*layers)


def deel_as_plain(model, channels, dense):
    """deel-torchlip's exported weights in plain torch layers + lipot's weight-free layers (the
    same functions), so that lipot.certify can bound the deel model from its weights."""
    exported = [m for m in model.vanilla_export() if isinstance(m, (nn.Conv2d, nn.Linear))]
    lip = models.conv_classifier(1, 28, channels, dense, 10, conv="spectral")
    plain = nn.Sequential(*[m.vanilla_export() if isinstance(m, (nn.Conv2d, nn.Linear)) else m for m in lip])
    targets = [m for m in plain if isinstance(m, (nn.Conv2d, nn.Linear))]
    for src, dst in zip(exported, targets, strict=True):
        dst.weight.data.copy_(src.weight.data)
        dst.bias.data.copy_(src.bias.data)
    return plain


def train(model, loss_fn, loader, epochs, lr, onehot, device):
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    times = []
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            target = nn.functional.one_hot(y, 10).float() if onehot else y
            loss = loss_fn(model(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        print(f"  epoch {epoch + 1}: {times[-1]:.1f} s, last loss {loss.item():.4f}", flush=True)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--dense", type=int, nargs="*", default=[256])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=0.95)
    parser.add_argument("--min-margin", type=float, default=3.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--only", choices=["lipot", "deel"], default=None)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.5, 1.0, 1.58])
    parser.add_argument("--save", default=None, help="save lipot's state_dict here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="use the first N training samples")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    x, y = data.mnist(args.data_root, "train")
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    xt, yt = data.mnist(args.data_root, "test")
    x, y = x.to(args.device), y.to(args.device)  # batches are sliced where the data lives
    results = {}
    for lib in ["lipot", "deel"]:
        if args.only and lib != args.only:
            continue
        torch.manual_seed(0)
        loader = make_loader(x, y, args.batch_size, seed=0)
        if lib == "lipot":
            model = models.conv_classifier(1, 28, args.channels, args.dense, 10, conv="spectral")
            loss_fn = losses.LseHKRMulticlassLoss(args.alpha, args.temperature, min_margin=args.min_margin)
        else:
            from deel import torchlip as dl

            model = deel_model(args.channels, args.dense)
            loss_fn = dl.LseHKRMulticlassLoss(args.alpha, args.temperature, min_margin=args.min_margin)
        print(f"{lib}: training {args.epochs} epochs", flush=True)
        times = train(model, loss_fn, loader, args.epochs, args.lr, (lib == "deel"), torch.device(args.device))
        model.eval()
        if lib == "lipot":
            res = certified_accuracy(model, (xt, yt), args.eps)
            nominal = certified_accuracy(model, (xt, yt), args.eps, lipschitz=1.0, per_pair=False)
            if args.save:
                torch.save(model.state_dict(), args.save)
        else:
            plain = deel_as_plain(model, args.channels, args.dense).to(args.device)
            res = certified_accuracy(plain, (xt, yt), args.eps)
            nominal = certified_accuracy(model, (xt, yt), args.eps, lipschitz=1.0, per_pair=False)
        ratio = float((res.radii / nominal.radii.clamp(min=1e-12)).median())
        results[lib] = {
            "epoch_seconds": times,
            "median_epoch_seconds": sorted(times)[len(times) // 2],
            "clean_accuracy": res.accuracy,
            "certified_verified": res.certified,
            "certified_nominal": nominal.certified,
            "verified_bound": res.lipschitz,
            "median_radius_ratio_verified_over_nominal": ratio,
        }
        print(json.dumps({lib: results[lib]}, indent=1), flush=True)
    if len(results) == 2:
        speedup = results["deel"]["median_epoch_seconds"] / results["lipot"]["median_epoch_seconds"]
        print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"epoch time ratio deel-torchlip / lipot (median): {speedup:.2f}x")


if __name__ == "__main__":
    main()
