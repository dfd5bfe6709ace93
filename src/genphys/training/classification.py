"""Supervised training of the classifier whose features score sample quality (FID, IS)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.errors import GenphysError
from genphys.registry import register_objective
from genphys.training.objectives import Objective

if TYPE_CHECKING:
    from genphys.training.step import StepContext


@dataclasses.dataclass
class ClassificationConfig(Config):
    """Cross-entropy training; ``label_smoothing`` as in ``torch.nn.functional.cross_entropy``."""

    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check(0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)")


@register_objective("classification")
class Classification(Objective):
    """Minimise the mean cross-entropy of the model's logits against the batch labels."""

    Config = ClassificationConfig
    config: ClassificationConfig
    needs_labels = True

    def step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        if ctx.labels is None:
            raise GenphysError("the classification objective needs labelled training data")
        logits = ctx.forward(batch)
        loss = F.cross_entropy(logits, ctx.labels, label_smoothing=self.config.label_smoothing)
        ctx.update("model", loss)
        metrics = {"loss": loss.detach()}
        if ctx.measure:
            metrics["accuracy"] = (logits.detach().argmax(1) == ctx.labels).float().mean()
        return metrics

    @torch.no_grad()
    def validate(self, model: nn.Module, data: Any) -> dict[str, float]:
        """Mean cross-entropy and accuracy on held-out (images, labels)."""
        if not isinstance(data, tuple):
            return {}
        x, y = data
        loss, correct = 0.0, 0.0
        for xb, yb in zip(x.split(2048), y.split(2048), strict=True):
            logits = model(xb)
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += float((logits.argmax(1) == yb).sum())
        return {"loss": loss / len(x), "accuracy": correct / len(x)}


__all__ = ["Classification", "ClassificationConfig"]
