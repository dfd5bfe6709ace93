"""genphys.evaluation checked against exact answers: enumeration, quadrature, AR(1) processes.

Tolerances are in units of the reported standard errors (z-scores) wherever the quantity is
random; fixed seeds make every run identical.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.signal
import torch
import torch.nn.functional as F
from sklearn.neural_network import BernoulliRBM as SkBernoulliRBM

import exact
from cli_errors import one_line_error
from exact import D, all_states
from genphys import io
from genphys.errors import GenphysError
from genphys.evaluation import (
    AISResult,
    Estimate,
    ais_log_partition,
    ais_schedule,
    average_log_likelihood,
    binning_error,
    conditional_log_probs,
    exact_log_partition,
    integrated_autocorrelation_time,
    log_mean_exp_estimate,
    mcmc_estimate,
    mean_estimate,
    mode_lower_bound,
    pseudo_log_likelihood,
    pseudo_log_likelihood_terms,
    reconstruction_error,
)
from genphys.models.grbm import GaussianBernoulliRBM, GaussianRBMConfig
from genphys.models.rbm import BernoulliRBM


def bernoulli_rbm(nv: int, nh: int, w_std: float, b_std: float = 0.5, seed: int = 0):
    return exact.bernoulli_rbm(nv, nh, w_std, b_std, seed, dtype=torch.float32)  # as trained


def gaussian_rbm(nv: int, nh: int, seed: int = 0):
    return exact.gaussian_rbm(nv, nh, seed, dtype=torch.float32)


def brute_log_joint(rbm) -> torch.Tensor:
    """-E(v, h) for all pairs of a small Bernoulli RBM, shape (2^nv, 2^nh), float64."""
    m = copy.deepcopy(rbm).to(D)
    vs, hs = all_states(m.n_visible), all_states(m.n_hidden)
    with torch.no_grad():
        e = m.energy(vs.repeat_interleave(len(hs), 0), hs.repeat(len(vs), 1))
    return -e.reshape(len(vs), len(hs))


def ar1(rho: float, steps: int, chains: int, seed: int) -> np.ndarray:
    """Stationary AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t with unit variance."""
    e = np.random.default_rng(seed).standard_normal((steps, chains))
    zi = (rho * e[0])[None, :]
    return scipy.signal.lfilter([math.sqrt(1 - rho**2)], [1, -rho], e, axis=0, zi=zi)[0]


# ------------------------------------------------------------------------ Estimate
def test_estimate_formatting_and_z_score():
    est = Estimate(-85.3123, 0.1234, n=100)
    assert str(est) == "-85.31 ± 0.12"
    assert str(Estimate(1234.7, 34.0)) == "1235 ± 34"
    assert est.z_score(-85.0) == pytest.approx(-0.3123 / 0.1234)
    assert est.to_dict() == {"value": -85.3123, "stderr": 0.1234, "n": 100, "tau": None}
    assert Estimate(1.0, 0.0).z_score(1.0) == 0.0
    assert math.isinf(Estimate(1.0, 0.0).z_score(0.0))
    assert math.isnan(Estimate(1.0, math.nan).z_score(0.0))  # one sample: undefined, not inf


def test_mean_estimate():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=400)
    est = mean_estimate(torch.as_tensor(x))
    assert est.value == pytest.approx(x.mean())
    assert est.stderr == pytest.approx(x.std(ddof=1) / 20)
    assert est.n == 400
    with pytest.raises(GenphysError):
        mean_estimate(np.array([]))


def test_log_mean_exp_is_stable_and_unbiased_for_lognormal_weights():
    rng = np.random.default_rng(1)
    log_w = rng.normal(0.0, 1.0, size=200_000)
    est = log_mean_exp_estimate(log_w)
    assert abs(est.z_score(0.5)) < 4  # log E[e^X] = mu + s^2 / 2 for X ~ N(mu, s^2)
    shifted = log_mean_exp_estimate(log_w + 1000.0)  # would overflow exp() without the shift
    assert shifted.value == pytest.approx(est.value + 1000.0, abs=1e-9)
    assert shifted.stderr == pytest.approx(est.stderr, rel=1e-9)
    # the delta-method stderr describes the spread of independent repeats
    values = [log_mean_exp_estimate(rng.normal(0, 1, 2000)) for _ in range(300)]
    spread = np.std([v.value for v in values], ddof=1)
    assert np.mean([v.stderr for v in values]) == pytest.approx(spread, rel=0.15)
    with pytest.raises(GenphysError):
        log_mean_exp_estimate(np.array([0.0, np.nan]))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_integrated_autocorrelation_time_of_ar1(rho):
    x = ar1(rho, 100_000, 4, seed=2)
    exact = (1 + rho) / (1 - rho)
    # Sokal: var(tau_hat) ~ 2 (2M + 1) tau^2 / N with window M ~ 5 tau
    rel_sd = math.sqrt(2 * (2 * 5 * exact + 1) / x.size)
    assert integrated_autocorrelation_time(x) == pytest.approx(exact, rel=4 * rel_sd)
    assert integrated_autocorrelation_time(x[:, 0]) == pytest.approx(exact, rel=8 * rel_sd)


def test_tau_of_anticorrelated_chains_is_below_one_not_negative():
    """Sokal's window closes at lag 1 when rho(1) < 0 (tau would be 1 + 2 rho(1) <= 0); the
    pairs rho(2k) + rho(2k+1) are summed instead (Geyer), close to (1+r)/(1-r); at r = -0.9
    the pairs fall into the noise after ~15 lags, which leaves tau about 15% low."""
    for rho, rel in ((-0.5, 0.03), (-0.9, 0.2)):
        tau = integrated_autocorrelation_time(ar1(rho, 100_000, 4, seed=2))
        assert tau == pytest.approx((1 + rho) / (1 - rho), rel=rel)
    alternating = np.tile([0.0, 1.0], 500)
    assert 0 <= integrated_autocorrelation_time(alternating) < 0.01


def test_a_constant_chain_has_tau_one_whatever_its_rounding():
    for value in (0.1, 1 / 3, 0.7, 1e8 + 0.1):
        chain = np.full(1000, value)
        assert integrated_autocorrelation_time(chain) == 1.0
        assert mcmc_estimate(chain).stderr == 0.0


def test_tau_of_many_short_chains_is_not_biased_low():
    """200 chains of 10 tau: about each chain's own mean tau came out near half (10 of 19)."""
    x = ar1(0.9, 200, 200, seed=4)  # tau = 19
    rel_sd = math.sqrt(2 * (2 * 5 * 19 + 1) / x.size)  # about 10%
    assert integrated_autocorrelation_time(x) == pytest.approx(19.0, rel=3 * rel_sd)


