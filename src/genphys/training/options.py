"""Trainer settings and the optimizers and learning-rate schedules they describe."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from genphys.config import Config, check


@dataclasses.dataclass
class TrainerConfig(Config):
    """Optimisation and bookkeeping settings shared by every family.

    Args:
        epochs: passes over the training data.
        batch_size: examples per step and per process.
        optimizer: "sgd" (with ``momentum``) or "adam" (with ``betas``).
        lr, momentum, weight_decay, betas: optimizer settings.
        schedule: learning-rate schedule per epoch: constant, step (x ``gamma`` every
            ``step_size`` epochs), exponential (x ``gamma`` per epoch) or cosine (to zero).
        grad_clip: clip the gradient norm of each optimizer's parameters (None: off).
        seed: the one seed every random stream is derived from.
        checkpoint_every: epochs between checkpoints (the last epoch is always saved).
        keep_checkpoints: how many checkpoints to keep.
        max_steps: stop (and checkpoint) after this many steps in total; None: no limit.
        metrics_every: steps between evaluations of per-step training metrics (which may
            cost an extra forward pass); the epoch's figure averages those steps.
        device: "cpu", "cuda", "cuda:N" or "auto".
        progress: show a tqdm progress bar.
        tensorboard: also log to TensorBoard (needs the ``tensorboard`` package).
        flush_denormal: flush denormal floats to zero on every CPU thread when training
            starts (:func:`genphys.denormals.flush_denormals`; denormal optimizer moments make
            CPU steps up to 60% slower).
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "step", "exponential", "cosine"] = "constant"
    step_size: int = 10
    gamma: float = 0.1
    grad_clip: float | None = None
    seed: int = 0
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    max_steps: int | None = None
    metrics_every: int = 10
    device: str = "cpu"
    progress: bool = True
    tensorboard: bool = False
    flush_denormal: bool = True

    def __post_init__(self) -> None:
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"betas must be two numbers in [0, 1), got {tuple(self.betas)}",
        )
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0")
        check(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")
        check(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1")
        check(self.step_size >= 1, "step_size must be >= 1")
        check(self.metrics_every >= 1, "metrics_every must be >= 1")
        check(self.gamma > 0, "gamma must be > 0")
        check(0 <= self.seed < 2**63, f"seed must be in [0, 2^63), got {self.seed}")


def make_optimizer(cfg: TrainerConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    # fused kernels (one pass over all parameters) on the devices that have them: Adam's
    # per-tensor loop is ~30% of a small VAE's step on CPU, the fused one a quarter of that
    fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused
        )
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused
    )


def make_scheduler(
    cfg: TrainerConfig,
    opt: torch.optim.Optimizer,
) -> torch.optim.lr_scheduler.LRScheduler:
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "step":
        return sched.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "exponential":
        return sched.ExponentialLR(opt, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return sched.LambdaLR(opt, lambda _: 1.0)


def rescale_cosine(sched: torch.optim.lr_scheduler.LRScheduler, epochs: int) -> None:
    """Make a restored cosine schedule anneal to zero at ``epochs`` (a resumed run may have
    more or fewer epochs than the one that saved it): its period becomes ``epochs`` and the
    current learning rate the closed form's, from which the schedule's recursion continues."""
    if not isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) or sched.T_max == epochs:
        return
    sched.T_max = epochs
    e = min(sched.last_epoch, epochs)
    for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
        group["lr"] = (
            sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * e / epochs)) / 2
        )
    sched._last_lr = [g["lr"] for g in sched.optimizer.param_groups]
