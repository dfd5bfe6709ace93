"""What an objective's step sees: the model, its forward, and the updates it may apply.

:meth:`StepContext.update` backpropagates a loss (through the DDP-wrapped model when there is
one); :meth:`StepContext.apply_gradients` takes gradients computed in closed form. Both guard
against non-finite values, average over processes under DDP, clip and step the group's
optimizer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from genphys.errors import TrainingDiverged
from genphys.training.distributed import average_over_processes

if TYPE_CHECKING:
    from genphys.training.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class SGDSettings:
    """torch.optim.SGD's hyperparameters, for an objective that applies its step itself."""

    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float


class StepContext:
    """What an objective's step sees: the model, its (maybe DDP-wrapped) forward, updates."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer
        self.model: nn.Module = trainer.model
        self.forward: Callable[..., Any] = trainer.wrapped
        self.generator: torch.Generator = trainer.generator
        self.device = trainer.device
        self._params = dict(trainer.model.named_parameters())

    #: whether this step should compute its (possibly costly) metrics; set by the trainer
    measure: bool = True
    #: steps completed before this one (counts across epochs and resumes)
    step: int = 0
    #: the batch's labels when the trainer was given labels (a classifier), else None
    labels: Tensor | None = None

    def apply_gradients(self, group: str, grads: dict[str, Tensor]) -> None:
        """Step the optimizer of ``group`` with gradients computed in closed form.

        ``grads`` maps parameter names of ``ctx.model`` to gradients. Under DDP they are
        averaged over processes here (what DDP's hooks do for :meth:`update`); a non-finite
        gradient stops training (NaN guard). Plain SGD (no momentum, weight decay or
        clipping) is applied here as ``p -= lr g``, bit for bit what ``torch.optim.SGD``
        does, without calling the optimizer's ``step`` (so its step hooks do not run).
        """
        t = self._trainer
        grads = average_over_processes(grads, t.world_size)
        names = sorted(grads)
        if self.device.type == "cpu":  # a few scalar reads cost less than stack + isfinite
            finite = all(math.isfinite(grads[k].sum().item()) for k in names)
        else:  # one device sync
            finite = bool(torch.isfinite(torch.stack([grads[k].sum() for k in names])).all())
        if not finite:
            raise TrainingDiverged(f"the {group} gradient became non-finite")
        opt = t.optimizers[group]
        if self._plain_sgd(opt):  # p -= lr g, as SGD's step does, without ~0.15 ms of Python
            with torch.no_grad():
                torch._foreach_add_(
                    [self._params[k] for k in names],
                    [grads[k] for k in names],
                    alpha=-opt.param_groups[0]["lr"],
                )
            self.stepped(group)
            return
        for k in names:
            self._params[k].grad = grads[k]
        self._clip_and_step(group)

    def sgd_settings(self, group: str) -> SGDSettings | None:
        """``group``'s SGD hyperparameters when an objective may apply torch.optim.SGD's step
        itself, fused with the computation of the gradient (then it updates
        :meth:`momentum_buffers`, calls :meth:`stepped` and guards against non-finite
        parameters): one process, one parameter group, no dampening, clipping or maximize.
        None otherwise (Adam, DDP, ...)."""
        if self._trainer.world_size > 1:  # the gradients must be averaged first
            return None
        return self._sgd(self._trainer.optimizers[group])

    def momentum_buffers(self, group: str, names: list[str]) -> list[Tensor]:
        """SGD's momentum buffers of the parameters ``names``, in the optimizer's state (so
        checkpoints keep them); zeros before the first step, where ``m * 0 + g`` is the ``g``
        that torch's SGD starts from."""
        opt = self._trainer.optimizers[group]
        out = []
        for name in names:
            state = opt.state[self._params[name]]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(self._params[name]).detach()
            out.append(state["momentum_buffer"])
        return out

    def stepped(self, group: str) -> None:
        """Record that ``group``'s parameters were updated without ``optimizer.step()`` (what
        the learning-rate scheduler checks before it warns)."""
        self._trainer.optimizers[group]._opt_called = True  # type: ignore[attr-defined]

    def _sgd(self, opt: torch.optim.Optimizer) -> SGDSettings | None:
        """``opt``'s settings when it is SGD (one group) without dampening, maximize or
        clipping, else None."""
        if type(opt) is not torch.optim.SGD or len(opt.param_groups) != 1:
            return None
        g = opt.param_groups[0]
        if g["dampening"] != 0 or g["maximize"] or self._trainer.config.grad_clip is not None:
            return None
        return SGDSettings(
            float(g["lr"]), float(g["momentum"]), bool(g["nesterov"]), float(g["weight_decay"])
        )

    def _plain_sgd(self, opt: torch.optim.Optimizer) -> bool:
        """Whether ``opt`` is SGD without momentum, weight decay or clipping (one group)."""
        sgd = self._sgd(opt)
        return sgd is not None and sgd.momentum == 0 and sgd.weight_decay == 0

    def update(self, group: str, loss: Tensor) -> None:
        """Backpropagate ``loss`` and step the optimizer of ``group`` (NaN guard included).

        One process checks the loss at every step. A gradient that is not finite behind a
        finite loss makes some parameters non-finite, which usually shows in the next loss;
        at the latest the trainer's check of the parameters at the end of the epoch and before
        every checkpoint stops the run, so no checkpoint holds them. Under DDP the averaged
        gradients are checked too, and the ranks agree before any of them stops.
        """
        t = self._trainer
        t.optimizers[group].zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients are now averaged: every rank sees a NaN
        params = [p for g in t.optimizers[group].param_groups for p in g["params"]]
        if t.world_size > 1 and t.wrapped is t.model:  # not DDP-wrapped: average explicitly
            named = {str(i): p.grad for i, p in enumerate(params) if p.grad is not None}
            for i, grad in average_over_processes(named, t.world_size).items():
                params[int(i)].grad = grad
        if t.world_size > 1:  # every rank stops at the same step, or none does
            grads = [p.grad for p in params if p.grad is not None]
            sums = torch.stack([loss.detach().reshape(()), *(g.sum() for g in grads)])
            finite = self.all_ranks(bool(torch.isfinite(sums).all()))
        else:
            finite = math.isfinite(float(loss.detach()))
        if not finite:
            raise TrainingDiverged(f"the {group} loss became {float(loss.detach())}")
        self._clip_and_step(group)
        if t.world_size > 1 and t.wrapped is t.model:  # e.g. batch-norm statistics
            for buffer in t.model.buffers():
                dist.broadcast(buffer, 0)

    def all_ranks(self, ok: bool) -> bool:
        """Whether ``ok`` holds on every process (one all-reduce under DDP), so that a guard
        stops all ranks at the same step instead of leaving the others in a collective."""
        t = self._trainer
        if t.world_size == 1:
            return ok
        flag = torch.tensor([float(ok)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def _clip_and_step(self, group: str) -> None:
        opt = self._trainer.optimizers[group]
        clip = self._trainer.config.grad_clip
        if clip is not None:
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()


__all__ = ["SGDSettings", "StepContext"]