@pytest.mark.parametrize("estimator", [mcmc_estimate, binning_error])
def test_mcmc_standard_errors_match_spread_of_independent_chains(estimator):
    rho, chains = 0.9, 300
    x = ar1(rho, 8192, chains, seed=3)
    estimates = [estimator(x[:, j]) for j in range(chains)]
    spread = np.std(x.mean(0), ddof=1)  # relative sd of this ~ 1 / sqrt(2 * 299) = 4%
    assert np.mean([e.stderr for e in estimates]) == pytest.approx(spread, rel=0.15)
    assert np.mean([e.tau for e in estimates]) == pytest.approx(19.0, rel=0.15)
    pooled = estimator(x[:, :8])  # several chains at once
    assert pooled.n == 8 * 8192
    assert pooled.stderr == pytest.approx(spread / math.sqrt(8), rel=0.35)


def test_mcmc_errors_of_short_or_anticorrelated_chains_are_not_too_small():
    # 4,000 chains each: the coverage of mean +- 1.96 stderr, whose binomial sd is ~0.4%
    short = np.random.default_rng(5).normal(size=(10, 4000))  # independent, T = 10
    anti = ar1(-0.5, 1000, 4000, seed=6)  # true tau = 1/3: error sqrt(3) too large is fine
    for x, least in ((short, 0.9), (anti, 0.95)):
        covered = [abs(e.value) < 1.96 * e.stderr for e in map(mcmc_estimate, x.T)]
        assert np.mean(covered) > least  # Student t with 9 dof: 0.919 for the short chains
    assert mcmc_estimate(np.array([1.0, 2.0])).stderr == pytest.approx(0.5)


def test_stats_reject_bad_input():
    with pytest.raises(GenphysError):
        integrated_autocorrelation_time(np.zeros((3, 2, 2)))
    with pytest.raises(GenphysError):
        mcmc_estimate(np.array([1.0]))
    with pytest.raises(GenphysError, match="finite"):
        integrated_autocorrelation_time(np.ones(50), c=float("nan"))
    assert integrated_autocorrelation_time(np.ones(50)) == 1.0


