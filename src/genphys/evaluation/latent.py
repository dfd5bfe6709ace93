r"""Evaluation of variational autoencoders and autoencoders: IWAE, ELBO, active units.

For a VAE with encoder :math:`q(z|x)`, prior :math:`p(z)` and decoder :math:`p(x|z)`:

* **IWAE** (Burda, Grosse and Salakhutdinov 2015): with :math:`z_i \sim q(z|x)`,
  :math:`\log\hat p_k(x) = \log\frac1k\sum_{i=1}^k w_i`,
  :math:`\log w_i = \log p(x|z_i) + \log p(z_i) - \log q(z_i|x)`. Its expectation
  :math:`\mathcal L_k` is a lower bound on :math:`\log p(x)` that increases with :math:`k`
  (:math:`\mathcal L_1` is the ELBO) and tends to :math:`\log p(x)` as :math:`k\to\infty`.
* **ELBO** :math:`E_q[\log p(x|z)] - KL(q(z|x)\,\|\,p(z))`, one reparameterised sample per
  example for the first term, the KL in closed form.
* **Activity** of latent unit :math:`u`: :math:`A_u = \mathrm{Cov}_x(E_q[z_u|x])`, active
  when above a threshold (0.01 in Burda et al.).

Every function runs under ``torch.no_grad`` with the model in eval mode (its mode is restored)
and returns float64 results on the CPU; errors are over examples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.evaluation.stats import Estimate, mean_estimate
from genphys.models.nets import evaluating
from genphys.models.vae import VAE, Autoencoder

#: Numbers held by one layer's activations in a decoder pass (2**22 float32 = 16 MiB).
_BUDGET = 2**22
#: Latent numbers drawn by one call to ``model.reparameterize`` (2**20 float32 = 4 MiB).
_DRAWS = 2**20


def _data(model: VAE | Autoencoder, x: Tensor | np.ndarray, vae: bool = True) -> Tensor:
    """``x`` as a tensor of the model's dtype and device, checked by ``model.check_data``."""
    if not isinstance(model, VAE if vae else (VAE, Autoencoder)):
        need = "a VAE" if vae else "a VAE or an Autoencoder"
        raise GenphysError(f"this evaluation needs {need}, got {type(model).__name__}")
    p = next(model.parameters())
    x = torch.as_tensor(x).detach().to(device=p.device, dtype=p.dtype)
    model.check_data(x, "data")
    return x


