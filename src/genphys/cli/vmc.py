"""``genphys vmc``: an RBM wavefunction for electrons in a harmonic trap, by variational MC."""

from __future__ import annotations

import argparse
import json
from typing import Any

# flag -> (VMCConfig field, type, help); defaults come from VMCConfig
_FLAGS: dict[str, tuple[str, Any, str]] = {
    "particles": ("particles", int, "number of particles P"),
    "dim": ("dim", int, "spatial dimension D"),
    "omega": ("omega", float, "trap frequency"),
    "hidden": ("hidden", int, "hidden units of the RBM"),
    "sigma": ("sigma", float, "visible width (default 1/sqrt(omega), 1/sqrt(2 omega) with --sqrt)"),
    "sampler": ("sampler", str, "metropolis (brute force) or importance (Langevin drift)"),
    "dt": ("dt", float, "time step of importance sampling"),
    "step": ("step", float, "brute-force Metropolis step: moves uniform in [-step/2, step/2]"),
    "walkers": ("walkers", int, "walkers moved together"),
    "optimizer": ("optimizer", str, "adam, sgd or sr (stochastic reconfiguration)"),
    "lr": ("lr", float, "learning rate (default 0.02 adam, 0.05 sgd, 0.1 sr)"),
    "iterations": ("iterations", int, "optimisation iterations"),
    "samples": ("samples", int, "walker moves per iteration (walkers x steps)"),
    "final_samples": ("final_samples", int, "walker moves of the final energy evaluation"),
    "equilibration": ("equilibration", int, "moves of every walker before the first iteration"),
    "burn_in": ("burn_in", int, "unrecorded moves of every walker after each update"),
    "diag_shift": ("diag_shift", float, "diagonal shift of the SR matrix"),
    "init_std": ("init_std", float, "standard deviation of the initial parameters"),
    "seed": ("seed", int, "random seed"),
}
_SWITCHES = {
    "interaction": "Coulomb repulsion 1/r_ij between the particles",
    "jastrow": "multiply by the Pade-Jastrow factor exp(sum r/(D-1) / (1 + beta r))",
    "sqrt": "Psi = sqrt(F_rbm) instead of F_rbm",
}


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register ``genphys vmc``."""
    from genphys.physics.vmc import VMCConfig

    defaults = VMCConfig().to_dict()
    p = sub.add_parser(
        "vmc",
        help="RBM wavefunction of electrons in a harmonic trap by variational Monte Carlo",
        description="Optimise a Gaussian-binary RBM wavefunction (Carleo & Troyer 2017), "
        "optionally with a Pade-Jastrow factor, for P particles in a D-dimensional harmonic "
        "trap, then estimate its energy with a long chain (error by blocking) and print it "
        "beside the exact or reference energy where one is known. Writes a run directory "
        "only with --out. The ansatz is symmetric: exact for two electrons (the singlet), "
        "bosonic-like for more.",
    )
    for flag, (field, typ, text) in _FLAGS.items():
        default = defaults[field]
        shown = f" (default {default})" if default is not None and "default" not in text else ""
        p.add_argument("--" + flag.replace("_", "-"), dest=field, type=typ, help=text + shown)
    for flag, text in _SWITCHES.items():
        p.add_argument("--" + flag, dest=flag, action="store_true", help=text)
    p.add_argument(
        "--out",
        help="run directory for config.json, parameters.safetensors, history.jsonl, "
        "result.json, energy.png and density.png (default: none written)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: a walker move is many small tensor operations, which "
        "more threads only slow down)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def vmc(args: argparse.Namespace) -> int:
    """Run ``genphys vmc``; prints the final energy with its standard error."""
    import torch

    from genphys.errors import GenphysError
    from genphys.physics.vmc import IterationRecord, VMCConfig, run_vmc

    threads = getattr(args, "threads", 1)
    if not isinstance(threads, int) or threads < 1:
        raise GenphysError(f"--threads must be >= 1, got {threads}")

    values = {field: getattr(args, field, None) for field, _, _ in _FLAGS.values()}
    values |= {flag: bool(getattr(args, flag, False)) for flag in _SWITCHES}
    config = VMCConfig.from_dict({k: v for k, v in values.items() if v is not None})
    config.build()  # bad input fails here, before any work
    every = max(1, config.iterations // 10)

    def progress(r: IterationRecord) -> None:
        if not args.json and (r.iteration % every == 0 or r.iteration == config.iterations - 1):
            print(
                f"iter {r.iteration:5d}  E = {r.energy}  var {r.variance:.3g}  "
                f"acc {r.acceptance:.2f}",
                flush=True,
            )

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = run_vmc(config, out=args.out, progress=progress)
    finally:
        torch.set_num_threads(previous)
    summary = result.to_dict() | {"out": args.out}
    if args.json:
        print(json.dumps(summary))
        return 0
    e = result.energy
    print(
        f"energy {e} a.u. (stderr {e.stderr:.2g}, tau {e.tau or 1.0:.2f}, {e.n} samples); "
        f"variance {result.variance:.3g}; acceptance {result.acceptance:.2f}; "
        f"{result.seconds:.1f} s"
    )
    ref = result.reference
    if ref is not None:
        print(f"reference {ref.energy:g} a.u. ({ref.source}); z = {e.z_score(ref.energy):.2f}")
    if args.out:
        print(f"wrote {args.out}")
    return 0
