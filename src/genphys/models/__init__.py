"""Generative models: each a ``torch.nn.Module`` with a ``Config`` dataclass."""

from genphys.models.rbm import (
    BernoulliRBM,
    GaussianBernoulliRBM,
    GaussianRBMConfig,
    RBMConfig,
)

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM", "GaussianRBMConfig", "RBMConfig"]
