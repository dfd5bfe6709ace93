r"""Boltzmann machines as wavefunctions (Carleo & Troyer 2017): the ansatz, the trap, the walkers.

**The ansatz.** The Gaussian-binary RBM for ``P`` particles in ``D`` dimensions has the
``M = P*D`` coordinates as visible units (flattened particle by particle) and ``N`` hidden
units. Its unnormalised visible marginal is

.. math:: F(X) = e^{-\sum_i (X_i - a_i)^2 / 2\sigma^2}\prod_j \bigl(1 + e^{b_j + \sum_i X_i
          w_{ij}/\sigma^2}\bigr).

The wavefunction is :math:`\Psi = F` (default) or :math:`\Psi = \sqrt F` (``sqrt=True``; then
:math:`|\Psi|^2 = F` is exactly the RBM's distribution and every RBM term of
:math:`\ln\Psi` and its derivatives is halved). The default width makes the exact
non-interacting ground state representable (``a = 0, w = 0``): :math:`\sigma^2 = 1/\omega`,
or :math:`1/2\omega` with ``sqrt``.

**Pade-Jastrow factor** (``jastrow=True``): :math:`\exp\sum_{i<j} c\,r_{ij}/(1 + \beta
r_{ij})` with the cusp :math:`c = 1/(D-1)` that cancels the divergence of :math:`1/r_{ij}` (the
antiparallel-spin cusp, 1 in 2-D) and :math:`\beta = e^{\ln\beta}` variational (kept positive).

**Limitation, stated plainly.** Nothing here is antisymmetric. For two electrons in the
ground state (the singlet) the spatial wavefunction is symmetric, so no Slater determinant is
needed and the energy is a true upper bound on the electronic ground state. For more particles
the ansatz is bosonic-like (as in the published RBM theses): its minimum is the lowest
*symmetric* state, which lies below the fermionic ground state (non-interacting: ``P*D*omega/2``
rather than the closed-shell value), so every pair gets the nodeless cusp ``1/(D-1)``.

:math:`\ln\Psi`, its gradient and Laplacian (summed over all coordinates) and its derivatives
with respect to every parameter are analytic and vectorised over walkers; positions have shape
``(walkers, P, D)``, float64.

**Sampling** :math:`|\Psi|^2` (:class:`Metropolis`, :class:`ImportanceSampling`): every walker
moves all its particles at once, brute force (uniform in ``[-step/2, step/2]`` per coordinate)
or with the Langevin drift of the quantum force :math:`F = 2\nabla\ln\Psi` (Fokker-Planck,
diffusion constant 1/2: :math:`X' = X + \nabla\ln\Psi\,dt + \sqrt{dt}\,\xi`, accepted with
the Metropolis-Hastings ratio of the Green's functions, so there is no time-step bias). The
chain lives in a :class:`SamplerState` (positions, cached :math:`\ln\Psi` and derivatives,
the generator, step count and per-walker accepted moves): runs are reproducible and resumable.

**Threads.** A move is a few dozen operations on tensors of a few thousand elements. Run with
``torch.set_num_threads(1)`` (``genphys vmc`` does): on a busy machine every operation that
enters torch's thread pool (a matrix product, or ``exp``/``log``/``sqrt`` of 128 or more
elements) waits milliseconds for the other threads, 10-50x slower overall. The hot path already
avoids the elementwise ones (``exponential_``, ``vector_norm``, ``rsqrt``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.rng import make_generator

DTYPE = torch.float64


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise GenphysError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GenphysError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise GenphysError(f"{name} must be a positive finite number, got {value!r}")
    return v


def default_sigma(omega: float, sqrt: bool = False) -> float:
    """The width with which ``a = 0, w = 0`` is the exact non-interacting ground state."""
    return 1.0 / math.sqrt((2.0 if sqrt else 1.0) * omega)


@functools.lru_cache(maxsize=32)
def pair_matrix(particles: int) -> Tensor:
    """``C`` of shape ``(pairs, P)`` whose row for the pair ``i < j`` is ``e_i - e_j``: ``C @ x``
    are the pair differences and ``C.T @ f`` scatters pair forces back onto the particles."""
    i, j = torch.triu_indices(particles, particles, 1)
    c = torch.zeros(i.numel(), particles, dtype=DTYPE)
    c[torch.arange(i.numel()), i] = 1.0
    c[torch.arange(i.numel()), j] = -1.0
    return c


def pair_distances(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(r, diff)``: distances ``(W, pairs)`` of the pairs ``i < j`` and ``x_i - x_j``."""
    diff = pair_matrix(x.shape[1]) @ x
    return torch.linalg.vector_norm(diff, dim=-1), diff


@dataclasses.dataclass(frozen=True)
class WaveValues:
    """:math:`\\ln\\Psi` ``(W,)``, its gradient ``(W, P, D)`` and Laplacian ``(W,)``."""

    log_psi: Tensor
    grad: Tensor
    laplacian: Tensor


