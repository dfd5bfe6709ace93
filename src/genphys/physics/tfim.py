r"""The 1-D transverse-field Ising model: exact energies and an RBM state by variational MC.

:math:`H = -J\sum_i \sigma^z_i\sigma^z_{i+1} - \Gamma\sum_i \sigma^x_i` on a periodic chain of
``N`` spins (Pauli matrices; the bond ``(N-1, 0)`` closes the ring).

* **Exact diagonalisation** (:func:`exact_ground_energy`): the sparse :math:`2^N\times 2^N`
  matrix in the :math:`\sigma^z` basis (bit ``i`` of the index set means :math:`s_i = -1`),
  lowest eigenvalue by Lanczos (``eigsh``), ``N <= 20``.
* **Free fermions** (:func:`free_fermion_ground_energy`): Jordan-Wigner maps the chain to
  fermions with antiperiodic momenta :math:`k = \pi(2m+1)/N` in the even-parity sector and
  periodic :math:`k = 2\pi m/N` in the odd one, modes of energy
  :math:`\epsilon_k = 2\sqrt{J^2 + \Gamma^2 - 2J\Gamma\cos k}`. Each sector's lowest state is
  :math:`-\tfrac12\sum_k\epsilon_k`, plus :math:`\min_k\epsilon_k` when the unpaired modes
  :math:`k \in \{0, \pi\}` (occupied where :math:`\Gamma < J\cos k`) give the wrong parity; the
  ground state is the lower sector (for :math:`J, \Gamma > 0`, the even one).
* **The RBM state** (:class:`RBMSpinState`, Carleo & Troyer 2017):
  :math:`\psi(s) = e^{\sum_i a_i s_i}\prod_j 2\cosh(b_j + \sum_i W_{ij}s_i)`, real or complex
  parameters, with closed-form :math:`O_k = \partial\ln\psi/\partial\theta_k`.
* **VMC** (:func:`local_energy`, :func:`metropolis_sweep`, :func:`optimize_tfim`): local
  energies with every single-spin flip at once, single-spin-flip Metropolis (with one global
  flip per sweep) over many chains (:class:`SpinChains`), and the energy minimised by SGD,
  Adam or stochastic reconfiguration, with the estimates (blocking errors) and records of
  :mod:`genphys.physics.vmc`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh
from torch import Tensor

from genphys.errors import GenphysError, TrainingDiverged
from genphys.physics.vmc import (
    DEFAULT_LR,
    OPTIMIZERS,
    Checkpoint,
    IterationRecord,
    ParameterUpdate,
    Progress,
    after_iteration,
    energy_estimate,
)
from genphys.physics.walkers import Samples
from genphys.physics.wavefunction import DTYPE, Reference, _check_int
from genphys.rng import derive_seed, make_generator

MAX_ED_SPINS = 20
MAX_ENUMERATION_SPINS = 14


def _check_spins(n: Any, high: int | None = None) -> int:
    n = _check_int("the number of spins", n, 2)
    if high is not None and n > high:
        raise GenphysError(f"at most {high} spins here (2^N states), got {n}")
    return n


# ---------------------------------------------------------------------- exact energies
def hamiltonian_matrix(N: int, J: float = 1.0, Gamma: float = 1.0) -> sp.csr_matrix:
    """:math:`H` as a CSR matrix: per row the diagonal, then the ``N`` single flips."""
    N = _check_spins(N, MAX_ED_SPINS)
    dim = 1 << N
    x = np.arange(dim, dtype=np.int32)
    unlike = x ^ ((x >> 1) | ((x & 1) << (N - 1)))  # bit i: s_i != s_{i+1}
    walls = sum((unlike >> i) & 1 for i in range(N))
    cols = np.empty((dim, N + 1), dtype=np.int32)
    cols[:, 0] = x
    cols[:, 1:] = x[:, None] ^ (np.int32(1) << np.arange(N, dtype=np.int32))
    data = np.full((dim, N + 1), -float(Gamma))
    data[:, 0] = -float(J) * (N - 2 * walls)
    indptr = np.arange(0, dim * (N + 1) + 1, N + 1, dtype=np.int32)
    return sp.csr_matrix((data.ravel(), cols.ravel(), indptr), shape=(dim, dim))


def exact_ground_energy(N: int, J: float = 1.0, Gamma: float = 1.0) -> float:
    """The lowest eigenvalue of :func:`hamiltonian_matrix`: Lanczos (seconds at ``N = 20``),
    or directly where Lanczos can break down in a small invariant subspace: the smallest
    diagonal element at ``Gamma = 0``, the dense spectrum for ``N <= 8``."""
    h = hamiltonian_matrix(N, J, Gamma)
    if Gamma == 0:
        return float(h.diagonal().min())
    if N <= 8:
        return float(np.linalg.eigvalsh(h.toarray())[0])
    v0 = np.random.default_rng(0).random(h.shape[0])  # positive: overlaps the ground state
    return float(eigsh(h, k=1, which="SA", v0=v0, return_eigenvectors=False)[0])


def free_fermion_ground_energy(N: int, J: float = 1.0, Gamma: float = 1.0) -> float:
    """The exact ground-state energy of the periodic chain by Jordan-Wigner (any ``N >= 2``)."""
    N = _check_spins(N)
    energies = []
    for parity in (0, 1):  # even sector: antiperiodic k = pi(2m+1)/N; odd: periodic 2 pi m/N
        q = 2 * np.arange(N) + 1 - parity
        k = np.pi * q / N
        eps = 2 * np.sqrt(np.maximum(J * J + Gamma * Gamma - 2 * J * Gamma * np.cos(k), 0))
        unpaired = q % N == 0  # k = 0 or pi: the modes with k = -k
        occupied = int(np.sum(unpaired & (Gamma < J * np.cos(k))))
        energies.append(-0.5 * math.fsum(eps) + (occupied % 2 != parity) * float(eps.min()))
    return min(energies)


def reference_energy(N: int, J: float = 1.0, Gamma: float = 1.0) -> Reference:
    """The exact ground-state energy: diagonalisation for ``N <= 16``, free fermions beyond."""
    if _check_spins(N) <= 16:
        return Reference(exact_ground_energy(N, J, Gamma), True, "exact diagonalization")
    return Reference(free_fermion_ground_energy(N, J, Gamma), True, "free fermions")


# ---------------------------------------------------------------------- the RBM state
def _log_2cosh(theta: Tensor) -> Tensor:
    """:math:`\\ln 2\\cosh\\theta`, stable for large :math:`|\\mathrm{Re}\\,\\theta|`."""
    sign = torch.where(theta.real >= 0, 1.0, -1.0).to(DTYPE)
    return sign * theta + torch.log1p(torch.exp(-2 * sign * theta))


def all_configurations(N: int) -> Tensor:
    """Every configuration ``(2^N, N)`` of :math:`\\pm 1` spins, in the order of the matrix."""
    N = _check_spins(N, MAX_ED_SPINS)
    bits = (torch.arange(1 << N)[:, None] >> torch.arange(N)) & 1
    return (1 - 2 * bits).to(DTYPE)


class RBMSpinState:
    """:math:`\\psi(s) = e^{a\\cdot s}\\prod_j 2\\cosh(b_j + \\sum_i W_{ij}s_i)`, ``s`` in
    :math:`\\{-1, 1\\}^N`, with ``hidden`` units; parameters ``a (N,)``, ``b (M,)``,
    ``W (N, M)`` drawn from :math:`\\mathcal N(0, \\text{init\\_std}^2)`, float64 or (with
    ``complex=True``) complex128. :meth:`parameter_vector` concatenates ``a, b, W``."""

    def __init__(
        self, N: int, hidden: int, seed: int = 0, init_std: float = 0.1, complex: bool = False
    ) -> None:
        self.N = _check_spins(N)
        self.hidden = _check_int("the number of hidden units", hidden, 1)
        if not (math.isfinite(init_std) and init_std >= 0):
            raise GenphysError(f"init_std must be >= 0, got {init_std}")
        self.dtype = torch.complex128 if complex else DTYPE
        g = make_generator(seed)
        self.a, self.b, self.W = (
            init_std * torch.randn(shape, generator=g, dtype=self.dtype)
            for shape in ((N,), (hidden,), (N, hidden))
        )

    def parameters(self) -> dict[str, Tensor]:
        return {"a": self.a, "b": self.b, "W": self.W}

    @property
    def n_parameters(self) -> int:
        return self.N + self.hidden + self.N * self.hidden

    def parameter_vector(self) -> Tensor:
        return torch.cat([p.reshape(-1) for p in self.parameters().values()])

    def set_parameter_vector(self, theta: Tensor) -> None:
        if theta.shape != (self.n_parameters,):
            raise GenphysError(f"expected {self.n_parameters} parameters, got {tuple(theta.shape)}")
        sizes = [p.numel() for p in self.parameters().values()]
        for p, new in zip(self.parameters().values(), theta.split(sizes), strict=True):
            p.copy_(new.reshape(p.shape))

    def config(self) -> dict[str, Any]:
        return {"spins": self.N, "hidden": self.hidden, "complex": self.dtype.is_complex}

    def _theta(self, s: Tensor) -> Tensor:
        if s.ndim != 2 or s.shape[1] != self.N:
            raise GenphysError(f"spins must have shape (batch, {self.N}), got {tuple(s.shape)}")
        return self.b + s.to(self.dtype) @ self.W

    def log_psi(self, s: Tensor) -> Tensor:
        """:math:`\\ln\\psi` of a batch ``(B, N)`` (differentiable by autograd)."""
        theta = self._theta(s)
        return s.to(self.dtype) @ self.a + _log_2cosh(theta).sum(1)

    def log_derivatives(self, s: Tensor) -> Tensor:
        """:math:`O = (s_i,\\ \\tanh\\theta_j,\\ s_i\\tanh\\theta_j)`, ``(B, n_parameters)``."""
        t = torch.tanh(self._theta(s))
        sc = s.to(self.dtype)
        return torch.cat([sc, t, (sc[:, :, None] * t[:, None, :]).reshape(len(s), -1)], 1)

    def flip_log_ratios(self, s: Tensor) -> Tensor:
        """:math:`\\ln\\psi(s^{(i)}) - \\ln\\psi(s)` for every single flip ``i``, ``(B, N)``."""
        theta = self._theta(s)
        flipped = theta[:, None, :] - 2 * s[:, :, None] * self.W
        return -2 * s * self.a + (_log_2cosh(flipped) - _log_2cosh(theta)[:, None, :]).sum(2)


def local_energy(psi: RBMSpinState, s: Tensor, J: float = 1.0, Gamma: float = 1.0) -> Tensor:
    """:math:`E_L(s) = -J\\sum_i s_is_{i+1} - \\Gamma\\sum_i\\psi(s^{(i)})/\\psi(s)`, ``(B,)``."""
    bonds = (s * s.roll(-1, 1)).sum(1)
    return -J * bonds - Gamma * psi.flip_log_ratios(s).exp().sum(1)


def exact_energy(psi: RBMSpinState, J: float = 1.0, Gamma: float = 1.0) -> float:
    """:math:`\\langle\\psi|H|\\psi\\rangle/\\langle\\psi|\\psi\\rangle` by enumeration."""
    _check_spins(psi.N, MAX_ENUMERATION_SPINS)
    s = all_configurations(psi.N)
    p = torch.softmax(2 * psi.log_psi(s).real, 0)
    return float((p * local_energy(psi, s, J, Gamma).real).sum())


# ---------------------------------------------------------------------- sampling
@dataclasses.dataclass
class SpinChains:
    """Markov chains of spin configurations ``(B, N)``: the generator, the sweeps taken and
    each chain's accepted flips."""

    spins: Tensor
    generator: torch.Generator
    steps: int = 0
    accepted: Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))

    def __post_init__(self) -> None:
        if self.accepted.numel() != self.spins.shape[0]:
            self.accepted = torch.zeros(self.spins.shape[0], dtype=torch.int64)

    @property
    def chains(self) -> int:
        return self.spins.shape[0]

    def acceptance(self) -> Tensor:
        """Each chain's fraction of accepted flips since the start."""
        return self.accepted.to(DTYPE) / max(self.steps * self.spins.shape[1], 1)

    def to_tensors(self) -> dict[str, Tensor]:
        return {
            "spins": self.spins.clone(),
            "generator_state": self.generator.get_state(),
            "steps": torch.tensor([self.steps]),
            "accepted": self.accepted.clone(),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> SpinChains:
        try:
            g = torch.Generator()
            g.set_state(tensors["generator_state"])
            spins = tensors["spins"].to(DTYPE)
            return cls(spins, g, int(tensors["steps"][0]), tensors["accepted"].clone())
        except (KeyError, RuntimeError, IndexError) as exc:
            raise GenphysError(f"not a valid chain state ({exc})") from None


def init_chains(N: int, chains: int, seed: int = 0) -> SpinChains:
    """``chains`` chains at uniformly random configurations."""
    chains = _check_int("the number of chains", chains, 1)
    g = make_generator(seed)
    bits = torch.randint(2, (chains, _check_spins(N)), generator=g)
    return SpinChains((1 - 2 * bits).to(DTYPE), g)


def metropolis_sweep(psi: RBMSpinState, chains: SpinChains) -> None:
    """``N`` single-spin-flip proposals per chain (a random site each), then one flip of
    every spin, each accepted with probability :math:`\\min(1, |\\psi(s')/\\psi(s)|^2)`; the
    spins change in place. Single flips cannot cross between a state's mirror-image peaks
    (ordered phases), the global flip can: both proposals are symmetric, so each step keeps
    :math:`|\\psi|^2` invariant. ``chains.accepted`` counts the single flips."""
    s, g = chains.spins, chains.generator
    rows = torch.arange(chains.chains)
    theta = psi._theta(s)
    lc = _log_2cosh(theta)
    for _ in range(psi.N):
        i = torch.randint(psi.N, (chains.chains,), generator=g)
        si = s[rows, i]
        new = theta - 2 * si[:, None] * psi.W[i]
        new_lc = _log_2cosh(new)
        log_ratio = (-2 * psi.a[i] * si + (new_lc - lc).sum(1)).real
        # accept when log U < 2 log|ratio|, with -log U drawn as an Exp(1) variate
        ok = 2 * log_ratio + torch.empty(chains.chains, dtype=DTYPE).exponential_(generator=g) > 0
        s[rows, i] = torch.where(ok, -si, si)
        theta = torch.where(ok[:, None], new, theta)
        lc = torch.where(ok[:, None], new_lc, lc)
        chains.accepted += ok
    # log |psi(-s) / psi(s)|^2 from the kept theta = b + sW: theta(-s) = 2b - theta
    flipped_lc = _log_2cosh(2 * psi.b - theta)
    flip = 2 * (-2 * (s.to(psi.dtype) @ psi.a) + (flipped_lc - lc).sum(1)).real
    ok = flip + torch.empty(chains.chains, dtype=DTYPE).exponential_(generator=g) > 0
    s.mul_(torch.where(ok, -1.0, 1.0).to(s.dtype)[:, None])
    chains.steps += 1


def sample_tfim(
    psi: RBMSpinState,
    chains: SpinChains,
    J: float,
    Gamma: float,
    sweeps: int,
    *,
    burn_in: int = 0,
    derivatives: bool = False,
) -> Samples:
    """``burn_in`` unrecorded then ``sweeps`` recorded sweeps: local energies ``(T, B)``
    (complex for a complex state) and optionally :math:`O_k` ``(T, B, n_parameters)``."""
    if sweeps < 0 or burn_in < 0:
        raise GenphysError(f"sweeps and burn-in must be >= 0, got {sweeps} and {burn_in}")
    for _ in range(burn_in):
        metropolis_sweep(psi, chains)
    before = int(chains.accepted.sum())
    energies, derivs = [], []
    for _ in range(sweeps):
        metropolis_sweep(psi, chains)
        energies.append(local_energy(psi, chains.spins, J, Gamma))
        if derivatives:
            derivs.append(psi.log_derivatives(chains.spins))
    acc = (int(chains.accepted.sum()) - before) / max(sweeps * chains.chains * psi.N, 1)
    e = torch.stack(energies) if energies else torch.zeros(0, chains.chains, dtype=psi.dtype)
    return Samples(e, torch.stack(derivs) if derivatives and derivs else None, None, acc)


# ---------------------------------------------------------------------- optimisation
@dataclasses.dataclass
class TFIMOptimization:
    """What :func:`optimize_tfim` returns: one record per iteration and the chains."""

    history: list[IterationRecord]
    chains: SpinChains


def optimize_tfim(
    psi: RBMSpinState,
    J: float = 1.0,
    Gamma: float = 1.0,
    method: str = "sr",
    lr: float | None = None,
    iterations: int = 100,
    samples: int = 4096,
    seed: int = 0,
    diag_shift: float = 1e-3,
    *,
    chains: int = 256,
    state: SpinChains | None = None,
    equilibration: int = 100,
    burn_in: int = 2,
    callback: Callable[[IterationRecord], None] | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_every: int = 10,
    stop: Callable[[], bool] | None = None,
) -> TFIMOptimization:
    """Minimise the energy of ``psi`` in place, as :func:`genphys.physics.vmc.optimize` does.

    Each iteration takes ``burn_in`` + ``ceil(samples / chains)`` (at least 4) sweeps of every
    chain, records the energy of the current parameters and updates them by ``"sgd"``,
    ``"adam"`` or ``"sr"`` (:math:`\\delta\\theta = -\\eta(S + \\epsilon I)^{-1}f`,
    :math:`S = \\mathrm{cov}(O^*, O)`, :math:`f = \\mathrm{cov}(O^*, E_L)`, ``diag_shift``
    :math:`\\epsilon`); the gradient is :math:`2f` (complex parameters move along
    :math:`-\\partial E/\\partial\\theta^*`). ``lr = None`` takes :data:`DEFAULT_LR`, for SR at
    most :math:`0.4/(|J| + |\\Gamma|)` (an SR step is an explicit imaginary-time step, unstable
    when lr times the excitation energies, about :math:`4\\Gamma`, exceeds 2); pass
    ``state`` to continue earlier chains (``seed``, ``chains`` and ``equilibration`` unused),
    with ``progress`` to continue an optimisation; ``checkpoint``, ``checkpoint_every`` and
    ``stop`` as for :func:`~genphys.physics.vmc.optimize`.
    """
    if method not in OPTIMIZERS:
        raise GenphysError(f"unknown optimizer {method!r}; choose one of {', '.join(OPTIMIZERS)}")
    if lr is None:  # an SR step is an imaginary-time step: lr times the gap (~4 Gamma) < 2
        lr = DEFAULT_LR[method]
        lr = min(lr, 0.4 / (abs(J) + abs(Gamma))) if method == "sr" and (J or Gamma) else lr
    if not (math.isfinite(lr) and lr > 0):
        raise GenphysError(f"the learning rate must be > 0, got {lr}")
    if iterations < 0 or samples < 1 or not diag_shift >= 0:
        raise GenphysError("iterations >= 0, samples >= 1 and diag_shift >= 0 are required")
    if state is None:
        state = init_chains(psi.N, chains, derive_seed(seed, 1))
        sample_tfim(psi, state, J, Gamma, 0, burn_in=equilibration)
    sweeps = max(4, math.ceil(samples / state.chains))
    n = psi.n_parameters
    update = ParameterUpdate(method, lr, n, psi.dtype, diag_shift)
    history, start = update.resume(progress)
    for it in range(start, iterations):
        smp = sample_tfim(psi, state, J, Gamma, sweeps, burn_in=burn_in, derivatives=True)
        assert smp.log_derivatives is not None
        e = smp.local_energy.reshape(-1)
        delta, grad = update(it, e, smp.log_derivatives.reshape(-1, n))
        est = energy_estimate(smp.local_energy.real)
        var = float((e - e.mean()).abs().square().mean())  # Var E_L, complex states included
        record = IterationRecord(it, est, var, smp.acceptance, float(grad.norm()))
        history.append(record)
        theta = psi.parameter_vector() + delta
        if not torch.isfinite(theta).all():
            raise TrainingDiverged(f"VMC diverged at iteration {it}: non-finite parameters")
        psi.set_parameter_vector(theta)
        if callback is not None:
            callback(record)
        done = Progress(it + 1, history, (update.m, update.v))
        after_iteration(done, iterations, state, checkpoint, checkpoint_every, stop)
    if checkpoint is not None and start == iterations:  # no iteration to run: a checkpoint
        checkpoint(Progress(start, history, (update.m, update.v)), state)  # to extend from
    return TFIMOptimization(history, state)
