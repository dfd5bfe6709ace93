r"""Variational Monte Carlo: energy estimates and minimisation.

The wavefunction, the trap Hamiltonian and the samplers live in
:mod:`genphys.physics.wavefunction`, runs and their directories in :mod:`genphys.physics.vmc_run`.

* **Estimates** (:func:`energy_estimate`): the mean over walkers x steps, with the standard
  error from a blocking analysis of the walker-averaged series
  (:func:`genphys.evaluation.stats.binning_error`) and the implied autocorrelation time.
* **Optimisation** (:func:`optimize`): the energy gradient
  :math:`2(\langle E_L O_k\rangle - \langle E_L\rangle\langle O_k\rangle)`,
  :math:`O_k = \partial\ln\Psi/\partial\theta_k`, then plain gradient descent, Adam, or
  stochastic reconfiguration :math:`\delta\theta = -\eta (S + \epsilon I)^{-1} f` with
  :math:`S_{kl} = \mathrm{cov}(O_k, O_l)` and :math:`f_k = \mathrm{cov}(E_L, O_k)`.
  At an exact eigenstate :math:`E_L` is constant: zero variance, zero gradient.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genphys.errors import GenphysError, TrainingDiverged
from genphys.evaluation.stats import Estimate, binning_error
from genphys.physics.walkers import (
    Sampler,
    SamplerState,
    init_state,
    sample,
)
from genphys.physics.wavefunction import (
    DTYPE,
    HarmonicTrap,
    RBMWavefunction,
)
from genphys.rng import derive_seed

OPTIMIZERS = ("adam", "sgd", "sr")

DEFAULT_LR = {"adam": 0.02, "sgd": 0.05, "sr": 0.1}


def energy_estimate(local_energy: Tensor) -> Estimate:
    r"""Mean of ``(T, W)`` local energies with its standard error.

    The walkers are independent, so the walker-averaged series is blocked
    (:func:`~genphys.evaluation.stats.binning_error`), and with 8 or more walkers the spread
    of the walkers' own means gives a second error, right however short the series (blocking
    a series not much longer than its autocorrelation time underestimates). The larger is
    reported, floored at the naive :math:`\sigma/\sqrt{TW}`: a positively correlated chain
    never has less. ``tau`` is the variance inflation :math:`TW\,\mathrm{se}^2/\sigma^2`.
    """
    if local_energy.ndim != 2 or local_energy.shape[0] < 4:
        raise GenphysError(f"need local energies (steps >= 4, walkers), got {local_energy.shape}")
    n, walkers = local_energy.numel(), local_energy.shape[1]
    var = float(local_energy.var()) if n > 1 else 0.0
    se = max(binning_error(local_energy.mean(1)).stderr, math.sqrt(var / n))
    if walkers >= 8:  # independent walkers: the standard error of their means
        se = max(se, float(local_energy.mean(0).std()) / math.sqrt(walkers))
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


#: IterationRecord fields as the columns of :meth:`Progress.to_tensors`'s history
_HISTORY_COLUMNS = ("iteration", "value", "stderr", "n", "tau", "variance", "acceptance", "grad")


@dataclasses.dataclass
class Progress:
    """Where an optimisation stands after ``done`` iterations: its records and Adam's moments
    ``(m, v)``; with the parameters and the chains, all that continuing it exactly needs."""

    done: int
    history: list[IterationRecord]
    moments: tuple[Tensor, Tensor]

    def to_tensors(self) -> dict[str, Tensor]:
        rows = [
            [r.iteration, r.energy.value, r.energy.stderr, r.energy.n or 0,
             math.nan if r.energy.tau is None else r.energy.tau, r.variance, r.acceptance,
             r.grad_norm]
            for r in self.history
        ]  # fmt: skip
        history = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(_HISTORY_COLUMNS))
        return {
            "done": torch.tensor(self.done, dtype=torch.int64),
            "history": history,  # float64: every record exactly
            "adam_m": self.moments[0],
            "adam_v": self.moments[1],
        }

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> Progress:
        try:
            history = [
                IterationRecord(
                    int(row[0]),
                    Estimate(
                        float(row[1]),
                        float(row[2]),
                        n=int(row[3]) or None,
                        tau=None if math.isnan(row[4]) else float(row[4]),
                    ),
                    float(row[5]),
                    float(row[6]),
                    float(row[7]),
                )
                for row in t["history"].tolist()
            ]
            done = int(t["done"])
            moments = (t["adam_m"], t["adam_v"])
        except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as exc:
            raise GenphysError(f"not a valid VMC checkpoint ({exc})") from None
        if done < 0 or [r.iteration for r in history] != list(range(done)):
            raise GenphysError(f"not a valid VMC checkpoint ({done} iterations done, "
                               f"{len(history)} recorded)")  # fmt: skip
        return cls(done, history, moments)


@dataclasses.dataclass
class Optimization:
    """What :func:`optimize` returns: one record per iteration and the chain, to continue."""

    history: list[IterationRecord]
    state: SamplerState


#: called with the progress and the chains after every ``checkpoint_every`` iterations
Checkpoint = Callable[[Progress, Any], None]


def after_iteration(
    progress: Progress,
    iterations: int,
    state: Any,
    checkpoint: Checkpoint | None,
    every: int,
    stop: Callable[[], bool] | None,
) -> None:
    """Checkpoint every ``every`` iterations, at the last, and when ``stop()`` says so (then
    raise KeyboardInterrupt: the run stops between iterations, resumable from there)."""
    stopping = stop is not None and stop()
    last = progress.done == iterations
    if checkpoint is not None and (progress.done % every == 0 or last or stopping):
        checkpoint(progress, state)
    if stopping and not last:
        raise KeyboardInterrupt


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

    def resume(self, progress: Progress | None) -> tuple[list[IterationRecord], int]:
        """Take a checkpoint's Adam moments; return its history (a copy) and iterations done."""
        if progress is None:
            return [], 0
        m, v = progress.moments
        if m.shape != self.m.shape or v.shape != self.v.shape:
            raise GenphysError(
                f"the checkpoint's optimizer holds {m.numel()} parameters, not {self.m.numel()}"
            )
        self.m, self.v = m.to(self.m.dtype).clone(), v.to(self.v.dtype).clone()
        return list(progress.history), progress.done

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
        try:
            return -self.lr * torch.linalg.solve(s, force), grad
        except torch.linalg.LinAlgError:  # e.g. parameters without effect and no shift
            raise TrainingDiverged(
                f"the SR matrix S is singular at iteration {it}: some parameters do not change "
                f"the samples' log psi; use a diag_shift > 0 (now {self.diag_shift})"
            ) from None


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
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_every: int = 10,
    stop: Callable[[], bool] | None = None,
) -> Optimization:
    """Minimise the energy of ``wavefunction`` in place.

    Each iteration takes ``burn_in`` + ``ceil(samples_per_iteration / walkers)`` (at least 4)
    moves of every walker, records the energy of the current parameters (:class:`IterationRecord`)
    and updates them by ``method``: ``"sgd"``, ``"adam"`` (betas 0.9, 0.999) or ``"sr"``
    (stochastic reconfiguration, ``diag_shift`` added to the diagonal of ``S``); ``lr = None``
    takes :data:`DEFAULT_LR`. Pass ``state`` to continue an earlier chain (``seed``,
    ``walkers`` and ``equilibration`` are then unused), and with it ``progress`` (a
    checkpoint's) to continue an optimisation exactly. ``checkpoint(progress, state)`` is
    called every ``checkpoint_every`` iterations and after the last; ``stop()``, asked after
    each iteration, ends the run there (checkpointed) with KeyboardInterrupt. Non-finite
    energies or parameters raise :class:`~genphys.errors.TrainingDiverged`.
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
    history, start = update.resume(progress)
    for it in range(start, iterations):
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
        done = Progress(it + 1, history, (update.m, update.v))
        after_iteration(done, iterations, state, checkpoint, checkpoint_every, stop)
    if checkpoint is not None and start == iterations:  # no iteration to run: a checkpoint
        checkpoint(Progress(start, history, (update.m, update.v)), state)  # to extend from
    state.refresh(wavefunction)
    return Optimization(history, state)