class RBMWavefunction:
    """The Gaussian-binary RBM wavefunction, optionally times a Pade-Jastrow factor.

    Args:
        particles, dim, hidden: ``P``, ``D`` and the number of hidden units ``N``.
        omega: trap frequency, used only for the default ``sigma``.
        sigma: visible width (default :func:`default_sigma`).
        sqrt: :math:`\\Psi = \\sqrt F` instead of :math:`F`.
        jastrow: multiply by the Pade-Jastrow factor (needs ``P >= 2`` and ``D >= 2``).
        beta: initial Jastrow :math:`\\beta`.
        init_std: standard deviation of the initial ``a``, ``b`` and ``w``.
        seed: seed of the initial parameters.

    Parameters are plain float64 tensors ``a (M,)``, ``b (N,)``, ``w (M, N)`` and, with the
    Jastrow factor, ``log_beta (1,)``; :meth:`parameter_vector` concatenates them in that order.
    """

    def __init__(
        self,
        particles: int,
        dim: int,
        hidden: int,
        *,
        omega: float = 1.0,
        sigma: float | None = None,
        sqrt: bool = False,
        jastrow: bool = False,
        beta: float = 1.0,
        init_std: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.particles = _check_int("the number of particles", particles, 1)
        self.dim = _check_int("the dimension", dim, 1)
        self.hidden = _check_int("the number of hidden units", hidden, 1)
        omega = _check_positive("omega", omega)
        self.sqrt = bool(sqrt)
        self.sigma = default_sigma(omega, self.sqrt) if sigma is None else sigma
        self.sigma = _check_positive("sigma", self.sigma)
        self.jastrow = bool(jastrow)
        if self.jastrow and particles < 2:
            raise GenphysError("the Jastrow factor needs at least 2 particles")
        if self.jastrow and dim < 2:
            raise GenphysError(
                "the Jastrow factor needs dim >= 2 (the 1-D cusp 1/(D-1) is infinite)"
            )
        if not (math.isfinite(init_std) and init_std >= 0):
            raise GenphysError(f"init_std must be >= 0, got {init_std}")
        self.cusp = 1.0 / (dim - 1) if dim > 1 else 0.0
        g = make_generator(seed)
        m = particles * dim
        self.a = init_std * torch.randn(m, generator=g, dtype=DTYPE)
        self.b = init_std * torch.randn(hidden, generator=g, dtype=DTYPE)
        self.w = init_std * torch.randn(m, hidden, generator=g, dtype=DTYPE)
        self.log_beta = torch.full((1,), math.log(_check_positive("beta", beta)), dtype=DTYPE)

    # ------------------------------------------------------------------ parameters
    @property
    def scale(self) -> float:
        """1 for :math:`\\Psi = F`, 1/2 for :math:`\\Psi = \\sqrt F`."""
        return 0.5 if self.sqrt else 1.0

    def parameters(self) -> dict[str, Tensor]:
        """The variational parameters by name (the tensors themselves, not copies)."""
        out = {"a": self.a, "b": self.b, "w": self.w}
        if self.jastrow:
            out["log_beta"] = self.log_beta
        return out

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters().values())

    def parameter_vector(self) -> Tensor:
        return torch.cat([p.reshape(-1) for p in self.parameters().values()]).clone()

    def set_parameter_vector(self, theta: Tensor) -> None:
        if theta.shape != (self.n_parameters,):
            raise GenphysError(f"expected {self.n_parameters} parameters, got {tuple(theta.shape)}")
        start = 0
        for p in self.parameters().values():
            p.copy_(theta[start : start + p.numel()].reshape(p.shape))
            start += p.numel()

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.parameters().items()}

    def load_state_dict(self, tensors: dict[str, Tensor]) -> None:
        """Copy parameters in, refusing missing, extra, mis-shaped or non-finite tensors."""
        own = self.parameters()
        if set(tensors) != set(own):
            raise GenphysError(f"parameters {sorted(tensors)} do not match {sorted(own)}")
        for k, p in own.items():
            t = tensors[k]
            if t.shape != p.shape or not torch.isfinite(t).all():
                raise GenphysError(f"parameter {k} has shape {tuple(t.shape)} or bad values")
            p.copy_(t.to(DTYPE))

    def config(self) -> dict[str, Any]:
        """Everything besides the parameters needed to rebuild the wavefunction."""
        return {
            "particles": self.particles,
            "dim": self.dim,
            "hidden": self.hidden,
            "sigma": self.sigma,
            "sqrt": self.sqrt,
            "jastrow": self.jastrow,
        }

    # ------------------------------------------------------------------ math
    def _flat(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1:] != (self.particles, self.dim):
            raise GenphysError(
                f"positions must have shape (walkers, {self.particles}, {self.dim}), "
                f"got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], -1)

    def log_psi(self, x: Tensor) -> Tensor:
        """:math:`\\ln\\Psi` ``(W,)`` in plain torch operations (differentiable by autograd)."""
        xf = self._flat(x)
        s2 = self.sigma**2
        u = self.b + xf @ self.w / s2
        ln_f = -((xf - self.a) ** 2).sum(1) / (2 * s2) + torch.logaddexp(u, u.new_zeros(())).sum(1)
        out = self.scale * ln_f
        if self.jastrow:
            r = pair_distances(x)[0]
            out = out + self.cusp * (r / (1 + self.log_beta.exp() * r)).sum(1)
        return out

    def evaluate(self, x: Tensor) -> WaveValues:
        """Analytic :math:`\\ln\\Psi`, :math:`\\nabla\\ln\\Psi` and :math:`\\nabla^2\\ln\\Psi`."""
        xf = self._flat(x)
        s2, c = self.sigma**2, self.scale
        u = self.b + xf @ self.w / s2
        s = torch.sigmoid(u)
        log_psi = c * (
            -((xf - self.a) ** 2).sum(1) / (2 * s2) + torch.logaddexp(u, u.new_zeros(())).sum(1)
        )
        grad = (c / s2) * (self.a - xf + s @ self.w.T)
        lap = c * (-xf.shape[1] / s2 + (s * (1 - s)) @ (self.w * self.w).sum(0) / s2**2)
        grad = grad.reshape(x.shape)
        if self.jastrow:
            r, diff = pair_distances(x)
            beta = self.log_beta.exp()
            den = 1 + beta * r
            d1 = self.cusp / den**2  # J'(r)
            d2 = -2 * self.cusp * beta / den**3  # J''(r)
            log_psi = log_psi + self.cusp * (r / den).sum(1)
            lap = lap + 2 * (d2 + (self.dim - 1) * d1 / r).sum(1)
            pull = (d1 / r)[..., None] * diff
            grad = grad + pair_matrix(self.particles).T @ pull
        return WaveValues(log_psi, grad, lap)

    def log_derivatives(self, x: Tensor) -> Tensor:
        """:math:`O_k = \\partial\\ln\\Psi/\\partial\\theta_k`, shape ``(W, n_parameters)``."""
        xf = self._flat(x)
        s2, c = self.sigma**2, self.scale
        s = torch.sigmoid(self.b + xf @ self.w / s2)
        parts = [
            (c / s2) * (xf - self.a),
            c * s,
            (c / s2) * (xf[:, :, None] * s[:, None, :]).reshape(xf.shape[0], -1),
        ]
        if self.jastrow:
            r = pair_distances(x)[0]
            beta = self.log_beta.exp()
            parts.append(-self.cusp * beta * (r**2 / (1 + beta * r) ** 2).sum(1, keepdim=True))
        return torch.cat(parts, 1)


@dataclasses.dataclass(frozen=True)
class HarmonicTrap:
    r"""Electrons in an isotropic harmonic trap (atomic units):

    .. math:: H = \sum_i \bigl(-\tfrac12\nabla_i^2 + \tfrac12\omega^2 r_i^2\bigr)
              + \sum_{i<j} 1/r_{ij},

    the Coulomb term only with ``interaction=True`` (which needs ``D >= 2``: in 1-D
    :math:`1/|x|` is not integrable against a nodeless wavefunction).
    """

    omega: float = 1.0
    interaction: bool = False

    def __post_init__(self) -> None:
        _check_positive("omega", self.omega)

    def potential(self, x: Tensor) -> Tensor:
        """External (and interaction) potential energy, ``(W,)``."""
        v = 0.5 * self.omega**2 * (x * x).sum((1, 2))
        if self.interaction and x.shape[1] > 1:
            if x.shape[2] < 2:
                raise GenphysError("the Coulomb interaction needs dim >= 2")
            v = v + (1.0 / pair_distances(x)[0]).sum(1)
        return v

    def local_energy(self, x: Tensor, values: WaveValues) -> Tensor:
        r""":math:`E_L = -\frac12(\nabla^2\ln\Psi + |\nabla\ln\Psi|^2) + V`, ``(W,)``."""
        kinetic = -0.5 * (values.laplacian + (values.grad * values.grad).sum((1, 2)))
        return kinetic + self.potential(x)


@dataclasses.dataclass(frozen=True)
class Reference:
    """A known ground-state energy: exact, or a published estimate (``exact=False``)."""

    energy: float
    exact: bool
    source: str


def reference_energy(particles: int, dim: int, omega: float, interaction: bool) -> Reference | None:
    """The exact or reference energy of the trap, where one is known.

    Without interaction the symmetric ansatz's ground state is ``P*D*omega/2`` (every particle
    in the oscillator ground state). With interaction: two electrons, ``D = 2, omega = 1``:
    3 a.u. exactly; ``D = 3, omega = 1/2``: 2 a.u. exactly (Taut 1993, 1994); six electrons,
    ``D = 2, omega = 1``: 20.1597 a.u. (fermionic diffusion Monte Carlo, Pedersen Lohne et al.
    2011) - a reference only, since the symmetric ansatz is not bounded below by it.
    """
    if not interaction or particles == 1:
        return Reference(particles * dim * omega / 2, True, "P*D*omega/2 (non-interacting)")
    known = {
        (2, 2, 1.0): Reference(3.0, True, "exact (Taut 1993)"),
        (2, 3, 0.5): Reference(2.0, True, "exact (Taut 1993)"),
        (6, 2, 1.0): Reference(20.1597, False, "fermionic DMC (Pedersen Lohne et al. 2011)"),
    }
    return known.get((particles, dim, float(omega)))
