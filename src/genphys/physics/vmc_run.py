r"""Variational Monte Carlo runs: configuration, optimisation then a long evaluation chain, and
run directories (built on :mod:`genphys.physics.vmc`).

Optimise, evaluate with a long chain, and
  optionally write a run directory: ``config.json`` (first), ``checkpoint.safetensors``
  (every few iterations, and on Ctrl-C: what ``--resume`` continues), ``parameters.safetensors``,
  ``sampler_state.safetensors``, ``history.jsonl`` (one line per iteration), ``result.json``,
  ``energy.png`` (energy ± error against iteration, reference line) and ``density.png``
  (one-body radial density of the final samples).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from genphys.errors import GenphysError
from genphys.evaluation.stats import Estimate
from genphys.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    json_safe,
    load_tensors,
    read_json,
    save_tensors,
)
from genphys.physics.vmc import (
    OPTIMIZERS,
    IterationRecord,
    Progress,
    energy_estimate,
    optimize,
)
from genphys.physics.vmc_checkpoint import load_checkpoint, save_checkpoint, write_config
from genphys.physics.walkers import (
    SAMPLERS,
    ImportanceSampling,
    Metropolis,
    Sampler,
    SamplerState,
    sample,
)
from genphys.physics.wavefunction import (
    HarmonicTrap,
    RBMWavefunction,
    Reference,
    reference_energy,
)
from genphys.rng import derive_seed


@dataclasses.dataclass
class VMCConfig:
    """Everything a VMC run needs (``config.json`` holds :meth:`to_dict`).

    ``samples`` and ``final_samples`` count walker moves (walkers x steps) per optimisation
    iteration and in the final evaluation; ``lr = None`` takes the optimizer's default.
    """

    particles: int = 2
    dim: int = 2
    omega: float = 1.0
    hidden: int = 2
    interaction: bool = False
    jastrow: bool = False
    sqrt: bool = False
    sigma: float | None = None
    sampler: str = "importance"
    dt: float = 0.3
    step: float = 2.0
    walkers: int = 256
    optimizer: str = "sr"
    lr: float | None = None
    iterations: int = 200
    samples: int = 4096
    final_samples: int = 2**17
    equilibration: int = 100
    burn_in: int = 2
    diag_shift: float = 1e-3
    init_std: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VMCConfig:
        try:
            return cls(**d)
        except TypeError as exc:
            raise GenphysError(f"malformed VMC configuration: {exc}") from None

    def build(self) -> tuple[RBMWavefunction, HarmonicTrap, Sampler]:
        """Validate, then make the wavefunction, Hamiltonian and sampler."""
        for f in dataclasses.fields(self):  # a hand-edited config.json may hold anything
            value, kind = getattr(self, f.name), str(f.type)
            flag = isinstance(value, (bool, np.bool_))
            if value is None and "None" in kind:
                continue
            if kind.startswith("float") and isinstance(value, numbers.Real) and not flag:
                value = float(value)  # NumPy scalars and ints too, stored as Python floats
            elif kind == "int" and isinstance(value, numbers.Integral) and not flag:
                value = int(value)
            elif kind == "bool" and (
                flag or (isinstance(value, numbers.Integral) and value in (0, 1))
            ):
                value = bool(value)
            elif not (kind == "str" and isinstance(value, str)):
                what = {"int": "an integer", "bool": "true or false", "str": "a string"}
                raise GenphysError(f"{f.name} must be {what.get(kind, 'a number')}, got {value!r}")
            setattr(self, f.name, value)
        for name in ("walkers", "samples", "final_samples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise GenphysError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("iterations", "equilibration", "burn_in"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise GenphysError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise GenphysError(f"unknown optimizer {self.optimizer!r}; choose {OPTIMIZERS}")
        if self.sampler not in SAMPLERS:
            raise GenphysError(f"unknown sampler {self.sampler!r}; choose {SAMPLERS}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise GenphysError(f"the learning rate must be > 0, got {self.lr}")
        if not (math.isfinite(self.diag_shift) and self.diag_shift >= 0):
            raise GenphysError(f"diag_shift must be >= 0, got {self.diag_shift}")
        for name in ("omega", "sigma", "dt", "step"):  # beyond these, exp and 1/x overflow
            value = getattr(self, name, None)
            if value is not None and value > 0 and not 1e-6 <= value <= 1e6:
                raise GenphysError(f"{name} must lie between 1e-6 and 1e6, got {value}")
        if self.interaction and self.dim < 2 and self.particles > 1:
            raise GenphysError("the Coulomb interaction needs dim >= 2 (1/|x| diverges in 1-D)")
        wf = RBMWavefunction(
            self.particles,
            self.dim,
            self.hidden,
            omega=self.omega,
            sigma=self.sigma,
            sqrt=self.sqrt,
            jastrow=self.jastrow,
            init_std=self.init_std,
            seed=derive_seed(self.seed, 0),
        )
        importance, metropolis = ImportanceSampling(self.dt), Metropolis(self.step)
        sampler: Sampler = importance if self.sampler == "importance" else metropolis
        return wf, HarmonicTrap(self.omega, self.interaction), sampler


@dataclasses.dataclass
class VMCResult:
    """A finished run: the final energy (long chain, blocking error) and everything behind it."""

    config: VMCConfig
    energy: Estimate
    variance: float
    acceptance: float
    reference: Reference | None
    history: list[IterationRecord]
    wavefunction: RBMWavefunction
    state: SamplerState
    radii: Tensor
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The summary ``--json`` prints and ``result.json`` holds (no history)."""
        ref = self.reference
        return json_safe(
            {
                "energy": self.energy.value,
                "stderr": self.energy.stderr,
                "tau": self.energy.tau,
                "n": self.energy.n,
                "variance": self.variance,
                "acceptance": self.acceptance,
                "reference": ref.energy if ref else None,
                "reference_exact": ref.exact if ref else None,
                "reference_source": ref.source if ref else None,
                "z": self.energy.z_score(ref.energy) if ref else None,
                "seconds": self.seconds,
                "config": self.config.to_dict(),
            }
        )


