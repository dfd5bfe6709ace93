"""``genphys ising simulate|exact|compare``: Ising data, exact references, model checks."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from genphys import io


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register ``genphys ising`` and its subcommands."""
    ising = sub.add_parser(
        "ising",
        help="2-D Ising model: Monte Carlo data, exact results, models judged by thermodynamics",
        description="The square-lattice Ising ferromagnet (J = 1, periodic): simulate "
        "datasets, print exact results, compare trained models' samples with Monte Carlo.",
    )
    isub = ising.add_subparsers(
        dest="ising_command", metavar="COMMAND", required=True, parser_class=parser_class
    )
    sim = isub.add_parser(
        "simulate",
        help="Monte Carlo configurations at several temperatures -> .npz",
        description="Checkerboard Metropolis (Swendsen-Wang near T_c with --algorithm auto) "
        "over many chains; burn-in and thinning from measured autocorrelation times.",
    )
    sim.add_argument("--L", type=int, required=True, help="even lattice size")
    sim.add_argument("--T", required=True, help="temperatures: T, T1,T2,... or start:stop:step")
    sim.add_argument("--samples", type=int, default=10000, help="configurations per T")
    sim.add_argument("--out", required=True, help="output .npz file")
    sim.add_argument("--algorithm", default="auto", help="auto, metropolis or swendsen-wang")
    sim.add_argument("--chains", type=int, help="parallel chains (default min(samples, 512))")
    sim.add_argument("--field", type=float, default=0.0, help="magnetic field h")
    sim.add_argument("--thin", type=int, help="sweeps between samples (default: measured tau)")
    sim.add_argument("--burn-in", type=int, help="burn-in sweeps (default: from measured tau)")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    sim.add_argument("--json", action="store_true", help="print one JSON object")

    exact = isub.add_parser(
        "exact",
        help="exact energy and specific heat (Kaufman, Onsager; enumeration for L <= 5)",
        description="Exact results of the L x L torus (Kaufman 1949) and the infinite lattice "
        "(Onsager 1944, Yang 1952); every observable by enumeration for L <= 5.",
    )
    exact.add_argument("--L", type=int, required=True)
    exact.add_argument("--T", required=True, help="temperatures: T, T1,T2,... or start:stop:step")
    exact.add_argument("--json", action="store_true", help="print one JSON object")

    cmp = isub.add_parser(
        "compare",
        help="observables of trained models' samples vs Monte Carlo and exact results",
        description="Sample each run (RBMs by long Gibbs chains with a measured "
        "autocorrelation time), measure energy, |m|, specific heat, susceptibility and Binder "
        "cumulant with errors, and print them beside the Monte Carlo data and exact values "
        "with z-scores; plots each observable against T with the exact curves.",
    )
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    cmp.add_argument("--data", required=True, help="the Ising dataset (.npz) the runs used")
    cmp.add_argument("--n-samples", type=int, default=2000, help="model samples per run")
    cmp.add_argument("--gibbs-steps", type=int, default=2000, help="RBM Gibbs sweeps per chain")
    cmp.add_argument("--seed", type=int, default=0, help="random seed")
    cmp.add_argument("--out", help="directory for the plots (default: beside the data file)")
    cmp.add_argument("--json", action="store_true", help="print one JSON object")


def ising(args: argparse.Namespace) -> int:
    """Dispatch ``genphys ising ...``."""
    return int(
        {"simulate": _simulate, "exact": _exact, "compare": _compare}[args.ising_command](args)
    )


