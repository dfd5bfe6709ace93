"""The 2-D Ising ferromagnet by Monte Carlo, beside its exact solution.

Energy, specific heat, |m|, susceptibility and the Binder cumulant of an L x L torus across
the transition, each with its jackknife error, against Kaufman's exact energy and specific heat
of the same finite torus and Onsager's spontaneous magnetization of the infinite lattice.
Metropolis away from T_c, Swendsen-Wang clusters near it (critical slowing down)::

    python examples/ising_thermodynamics.py [--L 16] [--out examples/out/ising]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genphys.physics.dataset import choose_algorithm
from genphys.physics.ising import Metropolis, SwendsenWang, init_state
from genphys.physics.ising_exact import (
    T_CRITICAL,
    kaufman_energy,
    kaufman_specific_heat,
    onsager_magnetization,
)
from genphys.physics.observables import thermodynamics


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--L", type=int, default=16)
    p.add_argument("--temperatures", default="1.5:3.5:0.25", help="start:stop:step")
    p.add_argument("--chains", type=int, default=64)
    p.add_argument("--sweeps", type=int, default=2000, help="measured sweeps per chain")
    p.add_argument("--out", default="examples/out/ising")
    args = p.parse_args(argv)
    lo, hi, step = (float(v) for v in args.temperatures.split(":"))
    temperatures = np.round(np.arange(lo, hi + step / 2, step), 6)

    rows = []
    for T in temperatures:
        algorithm = choose_algorithm(T)
        sampler = SwendsenWang(T) if algorithm == "swendsen-wang" else Metropolis(T)
        state = init_state(args.L, args.chains, seed=1)
        sampler.sweep_(state, max(200, args.sweeps // 5))  # burn-in
        e, m = sampler.run(state, args.sweeps)
        rows.append((T, algorithm, thermodynamics(e, m, args.L, T)))

    exact_e, exact_c = (
        kaufman_energy(args.L, temperatures),
        kaufman_specific_heat(args.L, temperatures),
    )
    print(f"L = {args.L}, T_c = {T_CRITICAL:.4f}; z = (Monte Carlo - exact) / standard error")
    print(
        f"{'T':>5} {'algorithm':>14} {'energy':>20} {'z':>6} {'specific heat':>18} {'z':>6} "
        f"{'|m|':>16} {'Binder':>16}"
    )
    result: dict[str, list[float]] = {"T": [], "energy_z": [], "specific_heat_z": []}
    for (T, algorithm, obs), e_x, c_x in zip(rows, exact_e, exact_c, strict=True):
        z_e, z_c = obs["energy"].z_score(e_x), obs["specific_heat"].z_score(c_x)
        print(
            f"{T:5.2f} {algorithm:>14} {obs['energy']!s:>20} {z_e:6.2f} "
            f"{obs['specific_heat']!s:>18} {z_c:6.2f} {obs['abs_magnetization']!s:>16} "
            f"{obs['binder']!s:>16}"
        )
        result["T"].append(float(T))
        result["energy_z"].append(z_e)
        result["specific_heat_z"].append(z_c)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(rows, args.L, out / "observables.png")
    print(f"wrote {out / 'observables.png'}")
    return result


def _plot(rows: list, L: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = np.array([r[0] for r in rows])
    fine = np.linspace(T.min(), T.max(), 300)
    exact = {
        "energy": (kaufman_energy(L, fine), f"Kaufman, L = {L}"),
        "specific_heat": (kaufman_specific_heat(L, fine), f"Kaufman, L = {L}"),
        "abs_magnetization": (onsager_magnetization(fine), "Onsager, L = infinity"),
    }
    names = ["energy", "specific_heat", "abs_magnetization", "susceptibility", "binder"]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4))
    for ax, name in zip(axes, names, strict=True):
        values = [r[2][name] for r in rows]
        ax.errorbar(
            T,
            [v.value for v in values],
            [v.stderr for v in values],
            fmt="o",
            ms=3,
            label="Monte Carlo",
        )
        if name in exact:
            ax.plot(fine, exact[name][0], "k-", lw=1, label=exact[name][1])
        ax.axvline(T_CRITICAL, color="grey", ls=":", lw=1)
        ax.set(xlabel="T", title=name.replace("_", " "))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
