r"""Ising observables of spin configurations, with jackknife errors and autocorrelation times.

Per-spin conventions (N = L^2 spins, J = 1, k_B = 1), the same as
:mod:`genphys.physics.ising_exact`:

* energy :math:`e = E/N`, absolute magnetization :math:`|m| = |\sum_i s_i|/N`;
* specific heat :math:`C = N(\langle e^2\rangle - \langle e\rangle^2)/T^2`;
* susceptibility :math:`\chi = N(\langle m^2\rangle - \langle |m|\rangle^2)/T` (the finite-size
  form with |m|, since a finite lattice has :math:`\langle m\rangle = 0`);
* Binder cumulant :math:`U_4 = 1 - \langle m^4\rangle / (3\langle m^2\rangle^2)`.

Errors come from a jackknife over blocks: each chain's time series is cut into blocks of at
least ten times the measured integrated autocorrelation time (so blocks are nearly independent),
every (chain, block) pair is one unit, and the nonlinear observables are recomputed with one
unit left out. Values are jackknife bias-corrected.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from genphys.errors import GenphysError
from genphys.evaluation.stats import Estimate, integrated_autocorrelation_time

#: The observables :func:`thermodynamics` returns, in table order.
OBSERVABLES = ("energy", "abs_magnetization", "specific_heat", "susceptibility", "binder")


def as_spins(x: Any, L: int | None = None) -> np.ndarray:
    """Configurations as an (n, L, L) int8 array of +-1, from +-1 or {0, 1} values, given as
    (n, L, L) or flattened (n, L*L)."""
    a = np.asarray(x)
    if a.ndim == 2:
        side = L if L is not None else math.isqrt(a.shape[1])
        if side * side != a.shape[1]:
            raise GenphysError(f"cannot read {a.shape[1]} values per sample as an L x L lattice")
        a = a.reshape(a.shape[0], side, side)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] == 0:
        raise GenphysError(f"spin configurations must have shape (n, L, L), got {a.shape}")
    values = np.unique(a)
    if np.isin(values, (-1, 1)).all():
        return a.astype(np.int8)
    if np.isin(values, (0, 1)).all():
        return (2 * a - 1).astype(np.int8)
    raise GenphysError("spins must be -1/+1 or 0/1; got other values (sample or threshold them)")


def energy_per_spin(spins: Any, h: float = 0.0) -> np.ndarray:
    """Energy per spin of every configuration on the periodic lattice."""
    s = as_spins(spins).astype(np.int64)
    bonds = (s * (np.roll(s, 1, 1) + np.roll(s, 1, 2))).sum((1, 2))
    return (-bonds - h * s.sum((1, 2))) / (s.shape[1] * s.shape[2])


def magnetization_per_spin(spins: Any) -> np.ndarray:
    """Magnetization per spin (signed) of every configuration."""
    s = as_spins(spins)
    return s.sum((1, 2), dtype=np.int64) / (s.shape[1] * s.shape[2])


def _series(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise GenphysError(f"{what} must be (samples,) or (samples, chains), got {a.shape}")
    if not np.isfinite(a).all():
        raise GenphysError(f"{what} contains NaN or Inf")
    return a


def measured_tau(a: np.ndarray) -> float | None:
    """Integrated autocorrelation time of a (sweeps,) or (sweeps, chains) series, at least 1;
    1 for a constant series, None when it is under 32 sweeps (too short to measure)."""
    if np.ptp(a) == 0:
        return 1.0
    if a.shape[0] < 32:
        return None
    return max(1.0, integrated_autocorrelation_time(a))


#: jackknife blocks span this many autocorrelation times: neighbouring block means are then
#: nearly independent (their correlation shrinks the variance by about tau / block)
BLOCK_TAUS = 10


def thermodynamics(
    energy: Any,
    magnetization: Any,
    L: int,
    T: float,
    independent: bool = False,
    min_units: int = 20,
) -> dict[str, Estimate]:
    """Energy, |m|, specific heat, susceptibility and Binder cumulant with jackknife errors.

    Args:
        energy: energy per spin, (samples,) or (samples, chains) (time runs down axis 0).
        magnetization: magnetization per spin, same shape (its sign is ignored).
        L: lattice size (N = L^2 enters C and chi).
        T: temperature.
        independent: treat the samples as independent (tau = 1; e.g. a VAE's or GAN's
            samples) instead of measuring autocorrelation times along axis 0.
        min_units: the least number of jackknife units. A unit is a block of
            :data:`BLOCK_TAUS` autocorrelation times of one chain, or a whole chain when the
            chains are shorter; blocks are shortened (down to one sample) to keep at least
            this many units, with a warning when that makes them shorter than 5 tau (the
            errors are then too small). Chains too short (< 32 steps) to measure tau are
            each one unit, or, for a single chain, taken as independent with a warning.

    Returns:
        ``{name: Estimate}`` for :data:`OBSERVABLES` and ``m2``; energy and |m| carry their
        autocorrelation times in ``tau``.
    """
    e = _series(energy, "energy")
    m = np.abs(_series(magnetization, "magnetization"))
    if e.shape != m.shape:
        raise GenphysError(f"energy {e.shape} and magnetization {m.shape} differ in shape")
    if not (T > 0 and L >= 1):
        raise GenphysError(f"need T > 0 and L >= 1, got T={T}, L={L}")
    n_t, n_chains = e.shape
    taus: tuple[float | None, float | None] = (
        (1.0, 1.0) if independent else (measured_tau(e), measured_tau(m))
    )
    if taus[0] is None or taus[1] is None:  # too short to measure tau: whole chains are units
        taus = (None, None)
        block = n_t if n_chains >= 2 else 1
        if n_chains < 2:
            warnings.warn(
                f"a single series of {n_t} samples is too short to measure its "
                "autocorrelation time; the errors assume independent samples",
                stacklevel=2,
            )
    else:
        tau = max(taus[0], taus[1])
        wanted = min(max(1, math.ceil(BLOCK_TAUS * tau)), n_t)  # a whole chain at most
        block = min(wanted, max(1, n_t * n_chains // min_units))
        if not independent and block < n_t and block < 5 * tau:  # too small errors
            warnings.warn(
                f"series of {n_t} x {n_chains} samples with tau = {tau:.1f}: jackknife blocks "
                f"shortened to {block} (from {wanted}) to keep {min_units} units; the errors "
                "are underestimated, take longer series",
                stacklevel=2,
            )
    n_blocks = n_t // block
    if n_blocks * n_chains < 2:
        raise GenphysError(f"too few samples for errors: {n_t} x {n_chains} with block {block}")
    cut = slice(n_t - n_blocks * block, n_t)  # drop the earliest samples, least equilibrated

    def units(x: np.ndarray) -> np.ndarray:
        return x[cut].reshape(n_blocks, block, n_chains).mean(1).reshape(-1)

    moments = np.stack([units(e), units(e * e), units(m), units(m * m), units(m**4)])
    n_units = moments.shape[1]
    total = moments.sum(1, keepdims=True)
    full = total[:, 0] / n_units
    leave_out = (total - moments) / (n_units - 1)  # (5, units)

    n = L * L

    def derived(mu: np.ndarray) -> dict[str, np.ndarray]:
        e1, e2, m1, m2, m4 = mu
        with np.errstate(divide="ignore", invalid="ignore"):
            binder = 1.0 - m4 / (3.0 * m2 * m2)
        return {
            "energy": e1,
            "abs_magnetization": m1,
            "specific_heat": n * (e2 - e1 * e1) / T**2,
            "susceptibility": n * (m2 - m1 * m1) / T,
            "binder": binder,
            "m2": m2,
        }

    values, jack = derived(full), derived(leave_out)
    out = {}
    for name in (*OBSERVABLES, "m2"):
        f_all, f_jack = float(values[name]), jack[name]
        mean_jack = float(f_jack.mean())
        value = n_units * f_all - (n_units - 1) * mean_jack
        err = math.sqrt((n_units - 1) / n_units * float(((f_jack - mean_jack) ** 2).sum()))
        tau_of = {"energy": taus[0], "abs_magnetization": taus[1]}.get(name)
        out[name] = Estimate(value, err, n=int(e.size), tau=tau_of)
    return out


def spin_thermodynamics(
    spins: Any,
    T: float,
    h: float = 0.0,
    independent: bool = True,
) -> dict[str, Estimate]:
    """:func:`thermodynamics` of configurations: (n, L, L) independent samples, or
    (steps, chains, L, L) chains with ``independent=False``."""
    a = np.asarray(spins)
    if a.ndim == 4:
        flat = as_spins(a.reshape(-1, *a.shape[2:]))
        shape = a.shape[:2]
    else:
        flat = as_spins(a)
        shape = (flat.shape[0],)
    e = energy_per_spin(flat, h).reshape(shape)
    m = magnetization_per_spin(flat).reshape(shape)
    return thermodynamics(e, m, flat.shape[1], T, independent=independent)