# ------------------------------------------------------------------ exact log Z
def test_exact_log_partition_visible_and_hidden_enumeration_agree():
    rbm = bernoulli_rbm(12, 9, w_std=1.0, seed=4)
    by_hidden = exact_log_partition(rbm, layer="hidden")
    by_visible = exact_log_partition(rbm, layer="visible", chunk=1000)  # several chunks
    assert by_hidden == pytest.approx(by_visible, abs=1e-8)
    assert exact_log_partition(rbm) == pytest.approx(by_hidden, abs=1e-12)  # auto: hidden


def test_exact_log_partition_equals_brute_force_over_the_joint():
    rbm = bernoulli_rbm(6, 4, w_std=1.5, seed=5)
    brute = float(torch.logsumexp(brute_log_joint(rbm).flatten(), 0))
    assert exact_log_partition(rbm, layer="visible") == pytest.approx(brute, abs=1e-10)
    assert exact_log_partition(rbm, layer="hidden") == pytest.approx(brute, abs=1e-10)


def test_gaussian_exact_log_partition_matches_quadrature():
    rbm = gaussian_rbm(1, 2, seed=6)
    m = copy.deepcopy(rbm).to(D).requires_grad_(False)

    def unnormalised(x: float) -> float:  # exp(-F(v)) = sum_h exp(-E(v, h))
        return math.exp(-float(m.free_energy(torch.tensor([[x]], dtype=D))))

    centre = float(m.visible_bias.detach())
    z = scipy.integrate.quad(unnormalised, -math.inf, math.inf, points=None, epsabs=0, limit=200)
    z_mid = scipy.integrate.quad(unnormalised, centre - 30, centre + 30, epsabs=0, limit=200)
    assert z[0] == pytest.approx(z_mid[0], rel=1e-9)
    assert exact_log_partition(rbm) == pytest.approx(math.log(z[0]), abs=1e-8)


def test_exact_log_partition_refuses_large_models():
    with pytest.raises(GenphysError, match="ais_log_partition"):
        exact_log_partition(BernoulliRBM(n_visible=30, n_hidden=30))
    with pytest.raises(GenphysError, match="ais_log_partition"):
        exact_log_partition(GaussianBernoulliRBM(n_visible=2, n_hidden=30))
    with pytest.raises(GenphysError, match="continuous"):
        exact_log_partition(GaussianBernoulliRBM(n_visible=2, n_hidden=3), layer="visible")


# -------------------------------------------------------------------------- AIS
@pytest.mark.parametrize(("seed", "w_std"), [(0, 0.5), (1, 0.75), (2, 1.0)])
def test_ais_agrees_with_exact_log_partition(seed, w_std):
    rbm = bernoulli_rbm(20, 10, w_std=w_std, seed=seed)
    exact = exact_log_partition(rbm)
    result = ais_log_partition(rbm, n_chains=100, n_betas=3000, seed=seed)
    assert isinstance(result, AISResult)
    assert abs(result.log_z.value - exact) < 0.1
    assert abs(result.log_z.z_score(exact)) < 3
    assert result.lower < result.log_z.value < result.upper
    assert result.log_weights.shape == (100,) and result.log_weights.dtype == D
    assert rbm.weight.dtype == torch.float32  # the model itself is untouched


def test_ais_with_data_base_and_sigmoid_schedule():
    rbm = bernoulli_rbm(20, 10, w_std=1.0, seed=7)
    exact = exact_log_partition(rbm)
    data = (torch.rand(500, 20, generator=torch.Generator().manual_seed(7)) < 0.3).float()
    result = ais_log_partition(rbm, n_chains=100, n_betas=3000, data=data, schedule="sigmoid")
    p = data.mean(0).double()
    torch.testing.assert_close(result.base_bias, torch.log(p / (1 - p)))
    assert abs(result.log_z.value - exact) < 0.1
    assert abs(result.log_z.z_score(exact)) < 3


def test_ais_gaussian_rbm_agrees_with_hidden_enumeration():
    rbm = gaussian_rbm(6, 4, seed=8)
    exact = exact_log_partition(rbm)
    result = ais_log_partition(rbm, n_chains=100, n_betas=3000, seed=8)
    torch.testing.assert_close(result.base_bias, rbm.visible_bias.detach().double())
    assert abs(result.log_z.value - exact) < 0.1
    assert abs(result.log_z.z_score(exact)) < 3
    data = torch.randn(50, 6, generator=torch.Generator().manual_seed(8))
    with_data = ais_log_partition(rbm, n_chains=100, n_betas=3000, data=data)
    torch.testing.assert_close(with_data.base_bias, data.double().mean(0))
    assert abs(with_data.log_z.z_score(exact)) < 3


