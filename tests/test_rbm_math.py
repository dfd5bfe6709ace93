"""RBM maths checked against exact enumeration on tiny models (float64 throughout).

Covers the custom free-energy backward, free energies and conditionals against the joint
distribution, the tempered family used by AIS, the contrastive-divergence gradient, and block
Gibbs sampling (chi-square tests against exactly enumerated distributions).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
import torch.nn.functional as F

from exact import (
    D,
    all_states,
    bernoulli_rbm,
    chisquare_p,
    codes_of,
    exact_p,
    gaussian_rbm,
    joint_log_weights,
)
from genphys.models.grbm import GaussianBernoulliRBM, GaussianRBMConfig
from genphys.models.rbm import BernoulliRBM, _BernoulliFreeEnergy
from genphys.samplers import GibbsSampler


# ------------------------------------------------------------------- free energy
def test_free_energy_backward_passes_gradcheck():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(5, 4, generator=g, dtype=D, requires_grad=True)  # non-binary: tests dF/dv
    w = torch.randn(4, 3, generator=g, dtype=D, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=D, requires_grad=True)
    c = torch.randn(3, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(_BernoulliFreeEnergy.apply, (v, w, b, c))
    v_const = v.detach()
    assert torch.autograd.gradcheck(_BernoulliFreeEnergy.apply, (v_const, w, b, c))


def test_free_energy_backward_equals_autograd_of_plain_formula():
    rbm = bernoulli_rbm(7, 5, 1.0, 0.5, seed=1)
    g = torch.Generator().manual_seed(1)
    v = torch.rand(9, 7, generator=g, dtype=D).round().requires_grad_(True)
    upstream = torch.randn(9, generator=g, dtype=D)
    params = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
    custom = torch.autograd.grad((upstream * rbm.free_energy(v)).sum(), [v, *params])
    plain_f = -(v @ rbm.visible_bias) - F.softplus(v @ rbm.weight + rbm.hidden_bias).sum(-1)
    plain = torch.autograd.grad((upstream * plain_f).sum(), [v, *params])
    torch.testing.assert_close(rbm.free_energy(v), plain_f, rtol=0, atol=1e-12)
    for got, want in zip(custom, plain, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_free_energy_second_derivatives_raise_instead_of_being_wrong():
    """The analytic backward is differentiable once; a gradient penalty must not go silent."""
    g = torch.Generator().manual_seed(0)
    v = torch.rand(3, 4, generator=g, dtype=D, requires_grad=True)
    w = torch.randn(4, 2, generator=g, dtype=D, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=D, requires_grad=True)
    c = torch.randn(2, generator=g, dtype=D, requires_grad=True)
    (gv,) = torch.autograd.grad(_BernoulliFreeEnergy.apply(v, w, b, c).sum(), v, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad((gv**2).sum(), w)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian", "gaussian_learned_sigma"])
def test_free_energy_equals_minus_log_sum_over_hidden(kind):
    nv, nh = 4, 5
    if kind == "bernoulli":
        rbm = bernoulli_rbm(nv, nh, 1.2, 0.7, seed=2)
        vs = all_states(nv)
    else:
        rbm = gaussian_rbm(nv, nh, seed=2, learn_sigma=kind.endswith("sigma"))
        vs = torch.randn(10, nv, generator=torch.Generator().manual_seed(2), dtype=D) * 1.5
    brute = -torch.logsumexp(joint_log_weights(rbm, vs, all_states(nh)), 1)
    torch.testing.assert_close(rbm.free_energy(vs), brute, rtol=0, atol=1e-11)


# ------------------------------------------------------------------- conditionals
def test_bernoulli_conditionals_are_ratios_of_the_joint():
    nv, nh = 4, 3
    rbm = bernoulli_rbm(nv, nh, 1.3, 0.8, seed=3)
    vs, hs = all_states(nv), all_states(nh)
    joint = joint_log_weights(rbm, vs, hs).exp()  # unnormalised p(v, h)
    p_h_given_v = (joint @ hs) / joint.sum(1, keepdim=True)  # E[h | v] = p(h_j = 1 | v)
    p_v_given_h = (joint.t() @ vs) / joint.sum(0)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(rbm.prob_h(vs), p_h_given_v, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rbm.mean_v(hs), p_v_given_h, rtol=1e-12, atol=1e-12)


def test_gaussian_conditionals_match_the_joint():
    nv, nh = 3, 4
    rbm = gaussian_rbm(nv, nh, seed=4)
    hs = all_states(nh)
    vs = torch.randn(6, nv, generator=torch.Generator().manual_seed(4), dtype=D) * 2
    with torch.no_grad():
        joint = joint_log_weights(rbm, vs, hs).softmax(1)
        torch.testing.assert_close(rbm.prob_h(vs), joint @ hs, rtol=1e-12, atol=1e-12)
        # p(v | h) = N(mean_v(h), sigma^2): -E(v, h) - log N(v; mean, sigma) is constant in v
        sigma = rbm.sigma
        for h in hs:
            normal = torch.distributions.Normal(rbm.mean_v(h[None]), sigma)
            resid = -rbm.energy(vs, h.expand(len(vs), nh)) - normal.log_prob(vs).sum(-1)
            assert float(resid.max() - resid.min()) < 1e-10


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.7, 1.0])
def test_tempered_family_matches_its_joint(beta):
    """log p*_beta(v, h) = (1-beta) phi(v; b_A) + beta (phi(v; b) + h.c + v W h)."""
    nv, nh = 4, 3
    rbm = bernoulli_rbm(nv, nh, 1.1, 0.6, seed=5)
    base = torch.randn(nv, generator=torch.Generator().manual_seed(5), dtype=D)
    vs, hs = all_states(nv), all_states(nh)
    with torch.no_grad():
        log_joint = (1 - beta) * rbm.visible_term(vs, base)[:, None] + beta * (
            joint_log_weights(rbm, vs, hs)
        )
        joint = log_joint.exp()
        torch.testing.assert_close(
            rbm.tempered_log_prob(vs, beta, base), torch.logsumexp(log_joint, 1), rtol=0, atol=1e-12
        )
        torch.testing.assert_close(rbm.prob_h(vs, beta), (joint @ hs) / joint.sum(1)[:, None])
        torch.testing.assert_close(
            rbm.mean_v(hs, beta, base), (joint.t() @ vs) / joint.sum(0)[:, None]
        )
        if beta == 0.0:
            torch.testing.assert_close(
                rbm.base_log_partition(base), torch.logsumexp(log_joint.flatten(), 0)
            )


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_gaussian_tempered_family(beta):
    nv, nh = 1, 3
    rbm = gaussian_rbm(nv, nh, seed=6)
    base = torch.tensor([0.7], dtype=D)
    hs = all_states(nh)
    vs = torch.linspace(-3, 3, 7, dtype=D)[:, None]
    with torch.no_grad():
        log_joint = (1 - beta) * rbm.visible_term(vs, base)[:, None] + beta * (
            joint_log_weights(rbm, vs, hs)
        )
        torch.testing.assert_close(
            rbm.tempered_log_prob(vs, beta, base), torch.logsumexp(log_joint, 1)
        )
        for j, h in enumerate(hs):  # p*(v | h) is N(mean_v(h, beta, base), sigma^2)
            normal = torch.distributions.Normal(rbm.mean_v(h[None], beta, base), rbm.sigma)
            resid = log_joint[:, j] - normal.log_prob(vs).sum(-1)
            assert float(resid.max() - resid.min()) < 1e-10
        if beta == 0.0:  # Z_A = 2^nh * integral of exp(phi(v; b_A)) dv, by quadrature
            f = lambda x: math.exp(float(rbm.visible_term(torch.tensor([[x]], dtype=D), base)))  # noqa: E731
            integral = scipy.integrate.quad(f, -math.inf, math.inf)[0]
            assert float(rbm.base_log_partition(base)) == pytest.approx(
                nh * math.log(2) + math.log(integral), abs=1e-9
            )


# --------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_cd_gradient_is_difference_of_correlations(kind):
    """d/dW [mean F(v_data) - mean F(v_model)] = -(<v~ p(h|v)>_data - <v~ p(h|v)>_model)."""
    g = torch.Generator().manual_seed(7)
    if kind == "bernoulli":
        rbm = bernoulli_rbm(6, 4, 1.0, 0.5, seed=7)
        data, model = (torch.rand(2, 11, 6, generator=g, dtype=D) < 0.5).to(D)
    else:
        rbm = gaussian_rbm(6, 4, seed=7)
        data, model = torch.randn(2, 11, 6, generator=g, dtype=D)
    loss = rbm.free_energy(data).mean() - rbm.free_energy(model).mean()
    grads = torch.autograd.grad(loss, [rbm.weight, rbm.visible_bias, rbm.hidden_bias])
    with torch.no_grad():
        sd, sm = rbm.scaled_visible(data), rbm.scaled_visible(model)
        pd, pm = rbm.prob_h(data), rbm.prob_h(model)
        by_hand_w = -(sd.t() @ pd / len(data) - sm.t() @ pm / len(model))
        by_hand_c = -(pd.mean(0) - pm.mean(0))
        by_hand_b = -(bias_statistic(rbm, data) - bias_statistic(rbm, model))
    torch.testing.assert_close(grads[0], by_hand_w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1], by_hand_b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[2], by_hand_c, rtol=1e-12, atol=1e-12)


def bias_statistic(rbm, x: torch.Tensor) -> torch.Tensor:
    """-<dF/db>: <v> (Bernoulli) or <(v - b) / sigma^2> (Gaussian)."""
    if isinstance(rbm, GaussianBernoulliRBM):
        return ((x - rbm.visible_bias) * torch.exp(-2 * rbm.log_sigma)).mean(0)
    return x.mean(0)


def _exact_model_statistics(rbm: BernoulliRBM) -> tuple[torch.Tensor, ...]:
    """p(v) over all states and the exact <v p(h|v)^T>, <v>, <p(h|v)> under the model."""
    vs = all_states(rbm.n_visible)
    with torch.no_grad():
        p = (-rbm.free_energy(vs)).softmax(0)
        ph = rbm.prob_h(vs)
        return vs, p, (vs * p[:, None]).t() @ ph, p @ vs, p @ ph


def test_exact_likelihood_gradient_equals_infinite_cd():
    rbm = bernoulli_rbm(6, 4, 1.0, 0.5, seed=8)
    params = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
    g = torch.Generator().manual_seed(8)
    data = (torch.rand(25, 6, generator=g, dtype=D) < 0.4).to(D)
    vs, p, vh_model, v_model, h_model = _exact_model_statistics(rbm)

    # exact mean log-likelihood, differentiated by autograd through log Z
    log_lik = -rbm.free_energy(data).mean() - torch.logsumexp(-rbm.free_energy(vs), 0)
    exact = torch.autograd.grad(log_lik, params)
    # the same, data term minus the enumerated model expectation, by hand
    with torch.no_grad():
        ph = rbm.prob_h(data)
        by_hand = (
            data.t() @ ph / len(data) - vh_model,
            data.mean(0) - v_model,
            ph.mean(0) - h_model,
        )
    # k -> infinity CD: the model term an exact p(v)-weighted expectation of F
    cd_inf = rbm.free_energy(data).mean() - (p * rbm.free_energy(vs)).sum()
    cd = torch.autograd.grad(cd_inf, params)
    for e, h, c in zip(exact, by_hand, cd, strict=True):
        torch.testing.assert_close(e, h, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(e, -c, rtol=1e-10, atol=1e-12)


def test_gibbs_chains_give_the_model_term_within_errors():
    rbm = bernoulli_rbm(6, 4, 1.0, 0.5, seed=9)
    _, _, vh_model, v_model, h_model = _exact_model_statistics(rbm)
    sampler = GibbsSampler(k=200)
    state = sampler.init_state(rbm, n_chains=4000, seed=9)
    v, state = sampler.sample(rbm, state)  # one independent snapshot per chain
    with torch.no_grad():
        ph = rbm.prob_h(v)
    per_chain = torch.cat([(v[:, :, None] * ph[:, None, :]).flatten(1), v, ph], 1)
    exact = torch.cat([vh_model.flatten(), v_model, h_model])
    z = (per_chain.mean(0) - exact) / (per_chain.std(0) / math.sqrt(len(v)))
    assert float(z.abs().max()) < 4.5, z  # 34 statistics: P(max |z| > 4.5) ~ 2e-4 under H0


# ------------------------------------------------------------- Gibbs vs exact p(v)
def test_gibbs_sampler_reproduces_exact_distribution():
    rbm = bernoulli_rbm(8, 5, 1.3, 0.6, seed=10)
    p = exact_p(rbm)
    sampler = GibbsSampler(k=1)
    state = sampler.init_state(rbm, n_chains=5000, seed=10)
    sampler.sample(rbm, state, n_steps=200)  # burn in
    samples = []
    for _ in range(4):  # thinned by 30 sweeps, far beyond this model's correlation time
        v, state = sampler.sample(rbm, state, n_steps=30)
        samples.append(codes_of(v))
    counts = np.bincount(torch.cat(samples).numpy(), minlength=2**8)
    assert chisquare_p(counts, p.numpy()) > 0.01


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_tempered_transition_leaves_tempered_distribution_invariant(beta):
    """Exact samples of p*_beta, one AIS transition at beta, still exact samples of p*_beta."""
    rbm = bernoulli_rbm(8, 5, 1.3, 0.6, seed=11)
    g = torch.Generator().manual_seed(11)
    base = torch.randn(8, generator=g, dtype=D)
    p = exact_p(rbm, beta, base)
    v = all_states(8)[torch.multinomial(p, 20000, replacement=True, generator=g)]
    with torch.no_grad():
        moved = rbm.sample_v(rbm.sample_h(v, g, beta), g, beta, base)
        wrong = rbm.sample_v(rbm.sample_h(v, g, beta), g, beta)  # forgets the base bias
    counts = np.bincount(codes_of(moved).numpy(), minlength=2**8)
    assert chisquare_p(counts, p.numpy()) > 0.01
    if beta < 1:  # the test has power: a transition for the wrong base is rejected
        counts = np.bincount(codes_of(wrong).numpy(), minlength=2**8)
        assert chisquare_p(counts, p.numpy()) < 1e-6


def test_gaussian_gibbs_sampler_moments():
    """Gibbs samples of a Gaussian RBM: E[v] and E[v^2] match the hidden-enumerated mixture."""
    rbm = gaussian_rbm(3, 4, seed=12)
    hs = all_states(4)
    with torch.no_grad():
        ph = rbm.log_marginal_hidden(hs).softmax(0)
        means = rbm.mean_v(hs)
        exact_m1 = ph @ means
        exact_m2 = ph @ (means**2) + rbm.sigma**2
    sampler = GibbsSampler(k=100)
    v, _ = sampler.sample(rbm, sampler.init_state(rbm, n_chains=8000, seed=12))
    stats = torch.cat([v, v**2], 1)
    z = (stats.mean(0) - torch.cat([exact_m1, exact_m2])) / (stats.std(0) / math.sqrt(len(v)))
    assert float(z.abs().max()) < 4.5, z


def test_closed_form_cd_gradients_equal_autograd():
    """BernoulliRBM.free_energy_grads (what training uses) = autograd of sum_n c_n F(v_n)."""
    from genphys.models.rbm import RBMBase

    g = torch.Generator().manual_seed(3)
    for rbm in (bernoulli_rbm(7, 5, 1.0, seed=3), gaussian_rbm(7, 5, seed=3)):
        v = torch.rand(12, 7, generator=g, dtype=D)
        v = v.round() if rbm.binary_visible else v
        coef = torch.cat([torch.full((6,), 1 / 6, dtype=D), torch.full((6,), -1 / 6, dtype=D)])
        fast, prob = rbm.free_energy_grads(v, coef)
        slow, prob_ref = RBMBase.free_energy_grads(rbm, v, coef)
        assert fast.keys() == slow.keys() == {n for n, p in rbm.named_parameters()}
        for k in fast:
            torch.testing.assert_close(fast[k], slow[k], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(prob, prob_ref)
        # weights: minus the difference of <v~ p(h|v)> between the two halves
        vs = rbm.scaled_visible(v)
        stat = vs[:6].t() @ prob[:6] / 6 - vs[6:].t() @ prob[6:] / 6
        torch.testing.assert_close(fast["weight"], -stat)


def test_closed_form_gradients_into_reused_buffers():
    """With ``out`` the gradients, p(h|v) and c + vW land in buffers kept from call to call,
    equal to the allocating call; free_energy takes the kept c + vW instead of recomputing."""
    g = torch.Generator().manual_seed(4)
    rbm = bernoulli_rbm(7, 5, 1.0, seed=4)
    coef = torch.cat([torch.full((6,), 1 / 6, dtype=D), torch.full((6,), -1 / 6, dtype=D)])
    work: dict[str, torch.Tensor] = {}
    for i in range(2):
        v = (torch.rand(12, 7, generator=g, dtype=D) < 0.5).to(D)
        ref, prob_ref = rbm.free_energy_grads(v, coef)
        fast, prob = rbm.free_energy_grads(v, coef, out=work)
        if i == 0:
            kept = {k: t.data_ptr() for k, t in work.items()}
        assert {k: t.data_ptr() for k, t in work.items()} == kept
        assert fast.keys() == ref.keys() and all(torch.equal(fast[k], ref[k]) for k in ref)
        assert torch.equal(prob, prob_ref) and fast["weight"].data_ptr() == kept["weight"]
        f = rbm.free_energy(v, hidden_input=work["hidden_input"])
        torch.testing.assert_close(f, rbm.free_energy(v), rtol=1e-14, atol=1e-12)


def test_models_are_made_from_sizes_keywords_or_a_config() -> None:
    from genphys.errors import GenphysError
    from genphys.models import GaussianRBMConfig, RBMConfig

    for rbm in (BernoulliRBM(7, 3), BernoulliRBM(n_visible=7, n_hidden=3),
                BernoulliRBM(RBMConfig(n_visible=7, n_hidden=3))):  # fmt: skip
        assert tuple(rbm.weight.shape) == (7, 3)
    grbm = GaussianBernoulliRBM(5, 2, sigma=0.5, learn_sigma=True)
    assert tuple(grbm.weight.shape) == (5, 2) and grbm.config.learn_sigma
    assert torch.allclose(grbm.sigma, torch.full((5,), 0.5))
    assert GaussianBernoulliRBM(GaussianRBMConfig(n_visible=5, n_hidden=2)).n_hidden == 2
    with pytest.raises(GenphysError, match="not both"):
        BernoulliRBM(RBMConfig(n_visible=7, n_hidden=3), 4)
    with pytest.raises(GenphysError, match="GaussianRBMConfig"):
        GaussianBernoulliRBM(RBMConfig(n_visible=5, n_hidden=2))
    with pytest.raises(GenphysError, match="expected a RBMConfig"):
        BernoulliRBM(GaussianRBMConfig(n_visible=5, n_hidden=2))  # its sigma would be ignored
    assert BernoulliRBM(np.int64(7), 3).n_visible == 7
    with pytest.raises(GenphysError, match="integer"):
        BernoulliRBM(True, 3)


def test_learned_grbm_sigma_is_floored_at_min_sigma() -> None:
    """Below ``min_sigma`` a learned sigma acts as the floor everywhere (energy, conditionals,
    free energy) and gets no gradient; a fixed sigma is never floored."""
    learned = GaussianBernoulliRBM(GaussianRBMConfig(n_visible=3, n_hidden=2, learn_sigma=True,
                                                     min_sigma=0.05)).double()  # fmt: skip
    fixed = GaussianBernoulliRBM(GaussianRBMConfig(n_visible=3, n_hidden=2, sigma=0.05)).double()
    with torch.no_grad():
        learned.log_sigma.fill_(-30.0)
        for k in ("weight", "visible_bias", "hidden_bias"):
            getattr(learned, k).copy_(torch.randn_like(getattr(fixed, k)))
            getattr(fixed, k).copy_(getattr(learned, k))
    v = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(learned.sigma, fixed.sigma)
    torch.testing.assert_close(learned.free_energy(v), fixed.free_energy(v))
    torch.testing.assert_close(learned.prob_h(v), fixed.prob_h(v))
    learned.free_energy(v).sum().backward()
    assert learned.log_sigma.grad is not None and bool((learned.log_sigma.grad == 0).all())
    tiny = GaussianBernoulliRBM(GaussianRBMConfig(n_visible=3, n_hidden=2, sigma=1e-5))
    assert float(tiny.sigma[0]) == pytest.approx(1e-5)  # fixed: not floored
