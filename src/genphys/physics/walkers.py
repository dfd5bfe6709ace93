"""Walkers for variational Monte Carlo: brute-force Metropolis and importance sampling (the
Langevin drift of the quantum force) of |Psi|^2, many walkers at once, with explicit state."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.physics.wavefunction import (
    DTYPE,
    HarmonicTrap,
    RBMWavefunction,
    WaveValues,
    _check_positive,
)
from genphys.rng import make_generator

SAMPLERS = ("metropolis", "importance")


@dataclasses.dataclass
class SamplerState:
    """Walkers of a Markov chain: positions ``(W, P, D)``, their cached wavefunction values, the
    random generator, the number of steps taken and each walker's accepted moves."""

    positions: Tensor
    values: WaveValues
    generator: torch.Generator
    steps: int = 0
    accepted: Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))

    def __post_init__(self) -> None:
        if self.accepted.numel() != self.positions.shape[0]:
            self.accepted = torch.zeros(self.positions.shape[0], dtype=torch.int64)

    @property
    def walkers(self) -> int:
        return self.positions.shape[0]

    def acceptance(self) -> Tensor:
        """Each walker's fraction of accepted moves since the start."""
        return self.accepted.to(DTYPE) / max(self.steps, 1)

    def refresh(self, wf: RBMWavefunction) -> None:
        """Recompute the cached values (needed after the parameters change)."""
        self.values = wf.evaluate(self.positions)

    def to_tensors(self) -> dict[str, Tensor]:
        return {
            "positions": self.positions,
            "generator_state": self.generator.get_state(),
            "steps": torch.tensor([self.steps]),
            "accepted": self.accepted,
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], wf: RBMWavefunction) -> SamplerState:
        try:
            g = torch.Generator()
            g.set_state(tensors["generator_state"])
            x = tensors["positions"].to(DTYPE)
            return cls(x, wf.evaluate(x), g, int(tensors["steps"][0]), tensors["accepted"])
        except (KeyError, RuntimeError, IndexError) as exc:
            raise GenphysError(f"not a valid sampler state ({exc})") from None


def init_state(
    wf: RBMWavefunction, walkers: int, seed: int = 0, spread: float | None = None
) -> SamplerState:
    """``walkers`` walkers at Gaussian positions of width ``spread`` (default ``wf.sigma``)."""
    if isinstance(walkers, bool) or not isinstance(walkers, int) or walkers < 1:
        raise GenphysError(f"the number of walkers must be an integer >= 1, got {walkers!r}")
    g = make_generator(seed)
    shape = (walkers, wf.particles, wf.dim)
    x = torch.randn(shape, generator=g, dtype=DTYPE) * (spread or wf.sigma)
    return SamplerState(x, wf.evaluate(x), g)


class _Sampler:
    name: ClassVar[str]

    def _accept(
        self,
        wf: RBMWavefunction,
        state: SamplerState,
        x_new: Tensor,
        log_q_ratio: Callable[[WaveValues], Tensor] | None,
    ) -> None:
        new = wf.evaluate(x_new)
        old = state.values
        log_ratio = 2 * (new.log_psi - old.log_psi)
        if log_q_ratio is not None:  # log G(x | x') - log G(x' | x), needs the new drift
            log_ratio = log_ratio + log_q_ratio(new)
        # accept when log U < log_ratio, with -log U drawn directly as an Exp(1) variate
        exp1 = torch.empty(state.walkers, dtype=DTYPE).exponential_(generator=state.generator)
        ok = log_ratio + exp1 > 0
        ok3 = ok[:, None, None]
        state.positions = torch.where(ok3, x_new, state.positions)
        state.values = WaveValues(
            torch.where(ok, new.log_psi, old.log_psi),
            torch.where(ok3, new.grad, old.grad),
            torch.where(ok, new.laplacian, old.laplacian),
        )
        state.accepted += ok
        state.steps += 1


@dataclasses.dataclass(frozen=True)
class Metropolis(_Sampler):
    """Brute-force Metropolis: all coordinates move uniformly in ``[-step/2, step/2]``."""

    step: float = 2.0
    name: ClassVar[str] = "metropolis"

    def __post_init__(self) -> None:
        _check_positive("the Metropolis step", self.step)

    def advance(self, wf: RBMWavefunction, state: SamplerState) -> None:
        """One move of every walker."""
        noise = torch.rand(state.positions.shape, generator=state.generator, dtype=DTYPE)
        self._accept(wf, state, state.positions + self.step * (noise - 0.5), None)


@dataclasses.dataclass(frozen=True)
class ImportanceSampling(_Sampler):
    """Metropolis-Hastings with the Langevin drift :math:`\\nabla\\ln\\Psi\\,dt`, step ``dt``."""

    dt: float = 0.3
    name: ClassVar[str] = "importance"

    def __post_init__(self) -> None:
        _check_positive("the time step dt", self.dt)

    def advance(self, wf: RBMWavefunction, state: SamplerState) -> None:
        """One move of every walker."""
        x, dt = state.positions, self.dt
        xi = torch.randn(x.shape, generator=state.generator, dtype=DTYPE)
        x_new = x + dt * state.values.grad + math.sqrt(dt) * xi
        forward = (xi * xi).sum((1, 2)) / 2  # |x' - x - dt F(x)/2|^2 / (2 dt)

        def log_q_ratio(new: WaveValues) -> Tensor:
            back = x - x_new - dt * new.grad
            return forward - (back * back).sum((1, 2)) / (2 * dt)

        self._accept(wf, state, x_new, log_q_ratio)


Sampler = Metropolis | ImportanceSampling


@dataclasses.dataclass(frozen=True)
class Samples:
    """What a stretch of the chain recorded: local energies ``(T, W)``, optionally
    :math:`O_k` ``(T, W, n_parameters)`` and particle radii ``(T, W, P)``."""

    local_energy: Tensor
    log_derivatives: Tensor | None
    radii: Tensor | None
    acceptance: float


def sample(
    wf: RBMWavefunction,
    hamiltonian: HarmonicTrap,
    sampler: Sampler,
    state: SamplerState,
    steps: int,
    *,
    burn_in: int = 0,
    derivatives: bool = False,
    radii: bool = False,
) -> Samples:
    """Take ``burn_in`` unrecorded then ``steps`` recorded moves of every walker."""
    if steps < 0 or burn_in < 0:
        raise GenphysError(f"steps and burn-in must be >= 0, got {steps} and {burn_in}")
    state.refresh(wf)
    for _ in range(burn_in):
        sampler.advance(wf, state)
    before = int(state.accepted.sum())
    energies, derivs, rs = [], [], []
    for _ in range(steps):
        sampler.advance(wf, state)
        energies.append(hamiltonian.local_energy(state.positions, state.values))
        if derivatives:
            derivs.append(wf.log_derivatives(state.positions))
        if radii:
            rs.append(state.positions.norm(dim=-1))
    acc = (int(state.accepted.sum()) - before) / max(steps * state.walkers, 1)
    empty = torch.zeros(0, state.walkers, dtype=DTYPE)
    return Samples(
        torch.stack(energies) if energies else empty,
        torch.stack(derivs) if derivatives and derivs else None,
        torch.stack(rs) if radii and rs else None,
        acc,
    )
