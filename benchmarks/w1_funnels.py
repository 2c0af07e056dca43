"""The W1 benchmark of Korotin, Kolesov & Burnaev (NeurIPS 2022): funnel pairs with a known W1.

For every dimension d, number of funnels K and seed, draws two independent samples of ``--n``
points (``y ~ Q``, uniform on the cube, and ``x ~ P``, cube points slid toward their funnel's
centre; :class:`lipot.data.funnels.FunnelPair`), estimates W1(Q, P) with ``lipot.estimate_w1`` (its
defaults, or ``--set`` settings) and prints, per row (``--family network``: the pairs of
:class:`lipot.data.network_pairs.NetworkPair` instead, moved along the rays of a random GNP network,
``--funnels`` then giving its number of layers):

* ``truth``: E||x - y|| by Monte Carlo over ``--truth-n`` pairs (its standard error beside);
* ``oracle``: the true potential's KR value on the same samples, mean f(y) - mean f(x) (the
  estimator holds out every sample once, so this is the oracle on its held-out points: an
  unbiased W1 estimate that only learning f can reach);
* ``lipot``: the estimate, its error against the truth and its reported standard error;
* ``cos``: the mean cosine, over the points of P, between the critic's gradient
  (``W1Result.transport_direction``) and the true transport direction (the potential's gradient);
* ``exact``: POT's exact W1 of the two samples (``--exact``; biased upward in high dimension);
* the time of the estimate.

With ``--sampler`` the estimator gets two samplers instead of the samples (fresh points on
demand, :mod:`lipot.wasserstein.samplers`) and reports how many it drew; the oracle and the
cosine then use the ``--n`` points drawn for the row.

    python benchmarks/w1_funnels.py --dims 2 16 64 128 --funnels 4 64 --seeds 0 1 2 --n 8000
    python benchmarks/w1_funnels.py --dims 2 --funnels 64 --n 8000 --exact
    python benchmarks/w1_funnels.py --from-json rows.json --plot docs/w1_funnels.png   # table, plot
    python benchmarks/w1_funnels.py --from-json rows.json --plot out.png --limit-json limit.json
    python benchmarks/w1_funnels.py --exact-only --dims 2 3 4 8 --funnels 4 64 --seeds 0 --n 4000
    python benchmarks/w1_funnels.py --sampler --dims 16 --funnels 64 --seeds 0 --set draws=16384,4096,8192
    python benchmarks/w1_funnels.py --family network --dims 2 16 64 128 --funnels 3 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import lipot
from lipot.data.funnels import FunnelPair
from lipot.data.network_pairs import NetworkPair
from lipot.ot import exact_w1

sys.path.insert(0, os.path.dirname(__file__))
from w1_validation import setting  # noqa: E402


def exact_only(dim: int, funnels: int, seed: int, n: int, truth_n: int) -> str:
    """POT's exact W1 of the two samples against the truth (no estimate): the plug-in bias."""
    pair = FunnelPair(dim, funnels, seed)
    x, _ = pair.sample(n, seed=10_000 + seed)
    _, y = pair.sample(n, seed=20_000 + seed)
    truth, _ = pair.w1(truth_n, seed=30_000 + seed)
    t0 = time.perf_counter()
    exact = exact_w1(y.numpy(), x.numpy())
    return (f"d={dim:<4} K={funnels:<4} seed {seed} n={n}: truth {truth:.4f} | exact {exact:.4f} "
            f"({100 * (exact / truth - 1):+.1f} %, {time.perf_counter() - t0:.1f} s)")


def _sampler(pair: FunnelPair, side: int, first_seed: int):
    """``draw(n)``: fresh points of P (side 0) or Q (side 1), a new seed per call."""
    seeds = iter(range(first_seed, first_seed + 10**9))
    return lambda n: pair.sample(n, seed=next(seeds))[side]


FAMILIES = {"funnels": FunnelPair, "network": NetworkPair}
"""``--family``: the pair class; its second argument is the number of funnels ``K`` (funnels)
or of layers ``L`` (network, :mod:`lipot.data.network_pairs`), given by ``--funnels``."""


def run_pair(dim: int, funnels: int, seed: int, n: int, truth_n: int, exact: bool, settings: dict,
             sampler: bool = False, family: str = "funnels") -> dict:
    """One row: the pair of ``seed``, two independent samples (or two samplers, ``sampler``: the
    estimator draws what it needs; the oracle and the cosine then use a fresh draw of ``n``), the
    estimate and its references."""
    pair = FAMILIES[family](dim, funnels, seed)
    x, _ = pair.sample(n, seed=10_000 + seed)  # P
    _, y = pair.sample(n, seed=20_000 + seed)  # Q, independent of x
    truth, truth_se = pair.w1(truth_n, seed=30_000 + seed)
    oracle = float(pair.potential(y).mean() - pair.potential(x).mean())
    t0 = time.perf_counter()
    if sampler:
        res = lipot.estimate_w1(_sampler(pair, 1, 10**6), _sampler(pair, 0, 2 * 10**6), **settings)
    else:
        res = lipot.estimate_w1(y.numpy(), x.numpy(), **settings)
    seconds = time.perf_counter() - t0
    cos = float((res.transport_direction(x).double().cpu() * pair.gradient(x)).sum(1).mean())
    row = {"family": family, "dim": dim, "funnels": funnels, "seed": seed, "n": n, "truth": truth, "truth_se": truth_se,
           "oracle": oracle, "value": res.value, "stderr": res.stderr, "error_pct": 100 * (res.value / truth - 1),
           "oracle_error_pct": 100 * (oracle / truth - 1), "cos": cos, "seconds": seconds,
           "selected": sorted(set(res.selected)), "drawn": list(res.n_drawn)}
    if exact:
        t0 = time.perf_counter()
        row["exact"] = exact_w1(y.numpy(), x.numpy())
        row["exact_error_pct"] = 100 * (row["exact"] / truth - 1)
        row["exact_seconds"] = time.perf_counter() - t0
    return row


