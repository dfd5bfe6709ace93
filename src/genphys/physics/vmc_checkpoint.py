r"""Checkpoints of variational Monte Carlo runs, and Ctrl-C between iterations.

A run directory (:mod:`genphys.physics.vmc_run` for the trap, ``genphys vmc --system tfim``
for the spin chain) gets ``config.json`` before any work and :data:`CHECKPOINT_FILE` every few
iterations: the parameters, the optimizer's :class:`~genphys.physics.vmc.Progress` and the
chains, with a fingerprint of the settings they belong to. ``--resume`` continues from it
exactly; :func:`interrupt_flag` turns a Ctrl-C into a stop at the next iteration boundary.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.io import atomic_write_json, json_safe, load_metadata, load_tensors, save_tensors
from genphys.physics.vmc import Progress

CHECKPOINT_FILE = "checkpoint.safetensors"


@contextlib.contextmanager
def interrupt_flag() -> Iterator[Callable[[], bool]]:
    """Ctrl-C (SIGINT) sets a flag instead of interrupting: the yielded ``stop()`` reads it
    between iterations, so a run stops at a checkpoint. A second Ctrl-C interrupts at once.
    Outside the main thread (where handlers cannot be set) nothing changes."""
    flag = [False]

    def handler(signum: int, frame: Any) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True
        print("stopping after this iteration (Ctrl-C again to stop at once)", file=sys.stderr)

    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. a background job
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def write_config(out: Path, meta: dict[str, Any], resume: bool = False) -> None:
    """``out/config.json`` (``meta`` and the version), before any work: --resume reads it.
    A new run will not take a directory that holds a run's checkpoint or result (one that
    stopped before its first checkpoint, e.g. diverged, holds neither and is taken)."""
    from genphys import __version__

    if not resume and any((out / f).exists() for f in (CHECKPOINT_FILE, "result.json")):
        raise GenphysError(f"{out} already holds a run; use --resume or a new --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", meta | {"genphys_version": __version__})


def _fingerprint(settings: dict[str, Any]) -> str:
    """The settings a checkpoint belongs to, the iteration count aside (it may grow)."""

    def drop(d: Any) -> Any:
        return {k: drop(v) for k, v in d.items() if k != "iterations"} if isinstance(d, dict) else d

    return json.dumps(json_safe(drop(settings)), sort_keys=True)


def save_checkpoint(
    out: Path,
    theta: Tensor,
    progress: Progress,
    chains: dict[str, Tensor],
    settings: dict[str, Any],
) -> None:
    """One safetensors file, written atomically: parameters, progress, chains, and (in the
    metadata) the settings they belong to. Complex tensors are stored as (..., 2) reals."""
    tensors = {"theta": theta, **{f"progress.{k}": v for k, v in progress.to_tensors().items()}}
    tensors |= {f"chains.{k}": v for k, v in chains.items()}
    tensors = {
        (f"{k}.complex" if v.is_complex() else k): torch.view_as_real(v) if v.is_complex() else v
        for k, v in tensors.items()
    }
    meta = {"format": "genphys-vmc-checkpoint", "settings": _fingerprint(settings)}
    save_tensors(out / CHECKPOINT_FILE, tensors, meta)


def load_checkpoint(
    out: Path, n_parameters: int, settings: dict[str, Any], iterations: int
) -> tuple[Tensor, Progress, dict[str, Tensor]]:
    """(parameter vector, progress, chain tensors) of ``out``'s checkpoint, checked to belong
    to ``settings`` and to have done at most ``iterations``."""
    path = out / CHECKPOINT_FILE
    if not path.is_file():
        raise GenphysError(f"{out} has no checkpoint to resume from ({CHECKPOINT_FILE})")
    if load_metadata(path).get("settings") != _fingerprint(settings):
        raise GenphysError(f"the checkpoint {path} belongs to other settings than these")
    t = {
        k.removesuffix(".complex"): torch.view_as_complex(v.contiguous())
        if k.endswith(".complex") else v
        for k, v in load_tensors(path).items()
    }  # fmt: skip
    theta = t.get("theta")
    if theta is None or theta.shape != (n_parameters,):
        raise GenphysError(f"{path} does not hold the {n_parameters} parameters of this run")
    progress = Progress.from_tensors(
        {k.removeprefix("progress."): v for k, v in t.items() if k.startswith("progress.")}
    )
    if iterations < progress.done:
        raise GenphysError(f"{out} has done {progress.done} iterations; resume with >= that")
    chains = {k.removeprefix("chains."): v for k, v in t.items() if k.startswith("chains.")}
    return theta, progress, chains
