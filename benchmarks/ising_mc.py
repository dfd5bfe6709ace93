"""Ising Monte Carlo benchmark: checkerboard Metropolis throughput, cluster decorrelation.

1. Spin-flip attempts per second of genphys' checkerboard Metropolis (L = 32, 512 chains,
   T_c) beside a careful NumPy checkerboard Metropolis written here as the baseline (one
   core: neighbour sums and one float32 uniform for the active sublattice only, acceptance
   from a table, int8 spins; genphys adds a coin every eighth sweep for zero-cost flips), and
   genphys at one thread too. Targets: at least 3e8 attempts per second and at least 10x
   the baseline.
2. Decorrelation at T_c, L = 32: integrated autocorrelation time of |m| in sweeps for
   Metropolis and Swendsen-Wang, the time per sweep of each, and so the CPU time per
   independent sample::

    .venv/bin/python benchmarks/ising_mc.py [--threads 2] [--chains 512] [--L 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--L", type=int, default=32)
    p.add_argument("--chains", type=int, default=512)
    p.add_argument("--sweeps", type=int, default=400, help="timed sweeps (genphys)")
    p.add_argument("--tau-chains", type=int, default=32, help="chains for the tau runs")
    p.add_argument("--metropolis-sweeps", type=int, default=20000)
    p.add_argument("--sw-sweeps", type=int, default=1500)
    return p.parse_args()


def numpy_baseline(L: int, chains: int, T: float, sweeps: int) -> float:
    """Attempts per second of a careful NumPy checkerboard Metropolis (one core): per half
    sweep, only the active sublattice's neighbour sums (gathers by precomputed indices), one
    float32 uniform per active site, acceptance probabilities from a 5-entry table."""
    rng = np.random.default_rng(0)
    n = L * L
    s = rng.choice(np.array([-1, 1], dtype=np.int8), size=(chains, n))
    i, j = np.divmod(np.arange(n), L)
    neighbours = [
        ((i + di) % L) * L + (j + dj) % L for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
    ]
    halves = []
    for colour in (0, 1):
        active = np.nonzero((i + j) % 2 == colour)[0]
        halves.append((active, [nb[active] for nb in neighbours]))
    table = np.exp(-np.arange(-8, 9, 4) / T).astype(np.float32)  # dE = -8, -4, 0, 4, 8

    def sweep() -> None:
        for active, (up, down, right, left) in halves:
            spins = s[:, active]
            nn = s[:, up] + s[:, down] + s[:, right] + s[:, left]
            d_e = 2 * spins * nn  # int8: |dE| <= 8
            accept = rng.random(spins.shape, dtype=np.float32) < table[(d_e + 8) // 4]
            s[:, active] = np.where(accept, -spins, spins)

    sweep()
    t0 = time.perf_counter()
    for _ in range(sweeps):
        sweep()
    return sweeps * chains * n / (time.perf_counter() - t0)


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from genphys.kernels import compiler_available
    from genphys.physics.ising import Metropolis, SwendsenWang, init_state
    from genphys.physics.ising_exact import T_CRITICAL
    from genphys.physics.observables import measured_tau

    L, C, T = args.L, args.chains, T_CRITICAL
    print(
        f"L={L}, {C} chains, T=T_c={T:.4f}, {args.threads} threads; "
        f"torch.compile available: {compiler_available()}"
    )
    base = numpy_baseline(L, C, T, max(10, args.sweeps // 20))
    print(f"NumPy checkerboard baseline (1 core):   {base:10.3g} attempts/s")

    rates = {}
    for compile_, threads in ((False, args.threads), (True, 1), (True, args.threads)):
        torch.set_num_threads(threads)
        sampler = Metropolis(T, compile=compile_)
        state = init_state(L, C, seed=0)
        t0 = time.perf_counter()
        sampler.sweep_(state, 2)  # warm-up (compiles, or loads the compiled kernel)
        warm = time.perf_counter() - t0
        n = args.sweeps if compile_ else max(10, args.sweeps // 10)
        t0 = time.perf_counter()
        sampler.sweep_(state, n)
        rate = rates[compile_, threads] = n * C * L * L / (time.perf_counter() - t0)
        name = f"{'compiled' if compile_ else 'eager'}, {threads} thr"
        print(
            f"genphys Metropolis ({name:13}): {rate:10.3g} attempts/s "
            f"({rate / base:5.1f}x baseline; warm-up {warm:.1f} s)"
        )
    torch.set_num_threads(args.threads)
    best = rates[True, args.threads]
    ok_rate, ok_ratio = best >= 3e8, best / base >= 10
    print(
        f"target >= 3e8 attempts/s: {'PASS' if ok_rate else 'FAIL'} ({best:.3g}); "
        f">= 10x baseline: {'PASS' if ok_ratio else 'FAIL'} ({best / base:.1f}x)"
    )

    print(f"\ndecorrelation at T_c, L={L}, {args.tau_chains} chains (tau of |m| in sweeps):")
    rows = []
    for name, sampler, sweeps, burn in (
        ("Metropolis", Metropolis(T), args.metropolis_sweeps, 2000),
        ("Swendsen-Wang", SwendsenWang(T), args.sw_sweeps, 100),
    ):
        state = init_state(L, args.tau_chains, seed=1)
        sampler.sweep_(state, burn)
        t0 = time.perf_counter()
        e, m = sampler.run(state, sweeps)
        per_sweep = (time.perf_counter() - t0) / sweeps
        tau_m, tau_e = measured_tau(np.abs(m)), measured_tau(e)
        rows.append((name, tau_m, tau_e, per_sweep))
        ok = "ok" if sweeps >= 50 * tau_m else "chain shorter than 50 tau: tau underestimated"
        print(
            f"  {name:14} tau_|m| = {tau_m:8.2f}  tau_e = {tau_e:7.2f}  "
            f"{per_sweep * 1e3:8.3f} ms/sweep ({args.tau_chains} chains)  "
            f"{tau_m * per_sweep * 1e3:8.3f} ms per independent |m| sample  [{ok}]"
        )
    (_, tm, _, pm), (_, ts, _, ps) = rows
    print(
        f"Swendsen-Wang decorrelates |m| in {tm / ts:.1f}x fewer sweeps; "
        f"{tm * pm / (ts * ps):.2f}x less time per independent sample"
    )


if __name__ == "__main__":
    main()
