r"""Exact results for the 2-D square-lattice Ising ferromagnet: references for Monte Carlo.

Conventions: J = 1, k_B = 1, an L x L torus of N = L^2 spins with energy
:math:`E = -\sum_{\langle ij\rangle} s_i s_j - h \sum_i s_i`, where each of the 2N
nearest-neighbour bonds of the torus is counted once (for L = 2 every pair of neighbours is
therefore joined by two bonds, as in Kaufman's formula). Results are per spin unless stated;
``log_partition`` is the total :math:`\ln Z`. Functions of T accept scalars (and return
floats) or arrays (and return arrays of the same shape).

* Onsager (1944) and Yang (1952): the infinite lattice at h = 0.
* Kaufman (1949): :math:`\ln Z` of the finite torus at h = 0 for any L, with energy and
  specific heat from exact derivatives (``torch`` autograd in float64, no finite differences).
* Exact enumeration of all :math:`2^{L^2}` configurations for L <= 5 (any h).

References: L. Onsager, Phys. Rev. 65, 117 (1944); B. Kaufman, Phys. Rev. 76, 1232 (1949);
C. N. Yang, Phys. Rev. 85, 808 (1952); P. D. Beale, Phys. Rev. Lett. 76, 78 (1996);
K. Huang, *Statistical Mechanics*, 2nd ed., ch. 15.
"""

from __future__ import annotations

import functools
import math
from typing import TypeAlias

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from genphys.errors import GenphysError

Floats: TypeAlias = "float | NDArray[np.float64]"

T_CRITICAL = 2.0 / math.log(1.0 + math.sqrt(2.0))
"""Onsager's critical temperature :math:`2 / \\ln(1 + \\sqrt 2) \\approx 2.269185`."""

MAX_ENUMERATION_L = 5
MAX_DISTRIBUTION_L = 4

# Tanh-sinh quadrature on [0, pi/2]: psi = (pi/2) sigmoid(pi sinh t), step 1/16, |t| <= 3.2.
_TS_T = np.arange(-51, 52) / 16.0
_TS_SIG = 1.0 / (1.0 + np.exp(-np.pi * np.sinh(_TS_T)))
_TS_PSI = np.pi / 2 * _TS_SIG
_TS_W = np.pi**2 / 32 * np.cosh(_TS_T) * _TS_SIG * (1.0 - _TS_SIG)