def _line(r: dict) -> str:
    exact = f" | exact {r['exact']:.4f} ({r['exact_error_pct']:+.1f} %, {r['exact_seconds']:.0f} s)" if "exact" in r else ""
    exact += f" | drew {r['drawn'][0]} + {r['drawn'][1]}" if r.get("drawn", [0])[0] else ""
    k = "L" if r.get("family") == "network" else "K"
    return (f"d={r['dim']:<4} {k}={r['funnels']:<4} seed {r['seed']}: truth {r['truth']:.4f} (±{r['truth_se']:.4f}) | "
            f"oracle {r['oracle']:.4f} ({r['oracle_error_pct']:+.1f} %) | lipot {r['value']:.4f} "
            f"({r['error_pct']:+.1f} % ± {100 * r['stderr'] / r['truth']:.1f}) cos {r['cos']:.2f} "
            f"{r['seconds']:.0f} s [{','.join(r['selected'])}]{exact}")


def summary(rows: list[dict]) -> list[str]:
    """Mean error, oracle error and cosine over the seeds of each (d, K)."""
    out = []
    for key in sorted({(r["dim"], r["funnels"]) for r in rows}):
        group = [r for r in rows if (r["dim"], r["funnels"]) == key]
        mean = lambda name: float(np.mean([r[name] for r in group]))  # noqa: E731
        out.append(f"| {key[0]} | {key[1]} | {np.mean([r['truth'] for r in group]):.3f} | "
                   f"{mean('oracle_error_pct'):+.1f} % | **{mean('error_pct'):+.1f} %** | {mean('cos'):.2f} | "
                   f"{mean('seconds'):.0f} s | {len(group)} |")
    return out


def plot(rows: list[dict], path: str, limit: list[dict] | None = None) -> None:
    """Mean error against the dimension, one line per number of funnels, and the oracle's;
    ``limit``: rows of ``benchmarks/w1_erm_limit.py --json`` (the true potential refitted on a
    fold's training points), drawn dashed in the colour of their number of funnels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for funnels in sorted({r["funnels"] for r in rows}):
        dims = sorted({r["dim"] for r in rows if r["funnels"] == funnels})
        for name, style in (("error_pct", "-o"), ("oracle_error_pct", ":x")):
            means = [np.mean([r[name] for r in rows if (r["dim"], r["funnels"]) == (d, funnels)]) for d in dims]
            label = f"{'lipot' if name == 'error_pct' else 'oracle (true f)'}, K={funnels}"
            line, = ax.plot(dims, means, style, label=label)
            if name == "error_pct" and limit:
                own = sorted((r["d"], 100 * (r["held"] / r["truth"] - 1)) for r in limit if r["K"] == funnels)
                if own:
                    ax.plot(*zip(*own), "--s", color=line.get_color(), alpha=0.6, ms=4,
                            label=f"true f refitted on {limit[0]['n']} points, K={funnels}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("error against the true W1 (%)")
    ax.set_title(f"funnel pairs, {rows[0]['n']} points per side, mean over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64, 128])
    parser.add_argument("--funnels", type=int, nargs="+", default=[4, 64],
                        help="funnels K (--family funnels) or layers L (--family network)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="funnels",
                        help="funnels (Korotin et al.) or network (lipot.data.network_pairs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=8000, help="points per side")
    parser.add_argument("--truth-n", type=int, default=200_000, help="Monte Carlo pairs for the truth")
    parser.add_argument("--exact", action="store_true", help="also POT's exact W1 of the two samples")
    parser.add_argument("--exact-only", action="store_true", help="only POT's exact W1 against the truth")
    parser.add_argument("--sampler", action="store_true",
                        help="give the estimator samplers (fresh samples on demand; set draws= with --set)")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", type=setting,
                        help="W1Estimator keyword arguments, e.g. epochs=200")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    parser.add_argument("--from-json", default=None, help="read the rows of an earlier run instead of running")
    parser.add_argument("--plot", default=None, help="write the error-against-dimension plot to this PNG")
    parser.add_argument("--limit-json", default=None,
                        help="rows of benchmarks/w1_erm_limit.py --json to draw on the plot (the empirical-KR limit)")
    args = parser.parse_args()
    settings = {"progress": False, **dict(args.set)}
    torch.manual_seed(0)
    rows = []
    if args.exact_only:
        for dim in args.dims:
            for funnels in args.funnels:
                for seed in args.seeds:
                    print(exact_only(dim, funnels, seed, args.n, args.truth_n), flush=True)
        return
    if args.from_json:
        with open(args.from_json) as f:
            rows = json.load(f)
        for row in rows:
            print(_line(row))
    for dim in [] if args.from_json else args.dims:
        for funnels in args.funnels:
            for seed in args.seeds:
                rows.append(run_pair(dim, funnels, seed, args.n, args.truth_n, args.exact, settings, args.sampler,
                                     args.family))
                print(_line(rows[-1]), flush=True)
    print("\n| d | K | truth (mean) | oracle error | lipot error | cos | time | seeds |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(summary(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot:
        limit = None
        if args.limit_json:
            with open(args.limit_json) as f:
                limit = json.load(f)
        plot(rows, args.plot, limit)


if __name__ == "__main__":
    main()
