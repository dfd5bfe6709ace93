r"""Variational autoencoders and deterministic autoencoders.

VAE (Kingma & Welling 2014): encoder :math:`q(z|x) = N(\mu(x), \mathrm{diag}\,\sigma^2(x))`,
prior :math:`p(z) = N(0, I)`, decoder likelihood :math:`p(x|z)` Bernoulli (logits) or Gaussian
(mean, fixed or learned per-feature std). With the reparameterisation
:math:`z = \mu + \sigma \odot \epsilon`, :math:`\epsilon \sim N(0, I)`, the per-example loss is
the negative (beta-)ELBO :math:`-E_q[\log p(x|z)] + \beta\,KL(q(z|x)\,\|\,p(z))`, with the KL in
closed form :math:`\tfrac12\sum_k(\mu_k^2 + \sigma_k^2 - 1 - \log\sigma_k^2)`.

Autoencoder: a deterministic code :math:`z = f(x)`, reconstruction loss MSE or BCE.

Data are flattened, (N, n_features); ``image_shape`` gives the (C, H, W) a conv net needs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.models.nets import ACTIVATIONS, check_batch, encoder_decoder
from genphys.registry import register_model


@dataclasses.dataclass
class LatentConfig(Config):
    """Architecture settings shared by autoencoders and VAEs.

    Args:
        n_features: size of one flattened example (C*H*W).
        image_shape: (C, H, W) of the images; needed by ``architecture="conv"``.
        architecture: "mlp" (``hidden`` widths, mirrored in the decoder) or "conv".
        latent_dim: size of the code z.
        hidden: MLP widths of the encoder (the course's VAE: 512, 512).
        channels, dense: conv channels and dense width (the Keras example: 32, 64 and 16).
        activation: relu, tanh, silu or leaky_relu.
        periodic: circular padding for data on a torus, e.g. Ising spins; conv only.
    """

    n_features: int = 784
    image_shape: tuple[int, ...] = ()
    architecture: Literal["mlp", "conv"] = "mlp"
    latent_dim: int = 8
    hidden: tuple[int, ...] = (512, 512)
    channels: tuple[int, int] = (32, 64)
    dense: int = 16
    activation: str = "relu"
    periodic: bool = False

    def __post_init__(self) -> None:
        check(self.n_features >= 1, f"n_features must be >= 1, got {self.n_features}")
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(all(h >= 1 for h in self.hidden), "hidden widths must be >= 1")
        check(len(self.channels) == 2 and min(self.channels) >= 1, "channels: two widths >= 1")
        check(self.activation in ACTIVATIONS, f"activation must be one of {sorted(ACTIVATIONS)}")
        check(
            not (self.periodic and self.architecture != "conv"),
            f"periodic (circular padding) needs architecture 'conv', got '{self.architecture}'",
        )


@dataclasses.dataclass
class AutoencoderConfig(LatentConfig):
    """An autoencoder: ``loss`` is the reconstruction loss, "mse" or "bce" (data in [0, 1])."""

    loss: Literal["mse", "bce"] = "mse"


@dataclasses.dataclass
class VAEConfig(LatentConfig):
    """A VAE: ``likelihood`` of p(x|z), its Gaussian std ``sigma`` (fixed or learned), ``beta``.

    A learned sigma is floored at ``min_sigma``: features that are constant in the data (the
    blank border of MNIST) would otherwise drive their sigma to 0 and the likelihood to
    infinity.
    """

    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    sigma: float = 1.0
    learn_sigma: bool = False
    min_sigma: float = 1e-3
    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        check(
            self.min_sigma > 0 and (self.min_sigma <= self.sigma or not self.learn_sigma),
            f"min_sigma must be in (0, sigma = {self.sigma}], got {self.min_sigma}",
        )
        check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        check(
            not (self.learn_sigma and self.likelihood == "bernoulli"),
            "learn_sigma needs the Gaussian likelihood (a Bernoulli p(x|z) has no std)",
        )


class _LatentModel(nn.Module):
    """Encoder/decoder pair on flattened data, and the data checks they need."""

    Config: type[LatentConfig] = LatentConfig

    def __init__(self, config: LatentConfig, encoder_out: int) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.decoder = encoder_decoder(
            config.architecture,
            config.n_features,
            config.image_shape,
            config.latent_dim,
            encoder_out,
            config.hidden,
            config.channels,
            config.dense,
            config.activation,
            config.periodic,
        )

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def unit_interval_data(self) -> bool:
        """Whether the likelihood needs data in [0, 1] (Bernoulli / BCE)."""
        return False

    def decode(self, z: Tensor) -> Tensor:
        """Decoder output: logits (Bernoulli, BCE) or means (Gaussian, MSE), shape (N, D)."""
        return self.decoder(z)

    def mean_output(self, out: Tensor) -> Tensor:
        """E[x | z] from the decoder output."""
        return torch.sigmoid(out) if self.unit_interval_data else out

    def check_data(self, x: Tensor, what: str = "data") -> None:
        """Raise :class:`GenphysError` unless ``x`` is a finite (N, n_features) batch that the
        likelihood accepts."""
        cfg = self.config
        check_batch(
            x,
            cfg.n_features,
            what,
            cfg.image_shape,
            interval=(0, 1) if self.unit_interval_data else None,
            hint=", which a Bernoulli likelihood needs (scale to [0, 1] or use a Gaussian "
            "likelihood)",
        )


@register_model("ae")
class Autoencoder(_LatentModel):
    """Deterministic autoencoder z = f(x), x_hat = g(z), with MSE or BCE reconstruction loss."""

    Config = AutoencoderConfig
    config: AutoencoderConfig

    def __init__(self, config: AutoencoderConfig | None = None, **kwargs: object) -> None:
        config = AutoencoderConfig.given(config, kwargs)
        super().__init__(config, config.latent_dim)

    @property
    def unit_interval_data(self) -> bool:
        return self.config.loss == "bce"

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def reconstruction_loss(self, x: Tensor, out: Tensor) -> Tensor:
        """Per-example loss summed over features."""
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        return ((out - x) ** 2).sum(-1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example ``loss`` (= ``reconstruction``)."""
        rec = self.reconstruction_loss(x, self.decode(self.encode(x)))
        return {"loss": rec, "reconstruction": rec}

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.mean_output(self.decode(self.encode(x)))


@register_model("vae")
class VAE(_LatentModel):
    """Variational autoencoder with Gaussian q(z|x), N(0, I) prior and Bernoulli or Gaussian
    p(x|z); :meth:`forward` gives the per-example negative beta-ELBO and its two terms."""

    Config = VAEConfig
    config: VAEConfig

    def __init__(self, config: VAEConfig | None = None, **kwargs: object) -> None:
        config = VAEConfig.given(config, kwargs)
        super().__init__(config, 2 * config.latent_dim)
        log_sigma = torch.full((config.n_features,), math.log(config.sigma))
        if config.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    @property
    def unit_interval_data(self) -> bool:
        return self.config.likelihood == "bernoulli"

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) (from ``generator`` if given)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    @staticmethod
    def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per example, in closed form."""
        return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(-1)

    def log_likelihood(self, x: Tensor, out: Tensor) -> Tensor:
        """log p(x | z) per example, from the decoder output ``out`` for that z (``out`` may
        carry leading sample dimensions, (..., N, D), against x of shape (N, D))."""
        if self.config.likelihood == "bernoulli":
            target = x.expand_as(out)
            return -F.binary_cross_entropy_with_logits(out, target, reduction="none").sum(-1)
        log_sigma = self.decoder_log_sigma()
        inv = torch.exp(-log_sigma)
        norm = log_sigma.sum() + 0.5 * self.config.n_features * math.log(2 * math.pi)
        return -0.5 * (((x - out) * inv) ** 2).sum(-1) - norm

    def decoder_log_sigma(self) -> Tensor:
        """log sigma of the Gaussian p(x|z) per feature; learned, floored at ``min_sigma``."""
        if not self.config.learn_sigma:
            return self.log_sigma
        return self.log_sigma.clamp(min=math.log(self.config.min_sigma))

    def log_prior(self, z: Tensor) -> Tensor:
        """log N(z; 0, I) per example."""
        return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

    def log_posterior(self, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """log q(z | x) per example, for z of shape (..., N, latent)."""
        return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)

    def elbo_terms(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Per-example ``reconstruction`` (one-sample E_q log p(x|z)), ``kl`` and ``elbo``."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        rec = self.log_likelihood(x, self.decode(z))
        kl = self.kl_divergence(mu, logvar)
        return {"reconstruction": rec, "kl": kl, "elbo": rec - kl}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example ``loss`` = -(reconstruction - beta KL), with both terms."""
        terms = self.elbo_terms(x)
        loss = -(terms["reconstruction"] - self.config.beta * terms["kl"])
        return {"loss": loss, **terms}

    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x | z = mu(x)]: the decoded posterior mean."""
        return self.mean_output(self.decode(self.encode(x)[0]))

    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> Tensor:
        """Decode prior samples z ~ N(0, I): E[x | z] with ``mean``, else x ~ p(x | z)."""
        p = next(self.parameters())
        z = torch.randn((n, self.latent_dim), generator=generator, device=p.device, dtype=p.dtype)
        out = self.decode(z)
        if mean:
            return self.mean_output(out)
        if self.config.likelihood == "bernoulli":
            u = torch.rand(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            return u.lt_(torch.sigmoid(out))
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return out + noise * self.decoder_log_sigma().exp()