def _temperatures(T: ArrayLike) -> NDArray[np.float64]:
    try:
        t = np.asarray(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise GenphysError(
            f"temperature must be a number or an array of numbers, got {T!r}"
        ) from None
    if not np.all(np.isfinite(t) & (t > 0)):
        raise GenphysError(f"temperature must be finite and > 0, got {T!r}")
    return t


def _result(x: NDArray[np.float64], t: NDArray[np.float64]) -> Floats:
    out = np.asarray(x, dtype=np.float64).reshape(t.shape)
    return float(out) if t.ndim == 0 else out


def _size(L: int, max_L: int | None = None) -> int:
    if isinstance(L, bool) or not isinstance(L, int | np.integer) or L < 2:
        raise GenphysError(f"lattice size L must be an integer >= 2, got {L!r}")
    if max_L is not None and L > max_L:
        raise GenphysError(
            f"L = {L} is too big for exact enumeration of 2^(L*L) states (L <= {max_L})"
        )
    return int(L)


def _elliptic(kp: NDArray[np.float64], k2: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """K and E from the complementary modulus k' (and k^2 = 1 - k'^2) by the AGM."""
    a, b, c = (1 + kp) / 2, np.sqrt(kp), (1 - kp) / 2  # a_1, b_1, c_1
    s, p = np.zeros_like(kp), 1.0  # sum_{n>=1} 2^(n-1) c_n^2, 2^(n-1)
    for _ in range(64):  # quadratic convergence: ~12 steps even for k' = 1e-300
        s += p * c * c
        if np.all(c <= 1e-17 * a):
            break
        a_next = (a + b) / 2
        c = c * c / (4 * a_next)  # c_{n+1} = (a_n - b_n) / 2 without cancellation
        a, b, p = a_next, np.sqrt(a * b), 2 * p
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(kp == 0, np.inf, np.pi / (2 * a))
        e = np.where(kp == 0, 1.0, k * (1.0 - k2 / 2 - s))
    return k, e


def _modulus(k: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    m = np.asarray(k, dtype=np.float64)
    if not np.all((m >= 0) & (m <= 1)):
        raise GenphysError(f"elliptic modulus k must lie in [0, 1], got {k!r}")
    return m, np.sqrt((1 - m) * (1 + m)), m * m


def ellipk(k: ArrayLike) -> Floats:
    r"""Complete elliptic integral of the first kind, modulus k.

    :math:`K(k) = \int_0^{\pi/2} d\phi / \sqrt{1 - k^2 \sin^2\phi} = \pi / (2\,\mathrm{AGM}(1,
    k'))` with :math:`k' = \sqrt{1 - k^2}`; K(1) = inf. ``scipy.special.ellipk`` takes
    :math:`m = k^2` instead.
    """
    m, kp, k2 = _modulus(k)
    return _result(_elliptic(kp, k2)[0], m)


def ellipe(k: ArrayLike) -> Floats:
    r"""Complete elliptic integral of the second kind, modulus k.

    :math:`E(k) = \int_0^{\pi/2} \sqrt{1 - k^2 \sin^2\phi}\, d\phi = K(k) (1 - \sum_{n \ge 0}
    2^{n-1} c_n^2)` with the AGM sequence :math:`c_0 = k`, :math:`c_{n+1} = (a_n - b_n)/2`
    (Abramowitz & Stegun 17.6); E(1) = 1. ``scipy.special.ellipe`` takes :math:`m = k^2`.
    """
    m, kp, k2 = _modulus(k)
    return _result(_elliptic(kp, k2)[1], m)


def _onsager_moduli(t: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """tanh 2K, signed k' = 2 tanh^2 2K - 1 (0 at T_c), K(k), E(k); k = 2 sinh 2K / cosh^2 2K."""
    th = np.tanh(2 / t)
    kp = 2 * th * th - 1
    kk, ee = _elliptic(np.abs(kp), (1 - kp) * (1 + kp))
    return th, kp, kk, ee


def onsager_energy(T: ArrayLike) -> Floats:
    r"""Energy per spin of the infinite lattice at h = 0 (Onsager 1944).

    :math:`u = -\coth 2K\,[1 + \tfrac{2}{\pi} k' K(k)]` with K = 1/T,
    :math:`k = 2\sinh 2K / \cosh^2 2K` and :math:`k' = 2\tanh^2 2K - 1`; :math:`u(T_c) = -\sqrt 2`.
    """
    t = _temperatures(T)
    th, kp, kk, _ = _onsager_moduli(t)
    with np.errstate(invalid="ignore"):
        kpk = np.where(kp == 0, 0.0, kp * kk)
    return _result(-(1 + 2 / np.pi * kpk) / th, t)


def onsager_specific_heat(T: ArrayLike) -> Floats:
    r"""Specific heat per spin :math:`c = du/dT` of the infinite lattice at h = 0 (Onsager 1944).

    :math:`c = \tfrac{4}{\pi} (K \coth 2K)^2 \{K(k) - E(k) - (1 - \tanh^2 2K)
    [\tfrac{\pi}{2} + k' K(k)]\}` (moduli as in :func:`onsager_energy`); it diverges like
    :math:`-\tfrac{8}{\pi T_c^2} \ln|1 - T/T_c|` and is ``inf`` at ``T == T_CRITICAL``. The
    absolute error is ~1e-16, but at low T, where :math:`c \approx 64 e^{-8/T} / T^2`, the terms
    cancel: relative error ~1e-11 at T = 0.5, 1e-7 at T = 0.3.
    """
    t = _temperatures(T)
    th, kp, kk, ee = _onsager_moduli(t)
    with np.errstate(invalid="ignore"):
        kpk = np.where(kp == 0, 0.0, kp * kk)
        c = 4 / np.pi * (1 / (t * th)) ** 2 * (kk - ee - (1 - th * th) * (np.pi / 2 + kpk))
    return _result(np.where(t == T_CRITICAL, np.inf, c), t)


def onsager_magnetization(T: ArrayLike) -> Floats:
    r"""Spontaneous magnetization per spin (Yang 1952).

    :math:`m = (1 - \sinh^{-4} 2K)^{1/8}` for T < T_c and 0 for T >= T_c; near T_c
    :math:`m \propto (T_c - T)^{1/8}`.
    """
    t = _temperatures(T)
    q = np.exp(-2 / t)
    x = (2 * q / -np.expm1(-4 / t)) ** 4  # sinh(2K)^-4 without overflow
    return _result(np.where(t < T_CRITICAL, np.maximum(1 - x, 0.0) ** 0.125, 0.0), t)


def onsager_free_energy(T: ArrayLike) -> Floats:
    r"""Free energy per spin :math:`f = -T \ln Z / N` of the infinite lattice at h = 0.

    :math:`-f/T = \ln(2\cosh 2K) + \tfrac{1}{\pi} \int_0^{\pi/2} \ln\tfrac{1 + \sqrt{1 - k^2
    \cos^2\psi}}{2}\, d\psi` (Huang ch. 15), with :math:`1 - k^2\cos^2\psi = \sin^2\psi + k'^2
    \cos^2\psi`; the integral is done by tanh-sinh quadrature (103 nodes, accurate to ~1e-15 even
    as T -> T_c, where the integrand has a branch point at distance |k'| from the endpoint).
    At T_c, :math:`-f/T_c = \tfrac12 \ln 2 + 2G/\pi` (G: Catalan's constant).
    """
    t = _temperatures(T)
    _, kp, _, _ = _onsager_moduli(t)
    s, c = np.sin(_TS_PSI), np.cos(_TS_PSI)
    root = np.sqrt(s * s + (kp[..., None] * c) ** 2)
    integral = (_TS_W * np.log((1 + root) / 2)).sum(-1)
    beta = 1 / t
    return _result(-t * (2 * beta + np.log1p(np.exp(-4 * beta)) + integral / np.pi), t)


def _kaufman_log_z(L: int, beta: torch.Tensor) -> torch.Tensor:
    """ln Z of the L x L torus, differentiable in beta (any shape), stable for large L and low T."""
    K = beta[..., None]
    q = torch.exp(-2 * K)
    one_q2 = -torch.expm1(-4 * K)  # 1 - q^2
    k = torch.arange(1, 2 * L, dtype=torch.float64)
    # gamma_k, k >= 1, from cosh gamma = 1 + delta, delta = (1 - s)^2 / s + 2 sin^2(pi k / 2L),
    # s = sinh 2K; with w = q delta, e^gamma = (q + w + sqrt(w (w + 2q))) / q: no overflow at low T.
    w = (q * q + 2 * q - 1) ** 2 / (2 * one_q2) + 2 * q * torch.sin(math.pi * k / (2 * L)) ** 2
    gamma = 2 * K + torch.log(q + w + torch.sqrt(w * (w + 2 * q)))
    gamma0 = 2 * K + torch.log(torch.tanh(K))  # < 0 above T_c
    x = L / 2 * torch.cat([gamma0, gamma], dim=-1)
    ax = torch.where(x >= 0, x, -x)  # |x| whose second derivative through 0 is right (not abs)
    log_2cosh = ax + torch.log1p(torch.exp(-2 * ax))
    tanh = torch.tanh(x)
    log_z1, log_z3 = log_2cosh[..., 1::2].sum(-1), log_2cosh[..., 0::2].sum(-1)
    # Z2 = Z1 prod tanh(x_odd), Z4 = Z3 prod tanh(x_even); |prod| < 1, so 1 + prod > 0. The
    # factor tanh(x_0), which passes through 0 at T_c, stays out of torch.prod, whose double
    # backward divides by its inputs (x_k >= ~pi/2 for k >= 1).
    p_odd, p_even = tanh[..., 1::2].prod(-1), tanh[..., 0] * tanh[..., 2::2].prod(-1)
    # top keeps its gradient: autograd then differentiates l - top (small derivatives) instead of
    # forming (d ln Z1 / d beta)^2 ~ N^2 and cancelling it again (cost 1e-12 in c at L = 256).
    top = torch.maximum(log_z1, log_z3)
    total = (1 + p_odd) * torch.exp(log_z1 - top) + (1 + p_even) * torch.exp(log_z3 - top)
    log_prefactor = L * L / 2 * (2 * beta + torch.log(-torch.expm1(-4 * beta)))  # (2 sinh 2K)^(N/2)
    return log_prefactor - math.log(2) + top + torch.log(total)


def _kaufman(L: int, T: ArrayLike, order: int) -> Floats:
    size, t = _size(L), _temperatures(T)
    beta = torch.tensor(1 / t, dtype=torch.float64).reshape(-1).requires_grad_(order > 0)
    with torch.enable_grad():
        out = _kaufman_log_z(size, beta)
        if order > 0:
            (d1,) = torch.autograd.grad(out.sum(), beta, create_graph=order > 1)
            out = -d1 / size**2
            if order > 1:
                (d2,) = torch.autograd.grad(d1.sum(), beta)
                out = beta**2 * d2 / size**2
    return _result(out.detach().numpy(), t)


def kaufman_log_partition(L: int, T: ArrayLike) -> Floats:
    r"""Total :math:`\ln Z` of the L x L torus at h = 0, exact for any L >= 2 (Kaufman 1949).

    .. math::
        Z = \tfrac12 (2\sinh 2K)^{N/2} (Z_1 + Z_2 + Z_3 + Z_4),\quad
        Z_{1,2} = \prod_{r=0}^{L-1} 2\{\cosh,\sinh\}(\tfrac{L}{2}\gamma_{2r+1}),\quad
        Z_{3,4} = \prod_{r=0}^{L-1} 2\{\cosh,\sinh\}(\tfrac{L}{2}\gamma_{2r}),

    with :math:`\cosh\gamma_k = \cosh 2K \coth 2K - \cos(\pi k / L)` (k >= 1) and
    :math:`\gamma_0 = 2K + \ln\tanh K`, which changes sign at T_c, so that :math:`Z_4 < 0` above
    T_c. It is computed in log space as :math:`Z_1 (1 + \prod \tanh) + Z_3 (1 + \prod \tanh)`
    (both brackets in (0, 2)), so nothing overflows or cancels for L = 256 or T -> 0.
    """
    return _kaufman(L, T, 0)


def kaufman_free_energy(L: int, T: ArrayLike) -> Floats:
    """Free energy per spin :math:`f = -T \\ln Z / N` of the L x L torus at h = 0."""
    t = _temperatures(T)
    return _result(-t * np.asarray(kaufman_log_partition(L, t)) / L**2, t)


def kaufman_energy(L: int, T: ArrayLike) -> Floats:
    r"""Energy per spin :math:`u = -\partial_\beta \ln Z / N` of the L x L torus at h = 0.

    Exact derivative of :func:`kaufman_log_partition` by float64 autograd.
    """
    return _kaufman(L, T, 1)


def kaufman_specific_heat(L: int, T: ArrayLike) -> Floats:
    r"""Specific heat per spin :math:`c = \beta^2 \partial_\beta^2 \ln Z / N` of the L x L torus.

    Exact second derivative by float64 autograd: absolute error ~1e-15. At low T, c is
    :math:`O(e^{-8/T})` while the terms summed are :math:`O(e^{-2/T})`, so the relative error
    grows like :math:`10^{-16} e^{6/T}` at most (about 1e-11 at T = 0.5, 1e-14 at T = 1).
    """
    return _kaufman(L, T, 2)


def _enumerate(L: int, start: int, stop: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Broken bonds and up spins of configurations start..stop-1 (bit i*L + j set: s_ij = +1)."""
    n = L * L
    c = np.arange(start, stop, dtype=np.uint64)
    full = (1 << n) - 1
    last_col = sum(1 << (i * L + L - 1) for i in range(L))
    right = ((c >> 1) & (full ^ last_col)) | ((c << (L - 1)) & last_col)  # bit b: right neighbour
    down = ((c >> L) | (c << (n - L))) & full  # bit b: neighbour below, (b + L) mod N
    broken = np.bitwise_count(c ^ right).astype(np.int64) + np.bitwise_count(c ^ down)
    return broken, np.bitwise_count(c).astype(np.int64)


@functools.cache
def _density_of_states(L: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    n, chunk = L * L, 1 << 20
    counts = np.zeros((2 * n + 1) * (n + 1), dtype=np.int64)
    for start in range(0, 1 << n, chunk):
        broken, up = _enumerate(L, start, min(start + chunk, 1 << n))
        counts += np.bincount(broken * (n + 1) + up, minlength=counts.size)
    broken, up = np.nonzero(counts.reshape(2 * n + 1, n + 1))
    out = (2 * broken - 2 * n, 2 * up - n, counts[counts > 0])
    for a in out:
        a.flags.writeable = False
    return out


def ising_density_of_states(
    L: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Exact joint density of states g(E, M) of the L x L torus, by enumerating all 2^(L*L) states.

    Returns read-only int64 arrays ``(energies, magnetizations, counts)`` listing every (E, M)
    that occurs (E without the field term, M = sum of spins, both totals), with
    ``counts.sum() == 2**(L*L)``. L <= 5 (L = 4: a few ms; L = 5: about a second); cached.
    """
    return _density_of_states(_size(L, MAX_ENUMERATION_L))


def _field(h: float) -> float:
    if (
        isinstance(h, bool)
        or not isinstance(h, int | float | np.integer | np.floating)
        or not math.isfinite(h)
    ):
        raise GenphysError(f"field h must be a finite number, got {h!r}")
    return float(h)


def exact_observables(L: int, T: ArrayLike, h: float = 0.0) -> dict[str, Floats]:
    r"""Exact thermal averages on the L x L torus (L <= 5) from :func:`ising_density_of_states`.

    With e = E/N (field term included), m = M/N and Boltzmann weights summed by log-sum-exp:

    * ``energy`` <e>, ``magnetization`` <m>, ``abs_magnetization`` <|m|>, ``m2`` <m^2>,
      ``m4`` <m^4>, ``log_partition`` ln Z (total, not per spin);
    * ``specific_heat`` :math:`N\beta^2 \mathrm{var}(e) = \mathrm{var}(E)/(N T^2)`;
    * ``susceptibility`` :math:`N\beta(\langle m^2\rangle - \langle|m|\rangle^2)`, the usual
      finite-size estimator of the thermodynamic susceptibility (at h = 0, <m> = 0 on a finite
      lattice by symmetry, so <|m|>^2 is subtracted instead); the one to compare below T_c;
    * ``susceptibility_m2`` :math:`N\beta\langle m^2\rangle`: at h = 0 the exact response
      :math:`d\langle M\rangle/dh` of the finite lattice, which estimates the thermodynamic
      susceptibility above T_c (at h != 0 the response is :math:`N\beta\,\mathrm{var}(m)`);
    * ``binder`` :math:`1 - \langle m^4\rangle / (3\langle m^2\rangle^2)`.
    """
    energies, mags, counts = ising_density_of_states(L)
    t, field, n = _temperatures(T), _field(h), L * L
    beta = 1 / t[..., None]
    e, m = (energies - field * mags) / n, mags / n
    log_w = np.log(counts) - beta * n * e
    top = log_w.max(-1, keepdims=True)
    w = np.exp(log_w - top)
    z = w.sum(-1, keepdims=True)
    p = w / z
    u, m2 = (p * e).sum(-1), (p * m * m).sum(-1)
    abs_m, b = (p * np.abs(m)).sum(-1), beta[..., 0]
    out = {
        "energy": u,
        "magnetization": (p * m).sum(-1),
        "abs_magnetization": abs_m,
        "m2": m2,
        "m4": (p * m**4).sum(-1),
        "specific_heat": n * b * b * (p * (e - u[..., None]) ** 2).sum(-1),
        "susceptibility": n * b * (m2 - abs_m**2),
        "susceptibility_m2": n * b * m2,
        "log_partition": top[..., 0] + np.log(z[..., 0]),
    }
    out["binder"] = 1 - out["m4"] / (3 * m2 * m2)
    return {key: _result(value, t) for key, value in out.items()}


@functools.cache
def _configurations(L: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    broken, up = _enumerate(L, 0, 1 << (L * L))
    return 2 * broken - 2 * L * L, 2 * up - L * L


def exact_distribution(L: int, T: ArrayLike, h: float = 0.0) -> NDArray[np.float64]:
    r"""Boltzmann probability :math:`e^{-\beta E(s)} / Z` of every configuration, L <= 4.

    Index convention: configuration ``c`` (0 <= c < 2^(L*L)) has spin (i, j) = +1 when bit
    ``i*L + j`` of c is 1 and -1 otherwise (row-major, like ``spins.reshape(-1)``), so
    ``c = sum(((s.reshape(-1) + 1) // 2) << arange(L*L))``. Shape ``T.shape + (2**(L*L),)``.
    """
    energies, mags = _configurations(_size(L, MAX_DISTRIBUTION_L))
    t, field = _temperatures(T), _field(h)
    log_w = -(energies - field * mags) / t[..., None]
    w = np.exp(log_w - log_w.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)
