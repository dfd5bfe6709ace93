"""Two electrons in a 2-D harmonic trap: RBM wavefunctions by variational Monte Carlo.

The Carleo-Troyer RBM ansatz for continuous particles, alone and with a Pade-Jastrow factor
for the electron-electron cusp, is optimized by stochastic reconfiguration; its energy is
then estimated from a long chain (blocking error) beside the exact ground-state energy,
3 a.u. at omega = 1 (Taut 1993). The RBM alone stays about 3% above it; with the Jastrow
factor the energy is exact within its error bar, and the local energy nearly constant::

    python examples/vmc_quantum_dot.py [--iterations 200] [--out examples/out/vmc]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genphys.physics.vmc_run import VMCConfig, plot_energy, run_vmc


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--final-samples", type=int, default=2**17, help="moves of the estimate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples/out/vmc")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    result = {}
    for name, jastrow in (("rbm", False), ("rbm+jastrow", True)):
        config = VMCConfig(
            particles=2,
            dim=2,
            hidden=2,
            interaction=True,
            jastrow=jastrow,
            iterations=args.iterations,
            final_samples=args.final_samples,
            seed=args.seed,
        )
        run = run_vmc(config)
        ref = run.reference
        assert ref is not None
        e = run.energy
        print(
            f"{name:>12}: E = {e} a.u. (exact {ref.energy:g}; {e.z_score(ref.energy):+.1f} "
            f"standard errors), variance of E_L {run.variance:.2e}"
        )
        plot_energy(run.history, out / f"energy-{name}.png", ref)
        result[name] = {
            "energy": e.value,
            "stderr": e.stderr,
            "variance": run.variance,
            "exact": ref.energy,
        }
    print(f"wrote {out}/energy-*.png")
    return result


if __name__ == "__main__":
    main()
