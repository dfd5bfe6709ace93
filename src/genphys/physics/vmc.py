r"""Variational Monte Carlo: energy estimates, minimisation and run directories.

The wavefunction, the trap Hamiltonian and the samplers live in
:mod:`genphys.physics.wavefunction`.

* **Estimates** (:func:`energy_estimate`): the mean over walkers x steps, with the standard
  error from a blocking analysis of the walker-averaged series
  (:func:`genphys.evaluation.stats.binning_error`) and the implied autocorrelation time.
* **Optimisation** (:func:`optimize`): the energy gradient
  :math:`2(\langle E_L O_k\rangle - \langle E_L\rangle\langle O_k\rangle)`,
  :math:`O_k = \partial\ln\Psi/\partial\theta_k`, then plain gradient descent, Adam, or
  stochastic reconfiguration :math:`\delta\theta = -\eta (S + \epsilon I)^{-1} f` with
  :math:`S_{kl} = \mathrm{cov}(O_k, O_l)` and :math:`f_k = \mathrm{cov}(E_L, O_k)`.
  At an exact eigenstate :math:`E_L` is constant: zero variance, zero gradient.
* **Runs** (:class:`VMCConfig`, :func:`run_vmc`): optimise, evaluate with a long chain, and
  optionally write a run directory: ``config.json``, ``parameters.safetensors``,
  ``sampler_state.safetensors``, ``history.jsonl`` (one line per iteration), ``result.json``,
  ``energy.png`` (energy ± error against iteration, reference line) and ``density.png``
  (one-body radial density of the final samples).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genphys.errors import GenphysError, TrainingDiverged
from genphys.evaluation.stats import Estimate, binning_error
from genphys.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    json_safe,
    load_tensors,
    read_json,
    save_tensors,
)
from genphys.physics.walkers import (
    SAMPLERS,
    ImportanceSampling,
    Metropolis,
    Sampler,
    SamplerState,
    init_state,
    sample,
)
from genphys.physics.wavefunction import (
    DTYPE,
    HarmonicTrap,
    RBMWavefunction,
    Reference,
    reference_energy,
)
from genphys.rng import derive_seed

OPTIMIZERS = ("adam", "sgd", "sr")

DEFAULT_LR = {"adam": 0.02, "sgd": 0.05, "sr": 0.1}


def energy_estimate(local_energy: Tensor) -> Estimate:
    r"""Mean of ``(T, W)`` local energies with its standard error.

    The walkers are independent, so the walker-averaged series is blocked
    (:func:`~genphys.evaluation.stats.binning_error`). The error is floored at the naive
    :math:`\sigma/\sqrt{TW}`: a positively correlated chain never has less, and blocking a short
    series (the few steps of one optimisation iteration) can return much less by chance.
    ``tau`` is the variance inflation :math:`TW\,\mathrm{se}^2/\sigma^2`.
    """
    if local_energy.ndim != 2 or local_energy.shape[0] < 4:
        raise GenphysError(f"need local energies (steps >= 4, walkers), got {local_energy.shape}")
    n = local_energy.numel()
    var = float(local_energy.var()) if n > 1 else 0.0
    se = max(binning_error(local_energy.mean(1)).stderr, math.sqrt(var / n))
    return Estimate(float(local_energy.mean()), se, n=n, tau=n * se**2 / var if var > 0 else 1.0)


# ---------------------------------------------------------------------- optimisation
@dataclasses.dataclass(frozen=True)
class IterationRecord:
    """One optimisation step: the energy estimate of the parameters before the update."""

    iteration: int
    energy: Estimate
    variance: float
    acceptance: float
    grad_norm: float

    def to_dict(self) -> dict[str, Any]:
        e = self.energy
        return {
            "iteration": self.iteration,
            "energy": e.value,
            "stderr": e.stderr,
            "tau": e.tau,
            "variance": self.variance,
            "acceptance": self.acceptance,
            "grad_norm": self.grad_norm,
        }


@dataclasses.dataclass
class Optimization:
    """What :func:`optimize` returns: one record per iteration and the chain, to continue."""

    history: list[IterationRecord]
    state: SamplerState


class ParameterUpdate:
    """The optimizer step of VMC from local energies ``e`` (samples,) and log-derivatives
    ``o`` (samples, parameters): plain gradient descent, Adam (beta 0.9, 0.999) or stochastic
    reconfiguration, :math:`\\delta\\theta = -\\eta(S + \\epsilon I)^{-1}f` with
    :math:`S = \\mathrm{cov}(O^*, O)` and :math:`f = \\mathrm{cov}(O^*, E_L)`, half the energy
    gradient. Complex parameters (spin states) work: O is conjugated where the formulas say."""

    def __init__(self, method: str, lr: float, n: int, dtype: torch.dtype, diag_shift: float):
        self.method, self.lr, self.diag_shift, self.dtype = method, lr, diag_shift, dtype
        self.m = torch.zeros(n, dtype=dtype)  # Adam moments
        self.v = torch.zeros(n, dtype=DTYPE)

    def __call__(self, it: int, e: Tensor, o: Tensor) -> tuple[Tensor, Tensor]:
        """(parameter change, energy gradient); raises TrainingDiverged on NaN/Inf input."""
        if not (torch.isfinite(e).all() and torch.isfinite(o).all()):
            raise TrainingDiverged(f"VMC diverged at iteration {it}: non-finite energy; lower lr")
        oc = o - o.mean(0)
        force = oc.conj().T @ (e - e.mean()) / e.numel()  # cov(O*, E_L): half the gradient
        grad = 2 * force
        if self.method == "sgd":
            return -self.lr * grad, grad
        if self.method == "adam":
            self.m.mul_(0.9).add_(0.1 * grad)
            self.v.mul_(0.999).add_(0.001 * grad.abs() ** 2)
            v_hat = self.v / (1 - 0.999 ** (it + 1)) + 1e-16  # eps = 1e-8, inside the root
            return -self.lr * self.m / (1 - 0.9 ** (it + 1)) * v_hat.rsqrt(), grad
        eye = torch.eye(o.shape[1], dtype=self.dtype)
        s = oc.conj().T @ oc / e.numel() + self.diag_shift * eye
        return -self.lr * torch.linalg.solve(s, force), grad


def optimize(
    wavefunction: RBMWavefunction,
    hamiltonian: HarmonicTrap,
    sampler: Sampler,
    method: str = "sr",
    lr: float | None = None,
    iterations: int = 100,
    samples_per_iteration: int = 4096,
    seed: int = 0,
    *,
    walkers: int = 256,
    state: SamplerState | None = None,
    equilibration: int = 100,
    burn_in: int = 2,
    diag_shift: float = 1e-3,
    callback: Callable[[IterationRecord], None] | None = None,
) -> Optimization:
    """Minimise the energy of ``wavefunction`` in place.

    Each iteration takes ``burn_in`` + ``ceil(samples_per_iteration / walkers)`` (at least 4)
    moves of every walker, records the energy of the current parameters (:class:`IterationRecord`)
    and updates them by ``method``: ``"sgd"``, ``"adam"`` (betas 0.9, 0.999) or ``"sr"``
    (stochastic reconfiguration, ``diag_shift`` added to the diagonal of ``S``); ``lr = None``
    takes :data:`DEFAULT_LR`. Pass ``state`` to continue an earlier chain (``seed``,
    ``walkers`` and ``equilibration`` are then unused). Non-finite energies or parameters raise
    :class:`~genphys.errors.TrainingDiverged`.
    """
    if method not in OPTIMIZERS:
        raise GenphysError(f"unknown optimizer {method!r}; choose one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[method] if lr is None else lr
    if not (math.isfinite(lr) and lr > 0):
        raise GenphysError(f"the learning rate must be > 0, got {lr}")
    if iterations < 0 or samples_per_iteration < 1 or diag_shift < 0:
        raise GenphysError("iterations >= 0, samples >= 1 and diag_shift >= 0 are required")
    if state is None:
        state = init_state(wavefunction, walkers, derive_seed(seed, 1))
        sample(wavefunction, hamiltonian, sampler, state, 0, burn_in=equilibration)
    steps = max(4, math.ceil(samples_per_iteration / state.walkers))
    n = wavefunction.n_parameters
    update = ParameterUpdate(method, lr, n, DTYPE, diag_shift)
    history: list[IterationRecord] = []
    for it in range(iterations):
        smp = sample(
            wavefunction, hamiltonian, sampler, state, steps, burn_in=burn_in, derivatives=True
        )
        assert smp.log_derivatives is not None
        e = smp.local_energy.reshape(-1)
        delta, grad = update(it, e, smp.log_derivatives.reshape(-1, n))
        record = IterationRecord(
            it,
            energy_estimate(smp.local_energy),
            float(e.var()),
            smp.acceptance,
            float(grad.norm()),
        )
        history.append(record)
        theta = wavefunction.parameter_vector() + delta
        if not torch.isfinite(theta).all():
            raise TrainingDiverged(
                f"VMC diverged at iteration {it}: non-finite parameters; lower lr"
            )
        wavefunction.set_parameter_vector(theta)
        if callback is not None:
            callback(record)
    state.refresh(wavefunction)
    return Optimization(history, state)


# ---------------------------------------------------------------------- runs
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
) -> VMCResult:
    """Optimise, evaluate with ``final_samples`` moves, and write ``out`` when given."""
    wf, ham, sampler = config.build()
    start = time.perf_counter()
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
    )
    steps = max(4, math.ceil(config.final_samples / config.walkers))
    final = sample(wf, ham, sampler, opt.state, steps, burn_in=config.burn_in, radii=True)
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
