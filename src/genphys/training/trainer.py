"""The one training loop for every model family.

Epochs, devices, DistributedDataParallel, progress bar, metrics, atomic checkpoints, exact
resume, a NaN/Inf guard and Ctrl-C handling live here once; a model family plugs in through
an :class:`~genphys.training.objectives.Objective`.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from genphys import io
from genphys.denormals import flush_denormals
from genphys.errors import GenphysError, TrainingDiverged
from genphys.rng import derive_seed, make_generator
from genphys.training import checkpointing
from genphys.training.distributed import (
    init_distributed,
    resolve_device,
    shutdown_distributed,
)
from genphys.training.objectives import Objective
from genphys.training.options import (
    TrainerConfig,
    make_optimizer,
    make_scheduler,
)
from genphys.training.reporting import MetricsLog, progress_bar
from genphys.training.step import StepContext

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]
Callback = Callable[["Trainer", dict[str, Any]], None]


class Trainer:
    """Fit ``model`` with ``objective`` on an in-memory tensor dataset.

    Args:
        model: the model (a ``torch.nn.Module``); moved to the configured device.
        objective: the family's training step.
        config: :class:`TrainerConfig`.
        run_dir: where checkpoints, metrics and the final weights go (None: nothing written).
        run_config: the whole run description saved as ``config.json`` (CLI fills it).
        callbacks: functions ``(trainer, metrics) -> None`` called after each epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        config: TrainerConfig | None = None,
        run_dir: str | Path | None = None,
        run_config: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
    ) -> None:
        self.config = config or TrainerConfig()
        self.objective = objective
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.run_config = run_config
        self.callbacks = list(callbacks or [])
        self.rank, self.world_size, self._owns_group = init_distributed(self.config.device)
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        self.wrapped: nn.Module = self.model
        self.generator = make_generator(derive_seed(self.config.seed, 1, self.rank), self.device)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the current epoch already done
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self._stop_requested = False
        #: why training stopped before its last epoch: "interrupted", "max_steps" or None
        self.stop_reason: str | None = None
        self._checkpoint_step = -1
        self._sums: dict[str, Tensor] = {}
        self._warned: set[str] = set()  # the kinds of warning printed last epoch
        self._log = MetricsLog(self.run_dir if self.is_main else None, self.config.tensorboard)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def request_stop(self) -> None:
        """Finish the current step, checkpoint and return (what Ctrl-C does)."""
        self._stop_requested = True
        self.stop_reason = "interrupted"

    # ---------------------------------------------------------------- set-up
    def _setup(self, train: Tensor, batch_transform: BatchTransform | None) -> None:
        cfg = self.config
        torch.manual_seed(derive_seed(cfg.seed, 2, self.rank))
        first = train[: cfg.batch_size].to(self.device)
        if batch_transform is not None:
            first = batch_transform(first, make_generator(0, self.device))
        check_data = getattr(self.model, "check_data", None)
        if check_data is not None:
            check_data(first if batch_transform is not None else train, "training data")
        if len(train) < cfg.batch_size * self.world_size:
            raise GenphysError(
                f"the training set has {len(train)} examples, fewer than one batch of "
                f"{cfg.batch_size} per process; lower --batch-size"
            )
        self._sanity_check(first)
        self.objective.setup(self.model, train.to(self.device), cfg.seed, self.rank, cfg.batch_size)
        if self.world_size > 1 and self.objective.ddp_wrap:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=ids)
        elif self.world_size > 1:  # what DDP's constructor does: every rank starts as rank 0
            with torch.no_grad():
                for tensor in self.model.state_dict().values():
                    dist.broadcast(tensor, 0)
        overrides = self.objective.optimizer_settings()
        for name, params in self.objective.param_groups(self.model).items():
            opt = make_optimizer(dataclasses.replace(cfg, **overrides.get(name, {})), params)
            self.optimizers[name] = opt
            self.schedulers[name] = make_scheduler(cfg, opt)

    def _sanity_check(self, batch: Tensor) -> None:
        """One forward pass on the first batch: configuration mistakes become one clear line."""
        try:
            with torch.no_grad():
                out = self.model(batch)
        except (RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GenphysError(f"the model cannot process the data: {first}") from None
        outputs = out.values() if isinstance(out, dict) else [out]
        if not all(bool(torch.isfinite(t).all()) for t in outputs if isinstance(t, Tensor)):
            raise GenphysError("the model gives non-finite outputs on the first batch")

    # --------------------------------------------------------------- training
    def fit(
        self,
        train: Tensor,
        val: Tensor | None = None,
        resume: bool = False,
        batch_transform: BatchTransform | None = None,
        labels: tuple[Tensor, Tensor | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (continuing a checkpoint with ``resume``).

        ``labels`` (train labels, validation labels) go to objectives that need them (a
        classifier): each step sees its batch's labels as ``ctx.labels``, and validation gets
        the pair ``(val, val_labels)``. Returns the per-epoch metrics. Stops early, after
        checkpointing, on Ctrl-C or when ``max_steps`` is reached; raises
        :class:`TrainingDiverged` on a non-finite loss.
        """
        completed = False
        try:
            history = self._fit(train, val, resume, batch_transform, labels)
            completed = True
            return history
        finally:
            if self._owns_group:  # the group this trainer created ends with its training
                self.wrapped = self.model  # DDP holds the group: it must go for gloo to stop
                # after an error (a bad checkpoint, a diverged step) other ranks may not reach
                # a barrier: then no wait
                shutdown_distributed(wait=completed)
                self._owns_group = False

    def _fit(
        self,
        train: Tensor,
        val: Tensor | None,
        resume: bool,
        batch_transform: BatchTransform | None,
        labels: tuple[Tensor, Tensor | None] | None,
    ) -> list[dict[str, Any]]:
        cfg = self.config
        if len(train) == 0:
            raise GenphysError("the training set is empty")
        if labels is not None and len(labels[0]) != len(train):
            raise GenphysError(f"{len(labels[0])} labels for {len(train)} training examples")
        check_labels = getattr(self.model, "check_labels", None)
        if labels is not None and check_labels is not None:  # before anything is written
            check_labels(labels[0], "training labels")
            if labels[1] is not None:
                check_labels(labels[1], "validation labels")
        # denormal Adam moments slow CPU steps by up to 60%; False keeps IEEE arithmetic
        flush_denormals(cfg.flush_denormal)
        self._setup(train, batch_transform)
        if resume:
            checkpointing.restore(self)
        elif self.run_dir is not None:
            checkpointing.start_run_dir(self)
        train = train.to(self.device)
        val = val.to(self.device) if val is not None and len(val) else None
        if val is not None and batch_transform is not None:  # one fixed draw, e.g. binarized
            val = batch_transform(val, make_generator(derive_seed(cfg.seed, 4), self.device))
        train_labels = labels[0].to(self.device) if labels is not None else None
        if labels is not None and val is not None and labels[1] is not None:
            self._val_labels: Tensor | None = labels[1].to(self.device)
        else:
            self._val_labels = None
        previous = signal.getsignal(signal.SIGINT)
        handler_installed = _install_sigint(self)
        try:
            at_limit = cfg.max_steps is not None and self.global_step >= cfg.max_steps
            if at_limit:  # a resumed run already at its step limit takes no step
                self.stop_reason = "max_steps"
            while self.epoch < cfg.epochs and not at_limit:
                if not self._run_epoch(train, batch_transform, train_labels):
                    break  # stopped mid-epoch, checkpoint written
                metrics = self._end_epoch(val)
                for callback in self.callbacks:
                    callback(self, metrics)
                if self._should_stop(sync=True):
                    if self._checkpoint_step != self.global_step:
                        self._checkpoint()
                    break
            if self.epoch >= cfg.epochs and self.is_main and self.run_dir is not None:
                io.save_model(self.run_dir / io.MODEL_FILE, self.model)
        finally:
            if handler_installed:
                signal.signal(signal.SIGINT, previous)
            self._log.close()
        return self.history

    def _batches(self, n: int) -> Tensor:
        """This process's example indices for the current epoch, one row per batch."""
        cfg = self.config
        g = make_generator(derive_seed(cfg.seed, 3, self.epoch))
        perm = torch.randperm(n, generator=g)
        per_rank = n // self.world_size
        mine = perm[self.rank * per_rank : (self.rank + 1) * per_rank]
        n_batches = per_rank // cfg.batch_size
        return mine[: n_batches * cfg.batch_size].view(n_batches, cfg.batch_size)

    def _run_epoch(
        self, train: Tensor, batch_transform: BatchTransform | None, labels: Tensor | None
    ) -> bool:
        batches = self._batches(len(train)).to(self.device)
        self.model.train()  # e.g. a model from io.load_run, which comes in eval mode
        ctx = StepContext(self)
        sums = self._sums  # (sum, count) of each step metric this epoch (restored on resume)
        bar = None
        if self.config.progress and self.is_main:
            desc = f"epoch {self.epoch + 1}/{self.config.epochs}"
            bar = progress_bar(len(batches), self.batch_in_epoch, desc)
        start = time.perf_counter()
        every = self.config.metrics_every
        try:
            for i in range(self.batch_in_epoch, len(batches)):
                batch = train.index_select(0, batches[i])
                if batch_transform is not None:
                    batch = batch_transform(batch, self.generator)
                ctx.measure = i % every == 0 or i == len(batches) - 1
                ctx.step = self.global_step
                if labels is not None:
                    ctx.labels = labels.index_select(0, batches[i])
                try:
                    losses = self.objective.step(ctx, batch)
                except TrainingDiverged as exc:
                    raise TrainingDiverged(self._diverged_message(str(exc))) from None
                for k, v in losses.items():
                    entry = torch.stack(
                        [v.detach().double().reshape(()), v.new_ones((), dtype=torch.float64)]
                    )
                    sums[k] = sums[k] + entry if k in sums else entry
                self.batch_in_epoch = i + 1
                self.global_step += 1
                if bar is not None:
                    bar.update(1)
                    if (i + 1) % 20 == 0:
                        bar.set_postfix({k: f"{float(v[0] / v[1]):.4g}" for k, v in sums.items()})
                if self._should_stop():
                    if self.batch_in_epoch < len(batches):
                        self._checkpoint()
                        return False
        finally:
            if bar is not None:
                bar.close()
        if self.world_size > 1 and sums:  # every rank's steps: (sum, count) over processes
            keys = sorted(sums)
            total = torch.stack([sums[k] for k in keys])
            dist.all_reduce(total)
            sums = dict(zip(keys, total, strict=True))
        self._epoch_train = {f"train/{k}": float(v[0] / v[1]) for k, v in sums.items()}
        self._sums = {}
        self._epoch_seconds = time.perf_counter() - start
        return True

    def _should_stop(self, sync: bool = False) -> bool:
        """Ctrl-C or max_steps. Under DDP the ranks agree (every 10 steps, and when ``sync``)."""
        max_steps = self.config.max_steps
        if max_steps is not None and self.global_step >= max_steps:
            self._stop_requested = True
            self.stop_reason = self.stop_reason or "max_steps"
        elif self.world_size > 1:
            if not sync and self.global_step % 10:
                return False
            flag = torch.tensor([float(self._stop_requested)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self._stop_requested = bool(flag.item())
            if self._stop_requested:
                self.stop_reason = self.stop_reason or "interrupted"
        return self._stop_requested

    def _end_epoch(self, val: Tensor | None) -> dict[str, Any]:
        self._check_parameters()  # before validation, which would fail on them less clearly
        self.epoch += 1
        self.batch_in_epoch = 0
        lrs = {f"lr/{k}": opt.param_groups[0]["lr"] for k, opt in self.optimizers.items()}
        for sched in self.schedulers.values():
            sched.step()
        metrics: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.global_step,
            "seconds": round(self._epoch_seconds, 4),
            **lrs,
            **self._epoch_train,
        }
        if val is not None and self.is_main:
            self.model.eval()
            data = val if self._val_labels is None else (val, self._val_labels)
            metrics.update(
                {f"val/{k}": v for k, v in self.objective.validate(self.model, data).items()}
            )
            self.model.train()
        warnings = self.objective.epoch_warnings(metrics)
        kinds = [re.sub(r"\d+(\.\d+)?", "#", line) for line in warnings]  # numbers aside
        if warnings:
            metrics["warnings"] = warnings  # every epoch's, in metrics.jsonl
            for line, kind in zip(warnings, kinds, strict=True) if self.is_main else []:
                if kind not in self._warned:  # news only
                    print(f"genphys: warning: epoch {self.epoch}: {line} (not repeated while "
                          "it lasts)", file=sys.stderr)  # fmt: skip
        self._warned = set(kinds)
        self.history.append(metrics)
        self._log.write(metrics)
        if self.epoch % self.config.checkpoint_every == 0 or self.epoch == self.config.epochs:
            self._checkpoint()
        return metrics

    def _check_parameters(self) -> None:
        """NaN guard before anything is written: every parameter must be finite."""
        bad = [k for k, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            what = f"parameters {bad} became non-finite"
            raise TrainingDiverged(self._diverged_message(what, f"by step {self.global_step}"))

    def _diverged_message(self, what: str, where: str | None = None) -> str:
        """``where`` defaults to the step in progress."""
        where = where or f"at epoch {self.epoch + 1}, step {self.global_step + 1}"
        ckpts = io.checkpoint_dirs(self.run_dir) if self.run_dir is not None else []
        kept = f"; last good checkpoint kept: {ckpts[-1]}" if ckpts else ""
        return f"training diverged {where}: {what}; try a smaller learning rate{kept}"

    # ------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> None:
        self._check_parameters()  # a checkpoint is always a good one
        self._checkpoint_step = self.global_step
        checkpointing.save(self)


# ---------------------------------------------------------------------- helpers
def _install_sigint(trainer: Trainer) -> bool:
    """First Ctrl-C: checkpoint after the current step; second: stop at once."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False

    def handler(signum: int, frame: Any) -> None:
        if trainer._stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()

    signal.signal(signal.SIGINT, handler)
    return True
