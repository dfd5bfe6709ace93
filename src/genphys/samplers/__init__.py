"""Samplers with explicit, checkpointable state."""

from genphys.samplers.generate import sample_model
from genphys.samplers.gibbs import GibbsSampler, GibbsState

__all__ = ["GibbsSampler", "GibbsState", "sample_model"]
