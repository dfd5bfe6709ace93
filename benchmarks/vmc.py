"""Variational Monte Carlo with RBM wavefunctions: speed, time to accuracy, energies vs references.

1. Monte Carlo throughput: walker moves (each with its local energy and the parameter
   derivatives O_k that an optimisation step needs) per second, for P = 2 and P = 6 electrons
   in 2-D (Coulomb, RBM with P hidden units and the Pade-Jastrow factor), importance sampling and
   brute-force Metropolis, at ``--threads`` and at one thread.
2. Time to a 1e-3 relative energy error for two electrons (RBM + Pade-Jastrow, SR): the first
   iteration from which ``--hold`` consecutive per-iteration estimates lie within 1e-3 of the
   exact 3 a.u., then a long evaluation of the final wavefunction.
3. Optimised energies beside the references: two electrons 3.0 a.u. exact (Taut 1993); plain RBM
   about 3.08 and RBM + Pade-Jastrow about 3.00 in published theses; six electrons 20.16 a.u.
   (fermionic diffusion Monte Carlo). The RBM is symmetric, not antisymmetric: exact for the
   two-electron singlet, bosonic-like for six (its minimum lies below the fermionic energy).

    .venv/bin/python benchmarks/vmc.py [--threads 2] [--walkers 256] [--quick]

Timings mean little while other jobs use the CPU: the load average is printed. On a busy
2-core box every torch op large enough to enter the thread pool waits milliseconds for the
second thread, so the one-thread numbers are the ones to trust there.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--walkers", type=int, default=256)
    p.add_argument("--steps", type=int, default=400, help="moves per throughput measurement")
    p.add_argument("--iterations", type=int, default=300, help="optimisation iterations")
    p.add_argument("--hold", type=int, default=5, help="consecutive iterations within 1e-3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="fewer steps and iterations")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    return p.parse_args()


def throughput(particles: int, sampler_name: str, walkers: int, steps: int) -> float:
    from genphys.physics.vmc_run import VMCConfig
    from genphys.physics.walkers import init_state, sample

    cfg = VMCConfig(
        particles=particles, dim=2, hidden=particles, interaction=True, jastrow=True,
        sampler=sampler_name,
    )  # fmt: skip
    wf, ham, sampler = cfg.build()
    state = init_state(wf, walkers, seed=0)
    sample(wf, ham, sampler, state, 0, burn_in=20)
    start = time.perf_counter()
    sample(wf, ham, sampler, state, steps, derivatives=True)
    return walkers * steps / (time.perf_counter() - start)


def time_to_accuracy(args: argparse.Namespace) -> dict[str, float | None]:
    from genphys.physics.vmc import IterationRecord
    from genphys.physics.vmc_run import VMCConfig, run_vmc

    exact, tol = 3.0, 1e-3
    start = time.perf_counter()
    streak: list[float] = []
    reached: dict[str, float | None] = {"seconds": None, "iteration": None}

    def watch(r: IterationRecord) -> None:
        if reached["seconds"] is not None:
            return
        if abs(r.energy.value - exact) < tol * exact:
            streak.append(time.perf_counter() - start)
            if len(streak) == args.hold:
                reached.update(seconds=streak[0], iteration=r.iteration - args.hold + 1)
        else:
            streak.clear()

    cfg = VMCConfig(
        particles=2,
        dim=2,
        hidden=2,
        interaction=True,
        jastrow=True,
        walkers=args.walkers,
        iterations=args.iterations,
        seed=args.seed,
    )
    result = run_vmc(cfg, progress=watch)
    e = result.energy
    return reached | {"energy": e.value, "stderr": e.stderr, "total_seconds": result.seconds}


def energies(args: argparse.Namespace) -> list[dict[str, object]]:
    from genphys.physics.vmc_run import VMCConfig, run_vmc

    rows = []
    for particles, jastrow, published in (
        (2, False, "about 3.08 (plain RBM, published theses)"),
        (2, True, "about 3.00 (RBM + Pade-Jastrow, published theses)"),
        (6, False, "20.16 (fermionic DMC)"),
        (6, True, "20.16 (fermionic DMC)"),
    ):
        cfg = VMCConfig(
            particles=particles,
            dim=2,
            hidden=particles,
            interaction=True,
            jastrow=jastrow,
            walkers=args.walkers,
            iterations=args.iterations,
            seed=args.seed,
        )
        r = run_vmc(cfg)
        ref = r.reference
        rows.append(
            {
                "particles": particles,
                "jastrow": jastrow,
                "energy": r.energy.value,
                "stderr": r.energy.stderr,
                "variance": r.variance,
                "acceptance": r.acceptance,
                "reference": ref.energy if ref else None,
                "reference_source": ref.source if ref else None,
                "published": published,
                "seconds": r.seconds,
            }
        )
    return rows


def main() -> None:
    args = parse_args()
    if args.quick:
        args.steps, args.iterations = 100, 150
    import torch

    load = os.getloadavg()[0]
    out: dict[str, object] = {"threads": args.threads, "load_before": load}
    print(f"load average {load:.2f}; torch {torch.__version__}; walkers {args.walkers}")
    print("\nwalker moves per second (local energy + O_k), 2-D, Coulomb, RBM + Pade-Jastrow")
    rates = []
    for threads in sorted({args.threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        for particles in (2, 6):
            for name in ("importance", "metropolis"):
                rate = throughput(particles, name, args.walkers, args.steps)
                rates.append({"threads": threads, "P": particles, "sampler": name, "rate": rate})
                print(f"  threads {threads}  P = {particles}  {name:<10}  {rate:12,.0f} /s")
    out["throughput"] = rates

    torch.set_num_threads(1)
    print("\nP = 2, RBM + Pade-Jastrow, SR (1 thread): time to a 1e-3 relative error")
    tta = time_to_accuracy(args)
    out["time_to_1e-3"] = tta
    if tta["seconds"] is None:
        print(f"  not reached in {args.iterations} iterations")
    else:
        print(f"  {tta['seconds']:.2f} s (iteration {tta['iteration']}, {args.hold} in a row)")
    print(
        f"  final {tta['energy']:.6f} ± {tta['stderr']:.6f} a.u. after {tta['total_seconds']:.1f} s"
    )

    print("\noptimised energies (1 thread, SR) beside references, a.u.")
    rows = energies(args)
    out["energies"] = rows
    for r in rows:
        ref = f"{r['reference']} {r['reference_source']}" if r["reference"] is not None else "-"
        print(
            f"  P = {r['particles']}  {'RBM + PJ ' if r['jastrow'] else 'plain RBM'}  "
            f"{r['energy']:10.5f} ± {r['stderr']:.5f}  var {r['variance']:.2e}  "
            f"{r['seconds']:5.1f} s   reference {ref}; published {r['published']}"
        )
    print(
        "  (six electrons: the symmetric RBM is bosonic-like, so it may go below the fermionic "
        "20.16)"
    )
    out["load_after"] = os.getloadavg()[0]
    print(f"\nload average after: {out['load_after']:.2f}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
