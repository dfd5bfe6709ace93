"""VAE maths and latent-model evaluation checked against exact answers.

The reference is probabilistic PCA: a VAE with ``hidden=()`` has a linear decoder, so with a
Gaussian likelihood :math:`p(x) = N(x; b, WW^T + s^2 I)` and the posterior :math:`p(z|x)` are
known in closed form (float64). Random quantities are compared in units of their standard
errors; fixed seeds make every run identical.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from genphys.errors import GenphysError
from genphys.evaluation import (
    Estimate,
    active_units,
    elbo_estimate,
    iwae_log_likelihood,
    iwae_nll,
    kl_per_dimension,
    latent_reconstruction_error,
    mean_estimate,
)
from genphys.models.vae import VAE, Autoencoder, AutoencoderConfig, VAEConfig

F64 = torch.float64
D, LATENT, SIGMA = 6, 2, 0.5
SCALES = (2.0, 1.0)  # column norms of W: W^T W = diag(SCALES^2), so p(z|x) is factorised


class PPCA:
    """A pPCA VAE in float64 with a random decoder W (orthogonal columns), b, and data from it."""

    def __init__(self, n: int = 200, seed: int = 1) -> None:
        g = torch.Generator().manual_seed(seed)
        cfg = VAEConfig(
            n_features=D, latent_dim=LATENT, hidden=(), likelihood="gaussian", sigma=SIGMA
        )
        self.model = VAE(cfg).double()
        q, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=g, dtype=F64))
        self.w = q * torch.tensor(SCALES, dtype=F64)
        self.b = torch.randn(D, generator=g, dtype=F64)
        with torch.no_grad():
            self.model.decoder[0].weight.copy_(self.w)
            self.model.decoder[0].bias.copy_(self.b)
            self.model.log_sigma.fill_(math.log(SIGMA))  # exact in float64 (init is float32)
        z = torch.randn(n, LATENT, generator=g, dtype=F64)
        self.x = z @ self.w.T + self.b + SIGMA * torch.randn(n, D, generator=g, dtype=F64)
        cov = self.w @ self.w.T + SIGMA**2 * torch.eye(D, dtype=F64)
        self.log_px = MultivariateNormal(self.b, cov).log_prob(self.x)
        # exact posterior: Cov = (I + W^T W / s^2)^-1 (diagonal here), mean = Cov W^T (x-b)/s^2
        self.post_var = 1.0 / (1.0 + (self.w**2).sum(0) / SIGMA**2)
        self.post_map = self.post_var[:, None] * self.w.T / SIGMA**2  # (LATENT, D)

    def set_encoder(self, shift: float = 0.0, inflate: float = 1.0) -> None:
        """q(z|x) = N(exact mean + shift, inflate * exact variance); (0, 1) is exact."""
        lin = self.model.encoder[0]
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.zero_()
            lin.weight[:LATENT] = self.post_map
            lin.bias[:LATENT] = -self.post_map @ self.b + shift
            lin.bias[LATENT:] = torch.log(self.post_var * inflate)

    def exact_elbo(self) -> torch.Tensor:
        r"""Closed-form ELBO per example: E_q||x - Wz - b||^2 = ||x - W mu - b||^2
        + sum_j var_j ||W_j||^2 for the linear-Gaussian decoder."""
        with torch.no_grad():
            mu, logvar = self.model.encode(self.x)
        sq = ((self.x - mu @ self.w.T - self.b) ** 2).sum(-1)
        sq = sq + (logvar.exp() * (self.w**2).sum(0)).sum(-1)
        rec = -0.5 * sq / SIGMA**2 - D * math.log(SIGMA) - 0.5 * D * math.log(2 * math.pi)
        return rec - VAE.kl_divergence(mu, logvar)


def test_closed_form_kl_matches_monte_carlo() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 4, generator=g, dtype=F64)
    logvar = torch.randn(5, 4, generator=g, dtype=F64)
    closed = VAE.kl_divergence(mu, logvar)
    q = Normal(mu, (0.5 * logvar).exp())
    reference = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    torch.testing.assert_close(closed, reference, rtol=1e-12, atol=1e-12)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, *mu.shape, generator=g, dtype=F64)
    log_ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)  # (samples, examples)
    for n in range(mu.shape[0]):
        assert abs(mean_estimate(log_ratio[:, n]).z_score(float(closed[n]))) < 4


def test_ppca_log_densities_match_torch_distributions() -> None:
    p = PPCA(n=50)
    m, x = p.model, p.x
    g = torch.Generator().manual_seed(2)
    z = torch.randn(50, LATENT, generator=g, dtype=F64)
    with torch.no_grad():
        out = m.decode(z)
        torch.testing.assert_close(out, z @ p.w.T + p.b)
        torch.testing.assert_close(m.log_likelihood(x, out), Normal(out, SIGMA).log_prob(x).sum(-1))
        torch.testing.assert_close(m.log_prior(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
        mu = torch.randn(50, LATENT, generator=g, dtype=F64)
        logvar = torch.randn(50, LATENT, generator=g, dtype=F64)
        torch.testing.assert_close(
            m.log_posterior(z, mu, logvar), Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
        )
        # per-feature sigma (as with learn_sigma=True)
        m.log_sigma.copy_(torch.linspace(-1.0, 0.5, D, dtype=F64))
        torch.testing.assert_close(
            m.log_likelihood(x, out), Normal(out, m.log_sigma.exp()).log_prob(x).sum(-1)
        )


def test_elbo_is_below_exact_log_likelihood() -> None:
    p = PPCA(n=400)  # the encoder keeps its random initialisation
    exact_elbo = p.exact_elbo()
    assert bool((exact_elbo <= p.log_px + 1e-12).all())  # ELBO(x) <= log p(x), every x
    est = elbo_estimate(p.model, p.x)
    assert est["elbo"].n == 400
    # the one-sample estimate is unbiased for the exact ELBO ...
    assert abs(est["elbo"].z_score(float(exact_elbo.mean()))) < 4
    assert est["kl"].stderr > 0
    with torch.no_grad():
        mu, logvar = p.model.encode(p.x)
    assert est["kl"].value == pytest.approx(float(VAE.kl_divergence(mu, logvar).mean()), 1e-12)
    # ... and lies far below log p(x): the gap is the mean KL(q(z|x) || p(z|x)) > 0
    assert est["elbo"].value + 4 * est["elbo"].stderr < float(p.log_px.mean())


def test_iwae_increases_with_k_and_converges_to_exact() -> None:
    p = PPCA(n=2000)
    p.set_encoder(shift=0.5, inflate=2.0)  # a wider-than-exact q: weights of finite variance
    estimates = [iwae_log_likelihood(p.model, p.x, k=k) for k in (1, 10, 100, 1000)]
    for small, large in itertools.pairwise(estimates):
        gain = mean_estimate(large - small)  # paired over examples
        assert gain.value > 2 * gain.stderr  # L_k increases with k (expected: 4 to 30 SE)
    nll = iwae_nll(p.model, p.x, k=100)
    assert nll.value == pytest.approx(-float(estimates[2].mean()), rel=1e-12)  # same seed 0
    assert nll.stderr == pytest.approx(float(estimates[2].std() / math.sqrt(2000)), rel=1e-9)
    # a closer q, whose IWAE bias at k = 1000 (~1e-4 nats) is well below the standard error
    p.set_encoder(shift=0.2, inflate=1.5)
    error = mean_estimate(iwae_log_likelihood(p.model, p.x[:500], k=1000) - p.log_px[:500])
    assert abs(error.value) < 3 * error.stderr  # paired: no spread of log p(x) itself
    assert abs(error.value) < 0.01  # nats


def test_exact_posterior_makes_elbo_and_iwae_exact() -> None:
    p = PPCA(n=100)
    p.set_encoder()
    torch.testing.assert_close(p.exact_elbo(), p.log_px, rtol=0, atol=1e-10)
    for k in (1, 10, 100):
        for seed in (0, 1):
            g = torch.Generator().manual_seed(seed)
            est = iwae_log_likelihood(p.model, p.x, k=k, chunk=7, generator=g)
            torch.testing.assert_close(est, p.log_px, rtol=0, atol=1e-10)  # every draw
    # the ELBO estimate uses the closed-form KL, so only its mean is exact
    assert abs(elbo_estimate(p.model, p.x)["elbo"].z_score(float(p.log_px.mean()))) < 4


def test_active_units_and_kl_per_dimension() -> None:
    torch.manual_seed(0)
    cfg = VAEConfig(n_features=10, latent_dim=4, hidden=(16,), likelihood="gaussian")
    model = VAE(cfg).double()
    head = model.encoder[-1]
    with torch.no_grad():
        head.weight.mul_(3.0)
        head.weight[2].zero_()  # mu_2 ignores x
        head.bias[2] = 0.7
    x = 2.0 * torch.randn(500, 10, generator=torch.Generator().manual_seed(1), dtype=F64)
    count, activity = active_units(model, x)
    assert activity.shape == (4,) and activity.dtype == F64
    assert count == 3 and float(activity[2]) == 0.0
    assert bool((activity[[0, 1, 3]] > 0.01).all())
    with torch.no_grad():
        mu, logvar = model.encode(x)
    torch.testing.assert_close(activity, mu.var(0))
    assert active_units(model, x, threshold=float(activity.max()) + 1)[0] == 0
    kl = kl_per_dimension(model, x)
    torch.testing.assert_close(kl.sum(), VAE.kl_divergence(mu, logvar).mean())
    assert float(kl.min()) >= 0


def test_iwae_is_reproducible_and_independent_of_chunking() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(n_features=12, latent_dim=3, hidden=(16,)))  # Bernoulli, float32
    x = (torch.rand(30, 12, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    base = iwae_log_likelihood(model, x, k=50, batch_size=8)
    assert base.dtype == F64 and base.shape == (30,)
    assert torch.equal(base, iwae_log_likelihood(model, x, k=50, batch_size=8))  # default seed 0
    g = torch.Generator().manual_seed(0)
    assert torch.equal(base, iwae_log_likelihood(model, x, k=50, batch_size=8, generator=g))
    for chunk in (1, 7, 50, 1000):
        same = iwae_log_likelihood(model, x, k=50, chunk=chunk, batch_size=8)
        torch.testing.assert_close(same, base, rtol=0, atol=1e-4)  # float32 rounding only
    other = iwae_log_likelihood(model, x, k=50, batch_size=8, generator=g.manual_seed(5))
    assert not torch.equal(other, base)
    rebatched = iwae_log_likelihood(model, x, k=50, batch_size=30)  # other draws
    assert abs(mean_estimate(rebatched - base).value) < 4 * mean_estimate(rebatched - base).stderr
    assert iwae_nll(model, x, k=50) == iwae_nll(model, x, k=50)


def test_evaluation_restores_mode_and_checks_input() -> None:
    p = PPCA(n=20)
    m = p.model
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    iwae_nll(m, p.x, k=3)
    elbo_estimate(m, p.x)
    assert m.training
    m.eval()
    active_units(m, p.x)
    kl_per_dimension(m, p.x)
    assert not m.training
    assert not any(q.grad is not None for q in m.parameters())
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # no weight moved
    assert iwae_nll(m, p.x, k=np.int64(3)) == iwae_nll(m, p.x, k=3)  # numpy integers are fine
    for k in (0, True, 2.0):
        with pytest.raises(GenphysError, match="k"):
            iwae_nll(m, p.x, k=k)
    with pytest.raises(GenphysError, match="chunk"):
        iwae_nll(m, p.x, k=3, chunk=0)
    with pytest.raises(GenphysError, match="shape"):
        iwae_nll(m, p.x[:, :3], k=3)
    with pytest.raises(GenphysError, match="shape"):
        elbo_estimate(m, p.x[0])
    with pytest.raises(GenphysError, match="needs a VAE"):
        iwae_nll(Autoencoder(AutoencoderConfig(n_features=D, hidden=())), p.x)
    with pytest.raises(GenphysError, match="at least 2"):
        active_units(m, p.x[:1])


def test_latent_reconstruction_error() -> None:
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(n_features=8, latent_dim=2, hidden=(4,)))
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))
    err = latent_reconstruction_error(ae, x, batch_size=7)
    with torch.no_grad():
        per_example = ((x - ae.reconstruct(x)) ** 2).sum(-1)
    assert isinstance(err, Estimate) and err.n == 40
    assert err.value == pytest.approx(float(per_example.double().mean()), rel=1e-6)
    p = PPCA(n=30)
    p.set_encoder()
    with torch.no_grad():
        mean = p.post_map @ (p.x - p.b).T
        expected = ((p.x - (mean.T @ p.w.T + p.b)) ** 2).sum(-1).mean()
    assert latent_reconstruction_error(p.model, p.x).value == pytest.approx(float(expected))


def test_iwae_k5000_on_an_mnist_sized_vae_tightens_the_elbo() -> None:
    # k = 5000 importance samples per image of a 784-pixel Bernoulli VAE (the size the CLI's
    # default evaluation uses), in memory-bounded chunks: per image L_5000 >= L_1 (the ELBO,
    # here a mean of 200 one-sample estimates); the mean gain is many paired standard errors
    torch.manual_seed(0)
    model = VAE(VAEConfig(n_features=784, latent_dim=8, hidden=(512, 512)))
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    ll_k = iwae_log_likelihood(model, x, k=5000, generator=torch.Generator().manual_seed(2))
    reps = iwae_log_likelihood(  # 200 one-sample estimates per image: the ELBO L_1
        model, x.repeat(200, 1), k=1, generator=torch.Generator().manual_seed(3), batch_size=4000
    )
    gain = ll_k - reps.view(200, 20).mean(0)
    assert ll_k.shape == (20,) and torch.isfinite(ll_k).all()
    assert gain.mean() > 5 * gain.std() / math.sqrt(20)


def test_vae_and_autoencoder_losses_match_their_formulas() -> None:
    # at the reparameterized z of a seeded draw: Bernoulli log p(x|z) summed over pixels,
    # Gaussian with its sigma, beta weighting the closed-form KL; autoencoders: summed BCE / SE
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(5, 6, generator=g) < 0.5).double()
    for likelihood in ("bernoulli", "gaussian"):
        model = VAE(
            VAEConfig(n_features=6, latent_dim=2, hidden=(4,), likelihood=likelihood, beta=0.3)
        ).double()
        torch.manual_seed(1)
        out = model(x)
        torch.manual_seed(1)
        mu, logvar = model.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, dtype=mu.dtype)
        mean = model.decode(z)
        if likelihood == "bernoulli":
            rec = torch.distributions.Bernoulli(logits=mean).log_prob(x).sum(-1)
        else:
            sigma = model.config.sigma
            rec = torch.distributions.Normal(mean, sigma).log_prob(x).sum(-1)
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
        torch.testing.assert_close(out["reconstruction"], rec, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out["kl"], kl, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out["loss"], -(rec - 0.3 * kl), rtol=1e-12, atol=1e-12)
    for loss in ("bce", "mse"):
        ae = Autoencoder(AutoencoderConfig(n_features=6, latent_dim=2, hidden=(4,), loss=loss))
        ae = ae.double()
        out = ae.decode(ae.encode(x))
        if loss == "bce":
            p = torch.sigmoid(out)
            expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
        else:
            expected = ((out - x) ** 2).sum(-1)
        torch.testing.assert_close(ae(x)["loss"], expected, rtol=1e-10, atol=1e-12)


def test_models_take_a_config_or_settings_not_both() -> None:
    from genphys.models import EBM, GAN, EBMConfig, GANConfig

    pairs = [(VAE, VAEConfig()), (Autoencoder, AutoencoderConfig()), (GAN, GANConfig()),
             (EBM, EBMConfig(architecture="mlp"))]  # fmt: skip
    for model, config in pairs:
        assert model(config).config is config
        with pytest.raises(GenphysError, match="not both"):
            model(config, n_features=10)
        with pytest.raises(GenphysError, match="unknown"):
            model(n_featurez=10)
    with pytest.raises(GenphysError, match="expected a VAEConfig"):
        VAE(AutoencoderConfig())


def test_learned_sigma_is_floored_at_min_sigma() -> None:
    """A feature that is constant in the data would drive its learned sigma to 0 and log p(x|z)
    to infinity; below ``min_sigma`` the likelihood uses the floor and log_sigma gets no
    gradient."""
    vae = VAE(n_features=3, latent_dim=1, hidden=(4,), likelihood="gaussian", learn_sigma=True,
              min_sigma=0.01).double()  # fmt: skip
    with torch.no_grad():
        vae.log_sigma.copy_(torch.tensor([-20.0, math.log(0.5), 0.0], dtype=torch.float64))
    x, out = torch.zeros(2, 3, dtype=torch.float64), torch.full((2, 3), 0.1, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 1.0], dtype=torch.float64)
    ll = vae.log_likelihood(x, out)
    torch.testing.assert_close(ll, Normal(out, sigma).log_prob(x).sum(-1))
    ll.sum().backward()
    assert vae.log_sigma.grad is not None and vae.log_sigma.grad[0] == 0
    assert bool((vae.log_sigma.grad[1:] != 0).all())
    fixed = VAE(n_features=3, latent_dim=1, hidden=(4,), likelihood="gaussian", sigma=1e-4)
    assert float(fixed.decoder_log_sigma()[0]) == pytest.approx(math.log(1e-4))  # not floored
    with pytest.raises(GenphysError, match="min_sigma"):
        VAE(n_features=3, latent_dim=1, likelihood="gaussian", learn_sigma=True, sigma=0.1,
            min_sigma=0.5)  # fmt: skip
