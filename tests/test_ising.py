"""Ising Monte Carlo against exact answers: transition matrices, enumeration, Kaufman."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from genphys.errors import GenphysError
from genphys.physics.ising import (
    TIE_EVERY,
    IsingState,
    Metropolis,
    SwendsenWang,
    init_state,
    state_from_configurations,
)
from genphys.physics.ising_exact import exact_distribution, exact_observables, kaufman_energy
from genphys.physics.observables import (
    energy_per_spin,
    magnetization_per_spin,
    thermodynamics,
)

Z_MAX = 4.0  # |z| bound for single comparisons (p ~ 6e-5 under a correct sampler)


def _all_states(L: int) -> np.ndarray:
    """Every configuration, row k has spin (i, j) = +1 where bit i*L + j of k is set."""
    bits = (np.arange(2 ** (L * L))[:, None] >> np.arange(L * L)) & 1
    return (2 * bits - 1).reshape(-1, L, L).astype(np.int8)


def _codes(configs: np.ndarray) -> np.ndarray:
    L = configs.shape[1]
    bits = (configs.reshape(len(configs), -1) > 0).astype(np.int64)
    return bits @ (1 << np.arange(L * L))


def _half_kernel(L: int, T: float, h: float, colour: int, tie: float = 1.0) -> np.ndarray:
    """Exact transition matrix of one Metropolis half sweep, built from the rule alone
    (``tie``: the acceptance of flips that cost nothing)."""
    states = _all_states(L)
    energies = energy_per_spin(states, h) * L * L
    sites = [(i, j) for i in range(L) for j in range(L) if (i + j) % 2 == colour]
    n = len(states)
    P = np.zeros((n, n))
    for x in range(n):
        p_flip = []
        for i, j in sites:
            y = states[x].copy()
            y[i, j] *= -1
            d_e = energy_per_spin(y[None], h)[0] * L * L - energies[x]
            p_flip.append(tie if abs(d_e) < 1e-9 else min(1.0, math.exp(-d_e / T)))
        for flips in itertools.product((0, 1), repeat=len(sites)):
            y = states[x].copy()
            prob = 1.0
            for (i, j), f, p in zip(sites, flips, p_flip, strict=True):
                prob *= p if f else 1 - p
                if f:
                    y[i, j] *= -1
            P[x, _codes(y[None])[0]] += prob
    return P


@pytest.mark.parametrize("h", [0.0, 0.3])
def test_checkerboard_sweep_matches_exact_transition_matrix(h: float) -> None:
    L, T, n = 2, 1.7, 3000
    p0, p1 = _half_kernel(L, T, h, 0), _half_kernel(L, T, h, 1)
    boltzmann = exact_distribution(L, T, h)
    for P in (p0, p1):
        flow = boltzmann[:, None] * P
        np.testing.assert_allclose(flow, flow.T, atol=1e-15)
    sweep = p0 @ p1
    np.testing.assert_allclose(boltzmann @ sweep, boltzmann, atol=1e-14)
    # every TIE_EVERY-th sweep breaks ties by a coin; it keeps the distribution too, and makes
    # the chain ergodic: one eigenvalue of modulus 1 (with ties always accepted, at h = 0 the
    # four stripe states were a closed set: a second eigenvalue 1, and -1 for their cycle)
    tied = _half_kernel(L, T, h, 0, tie=0.5) @ _half_kernel(L, T, h, 1, tie=0.5)
    np.testing.assert_allclose(boltzmann @ tied, boltzmann, atol=1e-14)
    cycle = np.linalg.matrix_power(sweep, TIE_EVERY - 1) @ tied
    moduli = np.sort(np.abs(np.linalg.eigvals(cycle)))[::-1]
    assert abs(moduli[0] - 1) < 1e-12 and moduli[1] < 1 - 1e-6, moduli[:3]

    states = _all_states(L)
    start = np.repeat(states, n, axis=0)
    state = state_from_configurations(start, seed=5)
    Metropolis(T, h).sweep_(state)
    counts = np.zeros((16, 16))
    np.add.at(counts, (np.repeat(np.arange(16), n), _codes(state.configurations())), 1)
    expected = n * sweep
    cells = expected > 0
    assert counts[~cells].sum() == 0  # no impossible transition happened
    chi2 = float(((counts - expected)[cells] ** 2 / expected[cells]).sum())
    dof = int(cells.sum() - 16)
    assert stats.chi2.sf(chi2, dof) > 1e-3, (chi2, dof)


def _run(sampler, L, T, chains, burn, sweeps, seed=0):
    state = init_state(L, chains, seed=seed, start="random")
    sampler.sweep_(state, burn)
    e, m = sampler.run(state, sweeps)
    return thermodynamics(e, m, L, T)


@pytest.mark.parametrize("algorithm", ["metropolis", "swendsen-wang"])
@pytest.mark.parametrize(("T", "h"), [(1.5, 0.0), (2.269, 0.0), (3.0, 0.0), (2.5, 0.2)])
def test_L4_observables_match_enumeration(algorithm: str, T: float, h: float) -> None:
    sampler = Metropolis(T, h) if algorithm == "metropolis" else SwendsenWang(T, h)
    sweeps = 1500 if algorithm == "metropolis" else 400
    est = _run(sampler, 4, T, 256, 200, sweeps, seed=11)
    exact = exact_observables(4, T, h)
    for name in ("energy", "abs_magnetization", "specific_heat", "susceptibility", "binder"):
        z = est[name].z_score(exact[name])
        assert abs(z) < Z_MAX, (name, est[name], exact[name], z)


@pytest.mark.parametrize("h", [0.4, 0.0])  # h = 0: ties, and the stripe states
@pytest.mark.parametrize("algorithm", ["metropolis", "swendsen-wang"])
def test_L2_stationary_distribution_with_field(algorithm: str, h: float) -> None:
    L, T = 2, 2.0
    sampler = Metropolis(T, h) if algorithm == "metropolis" else SwendsenWang(T, h)
    state = init_state(L, 2000, seed=3)
    sampler.sweep_(state, 50)
    counts = np.zeros(16)
    for _ in range(10):  # 10 snapshots 20 sweeps apart: nearly independent at L = 2
        sampler.sweep_(state, 20)
        counts += np.bincount(_codes(state.configurations()), minlength=16)
    p = exact_distribution(L, T, h)
    _, pvalue = stats.chisquare(counts, counts.sum() * p)
    assert pvalue > 1e-3


def test_L16_energy_matches_kaufman_and_algorithms_agree() -> None:
    L = 16
    for T in (1.5, 2.269, 3.0):
        exact = float(kaufman_energy(L, T))
        metro = _run(Metropolis(T), L, T, 256, 300, 1200, seed=1)["energy"]
        sw = _run(SwendsenWang(T), L, T, 32, 50, 300, seed=2)["energy"]
        for est in (metro, sw):
            assert abs(est.z_score(exact)) < Z_MAX, (T, est, exact)
        diff = (metro.value - sw.value) / math.hypot(metro.stderr, sw.stderr)
        assert abs(diff) < Z_MAX, (T, metro, sw)
    # the cluster algorithm decorrelates faster at T_c
    tc_metro = _run(Metropolis(2.269), L, 2.269, 64, 300, 1500, seed=4)["abs_magnetization"]
    tc_sw = _run(SwendsenWang(2.269), L, 2.269, 64, 50, 300, seed=4)["abs_magnetization"]
    assert tc_sw.tau is not None and tc_metro.tau is not None and tc_sw.tau < tc_metro.tau / 3


def test_same_seed_same_spins_and_exact_resume() -> None:
    a, b = init_state(8, 16, seed=7), init_state(8, 16, seed=7)
    m = Metropolis(2.3)
    m.sweep_(a, 30)
    m.sweep_(b, 10)
    saved = b.state_dict()
    resumed = IsingState.from_state_dict(saved)
    m.sweep_(resumed, 20)
    assert torch.equal(a.spins, resumed.spins) and a.counter == resumed.counter
    other = init_state(8, 16, seed=8)
    m.sweep_(other, 30)
    assert not torch.equal(a.spins, other.spins)
    odd = saved | {"spins": torch.ones(3, 3, 2, dtype=saved["spins"].dtype)}
    with pytest.raises(GenphysError, match="even L"):  # a 3x3 checkerboard is not bipartite
        m.sweep_(IsingState.from_state_dict(odd))
    sw1, sw2 = init_state(8, 16, seed=1), init_state(8, 16, seed=1)
    SwendsenWang(2.3).sweep_(sw1, 5)
    SwendsenWang(2.3).sweep_(sw2, 5)
    assert torch.equal(sw1.spins, sw2.spins)


def test_compiled_and_eager_sweeps_are_identical() -> None:
    from genphys.kernels import compiler_available

    if not compiler_available():
        pytest.skip("no C++ compiler for torch.compile")
    a, b = init_state(8, 64, seed=2), init_state(8, 64, seed=2)
    Metropolis(2.0, 0.1, compile=False).sweep_(a, 10)
    Metropolis(2.0, 0.1, compile=True).sweep_(b, 10)
    assert torch.equal(a.spins, b.spins)


def test_energy_and_magnetization_of_known_states() -> None:
    up = np.ones((1, 4, 4), dtype=np.int8)
    stripes = np.tile(np.array([1, -1], dtype=np.int8), (1, 4, 2))  # columns alternate
    checker = np.array([[(-1) ** (i + j) for j in range(4)] for i in range(4)])[None]
    assert energy_per_spin(up)[0] == -2.0 and magnetization_per_spin(up)[0] == 1.0
    assert energy_per_spin(up, h=0.5)[0] == -2.5
    assert energy_per_spin(stripes)[0] == 0.0 and magnetization_per_spin(stripes)[0] == 0.0
    assert energy_per_spin(checker)[0] == 2.0
    assert energy_per_spin((up + 1) // 2)[0] == -2.0  # {0, 1} encoding is read as spins
    state = state_from_configurations(np.concatenate([up, -checker.astype(np.int8)]))
    e, m = state.energy_magnetization()
    np.testing.assert_array_equal(e, [-2.0, 2.0])
    np.testing.assert_array_equal(m, [1.0, 0.0])


def test_jackknife_errors_of_independent_gaussians() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(-1.0, 0.1, size=(4000, 8))
    m = rng.normal(0.5, 0.05, size=(4000, 8))
    est = thermodynamics(e, m, L=4, T=2.0)
    assert abs(est["energy"].stderr / (0.1 / math.sqrt(e.size)) - 1) < 0.1
    # C = N var(e) / T^2 with var = 0.01: z-test with the jackknife error
    assert abs(est["specific_heat"].z_score(16 * 0.01 / 4)) < Z_MAX
    assert est["energy"].tau is not None and est["energy"].tau < 1.3


def _ar1(phi: float, n: int, chains: int = 1, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, chains))
    x = np.zeros((n, chains))
    x[0] = noise[0] / math.sqrt(1 - phi * phi)  # stationary start
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return x


def test_jackknife_warns_when_blocks_must_be_shorter_than_five_tau() -> None:
    x = _ar1(0.95, 8000)[:, 0]  # tau = (1 + phi) / (1 - phi) = 39
    with pytest.warns(UserWarning, match="errors are underestimated"):
        thermodynamics(-1.5 + 0.01 * x[:4000], 0.5 + 0.01 * x[:4000], L=8, T=2.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 8,000 samples: 20 blocks of over 5 tau
        est = thermodynamics(-1.5 + 0.01 * x, 0.5 + 0.01 * x, L=8, T=2.0)
        white = np.random.default_rng(2).normal(size=30)  # independent: blocks of one
        thermodynamics(-1.5 + 0.01 * white, 0.5 + 0.01 * white, L=8, T=2.0, independent=True)
    assert est["energy"].tau is not None and 20 < est["energy"].tau < 60


def test_chains_too_short_for_tau_are_whole_jackknife_units() -> None:
    """100 chains of 30 steps with tau = 39: each chain is one unit, so the energy's error is
    the standard error of the chain means (samples taken as independent: 3x too small)."""
    x = _ar1(0.95, 30, 100, seed=3)
    e = -1.5 + 0.01 * x
    est = thermodynamics(e, 0.5 + 0.01 * x, L=8, T=2.0)
    means = e.mean(0)
    assert est["energy"].tau is None
    assert est["energy"].stderr == pytest.approx(means.std(ddof=1) / 10, rel=1e-9)
    with pytest.warns(UserWarning, match="too short"):  # one chain: nothing better to do
        thermodynamics(e[:, 0], 0.5 + 0.01 * x[:, 0], L=8, T=2.0)


def test_bad_input_errors() -> None:
    with pytest.raises(GenphysError, match="even"):
        init_state(5, 4)
    with pytest.raises(GenphysError, match="temperature"):
        Metropolis(0.0)
    with pytest.raises(GenphysError, match="start"):
        init_state(4, 2, start="sideways")
    with pytest.raises(GenphysError, match="-1 and \\+1"):
        state_from_configurations(np.zeros((2, 4, 4)))
    with pytest.raises(GenphysError, match="spins"):
        energy_per_spin(np.full((1, 4, 4), 0.5))


def test_failed_compile_falls_back_to_eager_with_one_warning(monkeypatch) -> None:
    from genphys import kernels

    def broken(fn):
        def call(*args):
            raise RuntimeError("no compiler")

        return call

    monkeypatch.setattr(kernels, "compiled", broken)
    monkeypatch.setattr(kernels, "DISABLED", set())
    a, b = init_state(4, 8, seed=1), init_state(4, 8, seed=1)
    with pytest.warns(UserWarning, match="torch.compile failed") as record:
        Metropolis(2.0, compile=True).sweep_(a, 5)
    assert len(record) == 1
    Metropolis(2.0, compile=False).sweep_(b, 5)
    assert torch.equal(a.spins, b.spins)