def run_vmc(
    config: VMCConfig,
    out: str | Path | None = None,
    progress: Callable[[IterationRecord], None] | None = None,
    resume: bool = False,
    stop: Callable[[], bool] | None = None,
    checkpoint_every: int = 10,
) -> VMCResult:
    """Optimise, evaluate with ``final_samples`` moves, and write ``out`` when given.

    With ``out`` the run directory gets ``config.json`` first and a checkpoint every
    ``checkpoint_every`` iterations (:mod:`~genphys.physics.vmc_checkpoint`: parameters,
    Adam's moments, the records so far and the walkers with their generator); ``resume``
    continues from it
    exactly, to ``config.iterations`` (which may be more than before). ``stop()``, asked after
    each iteration, ends the run there with a checkpoint (KeyboardInterrupt; Ctrl-C in the CLI).
    """
    wf, ham, sampler = config.build()
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise GenphysError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
    start = time.perf_counter()
    state, done, checkpoint = None, None, None
    if out is not None:
        out = Path(out)
        settings = {"vmc": config.to_dict(), "wavefunction": wf.config()}
        if resume:
            theta, done, chains = load_checkpoint(out, wf.n_parameters, settings, config.iterations)
            wf.set_parameter_vector(theta)
            state = SamplerState.from_tensors(chains, wf)
        write_config(out, settings, resume)  # a resume's new iteration count too

        def checkpoint(p: Progress, s: SamplerState) -> None:
            save_checkpoint(out, wf.parameter_vector(), p, s.to_tensors(), settings)

    elif resume:
        raise GenphysError("resume needs the run directory (out)")
    opt = optimize(
        wf,
        ham,
        sampler,
        config.optimizer,
        config.lr,
        config.iterations,
        config.samples,
        config.seed,
        walkers=config.walkers,
        equilibration=config.equilibration,
        burn_in=config.burn_in,
        diag_shift=config.diag_shift,
        callback=progress,
        state=state,
        progress=done,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        stop=stop,
    )
    steps = max(4, math.ceil(config.final_samples / config.walkers))
    if stop is not None and stop():  # a Ctrl-C in the last iteration: the checkpoint is there
        raise KeyboardInterrupt
    final = sample(wf, ham, sampler, opt.state, steps, burn_in=config.burn_in, radii=True)
    if stop is not None and stop():  # ... or during the evaluation, which a resume redoes
        raise KeyboardInterrupt
    assert final.radii is not None
    result = VMCResult(
        config,
        energy_estimate(final.local_energy),
        float(final.local_energy.var()),
        final.acceptance,
        reference_energy(config.particles, config.dim, config.omega, config.interaction),
        opt.history,
        wf,
        opt.state,
        final.radii,
        time.perf_counter() - start,
    )
    if out is not None:
        save_run(out, result)
    return result


