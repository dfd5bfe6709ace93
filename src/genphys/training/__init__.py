"""The one Trainer and the objectives that plug model families into it."""

from genphys.training.objectives import CDConfig, ContrastiveDivergence, Objective, build_objective
from genphys.training.options import TrainerConfig
from genphys.training.trainer import StepContext, Trainer

__all__ = [
    "CDConfig",
    "ContrastiveDivergence",
    "Objective",
    "StepContext",
    "Trainer",
    "TrainerConfig",
    "build_objective",
]