@pytest.mark.parametrize("n_betas", [2, 5])
def test_ais_weights_are_unbiased_for_z_even_with_few_temperatures(n_betas):
    """E[w] = Z / Z_A for any schedule: a wrong increment or transition would bias it."""
    rbm = bernoulli_rbm(8, 4, w_std=1.0, seed=9)
    exact = exact_log_partition(rbm)
    result = ais_log_partition(rbm, n_chains=100_000, n_betas=n_betas, seed=9)
    assert abs(result.log_z.z_score(exact)) < 4
    assert result.log_z.stderr < 0.05  # the test has power


def test_ais_fast_loop_equals_the_literal_algorithm():
    """Same seed, same draws: the vectorised loop equals the textbook loop over the RBM API."""
    for rbm in (bernoulli_rbm(7, 5, w_std=1.0, seed=10), gaussian_rbm(4, 3, seed=10)):
        m = copy.deepcopy(rbm).to(D)
        base = torch.randn(m.n_visible, generator=torch.Generator().manual_seed(1), dtype=D)
        betas = ais_schedule(50, "sigmoid")
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            v = m.sample_v(torch.zeros(20, m.n_hidden, dtype=D), g, 0.0, base)
            log_w = torch.zeros(20, dtype=D)
            for k in range(1, len(betas)):
                b0, b1 = float(betas[k - 1]), float(betas[k])
                log_w += m.tempered_log_prob(v, b1, base) - m.tempered_log_prob(v, b0, base)
                if k < len(betas) - 1:
                    v = m.sample_v(m.sample_h(v, g, b1), g, b1, base)
            log_z_base = float(m.base_log_partition(base))
        result = ais_log_partition(rbm, n_chains=20, base_bias=base, seed=3, schedule=betas)
        torch.testing.assert_close(result.log_weights, log_w, rtol=0, atol=1e-10)
        assert result.log_z_base == pytest.approx(log_z_base, abs=1e-12)
        assert result.log_z.value == pytest.approx(
            log_z_base + log_mean_exp_estimate(log_w).value, abs=1e-10
        )


def test_ais_is_reproducible_and_validates_input():
    rbm = bernoulli_rbm(6, 3, w_std=1.0, seed=11)
    a = ais_log_partition(rbm, n_chains=10, n_betas=100, seed=5)
    b = ais_log_partition(rbm, n_chains=10, n_betas=100, seed=5)
    torch.testing.assert_close(a.log_weights, b.log_weights, rtol=0, atol=0)
    for kwargs in (
        {"n_chains": 0},
        {"n_betas": 1},
        {"schedule": "cosine"},
        {"schedule": [0.0, 0.7, 0.5, 1.0]},
        {"base_bias": torch.zeros(5)},
        {"data": torch.zeros(4, 7)},
    ):
        with pytest.raises(GenphysError):
            ais_log_partition(rbm, **kwargs)
    betas = ais_schedule(11, "sigmoid")
    assert betas[0] == 0 and betas[-1] == 1 and bool((betas.diff() > 0).all())


# ------------------------------------------------------------------ likelihoods
def test_average_log_likelihood_with_exact_log_z_equals_enumerated_log_prob():
    rbm = bernoulli_rbm(6, 4, w_std=1.2, seed=12)
    log_joint = brute_log_joint(rbm)
    log_p = torch.logsumexp(log_joint, 1) - torch.logsumexp(log_joint.flatten(), 0)
    idx = torch.randint(0, 64, (40,), generator=torch.Generator().manual_seed(12))
    data = all_states(6)[idx]
    est = average_log_likelihood(rbm, data, exact_log_partition(rbm))
    assert est.value == pytest.approx(float(log_p[idx].mean()), abs=1e-10)
    assert est.stderr == pytest.approx(float(log_p[idx].std() / math.sqrt(40)), rel=1e-8)
    # a log Z with an error adds it in quadrature
    noisy = average_log_likelihood(rbm, data, Estimate(exact_log_partition(rbm), 0.3))
    assert noisy.stderr == pytest.approx(math.hypot(est.stderr, 0.3), rel=1e-12)
    with pytest.raises(GenphysError):
        average_log_likelihood(rbm, data * 0.5, 0.0)  # not binary