def save_run(out: str | Path, result: VMCResult) -> Path:
    """Write the run directory (every file atomically)."""
    from genphys import __version__

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wf = result.wavefunction
    meta = {"vmc": result.config.to_dict(), "wavefunction": wf.config()}
    atomic_write_json(out / "config.json", meta | {"genphys_version": __version__})
    save_tensors(out / "parameters.safetensors", wf.state_dict(), {"format": "genphys-vmc"})
    save_tensors(out / "sampler_state.safetensors", result.state.to_tensors())
    lines = "".join(json.dumps(json_safe(r.to_dict())) + "\n" for r in result.history)
    atomic_write_text(out / "history.jsonl", lines)
    atomic_write_json(out / "result.json", result.to_dict())
    if result.history:
        plot_energy(result.history, out / "energy.png", result.reference)
    plot_density(result.radii, wf.dim, result.config.omega, out / "density.png")
    return out


def load_run(run_dir: str | Path) -> tuple[VMCConfig, RBMWavefunction]:
    """The configuration and optimised wavefunction of a run directory (the chain, to continue
    it, is ``SamplerState.from_tensors(load_tensors(run_dir / "sampler_state.safetensors"), wf)``).
    """
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json")
    if not isinstance(cfg, dict) or "vmc" not in cfg:
        raise GenphysError(f"{run_dir / 'config.json'} is not a VMC run configuration")
    config = VMCConfig.from_dict(cfg["vmc"])
    wf = config.build()[0]
    wf.load_state_dict(load_tensors(run_dir / "parameters.safetensors"))
    return config, wf


# ---------------------------------------------------------------------- figures
def plot_energy(
    history: list[IterationRecord],
    path: str | Path,
    reference: Reference | None,
    unit: str = "a.u.",
) -> None:
    """Energy ± standard error against iteration (all, and the second half) with the reference;
    ``unit`` labels the axis (atomic units for electrons, J for spin chains)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [r.iteration for r in history]
    e = [r.energy.value for r in history]
    se = [r.energy.stderr for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, lo, title in zip(axes, (0, len(history) // 2), ("energy", "second half"), strict=True):
        ax.errorbar(it[lo:], e[lo:], yerr=se[lo:], fmt=".", ms=3, elinewidth=0.8, label="VMC")
        if reference is not None:
            ax.axhline(reference.energy, color="k", ls="--", lw=1, label=reference.source)
        ax.set(xlabel="iteration", ylabel=f"energy ({unit})", title=title)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_density(radii: Tensor, dim: int, omega: float, path: str | Path) -> None:
    """Histogram of every particle's distance from the trap centre, beside the density
    :math:`P(r) \\propto r^{D-1}e^{-\\omega r^2}` of the non-interacting ground state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    r = radii.reshape(-1).numpy()
    grid = np.linspace(0, float(r.max()), 300)
    exact = (
        2 * omega ** (dim / 2) * grid ** (dim - 1) * np.exp(-omega * grid**2) / math.gamma(dim / 2)
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(r, bins=100, density=True, histtype="step", label="VMC, all particles")
    ax.plot(grid, exact, "--", label="non-interacting ground state")
    ax.set(xlabel="r (a.u.)", ylabel="one-body radial density P(r)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
