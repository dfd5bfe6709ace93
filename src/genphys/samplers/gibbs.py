"""Block Gibbs sampling for RBMs, with explicit state (after NetKet's sampler/state split).

``state = sampler.init_state(model, n_chains, seed)`` then
``v, state = sampler.sample(model, state, n_steps)`` (the state object is advanced in place
and returned, as chains are large; copy it with ``state_dict`` to keep a snapshot). It holds
the chains, the ``torch.Generator`` that drives them and counters; it round-trips through
``state_dict``/``from_state_dict`` so persistent chains survive checkpoints.

``state.hidden`` may hold p(h = 1 | v) of the chains, computed elsewhere (the CD objective gets
it for free from its gradient); the next sweep then starts by sampling h from it instead of
recomputing it, which saves one of the two matrix products of a sweep.

``sampler.sample_(model, state)`` does the same sweeps in place: ``state.v`` is overwritten and
the sampler keeps its scratch buffers (p(h|v), h, E[v|h]) from call to call, so persistent
chains advance without allocating (what PCD training does every step). Both give bit-identical
chains.
"""

from __future__ import annotations

import dataclasses
import operator

import numpy as np
import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.models.rbm import RBMBase, bernoulli
from genphys.rng import make_generator


@dataclasses.dataclass
class GibbsState:
    """Chains of visible configurations, the generator that advances them, and optionally
    the chains' hidden probabilities p(h = 1 | v) for the next sweep to start from."""

    v: Tensor
    generator: torch.Generator
    steps: int = 0
    hidden: Tensor | None = None

    def state_dict(self) -> dict[str, Tensor]:
        state = {
            "v": self.v.clone(),  # a snapshot: sample_ advances v in place
            "rng": self.generator.get_state(),
            "steps": torch.tensor(self.steps, dtype=torch.int64),
        }
        if self.hidden is not None:
            state["hidden"] = self.hidden.clone()
        return state

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, Tensor],
        device: torch.device | str = "cpu",
    ) -> GibbsState:
        try:
            generator = torch.Generator(device=device)
            generator.set_state(state["rng"].cpu())
            hidden = state["hidden"].to(device, copy=True) if "hidden" in state else None
            return cls(state["v"].to(device, copy=True), generator, int(state["steps"]), hidden)
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
        self._scratch: dict[str, Tensor] = {}  # sample_'s buffers, kept between calls

    def init_state(
        self, model: RBMBase, n_chains: int, seed: int = 0, v0: Tensor | None = None
    ) -> GibbsState:
        """Chains started at ``v0`` (copied) or at uniform random configurations."""
        device = model.weight.device
        dtype = model.weight.dtype
        generator = make_generator(seed, device)
        if v0 is not None:
            if v0.ndim != 2 or v0.shape[1] != model.n_visible:
                raise GenphysError(
                    f"starting chains must be (chains, {model.n_visible}), got {tuple(v0.shape)}"
                )
            v = v0.detach().to(device=device, dtype=dtype).clone()
        else:
            if not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
                raise GenphysError(f"the number of chains must be an integer >= 1, got {n_chains}")
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
        """Advance every chain by ``n_steps`` (default ``k``) sweeps; return (v, state).

        ``v`` is a new tensor (the previous ``state.v`` is left as it was); ``state.v`` is ``v``.
        """
        steps = self._steps(n_steps)
        if not steps:
            return state.v, state
        return self._sweeps(model, state, steps, torch.empty_like(state.v), {})

    @torch.no_grad()
    def sample_(
        self, model: RBMBase, state: GibbsState, n_steps: int | None = None
    ) -> tuple[Tensor, GibbsState]:
        """:meth:`sample` in place: ``state.v`` is overwritten with the new chains (and returned).

        After the first call with given shapes nothing is allocated: the sampler keeps its
        scratch buffers. The random draws, hence the chains, are those of :meth:`sample`.
        """
        steps = self._steps(n_steps)
        if not steps:
            return state.v, state
        return self._sweeps(model, state, steps, state.v, self._scratch)

    def _steps(self, n_steps: int | None) -> int:
        steps = self.k if n_steps is None else n_steps
        try:
            steps = operator.index(steps)  # ints, numpy ints
        except TypeError:
            steps = -1
        if steps < 0:
            raise GenphysError(f"the number of Gibbs sweeps must be an integer >= 0, got {n_steps}")
        return steps

    def _sweeps(
        self,
        model: RBMBase,
        state: GibbsState,
        steps: int,
        out: Tensor,
        buffers: dict[str, Tensor],
    ) -> tuple[Tensor, GibbsState]:
        """``steps`` sweeps v -> h -> v from ``state.v`` into ``out`` (which may be state.v)."""
        v, g = state.v, state.generator
        h, prob_h, mean_v = _sweep_buffers(buffers, v, model.n_hidden)
        for i in range(steps):
            if i == 0 and state.hidden is not None:  # first half-sweep already done elsewhere
                bernoulli(state.hidden, g, out=h)
            else:
                bernoulli(model.prob_h(v, out=prob_h), g, out=h)
            v = model.sample_v_given_mean(model.mean_v(h, out=mean_v), g, out=out)
        state.v, state.hidden = v, None
        state.steps += steps
        return v, state


def _sweep_buffers(store: dict[str, Tensor], v: Tensor, n_hidden: int) -> tuple[Tensor, ...]:
    """h, p(h|v) and E[v|h] buffers for chains like ``v``, kept in ``store`` between calls."""
    h = store.get("h")
    if (
        h is None
        or h.shape != (v.shape[0], n_hidden)
        or store["mean_v"].shape != v.shape
        or h.dtype != v.dtype
        or h.device != v.device
    ):
        hidden = (v.shape[0], n_hidden)
        for name, shape in (("h", hidden), ("prob_h", hidden), ("mean_v", v.shape)):
            store[name] = torch.empty(shape, dtype=v.dtype, device=v.device)
    return store["h"], store["prob_h"], store["mean_v"]