def brute_force_pll(rbm, v: torch.Tensor) -> torch.Tensor:
    """sum_i log p(v_i | v_-i) with one explicit flip per unit, from the free energy."""
    m = copy.deepcopy(rbm).to(D)
    out = torch.zeros(len(v), dtype=D)
    with torch.no_grad():
        for i in range(m.n_visible):
            flipped = v.clone()
            flipped[:, i] = 1 - flipped[:, i]
            out += F.logsigmoid(m.free_energy(flipped) - m.free_energy(v))
    return out


def test_exact_pll_equals_brute_force_loop_and_chunking_is_invisible():
    rbm = bernoulli_rbm(7, 4, w_std=1.3, seed=13)
    data = all_states(7)
    terms = conditional_log_probs(rbm, data)
    torch.testing.assert_close(terms.sum(1), brute_force_pll(rbm, data), rtol=0, atol=1e-12)
    tiny_chunks = conditional_log_probs(rbm, data, chunk=9)  # 2 units x 1 row at a time
    torch.testing.assert_close(tiny_chunks, terms, rtol=0, atol=1e-12)
    est = pseudo_log_likelihood(rbm, data, exact=True)
    assert est.value == pytest.approx(float(terms.sum(1).mean()), abs=1e-12)
    with pytest.raises(GenphysError, match="Bernoulli"):
        pseudo_log_likelihood(gaussian_rbm(3, 2), torch.zeros(2, 3))


def test_stochastic_pll_terms_flip_the_drawn_unit():
    rbm = bernoulli_rbm(9, 4, w_std=1.0, seed=18)
    data = (torch.rand(30, 9, generator=torch.Generator().manual_seed(18)) < 0.5).float()
    terms = pseudo_log_likelihood_terms(rbm, data, generator=torch.Generator().manual_seed(4))
    idx = torch.randint(0, 9, (30,), generator=torch.Generator().manual_seed(4))
    expected = 9 * conditional_log_probs(rbm, data)[torch.arange(30), idx]
    torch.testing.assert_close(terms, expected, rtol=0, atol=1e-12)
    exact = pseudo_log_likelihood_terms(rbm, data, exact=True)
    torch.testing.assert_close(exact, brute_force_pll(rbm, data.double()), rtol=0, atol=1e-12)


def test_stochastic_pll_is_unbiased_for_the_exact_pll():
    rbm = bernoulli_rbm(10, 6, w_std=1.0, seed=14)
    g = torch.Generator().manual_seed(14)
    data = (torch.rand(20, 10, generator=g) < 0.5).float()
    exact = conditional_log_probs(rbm, data).sum(1)
    # 2000 random units per example: their mean, and its stderr from the spread of the draws
    draws = [pseudo_log_likelihood(rbm, x[None].repeat(2000, 1), generator=g) for x in data]
    z = torch.tensor([d.z_score(float(e)) for d, e in zip(draws, exact, strict=True)])
    assert float(z.abs().max()) < 4.0, z
    whole = pseudo_log_likelihood(rbm, data.repeat(100, 1), generator=g)
    assert abs(whole.z_score(float(exact.mean()))) < 4


def test_stochastic_pll_reproduces_sklearn_score_samples():
    rbm = bernoulli_rbm(9, 5, w_std=1.0, seed=15)
    sk = SkBernoulliRBM(n_components=5, random_state=0)
    sk.components_ = rbm.weight.detach().double().numpy().T.copy()  # (n_hidden, n_visible)
    sk.intercept_hidden_ = rbm.hidden_bias.detach().double().numpy().copy()
    sk.intercept_visible_ = rbm.visible_bias.detach().double().numpy().copy()
    data = (torch.rand(50, 9, generator=torch.Generator().manual_seed(15)) < 0.5).double()
    # sklearn flips unit RandomState(random_state).randint(0, n_visible, n_samples)[n] of example n
    flipped = np.random.RandomState(0).randint(0, 9, 50)
    terms = conditional_log_probs(rbm, data)
    ours = 9 * terms[torch.arange(50), torch.as_tensor(flipped)]
    np.testing.assert_allclose(sk.score_samples(data.numpy()), ours.numpy(), rtol=1e-10)
    # with one visible unit the flipped index is forced: compare the estimators directly
    one = bernoulli_rbm(1, 3, w_std=1.0, seed=16)
    sk1 = SkBernoulliRBM(n_components=3, random_state=0)
    sk1.components_ = one.weight.detach().double().numpy().T.copy()
    sk1.intercept_hidden_ = one.hidden_bias.detach().double().numpy().copy()
    sk1.intercept_visible_ = one.visible_bias.detach().double().numpy().copy()
    x = torch.tensor([[0.0], [1.0], [1.0]])
    sk_mean = float(sk1.score_samples(x.double().numpy()).mean())
    assert pseudo_log_likelihood(one, x).value == pytest.approx(sk_mean, abs=1e-10)
    assert pseudo_log_likelihood(one, x, exact=True).value == pytest.approx(sk_mean, abs=1e-10)


