"""Block Gibbs sampling for RBMs, with explicit state (after NetKet's sampler/state split).

``state = sampler.init_state(model, n_chains, seed)`` then
``v, state = sampler.sample(model, state, n_steps)``. The state holds the chains, the
``torch.Generator`` that drives them and counters; it round-trips through
``state_dict``/``from_state_dict`` so persistent chains survive checkpoints.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.models.rbm import RBMBase
from genphys.rng import make_generator


@dataclasses.dataclass
class GibbsState:
    """Chains of visible configurations plus the generator that advances them."""

    v: Tensor
    generator: torch.Generator
    steps: int = 0

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "v": self.v,
            "rng": self.generator.get_state(),
            "steps": torch.tensor(self.steps, dtype=torch.int64),
        }

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, Tensor],
        device: torch.device | str = "cpu",
    ) -> GibbsState:
        try:
            generator = torch.Generator(device=device)
            generator.set_state(state["rng"].cpu())
            return cls(state["v"].to(device), generator, int(state["steps"]))
        except (KeyError, RuntimeError) as exc:
            raise GenphysError(f"sampler state is corrupt or incomplete: {exc}") from None


class GibbsSampler:
    """Block Gibbs sampler v -> h -> v for any RBM in :mod:`genphys.models.rbm`.

    Args:
        k: Gibbs sweeps per call of :meth:`sample` when ``n_steps`` is not given.
    """

    def __init__(self, k: int = 1) -> None:
        if k < 1:
            raise GenphysError(f"the number of Gibbs steps k must be >= 1, got {k}")
        self.k = k

    def init_state(
        self, model: RBMBase, n_chains: int, seed: int = 0, v0: Tensor | None = None
    ) -> GibbsState:
        """Chains started at ``v0`` (copied) or at uniform random configurations."""
        device = model.weight.device
        dtype = model.weight.dtype
        generator = make_generator(seed, device)
        if v0 is not None:
            v = v0.detach().to(device=device, dtype=dtype).clone()
        else:
            shape = (n_chains, model.n_visible)
            if model.binary_visible:
                v = torch.rand(shape, generator=generator, device=device, dtype=dtype).lt_(0.5)
            else:
                v = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return GibbsState(v, generator)

    @torch.no_grad()
    def sample(
        self, model: RBMBase, state: GibbsState, n_steps: int | None = None
    ) -> tuple[Tensor, GibbsState]:
        """Advance every chain by ``n_steps`` (default ``k``) sweeps; return (v, state)."""
        v = state.v
        steps = self.k if n_steps is None else n_steps
        for _ in range(steps):
            v = model.gibbs_step(v, state.generator)
        state.v = v
        state.steps += steps
        return v, state
