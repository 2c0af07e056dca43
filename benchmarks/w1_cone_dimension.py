"""Where the cone critic pays: held-out W1 estimates with ``critic="cone"`` and ``critic="gnp"``
against the truth, by dimension.

The cone critic (:class:`lipot.nn.ConePotential`) has the shape of the Kantorovich potential of
two finite samples; with a few hundred learned cones it fits clustered low-dimensional data
well, but each cone describes one neighbourhood, so in higher dimension it overfits. This
script measures where that happens, on N(0, I_d) vs N(0, 1.5^2 I_d) (analytic W1) for several
d, and on the 2-D 8-ring vs 5x5-grid mixture (reference: exact_w1 of the sample). It is the
evidence behind ``lipot.wasserstein.CONE_MAX_FEATURES`` (the estimator proposes the cone critic
only up to that input width, and keeps it only where it wins the model selection).

    python benchmarks/w1_cone_dimension.py --dims 2 3 4 10 --n 2000
"""

from __future__ import annotations

import argparse

import numpy as np

import lipot
from lipot.ot import exact_w1
from lipot.data.toys import ring_vs_grid, scaled_gaussians


def row(name: str, x, y, ref: float, seed: int) -> str:
    cells = []
    for critic in ("cone", "gnp"):
        res = lipot.estimate_w1(x, y, critic=critic, seed=seed)
        cells.append(f"{res.value:.4f} ({100 * (res.value / ref - 1):+.2f} %), {res.seconds:.0f} s")
    return f"| {name} | {x.shape[0]} | {ref:.4f} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3, 4, 10])
    parser.add_argument("--n", type=int, default=2000, help="points per side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| case | n per side | reference | critic='cone' | critic='gnp' |")
    print("|---|---|---|---|---|")
    for d in args.dims:
        x, y, truth = scaled_gaussians(d, args.n, rng)
        print(row(f"scaled copies s=1.5 d={d} (truth)", x, y, truth, args.seed), flush=True)
    x, y = ring_vs_grid(args.n, rng)
    print(row("8-ring vs 5x5-grid (exact_w1)", x, y, exact_w1(x, y), args.seed), flush=True)


if __name__ == "__main__":
    main()
