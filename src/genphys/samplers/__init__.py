"""Samplers with explicit, checkpointable state."""

from genphys.samplers.buffer import ReplayBuffer
from genphys.samplers.gaussian import GaussianGibbsSampler, GaussianGibbsState
from genphys.samplers.generate import sample_model
from genphys.samplers.gibbs import GibbsSampler, GibbsState
from genphys.samplers.langevin import LangevinSampler, LangevinState, langevin_sample
from genphys.samplers.tempering import ParallelTemperingSampler, TemperingState

__all__ = [
    "GaussianGibbsSampler",
    "GaussianGibbsState",
    "GibbsSampler",
    "GibbsState",
    "LangevinSampler",
    "LangevinState",
    "ParallelTemperingSampler",
    "ReplayBuffer",
    "TemperingState",
    "langevin_sample",
    "sample_model",
]
