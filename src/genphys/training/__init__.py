"""The one Trainer and the objectives that plug model families into it."""

from genphys.training.adversarial import Adversarial, AdversarialConfig
from genphys.training.classification import Classification, ClassificationConfig
from genphys.training.energy import EnergyCDConfig, EnergyContrastiveDivergence
from genphys.training.objectives import CDConfig, ContrastiveDivergence, Objective, build_objective
from genphys.training.options import TrainerConfig
from genphys.training.step import StepContext
from genphys.training.trainer import Trainer

__all__ = [
    "Adversarial",
    "AdversarialConfig",
    "CDConfig",
    "Classification",
    "ClassificationConfig",
    "ContrastiveDivergence",
    "EnergyCDConfig",
    "EnergyContrastiveDivergence",
    "Objective",
    "StepContext",
    "Trainer",
    "TrainerConfig",
    "build_objective",
]
