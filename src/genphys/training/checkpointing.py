"""A trainer's state in its run directory: checkpoints written, the latest one restored.

A checkpoint (:func:`genphys.io.write_checkpoint`, atomic) holds the model's weights and the
state that makes a resumed run continue bit for bit: the epoch and step, each optimizer and
scheduler, and per process the random generators, the epoch's running metric sums and the
objective's state (e.g. persistent chains). Under DDP every rank's part is gathered to rank 0,
which alone writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genphys import io
from genphys.errors import GenphysError
from genphys.training.distributed import gather_states
from genphys.training.options import rescale_cosine
from genphys.training.reporting import MetricsLog

if TYPE_CHECKING:
    from genphys.training.trainer import Trainer


def _rank_state(t: Trainer) -> dict[str, Tensor]:
    state = {"trainer_rng": t.generator.get_state(), "torch_rng": torch.get_rng_state()}
    if t.device.type == "cuda":  # e.g. a VAE's reparameterisation noise
        state["cuda_rng"] = torch.cuda.get_rng_state(t.device)
    state.update({f"sums.{k}": v for k, v in t._sums.items()})
    state.update({f"objective.{k}": v for k, v in t.objective.state_dict().items()})
    return state


def save(t: Trainer) -> None:
    """Write a checkpoint of ``t`` at its current step (every rank takes part; rank 0 writes)."""
    ranks = gather_states(_rank_state(t), t.world_size, t.device)
    if not t.is_main or t.run_dir is None:
        return
    state = {
        "epoch": t.epoch,
        "batch_in_epoch": t.batch_in_epoch,
        "global_step": t.global_step,
        "world_size": t.world_size,
        "optimizers": {k: o.state_dict() for k, o in t.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in t.schedulers.items()},
        "ranks": ranks,
    }
    io.write_checkpoint(t.run_dir, t.global_step, t.model, state, keep=t.config.keep_checkpoints)


def restore(t: Trainer) -> None:
    """Load the latest checkpoint of ``t.run_dir`` into ``t`` (its history up to there too)."""
    if t.run_dir is None:
        raise GenphysError("resume needs a run directory")
    ckpts = io.checkpoint_dirs(t.run_dir)
    if not ckpts:
        raise GenphysError(f"{t.run_dir} has no checkpoint to resume from")
    ckpt = ckpts[-1]
    io.load_model_weights(t.model, ckpt / io.MODEL_FILE)
    state = io.read_checkpoint_state(ckpt)
    try:
        counts = {k: state[k] for k in ("epoch", "batch_in_epoch", "global_step")}
        bad = {k: v for k, v in counts.items() if type(v) is not int or v < 0}
        if bad:
            raise ValueError(f"{bad} are not counts")
        if state["world_size"] != t.world_size:
            raise GenphysError(
                f"{ckpt} was written by {state['world_size']} processes; "
                f"resume with the same number (now {t.world_size})"
            )
        for k, opt in t.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
            _check_optimizer_state(opt)
        for k, sched in t.schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        mine = state["ranks"][t.rank]
        t.generator.set_state(mine["trainer_rng"])
        torch.set_rng_state(mine["torch_rng"])
        if "cuda_rng" in mine:
            torch.cuda.set_rng_state(mine["cuda_rng"], t.device)
        t.objective.load_state_dict(_prefixed(mine, "objective."))
        t._sums = {k: v.to(t.device) for k, v in _prefixed(mine, "sums.").items()}
        t.epoch, t.batch_in_epoch, t.global_step = counts.values()
    except (KeyError, IndexError, ValueError, RuntimeError, TypeError) as exc:
        raise GenphysError(f"checkpoint {ckpt} does not match this run: {exc}") from None
    done = t.epoch + (t.batch_in_epoch > 0)  # a started epoch counts
    if done > t.config.epochs:  # config.json would claim fewer than were done
        started = " (and started the next)" if t.batch_in_epoch else ""
        raise GenphysError(
            f"{t.run_dir} has done {t.epoch} epochs{started}; resume with "
            f"--epochs >= {done} (now {t.config.epochs})"
        )
    for sched in t.schedulers.values():
        rescale_cosine(sched, t.config.epochs)
    t.history = MetricsLog.read(t.run_dir, t.epoch)  # up to the checkpoint
    t._log.rewrite(t.history)
    if t.is_main:  # the run goes on: its old final weights would be stale
        (t.run_dir / io.MODEL_FILE).unlink(missing_ok=True)
        if t.run_config is not None:  # e.g. more epochs; written once the state loaded
            io.atomic_write_json(t.run_dir / io.CONFIG_FILE, t.run_config)


def start_run_dir(t: Trainer) -> None:
    """Claim ``t.run_dir`` for a new run: refuse one holding a run, write config.json."""
    assert t.run_dir is not None
    if io.checkpoint_dirs(t.run_dir) or (t.run_dir / io.MODEL_FILE).exists():
        raise GenphysError(f"{t.run_dir} already holds a run; use --resume or a new --out")
    if not t.is_main:  # every process checked; one writes
        return
    t.run_dir.mkdir(parents=True, exist_ok=True)
    (t.run_dir / io.METRICS_FILE).unlink(missing_ok=True)
    if t.run_config is not None:
        io.atomic_write_json(t.run_dir / io.CONFIG_FILE, t.run_config)


def _check_optimizer_state(opt: torch.optim.Optimizer) -> None:
    """Every per-parameter state tensor that is not a scalar (momentum, Adam's moments) has
    its parameter's shape: torch's fused optimizers do not check (load_state_dict has already
    cast floating state to the parameter's dtype)."""
    for group in opt.param_groups:
        for p in group["params"]:
            for name, v in opt.state.get(p, {}).items():
                if isinstance(v, Tensor) and v.dim() > 0 and v.shape != p.shape:
                    raise ValueError(
                        f"optimizer state {name!r} has shape {tuple(v.shape)}, its parameter "
                        f"{tuple(p.shape)}"
                    )


def _prefixed(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
