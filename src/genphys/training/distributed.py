"""Process groups under ``torchrun``: rank, device, gradient averaging, state gathering."""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist
from torch import Tensor

from genphys.errors import GenphysError


def init_distributed(device: str) -> tuple[int, int, bool]:
    """(rank, world size, whether this call created the process group) under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    created = not dist.is_initialized()
    if created:
        # Imported after the group exists, torch._dynamo (DDP imports it) keeps the group
        # alive past destroy_process_group, and gloo's threads with it.
        import torch._dynamo

        use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), created


def shutdown_distributed(wait: bool = True) -> None:
    """Wait for every process (``wait``), destroy the group and join gloo's worker threads.

    The caller must first drop what else holds the group (a DistributedDataParallel wrapper).
    A gloo thread still alive when Python finalizes can release a finished collective's
    tensors then, and the process aborts with 'terminate called without an active exception'.
    After an error only this process may be here: ``wait=False`` skips the barriers (which
    would hang until the others time out).
    """
    if wait:
        dist.barrier()
        dist.barrier()  # every rank has left the first barrier: no message of it is in flight
    dist.destroy_process_group()
    gc.collect()  # the last reference to the group may sit in a cycle (an nn.Module's hooks)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GenphysError(f"unknown device {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GenphysError("device 'cuda' requested but no GPU is available")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def average_over_processes(tensors: dict[str, Tensor], world_size: int) -> dict[str, Tensor]:
    """Mean of each tensor over all processes, in one all-reduce of a flat buffer."""
    if world_size == 1:
        return tensors
    names = sorted(tensors)
    flat = torch.cat([tensors[k].reshape(-1) for k in names])
    dist.all_reduce(flat)
    flat /= world_size
    chunks = flat.split([tensors[k].numel() for k in names])
    return {k: c.view_as(tensors[k]) for k, c in zip(names, chunks, strict=True)}


def gather_states(
    state: dict[str, Tensor], world_size: int, device: torch.device
) -> list[dict[str, Tensor]]:
    """Every process's flat state dict (same keys and shapes on all ranks), on the CPU."""
    if world_size == 1:
        return [state]
    out: list[dict[str, Tensor]] = [{} for _ in range(world_size)]
    for key in sorted(state):
        t = state[key].to(device)
        parts = [torch.empty_like(t) for _ in range(world_size)]
        dist.all_gather(parts, t)
        for r, part in enumerate(parts):
            out[r][key] = part.cpu()
    return out
