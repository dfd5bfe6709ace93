"""Seeding helpers: independent, reproducible streams derived from one user seed."""

from __future__ import annotations

import numpy as np
import torch

from genphys.errors import GenphysError


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for the stream named by ``keys`` (e.g. epoch, rank), via NumPy's SeedSequence.

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
    True
    """
    if int(seed) < 0:
        raise GenphysError(f"a seed must be an integer >= 0, got {seed}")
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))