def test_reconstruction_error_sums_over_units_and_averages_over_examples():
    g = torch.Generator().manual_seed(17)
    for rbm, data in (
        (bernoulli_rbm(8, 5, w_std=1.0, seed=17), torch.rand(30, 8, generator=g)),
        (gaussian_rbm(4, 3, seed=17), torch.randn(30, 4, generator=g)),
    ):
        m = copy.deepcopy(rbm).to(D)
        with torch.no_grad():
            recon = m.mean_v(m.prob_h(data.double()))
        per_example = ((data.double() - recon) ** 2).sum(1)
        est = reconstruction_error(rbm, data)
        assert est.value == pytest.approx(float(per_example.mean()), abs=1e-12)
        assert est.stderr == pytest.approx(float(per_example.std() / math.sqrt(30)), rel=1e-9)
        assert est.n == 30


# ------------------------------------------------------------- trapped AIS chains
def _peaked_grbm() -> GaussianBernoulliRBM:
    """Small learned sigma and large weights: a few hidden states hold the mass, and block
    Gibbs freezes early in the annealing (as in trained GRBMs with learned variances)."""
    torch.manual_seed(0)
    cfg = GaussianRBMConfig(n_visible=16, n_hidden=8, learn_sigma=True)
    m = GaussianBernoulliRBM(cfg).double()
    with torch.no_grad():
        m.weight.normal_(0, 3.0)
        m.log_sigma.fill_(math.log(0.1))
    return m


def test_the_mode_bound_is_sure_and_catches_trapped_ais():
    models = [bernoulli_rbm(12, 6, 1.0, seed=s) for s in range(3)]
    models += [gaussian_rbm(10, 6, seed=s) for s in range(3)] + [_peaked_grbm()]
    for m in models:
        assert mode_lower_bound(m, seed=1) <= exact_log_partition(m) + 1e-9
    peaked = _peaked_grbm()
    exact_z = exact_log_partition(peaked)
    assert mode_lower_bound(peaked) == pytest.approx(exact_z, abs=1e-6)  # one state dominates
    with pytest.warns(RuntimeWarning, match="sure lower bound"):
        trapped = ais_log_partition(peaked, n_chains=50, n_betas=1000, seed=0)
    assert trapped.trapped and trapped.log_z.z_score(exact_z) < -10  # far off, small error bar
    unchecked = ais_log_partition(peaked, n_chains=50, n_betas=1000, seed=0, check=False)
    assert unchecked.certain_lower is None and not unchecked.trapped
    flat = BernoulliRBM(8, 3).double()  # every chain's weight equal: stderr 0, log Z exact
    with torch.no_grad():
        flat.weight.zero_(), flat.visible_bias.zero_(), flat.hidden_bias.fill_(40.0)
    exactly = ais_log_partition(flat, n_chains=10, n_betas=300, seed=0)
    assert exactly.log_z.stderr == 0 and not exactly.trapped  # rounding is not trapping
    fine = ais_log_partition(models[0], n_chains=50, n_betas=1000, seed=0)
    assert not fine.trapped and fine.certain_lower is not None


def test_evaluate_refuses_a_trapped_ais_estimate(tmp_path, cli):
    x = np.random.default_rng(0).normal(0, 1, (64, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = tmp_path / "run"
    args = ["--data", tmp_path / "x.npy", "--scale", "none", "--hidden", "8", "--epochs", "1"]
    assert cli("train", "grbm", *args, "--learn-sigma", "--no-progress", "--out", run)[0] == 0
    io.save_model(run / io.MODEL_FILE, _peaked_grbm().float())
    code, _, err = cli("evaluate", run, "--method", "ais", "--ais-betas", "1000")
    assert "sure lower bound" in one_line_error(code, err) and "--method exact" in err
