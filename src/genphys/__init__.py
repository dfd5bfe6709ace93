"""genphys: deep generative models for the physical sciences.

Boltzmann machines, VAEs and autoencoders, GANs and energy-based models with Langevin
sampling, with samplers that hold explicit state, one Trainer, run directories and estimates
with errors; Ising Monte Carlo and variational Monte Carlo (``genphys.physics``) to judge them
against exact answers.
"""

from genphys.errors import GenphysError, TrainingDiverged
from genphys.models import (
    EBM,
    GAN,
    VAE,
    Autoencoder,
    BernoulliRBM,
    Classifier,
    GaussianBernoulliRBM,
    GaussianRBMConfig,
    RBMConfig,
)
from genphys.samplers import GibbsSampler, GibbsState, sample_model
from genphys.training import Trainer, TrainerConfig

__version__ = "0.1.0"

__all__ = [
    "EBM",
    "GAN",
    "VAE",
    "Autoencoder",
    "BernoulliRBM",
    "Classifier",
    "GaussianBernoulliRBM",
    "GaussianRBMConfig",
    "GenphysError",
    "GibbsSampler",
    "GibbsState",
    "RBMConfig",
    "Trainer",
    "TrainerConfig",
    "TrainingDiverged",
    "__version__",
    "sample_model",
]
