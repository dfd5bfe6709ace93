"""Generative models: each a ``torch.nn.Module`` with a ``Config`` dataclass."""

from genphys.models.rbm import (
    BernoulliRBM,
    GaussianBernoulliRBM,
    GaussianRBMConfig,
    RBMConfig,
)
from genphys.models.vae import VAE, Autoencoder, AutoencoderConfig, VAEConfig

__all__ = [
    "VAE",
    "Autoencoder",
    "AutoencoderConfig",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "GaussianRBMConfig",
    "RBMConfig",
    "VAEConfig",
]
