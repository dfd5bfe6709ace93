"""Langevin sampling of a double well: the step-size bias of ULA, and MALA's exactness.

The energy E(x) = a (x^2 - 1)^2 gives p(x) ∝ exp(-E(x)), two wells at x = ±1. Many chains
take Langevin steps x' = x - h E'(x) + sqrt(2h) xi: the unadjusted chain (ULA) samples a
distribution that differs from p by O(h), while a Metropolis test on each proposal (MALA)
makes p exactly stationary whatever the step. The chains' end points are compared with p
(from quadrature) by a chi-square test and the total-variation distance::

    python examples/langevin_double_well.py [--step 0.02] [--out examples/out/langevin]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from genphys.samplers import langevin_sample


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=float, default=2.0, help="barrier height")
    p.add_argument(
        "--step", type=float, default=0.02, help="Langevin step h (ULA diverges from about 0.05 on)"
    )
    p.add_argument("--chains", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples/out/langevin")
    args = p.parse_args(argv)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return args.a * (x[:, 0] ** 2 - 1) ** 2

    edges = np.linspace(-2.5, 2.5, 41)  # p outside holds ~1e-7 of the mass at a = 2
    fine = np.linspace(edges[0], edges[-1], 40 * 400 + 1)
    density = np.exp(-args.a * (fine**2 - 1) ** 2)
    mass = np.add.reduceat(density[:-1], np.arange(0, len(fine) - 1, 400))
    exact = mass / mass.sum()  # p per bin (the mass outside the bins is negligible)

    g = torch.Generator().manual_seed(args.seed)
    x0 = 3 * torch.rand(args.chains, 1, dtype=torch.float64, generator=g) - 1.5  # both wells
    result, ends = {}, {}
    for name, metropolis in (("ULA", False), ("MALA", True)):
        out = langevin_sample(
            energy,
            x0,
            args.steps,
            args.step,
            metropolis=metropolis,
            generator=torch.Generator().manual_seed(args.seed + 1),
        )
        x, acceptance = out if metropolis else (out, 1.0)
        ends[name] = x[:, 0].numpy()
        counts = np.histogram(ends[name], edges)[0]
        n = len(ends[name])
        expected = exact * n
        keep = expected >= 5  # bins with fewer expected samples are pooled (with any outside)
        observed = np.append(counts[keep], n - counts[keep].sum())
        expected = np.append(expected[keep], n - expected[keep].sum())
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        pvalue = float(stats.chi2.sf(chi2, len(observed) - 1))
        tv = 0.5 * float(np.abs(counts / n - exact).sum())
        print(
            f"{name:>4} (h = {args.step}): chi-square p = {pvalue:.3g}, total variation "
            f"{tv:.4f}, acceptance {acceptance:.3f}"
        )
        result[name] = {"p_value": pvalue, "total_variation": tv, "acceptance": acceptance}

    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    _plot(ends, edges, exact, path / "histogram.png", args.step)
    print(f"wrote {path / 'histogram.png'}")
    return result


def _plot(ends: dict, edges: np.ndarray, exact: np.ndarray, path: Path, step: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = np.diff(edges)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.stairs(exact / width, edges, color="k", lw=1.5, label="exact p(x)")
    for name, x in ends.items():
        ax.stairs(np.histogram(x, edges)[0] / len(x) / width, edges, label=f"{name}, h = {step}")
    ax.set(xlabel="x", ylabel="density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