def _positive(value: Any, name: str) -> Any:
    """``value`` as a Python int (None stays None), or a GenphysError unless it is one >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GenphysError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _width(model: VAE) -> int:
    """The widest activation (numbers per example) of one decoder pass, an upper bound."""
    cfg = model.config
    if cfg.architecture == "conv":
        return cfg.n_features * max(cfg.channels)
    return max(cfg.n_features, cfg.latent_dim, *cfg.hidden)


def iwae_log_likelihood(
    model: VAE,
    x: Tensor | np.ndarray,
    k: int = 5000,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> Tensor:
    r"""Per-example importance-weighted estimate :math:`\log\hat p_k(x_n)` (Burda et al. 2015).

    :math:`\log\hat p_k(x) = \mathrm{logsumexp}_i[\log p(x|z_i) + \log p(z_i) - \log q(z_i|x)]
    - \log k` with :math:`z_i \sim q(z|x)`. Its expectation is the IWAE bound
    :math:`\mathcal L_k \le \log p(x)`; the estimate is biased low at finite ``k``.

    Examples are processed ``batch_size`` at a time and, within a batch, the ``k`` samples
    ``chunk`` at a time, combined by a running log-sum-exp in float64, so memory stays bounded
    for any ``k``. The :math:`z_i` are drawn (``model.reparameterize``) in blocks of about
    2**20 numbers whatever ``chunk`` is, so the draws, and the answer up to rounding, do not
    depend on ``chunk``; they do depend on ``batch_size``.

    Args:
        model: a :class:`~genphys.models.vae.VAE`.
        x: data, (N, n_features).
        k: importance samples per example.
        chunk: samples decoded together (at most one draw block); default: as many as keep
            one layer's activations for ``batch_size`` examples under about 2**22 numbers
            (adapts to the widths).
        generator: source of the draws; default a fresh one seeded with 0 (reproducible).
        batch_size: examples per batch.

    Returns:
        A float64 CPU tensor of shape (N,).
    """
    k = _positive(k, "k (IWAE samples)")
    chunk = _positive(chunk, "chunk")
    batch_size = _positive(batch_size, "batch_size")
    x = _data(model, x)
    if chunk is None:
        chunk = max(1, _BUDGET // (min(batch_size, x.shape[0]) * _width(model)))
    chunk = min(chunk, k)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    out = []
    with evaluating(model):
        for xb in x.split(batch_size):
            mu, logvar = model.encode(xb)
            acc = torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
            block = max(1, _DRAWS // (xb.shape[0] * model.latent_dim))
            for start in range(0, k, block):  # draw z in blocks that do not depend on chunk
                n = min(block, k - start)
                shape = (n, *mu.shape)
                zs = model.reparameterize(mu.expand(shape), logvar.expand(shape), generator)
                for z in zs.split(chunk):
                    s = z.shape[0]
                    rec = model.log_likelihood(
                        xb.expand(s, *xb.shape).reshape(-1, xb.shape[1]),
                        model.decode(z.reshape(-1, z.shape[-1])),
                    ).view(s, -1)
                    log_w = rec + model.log_prior(z) - model.log_posterior(z, mu, logvar)
                    acc = torch.logaddexp(acc, torch.logsumexp(log_w.to(torch.float64), 0))
            out.append(acc - math.log(k))
    return torch.cat(out).cpu()


def iwae_nll(
    model: VAE,
    data: Tensor | np.ndarray,
    k: int = 5000,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> Estimate:
    r"""Mean negative log-likelihood :math:`-\frac1N\sum_n\log\hat p_k(x_n)` in nats per example.

    The per-example values are :func:`iwae_log_likelihood`'s (same arguments). The standard
    error is that of a mean over examples (it also absorbs the sampling noise of each
    :math:`\log\hat p_k`); it does **not** include the IWAE bias at finite ``k``, which makes
    the estimate an upper bound on the true NLL in expectation.
    """
    return mean_estimate(-iwae_log_likelihood(model, data, k, chunk, generator, batch_size))


def elbo_estimate(
    model: VAE,
    data: Tensor | np.ndarray,
    generator: torch.Generator | None = None,
    batch_size: int = 1024,
) -> dict[str, Estimate]:
    r"""Mean ELBO and its two terms, each with the standard error over examples.

    Per example (``model.elbo_terms``): ``reconstruction`` :math:`\log p(x|z)` with one
    :math:`z \sim q(z|x)`, ``kl`` :math:`KL(q(z|x)\,\|\,p(z))` in closed form, and
    ``elbo`` = reconstruction - kl (an unbiased estimate of :math:`\mathcal L_1`; beta is not
    applied). ``generator`` defaults to a fresh one seeded with 0.
    """
    batch_size = _positive(batch_size, "batch_size")
    x = _data(model, data)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    parts: dict[str, list[Tensor]] = {"elbo": [], "reconstruction": [], "kl": []}
    with evaluating(model):
        for xb in x.split(batch_size):
            terms = model.elbo_terms(xb, generator)
            for name, values in parts.items():
                values.append(terms[name].to(torch.float64).cpu())
    return {name: mean_estimate(torch.cat(values)) for name, values in parts.items()}


def _posterior_params(model: VAE, x: Tensor, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """mu and logvar of q(z|x) for all of ``x``, float64 on the CPU."""
    with evaluating(model):
        pairs = [model.encode(xb) for xb in x.split(batch_size)]
    mu = torch.cat([m for m, _ in pairs]).to(torch.float64).cpu()
    logvar = torch.cat([lv for _, lv in pairs]).to(torch.float64).cpu()
    return mu, logvar


def active_units(
    model: VAE, data: Tensor | np.ndarray, threshold: float = 0.01
) -> tuple[int, Tensor]:
    r"""Number of active latent units and every unit's activity (Burda et al. 2015).

    :math:`A_u = \mathrm{Cov}_x(E_{q(z|x)}[z_u]) = \mathrm{Var}_x(\mu_u(x))`, the sample
    variance (``ddof=1``) over the data of the encoder mean; unit :math:`u` is active when
    :math:`A_u >` ``threshold``.

    Returns:
        (count, activities): the number of active units and a float64 tensor (latent_dim,).
    """
    x = _data(model, data)
    if x.shape[0] < 2:
        raise GenphysError("the activity of latent units needs at least 2 examples")
    mu, _ = _posterior_params(model, x)
    activity = mu.var(0)
    return int((activity > threshold).sum()), activity


def kl_per_dimension(model: VAE, data: Tensor | np.ndarray) -> Tensor:
    r"""Mean over the data of each latent dimension's closed-form KL to the prior.

    :math:`KL_u = \frac1N\sum_n \tfrac12(\mu_u^2 + \sigma_u^2 - 1 - \log\sigma_u^2)` at
    :math:`x_n`; the sum over :math:`u` is the mean KL term of the ELBO. Dimensions with
    :math:`KL_u \approx 0` have collapsed to the prior. Returns a float64 tensor (latent_dim,).
    """
    mu, logvar = _posterior_params(model, _data(model, data))
    return (0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)).mean(0)


def latent_reconstruction_error(
    model: VAE | Autoencoder, data: Tensor | np.ndarray, batch_size: int = 1024
) -> Estimate:
    r"""Mean squared reconstruction error :math:`\frac1N\sum_n\sum_i (x_{ni} - \hat x_{ni})^2`.

    :math:`\hat x` is ``model.reconstruct(x)``: the decoded code for an autoencoder, the decoded
    posterior mean :math:`E[x|z=\mu(x)]` for a VAE. Squared errors are summed over features,
    averaged over examples, with the standard error of that mean.
    """
    batch_size = _positive(batch_size, "batch_size")
    x = _data(model, data, vae=False)
    with evaluating(model):
        err = [((xb - model.reconstruct(xb)) ** 2).sum(-1) for xb in x.split(batch_size)]
    return mean_estimate(torch.cat(err).to(torch.float64))


__all__ = [
    "active_units",
    "elbo_estimate",
    "iwae_log_likelihood",
    "iwae_nll",
    "kl_per_dimension",
    "latent_reconstruction_error",
]
