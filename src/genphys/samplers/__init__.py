"""Samplers with explicit, checkpointable state."""

from genphys.samplers.generate import sample_model
from genphys.samplers.gibbs import GibbsSampler, GibbsState
from genphys.samplers.tempering import ParallelTemperingSampler, TemperingState

__all__ = [
    "GibbsSampler",
    "GibbsState",
    "ParallelTemperingSampler",
    "TemperingState",
    "sample_model",
]