def _simulate(args: argparse.Namespace) -> int:
    from genphys.errors import GenphysError
    from genphys.physics.compare import exact_values
    from genphys.physics.dataset import choose_algorithm, parse_temperatures, simulate
    from genphys.physics.observables import thermodynamics

    out = Path(args.out)
    if out.suffix != ".npz":
        raise GenphysError(f"--out must end in .npz, got {out}")
    io.check_output_dir(out.parent)  # now, not after the simulation
    temps = parse_temperatures(args.T)
    for T in temps:
        choose_algorithm(T, args.algorithm)
    if not isinstance(args.L, int) or args.L < 2 or args.L % 2:
        raise GenphysError(f"--L must be an even integer >= 2, got {args.L}")
    rows: list[dict[str, Any]] = []

    def progress(T: float, info: dict[str, Any]) -> None:
        if not args.json:
            print(
                f"T={T:<6g} {info['algorithm']:<13} tau_e={info['tau_energy']:7.2f} "
                f"tau_|m|={info['tau_abs_magnetization']:7.2f} thin={info['thin']:<4d} "
                f"burn-in={info['burn_in']}",
                flush=True,
            )

    data = simulate(
        args.L,
        temps,
        args.samples,
        n_chains=args.chains,
        seed=args.seed,
        algorithm=args.algorithm,
        field=args.field,
        thin=args.thin,
        burn_in=args.burn_in,
        progress=progress,
    )
    data.save(out)
    for k, T in enumerate(data.temperatures):
        est = thermodynamics(data.energy[k], data.magnetization[k], args.L, T)
        known = exact_values(args.L, T, args.field)["energy"]  # None: no exact result
        exact = math.nan if known is None else known
        rows.append(
            {
                "T": float(T),
                "algorithm": str(data.algorithm[k]),
                "thin": int(data.thin[k]),
                "tau_energy": float(data.tau_energy[k]),
                "tau_abs_magnetization": float(data.tau_abs_magnetization[k]),
                "energy": est["energy"].to_dict(),
                "abs_magnetization": est["abs_magnetization"].to_dict(),
                "exact_energy": exact,
                "z_energy": est["energy"].z_score(exact) if math.isfinite(exact) else None,
            }
        )
    if args.json:
        print(json.dumps(io.json_safe({"out": str(out), "L": args.L, "temperatures": rows})))
        return 0
    print(f"{'T':>6} {'energy/spin':>20} {'exact':>16} {'z':>6} {'|m|':>20}")
    for r in rows:
        e, m = r["energy"], r["abs_magnetization"]
        z = f"{r['z_energy']:6.2f}" if r["z_energy"] is not None else "     -"
        print(
            f"{r['T']:6.3f} {e['value']:11.5f} ± {e['stderr']:.5f} {r['exact_energy']:16.5f} "
            f"{z} {m['value']:11.5f} ± {m['stderr']:.5f}"
        )
    print(f"wrote {out}")
    return 0


def _exact(args: argparse.Namespace) -> int:
    from genphys.errors import GenphysError
    from genphys.physics import ising_exact as ex
    from genphys.physics.dataset import parse_temperatures

    if args.L < 2:
        raise GenphysError(f"--L must be >= 2, got {args.L}")
    rows = []
    for T in parse_temperatures(args.T):
        row: dict[str, Any] = {
            "T": T,
            "energy": float(ex.kaufman_energy(args.L, T)),
            "specific_heat": float(ex.kaufman_specific_heat(args.L, T)),
            "onsager_energy": float(ex.onsager_energy(T)),
            "onsager_specific_heat": float(ex.onsager_specific_heat(T)),
            "onsager_magnetization": float(ex.onsager_magnetization(T)),
        }
        if args.L <= ex.MAX_ENUMERATION_L:  # |m|, chi, Binder: by enumeration
            enum = ex.exact_observables(args.L, T)
            row |= {k: float(enum[k]) for k in ("abs_magnetization", "susceptibility", "binder")}
        rows.append(row)
    if args.json:
        print(json.dumps({"L": args.L, "T_c": ex.T_CRITICAL, "rows": io.json_safe(rows)}))
        return 0
    keys = [k for k in rows[0] if k != "T"]
    print(f"L = {args.L} torus (Kaufman) and infinite lattice (Onsager); T_c = {ex.T_CRITICAL:.6f}")
    print(f"{'T':>7} " + " ".join(f"{k:>21}" for k in keys))
    for r in rows:
        print(f"{r['T']:7.4f} " + " ".join(f"{r[k]:21.12g}" for k in keys))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from genphys.physics.compare import compare_runs, format_table, plot_comparison

    out = Path(args.out) if args.out else Path(args.data).with_suffix("")
    io.check_output_dir(out)  # now, not after sampling every run
    result = compare_runs(
        args.run_dirs,
        args.data,
        n_samples=args.n_samples,
        gibbs_steps=args.gibbs_steps,
        seed=args.seed,
    )
    out.mkdir(parents=True, exist_ok=True)
    figure = plot_comparison(result, out / "compare.png")
    if args.json:
        print(json.dumps(io.json_safe({"runs": result, "figure": str(figure)})))
        return 0
    print(format_table(result))
    print(f"wrote {figure}")
    return 0
