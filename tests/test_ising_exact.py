"""Exact 2-D Ising results: elliptic integrals, Onsager, Kaufman's finite torus, enumeration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sp

from genphys.errors import GenphysError
from genphys.physics import ising_exact as ie

TC = ie.T_CRITICAL
CATALAN = 0.915965594177219015054603514932384110774
TEMPS = np.array([1.0, 2.0, 2.269, TC, 3.0, 5.0])


def _rel(a: object, b: object) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _energy_and_m(configs: np.ndarray, L: int, h: float) -> tuple[np.ndarray, np.ndarray]:
    """E and M of integer-coded configurations, independently of the module (np.roll)."""
    bits = (configs[:, None] >> np.arange(L * L)) & 1
    s = (2 * bits - 1).reshape(-1, L, L)
    bonds = s * np.roll(s, 1, axis=1) + s * np.roll(s, 1, axis=2)
    m = s.sum(axis=(1, 2))
    return -bonds.sum(axis=(1, 2)) - h * m, m


# ------------------------------------------------------------------------------ elliptic integrals


def test_elliptic_integrals_match_scipy() -> None:
    k = np.linspace(0.0, 0.999, 201)
    assert _rel(ie.ellipk(k), sp.ellipk(k * k)) < 1e-13  # scipy's parameter is m = k^2
    assert _rel(ie.ellipe(k), sp.ellipe(k * k)) < 1e-13
    near_one = 1 - 10.0 ** -np.arange(4, 16)
    assert _rel(ie.ellipk(near_one), sp.ellipkm1((1 - near_one) * (1 + near_one))) < 1e-13
    assert _rel(ie.ellipe(near_one), sp.ellipe(near_one * near_one)) < 1e-13
    assert ie.ellipk(0.0) == pytest.approx(math.pi / 2, rel=1e-15)
    assert ie.ellipe(0.0) == pytest.approx(math.pi / 2, rel=1e-15)
    assert ie.ellipk(1.0) == math.inf and ie.ellipe(1.0) == 1.0
    assert isinstance(ie.ellipk(0.5), float) and ie.ellipe(k.reshape(3, 67)).shape == (3, 67)


# ------------------------------------------------------------------------------------- Onsager


def test_onsager_values_at_and_near_tc() -> None:
    assert ie.onsager_energy(TC) == pytest.approx(-math.sqrt(2), rel=1e-14)
    assert ie.onsager_specific_heat(TC) == math.inf
    assert -ie.onsager_free_energy(TC) / TC == pytest.approx(
        math.log(2) / 2 + 2 * CATALAN / math.pi, rel=1e-14
    )
    # c ~ -(8 / (pi Tc^2)) ln|1 - T/Tc| on both sides: the same amplitude above and below.
    amplitude = 8 / (math.pi * TC**2)
    for side in (-1, 1):
        c_far, c_near = ie.onsager_specific_heat(TC * (1 + side * np.array([1e-6, 1e-8])))
        assert (c_near - c_far) / math.log(100) == pytest.approx(amplitude, rel=1e-4)


def test_onsager_low_and_high_temperature_limits() -> None:
    assert ie.onsager_energy(0.1) == pytest.approx(-2.0, rel=1e-15)
    assert ie.onsager_free_energy(0.1) == pytest.approx(-2.0, rel=1e-15)
    # High T: u = -2 tanh(K) (1 + O(K^2)) from the nearest-neighbour pairs.
    assert ie.onsager_energy(100.0) == pytest.approx(-2 * math.tanh(0.01), rel=1e-3)


def test_onsager_magnetization() -> None:
    t = np.array([0.5, 1.0, 1.5, 2.0, 2.2, 2.26])
    tk = np.tanh(1 / t)
    yang = (1 - ((1 - tk**2) / (2 * tk)) ** 4) ** 0.125  # sinh 2K = 2 tanh K / (1 - tanh^2 K)
    m = ie.onsager_magnetization(t)
    sinh_2k_4 = math.sinh(4.0) ** -4  # T = 0.5: 1 - m ~ sinh(2K)^-4 / 8
    assert _rel(m, yang) < 1e-14
    assert np.all(np.diff(m) < 0) and 1 - m[0] == pytest.approx(sinh_2k_4 / 8, rel=1e-5)
    assert ie.onsager_magnetization(0.01) == 1.0
    assert np.all(ie.onsager_magnetization([TC, 2.3, 3.0, 10.0]) == 0.0)


@pytest.mark.parametrize("T", [1.0, 1.5, 2.0, 2.2, 2.35, 3.0, 5.0])
def test_onsager_derivatives_are_consistent(T: float) -> None:
    h = 1e-5
    du_dt = (ie.onsager_energy(T + h) - ie.onsager_energy(T - h)) / (2 * h)
    assert ie.onsager_specific_heat(T) == pytest.approx(du_dt, abs=1e-6)
    # u = d(beta f) / d(beta)
    bf = [ie.onsager_free_energy(t) / t for t in (T + h, T - h)]
    assert ie.onsager_energy(T) == pytest.approx(
        (bf[0] - bf[1]) / (1 / (T + h) - 1 / (T - h)), abs=1e-8
    )


# ------------------------------------------------------------------------------------- Kaufman


@pytest.mark.parametrize("L", [2, 3, 4, 5])
def test_kaufman_equals_enumeration(L: int) -> None:
    exact = ie.exact_observables(L, TEMPS)
    assert _rel(ie.kaufman_log_partition(L, TEMPS), exact["log_partition"]) < 1e-12
    assert _rel(ie.kaufman_energy(L, TEMPS), exact["energy"]) < 1e-12
    assert _rel(ie.kaufman_specific_heat(L, TEMPS), exact["specific_heat"]) < 1e-12
    assert _rel(ie.kaufman_free_energy(L, TEMPS), -TEMPS * exact["log_partition"] / L**2) < 1e-12


def test_kaufman_is_smooth_through_tc() -> None:
    """gamma_0 = 0 exactly at T_c: no NaN or jump in the autograd derivatives there."""
    t = TC * (1 + np.array([-1e-9, -1e-14, 0.0, 1e-14, 1e-9]))
    exact = ie.exact_observables(4, t)["specific_heat"]
    assert _rel(ie.kaufman_specific_heat(4, t), exact) < 1e-12


def test_kaufman_large_lattice_and_extreme_temperatures() -> None:
    t = np.array([0.002, 0.01, 0.5, TC, 10.0, 1e6])
    for f in (ie.kaufman_log_partition, ie.kaufman_energy, ie.kaufman_specific_heat):
        assert np.all(np.isfinite(f(256, t)))
    n = 256**2
    assert ie.kaufman_log_partition(256, 0.01) == pytest.approx(
        2 * n / 0.01 + math.log(2), rel=1e-15
    )
    assert ie.kaufman_log_partition(256, 1e6) == pytest.approx(n * math.log(2), rel=1e-10)
    assert ie.kaufman_energy(256, 0.01) == -2.0
    assert ie.kaufman_energy(256, [[1.5, 3.0]]).shape == (1, 2)
    assert isinstance(ie.kaufman_energy(8, 2.0), float)


@pytest.mark.parametrize(("T", "L"), [(1.8, 16), (2.0, 32), (2.5, 64), (3.0, 16), (4.0, 8)])
def test_kaufman_converges_exponentially_to_onsager(T: float, L: int) -> None:
    sizes = [8, 16, 32, 64, 128]
    err = np.abs([ie.kaufman_energy(size, T) - ie.onsager_energy(T) for size in sizes])
    big = err > 1e-13  # above round-off the error shrinks with every doubling of L
    assert np.all(np.diff(err[big]) < 0) and err[-1] < 1e-9
    assert abs(ie.kaufman_energy(256, T) - ie.onsager_energy(T)) < 1e-13
    # ~ exp(-L / xi) with 1/xi = 2(K* - K) above T_c and 4(K - K*) below (tanh K* = e^{-2K}),
    # measured between L and 2L, the largest pair still well above round-off.
    K = 1 / T
    K_dual = math.atanh(math.exp(-2 * K))
    rate = 2 * (K_dual - K) if T > TC else 4 * (K - K_dual)
    i = sizes.index(L)
    assert math.log(err[i] / err[i + 1]) / L == pytest.approx(rate, rel=0.1)


def test_kaufman_at_tc_approaches_onsager_like_one_over_l() -> None:
    err = np.array([ie.kaufman_energy(L, TC) for L in (8, 16, 32, 64, 128, 256)]) + math.sqrt(2)
    assert np.all(err < 0) and np.all(np.diff(np.abs(err)) < 0)
    assert np.all(np.abs(err[:-1] / err[1:] - 2) < 0.02)


def _peak(L: int, lo: float, hi: float) -> float:
    """Position of the maximum of c(T): a coarse grid, a fine one, then a parabola."""
    for _ in range(2):
        grid = np.linspace(lo, hi, 41)
        c = ie.kaufman_specific_heat(L, grid)
        i = int(np.argmax(c))
        lo, hi = grid[i - 1], grid[i + 1]
    y0, y1, y2 = c[i - 1 : i + 2]
    return grid[i] + (grid[1] - grid[0]) * (y0 - y2) / (2 * (y0 - 2 * y1 + y2))


def test_specific_heat_peak_moves_to_tc() -> None:
    shifts = np.array([_peak(L, 2.25, 2.45) / TC - 1 for L in (16, 32, 64, 128)])
    assert np.all(shifts > 0) and np.all(np.diff(shifts) < 0)
    # Ferdinand & Fisher (1969): T_max / T_c - 1 ~ 0.3603 / L on the torus.
    assert shifts[-1] * 128 == pytest.approx(0.3603, abs=0.01)


def test_kaufman_free_energy_limit() -> None:
    assert ie.kaufman_free_energy(64, 3.0) == pytest.approx(ie.onsager_free_energy(3.0), rel=1e-14)
    # Below T_c the finite torus has two ordered states: ln Z_L -> -N f / T + ln 2.
    extra = ie.kaufman_log_partition(64, 2.0) + 64**2 * ie.onsager_free_energy(2.0) / 2.0
    assert extra == pytest.approx(math.log(2), abs=1e-9)
    assert ie.kaufman_specific_heat(256, 1.5) == pytest.approx(
        ie.onsager_specific_heat(1.5), rel=1e-12
    )
    assert ie.kaufman_specific_heat(256, 3.0) == pytest.approx(
        ie.onsager_specific_heat(3.0), rel=1e-12
    )


# ---------------------------------------------------------------------------------- enumeration


def test_density_of_states_2x2_by_hand() -> None:
    energies, mags, counts = ie.ising_density_of_states(2)
    got = dict(
        zip(zip(energies.tolist(), mags.tolist(), strict=True), counts.tolist(), strict=True)
    )
    # Each neighbour pair of the 2 x 2 torus is joined by two bonds (8 bonds in all).
    assert got == {(-8, -4): 1, (-8, 4): 1, (0, -2): 4, (0, 2): 4, (0, 0): 4, (8, 0): 2}


@pytest.mark.parametrize("L", [3, 4])
def test_density_of_states_sanity(L: int) -> None:
    energies, mags, counts = ie.ising_density_of_states(L)
    n = L * L
    assert counts.sum() == 2**n and np.all(counts > 0)
    assert energies.min() == -2 * n and counts[energies == -2 * n].sum() == 2
    assert set(mags[energies == -2 * n].tolist()) == {-n, n}
    table = dict(
        zip(zip(energies.tolist(), mags.tolist(), strict=True), counts.tolist(), strict=True)
    )
    assert all(table[(e, -m)] == c for (e, m), c in table.items())
    assert ie.ising_density_of_states(L) is ie.ising_density_of_states(L)  # cached ...
    with pytest.raises(ValueError):
        counts[0] = 0  # ... and read-only


def test_exact_distribution_by_hand() -> None:
    T, h = 1.7, 0.3
    b = 1 / T
    z = (
        2 * math.exp(8 * b) * math.cosh(4 * b * h)
        + 8 * math.cosh(2 * b * h)
        + 4
        + 2 * math.exp(-8 * b)
    )
    p = ie.exact_distribution(2, T, h)
    assert p.shape == (16,) and p.sum() == pytest.approx(1.0, rel=1e-15)
    # 15: all up; 0: all down; 1: only (0, 0) up; 3: row 0 up; 9: (0, 0) and (1, 1) up.
    for index, e in [(15, -8 - 4 * h), (0, -8 + 4 * h), (1, 2 * h), (3, 0.0), (9, 8.0)]:
        assert p[index] == pytest.approx(math.exp(-b * e) / z, rel=1e-14)
    assert ie.exact_observables(2, T, h)["log_partition"] == pytest.approx(math.log(z), rel=1e-15)


@pytest.mark.parametrize("L", [3, 4])
def test_exact_distribution_matches_direct_energies(L: int) -> None:
    T, h = 2.1, -0.2
    p = ie.exact_distribution(L, T, h)
    configs = np.random.default_rng(L).integers(0, 2 ** (L * L), 50)
    e, _ = _energy_and_m(configs, L, h)
    log_z = ie.exact_observables(L, T, h)["log_partition"]
    assert _rel(p[configs], np.exp(-e / T - log_z)) < 1e-12
    assert p.sum() == pytest.approx(1.0, rel=1e-14)
    assert ie.exact_distribution(L, [[T, 3.0]], h).shape == (1, 2, 2 ** (L * L))


def test_exact_observables_consistent_with_distribution() -> None:
    L, T, h = 4, 2.4, 0.1
    configs = np.arange(2**16)
    e, m = _energy_and_m(configs, L, h)
    p = ie.exact_distribution(L, T, h)
    obs = ie.exact_observables(L, T, h)
    n = L * L
    assert obs["energy"] == pytest.approx(p @ e / n, rel=1e-13)
    assert obs["magnetization"] == pytest.approx(p @ m / n, rel=1e-13)
    assert obs["abs_magnetization"] == pytest.approx(p @ np.abs(m) / n, rel=1e-13)
    assert obs["m4"] == pytest.approx(p @ (m / n) ** 4, rel=1e-13)
    var_e = p @ (e - p @ e) ** 2
    assert obs["specific_heat"] == pytest.approx(var_e / (n * T**2), rel=1e-12)
    assert obs["susceptibility"] == pytest.approx(
        n / T * (obs["m2"] - obs["abs_magnetization"] ** 2), rel=1e-13
    )


def test_exact_observables_limits_and_conventions() -> None:
    L, n = 3, 9
    obs = ie.exact_observables(L, [0.2, 2.5, 1e6])
    assert np.allclose(obs["magnetization"], 0.0, atol=1e-15)  # symmetric at h = 0
    assert obs["binder"][0] == pytest.approx(2 / 3, abs=1e-12)  # ordered: m = +-1
    assert obs["binder"][2] == pytest.approx(2 / (3 * n), abs=1e-5)  # free spins: 2 / (3N)
    assert obs["energy"][0] == pytest.approx(-2.0, abs=1e-10)
    # susceptibility_m2 = N beta <m^2> is the response d<m>/dh at h = 0.
    h = 1e-5
    dm = (
        ie.exact_observables(L, 2.5, h)["magnetization"]
        - ie.exact_observables(L, 2.5, -h)["magnetization"]
    )
    assert obs["susceptibility_m2"][1] == pytest.approx(dm / (2 * h), rel=1e-8)
    assert isinstance(ie.exact_observables(L, 2.5)["binder"], float)


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda: ie.onsager_energy(0.0),
        lambda: ie.onsager_specific_heat(-1.0),
        lambda: ie.onsager_magnetization(float("nan")),
        lambda: ie.onsager_free_energy([2.0, math.inf]),
        lambda: ie.kaufman_energy(8, "hot"),
        lambda: ie.kaufman_log_partition(1, 2.0),
        lambda: ie.kaufman_specific_heat(2.5, 2.0),
        lambda: ie.kaufman_free_energy(True, 2.0),
        lambda: ie.ising_density_of_states(6),
        lambda: ie.exact_observables(3, 2.0, h=float("nan")),
        lambda: ie.exact_observables(0, 2.0),
        lambda: ie.exact_distribution(5, 2.0),
        lambda: ie.exact_distribution(3, 0.0),
        lambda: ie.ellipk(1.5),
        lambda: ie.ellipe(-0.1),
    ],
)
def test_bad_input_raises_one_line_error(call) -> None:
    with pytest.raises(GenphysError) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value)
