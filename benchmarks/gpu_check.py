"""Every device measurement the README promises, in one run that writes one results file.

Sections (``--only`` picks some; each records its own wall time):

``layers``
    Interleaved train-step medians (``zero_grad; forward; MSE; backward; Adam``) and their ratio to
    the plain torch layer: dense width 1024, batch 256 (``nn.Linear``, lipot ``SpectralLinear``,
    deel-torchlip ``SpectralLinear``, orthogonium ``OrthoLinear``) and the convolutions of
    ``benchmarks/test_conv_layers.py`` (``nn.Conv2d``, ``SpectralConv2d``, ``OrthoConv2d``,
    ``AOLConv2d``, orthogonium's ``AdaptiveOrthoConv2d``). Peers that are not installed
    (``pip install -e .[bench]``) are left out and named in the file.
``emma``
    One epoch of the ``emma`` recipe (4C3F, EMMA loss, batch 256) on the 60 000 MNIST training
    images, then the certified accuracy of the test set at 0.5 / 1 / 1.58.
``w1``
    The W1 speed table: ``estimate_w1`` (defaults; ``--quick``: 3 epochs) against POT's exact W1 on five validation
    cases, with their errors against the truth or the exact value, and the times.
``mnist_halves``
    Time to a W1 estimate within 2 % of its converged value on MNIST digits 0-4 against 5-9
    (10 000 flattened images per side, epoch budgets 1, 3, 10, 30), beside POT's exact W1.
``audit``
    The MNIST 0-vs-8 dense HKR model (10 epochs), its audit on 1000 test points with the attacks
    on the device: violations, attack radius / certificate, Lipschitz bounds.

Run::

    python benchmarks/gpu_check.py --data-root MNIST_DIR                 # cuda when there is one
    python benchmarks/gpu_check.py --data-root MNIST_DIR --quick --device cpu --out /tmp/q.json

``--quick`` shrinks every section to seconds (tiny layers, 512 training images, small samples, few
attack steps): it checks that the script runs, not the figures; the test suite runs it on the
CPU. The full run is sized for at most 8 minutes on one GPU (on the 2-core CPU it takes far
longer). The results file (``--out``, default ``runs/gpu_check-DEVICE.json``) holds the device,
the versions, and one entry per section; the figures are also printed as they come.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lipot  # noqa: E402
from _data import MNIST_ROOT  # noqa: E402
from _peers import dense_peers, orthogonium_conv  # noqa: E402
from _timing import interleaved_round, medians  # noqa: E402
from lipot.data.toys import gaussian_shift, ring_vs_grid, scaled_gaussians, two_moons  # noqa: E402
from lipot.ot import exact_w1  # noqa: E402

SECTIONS = ("layers", "emma", "w1", "mnist_halves", "audit")

# sizes of the full run and of --quick, in one place
FULL = {"dense": (1024, 256), "conv": [("conv64", 64, 64, 3, 1, 32), ("strided32-64-k4", 32, 64, 4, 2, 32)],
        "conv_batch": 32, "rounds": 30, "warmup": 5, "emma_images": None, "emma_test": None,
        "w1_n": 1.0, "w1_settings": {}, "halves_n": 10_000, "halves_budgets": (1, 3, 10, 30),
        "audit_epochs": 10, "audit_train": None, "audit_n": 1000, "audit_steps": 100, "audit_lower": {}}
QUICK = {"dense": (32, 8), "conv": [("conv8", 8, 8, 3, 1, 8), ("strided8-8-k4", 8, 8, 4, 2, 8)],
         "conv_batch": 2, "rounds": 3, "warmup": 1, "emma_images": 512, "emma_test": 256,
         "w1_n": 0.05, "w1_settings": {"epochs": 3}, "halves_n": 200, "halves_budgets": (1, 2),
         "audit_epochs": 1, "audit_train": 512, "audit_n": 20, "audit_steps": 5,
         "audit_lower": {"iterations": 3, "ascent_steps": 5}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_step(layer: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer.train()

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(layer(x), target).backward()
        opt.step()
        _sync(x.device)

    return step


def _peers_dense() -> dict[str, Callable[[int], torch.nn.Module]]:
    makers: dict[str, Callable[[int], torch.nn.Module]] = {
        "nn.Linear": lambda n: torch.nn.Linear(n, n), "lipot SpectralLinear": lambda n: lipot.SpectralLinear(n, n)}
    makers.update({f"{name} {'SpectralLinear' if name == 'deel-torchlip' else 'OrthoLinear'}": make
                   for name, make in dense_peers().items()})
    return makers


def _peers_conv() -> dict[str, Callable[..., torch.nn.Module]]:
    makers: dict[str, Callable[..., torch.nn.Module]] = {
        "nn.Conv2d": torch.nn.Conv2d, "lipot SpectralConv2d": lipot.SpectralConv2d,
        "lipot OrthoConv2d": lipot.OrthoConv2d, "lipot AOLConv2d": lipot.AOLConv2d}
    aoc = orthogonium_conv()
    if aoc is not None:
        makers["orthogonium AdaptiveOrthoConv2d"] = lambda *a, **k: aoc(*a, padding_mode="zeros", **k)
    return makers


def _interleaved(fns: dict[str, Callable[[], None]], rounds: int, warmup: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    one_round = interleaved_round(fns, times)
    for _ in range(rounds + warmup):
        one_round()
    return medians(times, warmup)


def _ratios(med: dict[str, float], base: str) -> dict[str, dict[str, float]]:
    return {name: {"ms": 1e3 * t, "ratio": t / med[base]} for name, t in med.items()}


def section_layers(args, size, device) -> dict:
    gen = torch.Generator().manual_seed(0)
    width, batch = size["dense"]
    x, target = torch.randn(batch, width, generator=gen), torch.randn(batch, width, generator=gen)
    x, target = x.to(device), target.to(device)
    fns = {name: _train_step(make(width).to(device), x, target) for name, make in _peers_dense().items()}
    out = {f"dense {width}, batch {batch}": _ratios(_interleaved(fns, size["rounds"], size["warmup"]), "nn.Linear")}
    for case, c_in, c_out, kernel, stride, hw in size["conv"]:
        x = torch.randn(size["conv_batch"], c_in, hw, hw, generator=gen).to(device)
        target = torch.randn(size["conv_batch"], c_out, hw // stride, hw // stride, generator=gen).to(device)
        fns = {name: _train_step(make(c_in, c_out, kernel, stride=stride, padding=1).to(device), x, target)
               for name, make in _peers_conv().items()}
        out[f"{case}, batch {size['conv_batch']}, {hw}x{hw}"] = _ratios(
            _interleaved(fns, size["rounds"], size["warmup"]), "nn.Conv2d")
    for case, rows in out.items():
        print(f"[layers] {case}: " + "  ".join(f"{n} {r['ms']:.2f} ms ({r['ratio']:.2f}x)" for n, r in rows.items()),
              flush=True)
    return out


def section_emma(args, size, device) -> dict:
    from lipot.training.recipes import build_recipe

    x, y = lipot.data.mnist(args.data_root, "train")
    xt, yt = lipot.data.mnist(args.data_root, "test")
    if size["emma_images"] is not None:
        x, y, xt, yt = x[:size["emma_images"]], y[:size["emma_images"]], xt[:size["emma_test"]], yt[:size["emma_test"]]
    torch.manual_seed(0)
    recipe = build_recipe("emma", eps=1.58, epochs=1)
    loader = lipot.training.make_loader(x.to(device), y.to(device), min(recipe.batch_size, len(x)), seed=0)
    _sync(device)
    t0 = time.perf_counter()
    lipot.training.fit(recipe.model, recipe.loss, loader, 1, optimizer=recipe.optimizer, scheduler=recipe.scheduler,
                       radius_ramp=recipe.radius_ramp, device=device, progress=False, log=None)
    _sync(device)
    epoch = time.perf_counter() - t0
    result = lipot.certify.certified_accuracy(recipe.model, (xt, yt), [0.5, 1.0, 1.58], device=device)
    out = {"train_images": len(x), "epoch_seconds": epoch, "test_images": len(xt), "clean": result.accuracy,
           "certified": {str(e): c for e, c in result.certified.items()}}
    print(f"[emma] one epoch on {len(x)} images: {epoch:.1f} s; test clean {result.accuracy:.4f}, certified "
          + ", ".join(f"{e}: {c:.4f}" for e, c in out["certified"].items()), flush=True)
    return out


def _w1_cases(scale: float):
    rng = np.random.default_rng(0)
    n = lambda k: max(int(k * scale), 40)  # noqa: E731
    yield "shift d=10 n=2000", *gaussian_shift(10, n(2000), rng)
    yield "scaled s=1.5 d=2 n=2000", *scaled_gaussians(2, n(2000), rng)
    yield "scaled s=1.5 d=10 n=2000", *scaled_gaussians(10, n(2000), rng)
    yield "two moons n=5000", *two_moons(n(5000), rng), None
    yield "8-ring vs 5x5-grid n=1000", *ring_vs_grid(n(1000), rng), None


def _timed(fn, device=None):
    if device is not None:
        _sync(device)
    t0 = time.perf_counter()
    value = fn()
    if device is not None:
        _sync(device)
    return value, time.perf_counter() - t0


def section_w1(args, size, device) -> dict:
    rows = {}
    for name, x, y, truth in _w1_cases(size["w1_n"]):
        exact, t_exact = _timed(lambda: exact_w1(x, y))
        ref = truth if truth is not None else exact
        res, t_lipot = _timed(lambda: lipot.estimate_w1(x, y, seed=0, device=device, **size["w1_settings"]), device)
        rows[name] = {"n": len(x), "reference": ref, "reference_is": "truth" if truth is not None else "exact",
                      "lipot": res.value, "lipot_error_pct": 100 * (res.value - ref) / ref, "lipot_seconds": t_lipot,
                      "exact": exact, "exact_seconds": t_exact}
        r = rows[name]
        print(f"[w1] {name} (n={len(x)}): lipot {res.value:.4f} ({r['lipot_error_pct']:+.1f} % of the "
              f"{r['reference_is']}) in {t_lipot:.1f} s; POT exact {exact:.4f} in {t_exact:.1f} s", flush=True)
    return rows


def section_mnist_halves(args, size, device) -> dict:
    images, labels = lipot.data.mnist(args.data_root, "train")
    flat, labels = images.numpy().reshape(-1, 784), labels.numpy()
    n = size["halves_n"]
    X, Y = flat[labels <= 4][:n], flat[labels >= 5][:n]
    runs = []
    for epochs in size["halves_budgets"]:
        res, seconds = _timed(lambda: lipot.estimate_w1(X, Y, epochs=epochs, seed=0, device=device), device)
        runs.append({"epochs": epochs, "value": res.value, "seconds": seconds})
        print(f"[mnist_halves] epochs <= {epochs}: {res.value:.4f} in {seconds:.1f} s", flush=True)
    final = runs[-1]["value"]
    first = next(r for r in runs if abs(r["value"] - final) <= 0.02 * abs(final))
    exact, t_exact = _timed(lambda: exact_w1(X, Y))
    print(f"[mnist_halves] n={n} per side: within 2 % of the converged {final:.4f} after {first['seconds']:.1f} s; "
          f"POT exact {exact:.4f} in {t_exact:.1f} s", flush=True)
    return {"n": n, "runs": runs, "converged": final, "seconds_to_2pct": first["seconds"],
            "exact": exact, "exact_seconds": t_exact}


def section_audit(args, size, device) -> dict:
    x, y = lipot.data.mnist(args.data_root, "train")
    xt, yt = lipot.data.mnist(args.data_root, "test")
    keep, keep_t = (y == 0) | (y == 8), (yt == 0) | (yt == 8)
    x, y = x[keep].flatten(1), (y[keep] == 0).float()
    xt, yt = xt[keep_t].flatten(1), (yt[keep_t] == 0).float()
    if size["audit_train"] is not None:
        x, y = x[:size["audit_train"]], y[:size["audit_train"]]
    torch.manual_seed(0)
    model = lipot.models.dense_classifier(784, (32, 16), 1)
    t_train = _timed(lambda: lipot.training.fit(
        model, lipot.losses.HKRLoss(10 / 11, 1.0), lipot.training.make_loader(x, y, 128, seed=0),
        size["audit_epochs"], lr=3e-3, device=device, progress=False, log=None), device)[1]
    idx = torch.randperm(len(xt), generator=torch.Generator().manual_seed(0))[:size["audit_n"]]
    report, t_audit = _timed(lambda: lipot.audit_certificates(
        model.eval(), xt[idx], yt[idx], attack={"steps": size["audit_steps"]},
        lower=size["audit_lower"], device=device), device)
    out = {"train_seconds": t_train, "audit_seconds": t_audit, "n": report.n, "n_correct": report.n_correct,
           "violations": report.violations, "median_ratio": report.median_ratio, "min_ratio": report.min_ratio,
           "lower_bound": report.lower_bound, "upper_bound": report.upper_bound, "verdict": report.verdict}
    print(f"[audit] {report.n} points ({report.n_correct} audited) in {t_audit:.1f} s: {report.violations} "
          f"violations, attack / certificate median {report.median_ratio:.3f}, verdict {report.verdict}", flush=True)
    return out


def _environment(device: torch.device) -> dict:
    env = {"device": str(device), "torch": torch.__version__, "lipot": lipot.__version__,
           "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-root", default=MNIST_ROOT, help="MNIST folder (default: $LIPOT_MNIST_ROOT or data/mnist)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs, in seconds")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="sections to run (default: all)")
    p.add_argument("--out", help="results file (JSON; default runs/gpu_check-DEVICE[-quick].json)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible; pass --device cpu")
    size = QUICK if args.quick else FULL
    out_path = Path(args.out or f"runs/gpu_check-{device.type}{'-quick' if args.quick else ''}.json")
    results = {"environment": _environment(device), "quick": args.quick, "sections": {}}
    start = time.perf_counter()
    for name in args.only or SECTIONS:
        t0 = time.perf_counter()
        results["sections"][name] = globals()[f"section_{name}"](args, size, device)
        results["sections"][name]["section_seconds"] = time.perf_counter() - t0
    results["total_seconds"] = time.perf_counter() - start
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    print(f"all sections in {results['total_seconds']:.1f} s on {results['environment'].get('gpu', device)}; "
          f"results: {out_path}")
    return results


if __name__ == "__main__":
    main()
