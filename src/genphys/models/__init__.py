"""Generative models: each a ``torch.nn.Module`` with a ``Config`` dataclass."""

from genphys.models.classifier import Classifier, ClassifierConfig
from genphys.models.ebm import EBM, EBMConfig
from genphys.models.gan import GAN, GANConfig
from genphys.models.grbm import GaussianBernoulliRBM, GaussianRBMConfig
from genphys.models.rbm import BernoulliRBM, RBMConfig
from genphys.models.vae import VAE, Autoencoder, AutoencoderConfig, VAEConfig

__all__ = [
    "EBM",
    "GAN",
    "VAE",
    "Autoencoder",
    "AutoencoderConfig",
    "BernoulliRBM",
    "Classifier",
    "ClassifierConfig",
    "EBMConfig",
    "GANConfig",
    "GaussianBernoulliRBM",
    "GaussianRBMConfig",
    "RBMConfig",
    "VAEConfig",
]
