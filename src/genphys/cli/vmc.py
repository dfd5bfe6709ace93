"""``genphys vmc``: RBM states by variational MC, for electrons in a harmonic trap (``--system
trap``, the default) or the 1-D transverse-field Ising chain (``--system tfim``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genphys.physics.tfim import RBMSpinState
    from genphys.physics.vmc import IterationRecord
    from genphys.physics.wavefunction import Reference

# flag -> (VMCConfig field, type, help); defaults come from VMCConfig
_FLAGS: dict[str, tuple[str, Any, str]] = {
    "particles": ("particles", int, "number of particles P"),
    "dim": ("dim", int, "spatial dimension D"),
    "omega": ("omega", float, "trap frequency"),
    "hidden": ("hidden", int, "hidden units of the RBM (default 2; tfim: the number of spins)"),
    "sigma": ("sigma", float, "visible width (default 1/sqrt(omega), 1/sqrt(2 omega) with --sqrt)"),
    "sampler": ("sampler", str, "metropolis (brute force) or importance (Langevin drift)"),
    "dt": ("dt", float, "time step of importance sampling"),
    "step": ("step", float, "brute-force Metropolis step: moves uniform in [-step/2, step/2]"),
    "walkers": ("walkers", int, "walkers (tfim: Markov chains) moved together"),
    "optimizer": ("optimizer", str, "adam, sgd or sr (stochastic reconfiguration)"),
    "lr": (
        "lr",
        float,
        "learning rate (default 0.02 adam, 0.05 sgd, 0.1 sr; tfim sr at most 0.4/(|J|+|field|))",
    ),
    "iterations": ("iterations", int, "optimisation iterations"),
    "samples": ("samples", int, "walker moves per iteration (walkers x steps; tfim: sweeps)"),
    "final_samples": ("final_samples", int, "walker moves (tfim: sweeps) of the final estimate"),
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
_SYSTEMS = ("trap", "tfim")
_TRAP_ONLY = ("particles", "dim", "omega", "sigma", "sampler", "dt", "step", *_SWITCHES)
# --system tfim: flag -> (type, help, default)
_TFIM_FLAGS: dict[str, tuple[Any, str, Any]] = {
    "spins": (int, "number of spins N of the periodic chain", 10),
    "coupling": (float, "Ising coupling J", 1.0),
    "field": (float, "transverse field Gamma", 1.0),
}


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register ``genphys vmc``."""
    from genphys.physics.vmc_run import VMCConfig

    defaults = VMCConfig().to_dict()
    p = sub.add_parser(
        "vmc",
        help="RBM wavefunctions by variational Monte Carlo: electrons in a trap, Ising chain",
        description="Optimise a Gaussian-binary RBM wavefunction (Carleo & Troyer 2017), "
        "optionally with a Pade-Jastrow factor, for P particles in a D-dimensional harmonic "
        "trap, then estimate its energy with a long chain (error by blocking) and print it "
        "beside the exact or reference energy where one is known. Writes a run directory "
        "only with --out. The ansatz is symmetric: exact for two electrons (the singlet), "
        "bosonic-like for more. With --system tfim: the spin RBM state of the periodic "
        "transverse-field Ising chain H = -J sum sz_i sz_i+1 - Gamma sum sx_i, sampled by "
        "single-spin-flip Metropolis with a global flip per sweep, beside the exact "
        "ground-state energy (exact diagonalization for N <= 16, free fermions beyond).",
    )
    p.add_argument(
        "--system",
        default=None,
        help="trap (electrons in a harmonic trap; default) or tfim (transverse-field Ising "
        "chain; then the trap flags do not apply)",
    )
    for flag, (typ, text, default) in _TFIM_FLAGS.items():
        p.add_argument("--" + flag, type=typ, help=f"{text} (tfim; default {default})")
    for flag, (field, typ, text) in _FLAGS.items():
        default = defaults[field]
        shown = f" (default {default})" if default is not None and "default" not in text else ""
        p.add_argument("--" + flag.replace("_", "-"), dest=field, type=typ, help=text + shown)
    for flag, text in _SWITCHES.items():
        p.add_argument("--" + flag, dest=flag, action="store_true", help=text)
    p.add_argument(
        "--out",
        help="run directory for config.json, parameters.safetensors, history.jsonl, "
        "result.json, energy.png and (trap) sampler_state.safetensors and density.png "
        "(default: none written)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: a walker move is many small tensor operations, which "
        "more threads only slow down)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (written every 10 iterations and "
        "on Ctrl-C) with its own settings; only --iterations may change",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _progress(quiet: bool, iterations: int) -> Callable[[IterationRecord], None]:
    """Print about ten lines of optimisation progress (none with --json)."""
    every = max(1, iterations // 10)

    def progress(r: IterationRecord) -> None:
        if not quiet and (r.iteration % every == 0 or r.iteration == iterations - 1):
            print(
                f"iter {r.iteration:5d}  E = {r.energy}  var {r.variance:.3g}  "
                f"acc {r.acceptance:.2f}",
                flush=True,
            )

    return progress


def vmc(args: argparse.Namespace) -> int:
    """Run ``genphys vmc``; prints the final energy with its standard error."""
    import torch

    from genphys.errors import GenphysError
    from genphys.io import check_output_dir
    from genphys.physics.vmc_checkpoint import interrupt_flag
    from genphys.physics.vmc_run import VMCConfig, run_vmc

    threads = getattr(args, "threads", 1)
    if not isinstance(threads, int) or threads < 1:
        raise GenphysError(f"--threads must be >= 1, got {threads}")
    resume = bool(getattr(args, "resume", False))
    if resume:
        saved = _resumed_settings(args)
        system = "tfim" if "tfim" in saved else "trap"
    else:
        system = getattr(args, "system", None) or "trap"
        if system not in _SYSTEMS:
            raise GenphysError(f"unknown system {system!r}; choose one of {', '.join(_SYSTEMS)}")
        other, foreign = ("trap", _TRAP_ONLY) if system == "tfim" else ("tfim", tuple(_TFIM_FLAGS))
        for flag in foreign:
            value = getattr(args, flag, None)
            if value is not None and value is not False:  # 0 is a value given (0 == False)
                raise GenphysError(f"--{flag} applies to --system {other} only")
        if getattr(args, "out", None):
            check_output_dir(args.out)
    if system == "tfim":
        tfim = _checked_tfim(saved["tfim"]) if resume else _tfim_settings(args)
        if resume and args.iterations is not None:
            tfim["iterations"] = args.iterations
    elif resume:
        config = VMCConfig.from_dict(saved["vmc"])
        if args.iterations is not None:
            config.iterations = args.iterations
    else:
        values = {field: getattr(args, field, None) for field, _, _ in _FLAGS.values()}
        values |= {flag: bool(getattr(args, flag, False)) for flag in _SWITCHES}
        config = VMCConfig.from_dict({k: v for k, v in values.items() if v is not None})
    if system == "trap":
        config.build()  # bad input fails here, before any work
    walkers = tfim["walkers"] if system == "tfim" else config.walkers
    if walkers < 8:  # the walker-spread check of energy_estimate needs 8
        print(
            f"genphys: warning: with {walkers} walkers the error bars rest on blocking short "
            "series alone and can come out too small (2-3x with 2-4 walkers); use --walkers 8 "
            "or more",
            file=sys.stderr,
        )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with interrupt_flag() as stop:  # Ctrl-C: stop between iterations, checkpointed
            if system == "tfim":
                return _tfim(tfim, args, resume, stop)
            progress = _progress(args.json, config.iterations)
            result = run_vmc(config, args.out, progress, resume, stop)
    except KeyboardInterrupt:
        if args.out:
            print(f"stopped with a checkpoint in {args.out} (continue: genphys vmc --resume "
                  f"--out {args.out})", file=sys.stderr)  # fmt: skip
        raise
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


_RESUME_MAY_CHANGE = {"iterations", "out", "threads", "json", "resume"}


def _resumed_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the run in --out (its config.json), which --resume continues."""
    from genphys.errors import GenphysError
    from genphys.io import read_json

    if not getattr(args, "out", None):
        raise GenphysError("--resume continues the run in --out: give its directory")
    given = [
        k
        for k, v in vars(args).items()
        if k not in _RESUME_MAY_CHANGE | {"command", "system"} and v is not None and v is not False
    ]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise GenphysError(
            f"--resume continues the run with its own settings; only --iterations may change "
            f"(got {flags})"
        )
    saved = read_json(Path(args.out) / "config.json")
    if not isinstance(saved, dict) or not ("vmc" in saved or "tfim" in saved):
        raise GenphysError(f"{args.out}/config.json is not a VMC run's configuration")
    system = "tfim" if "tfim" in saved else "trap"
    if getattr(args, "system", None) not in (None, system):
        raise GenphysError(f"{args.out} holds a --system {system} run, not {args.system}")
    return saved


def _checked_tfim(settings: Any) -> dict[str, Any]:
    """A tfim run's settings (a new run's, or a saved one's: config.json may have been
    edited), checked."""
    from genphys.errors import GenphysError
    from genphys.physics.vmc_run import VMCConfig

    if not isinstance(settings, dict):
        raise GenphysError(f"the saved tfim settings must be a mapping, got {settings!r}")
    fields = [f for f, _, _ in _FLAGS.values() if f not in _TRAP_ONLY]
    try:
        VMCConfig.from_dict({f: settings[f] for f in fields}).build()
        spins, J, gamma = settings["spins"], settings["coupling"], settings["field"]
    except KeyError as exc:
        raise GenphysError(f"the saved tfim settings lack {exc}") from None
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (J, gamma))
    if not (numbers and math.isfinite(J) and math.isfinite(gamma)):
        raise GenphysError(f"the coupling and field must be finite, got {J!r} and {gamma!r}")
    if not isinstance(spins, int) or isinstance(spins, bool):
        raise GenphysError(f"the number of spins must be an integer, got {spins!r}")
    if gamma < 0:  # the RBM here is real and positive: no sign structure
        raise GenphysError(
            f"the field must be >= 0, got {gamma}: the spectrum depends on |field| only (a "
            "rotation maps one sign to the other), and a negative field's ground state changes "
            f"sign between configurations, which a real RBM cannot hold; use --field {-gamma}"
        )
    return dict(settings)


def _tfim_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a new tfim run from the flags (checked)."""
    from genphys.physics.vmc_run import VMCConfig

    tfim: dict[str, Any] = {f: getattr(args, f, None) for f in _TFIM_FLAGS}
    tfim = {f: _TFIM_FLAGS[f][2] if v is None else v for f, v in tfim.items()}
    fields = [f for f, _, _ in _FLAGS.values() if f not in _TRAP_ONLY]
    given = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    cfg = VMCConfig.from_dict({"hidden": tfim["spins"]} | given)  # hidden: alpha = 1
    cfg.build()  # the other settings shared with the trap are checked as for the trap
    return _checked_tfim({"system": "tfim"} | tfim | {f: getattr(cfg, f) for f in fields})


def _tfim(
    settings: dict[str, Any], args: argparse.Namespace, resume: bool, stop: Callable[[], bool]
) -> int:
    """``genphys vmc --system tfim``: optimise, evaluate, compare with the exact energy."""
    import time

    from genphys.io import json_safe
    from genphys.physics.tfim import (
        RBMSpinState,
        SpinChains,
        optimize_tfim,
        reference_energy,
        sample_tfim,
    )
    from genphys.physics.vmc import energy_estimate
    from genphys.physics.vmc_checkpoint import load_checkpoint, save_checkpoint, write_config
    from genphys.rng import derive_seed

    cfg = settings  # checked by _checked_tfim
    psi = RBMSpinState(cfg["spins"], cfg["hidden"], derive_seed(cfg["seed"], 0), cfg["init_std"])
    J, gamma = cfg["coupling"], cfg["field"]
    out = Path(args.out) if args.out else None
    chains = done = checkpoint = None
    if out is not None:
        meta = {"tfim": settings, "wavefunction": psi.config()}
        if resume:
            theta, done, tensors = load_checkpoint(out, psi.n_parameters, meta, cfg["iterations"])
            psi.set_parameter_vector(theta.to(psi.dtype))
            chains = SpinChains.from_tensors(tensors)
        write_config(out, meta, resume)  # a resume's new iteration count too

        def checkpoint(p: Any, c: Any) -> None:
            save_checkpoint(out, psi.parameter_vector(), p, c.to_tensors(), meta)

    start = time.perf_counter()
    opt = optimize_tfim(
        psi, J, gamma, cfg["optimizer"], cfg["lr"], cfg["iterations"], cfg["samples"],
        cfg["seed"], cfg["diag_shift"], chains=cfg["walkers"], state=chains,
        equilibration=cfg["equilibration"], burn_in=cfg["burn_in"],
        callback=_progress(args.json, cfg["iterations"]), progress=done,
        checkpoint=checkpoint, stop=stop,
    )  # fmt: skip
    sweeps = max(4, math.ceil(cfg["final_samples"] / cfg["walkers"]))
    if stop():  # a Ctrl-C in the last iteration: the checkpoint is there
        raise KeyboardInterrupt
    final = sample_tfim(psi, opt.chains, J, gamma, sweeps, burn_in=cfg["burn_in"])
    if stop():  # ... or during the evaluation, which a resume redoes
        raise KeyboardInterrupt
    energy = energy_estimate(final.local_energy)
    seconds = time.perf_counter() - start
    ref = reference_energy(psi.N, J, gamma)
    summary = json_safe(
        {
            "system": "tfim",
            "energy": energy.value,
            "stderr": energy.stderr,
            "tau": energy.tau,
            "n": energy.n,
            "variance": float(final.local_energy.var()),
            "acceptance": final.acceptance,
            "reference": ref.energy,
            "reference_exact": ref.exact,
            "reference_source": ref.source,
            "relative_error": (energy.value - ref.energy) / abs(ref.energy) if ref.energy else None,
            "z": energy.z_score(ref.energy),
            "seconds": seconds,
            "config": settings,
            "out": args.out,
        }
    )
    if out is not None:
        _save_tfim(out, settings, psi, opt.history, summary, ref)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"energy {energy} (stderr {energy.stderr:.2g}, tau {energy.tau or 1.0:.2f}, "
        f"{energy.n} samples); variance {summary['variance']:.3g}; "
        f"acceptance {final.acceptance:.2f}; {seconds:.1f} s"
    )
    rel = summary["relative_error"]
    print(
        f"exact {ref.energy:.10g} ({ref.source}); "
        + (f"relative error {rel:.2e}; " if rel is not None else "")
        + f"z = {summary['z']:.2f}"
    )
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _save_tfim(
    out: Path,
    settings: dict[str, Any],
    psi: RBMSpinState,
    history: list[IterationRecord],
    summary: dict[str, Any],
    ref: Reference,
) -> None:
    """The tfim run directory: config, parameters, history, result and the energy figure."""
    from genphys import __version__
    from genphys.io import atomic_write_json, atomic_write_text, json_safe, save_tensors
    from genphys.physics.vmc_run import plot_energy

    out.mkdir(parents=True, exist_ok=True)
    meta = {"tfim": settings, "wavefunction": psi.config(), "genphys_version": __version__}
    atomic_write_json(out / "config.json", meta)
    save_tensors(out / "parameters.safetensors", psi.parameters(), {"format": "genphys-tfim"})
    lines = "".join(json.dumps(json_safe(r.to_dict())) + "\n" for r in history)
    atomic_write_text(out / "history.jsonl", lines)
    atomic_write_json(out / "result.json", summary)
    if history:
        plot_energy(history, out / "energy.png", ref, unit="J")
