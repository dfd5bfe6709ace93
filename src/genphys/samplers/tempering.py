r"""Parallel tempering (replica exchange) for RBMs, with explicit state.

Replicas run block Gibbs at inverse temperatures :math:`0 \le \beta_1 < \dots < \beta_T = 1`
of :math:`p_\beta(v, h) \propto \exp(\phi(v) + \beta(c^\top h + \tilde v^\top W h))`: the visible
term stays, the couplings and hidden biases are tempered, so hot replicas are nearly
independent units that cross between modes freely (Desjardins et al. 2010). After every sweep,
neighbouring replicas swap configurations with the Metropolis probability
:math:`\min(1, \exp[(\log p^*_{\beta_i}(v_j) + \log p^*_{\beta_j}(v_i))
- (\log p^*_{\beta_i}(v_i) + \log p^*_{\beta_j}(v_j))])` on the marginals, even pairs and odd
pairs in turn. Samples are the :math:`\beta = 1` replicas.
"""

from __future__ import annotations

import dataclasses
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from genphys.errors import GenphysError
from genphys.models.rbm import RBMBase
from genphys.rng import make_generator


@dataclasses.dataclass
class TemperingState:
    """Replicas ``v`` of shape (temperatures, chains, n_visible), generator, swap statistics."""

    v: Tensor
    generator: torch.Generator
    steps: int = 0
    swaps_accepted: Tensor | None = None  # per neighbouring pair
    swaps_attempted: Tensor | None = None

    @property
    def swap_rate(self) -> Tensor:
        """Acceptance rate of swaps between temperature i and i + 1."""
        assert self.swaps_accepted is not None and self.swaps_attempted is not None
        return self.swaps_accepted / self.swaps_attempted.clamp(min=1)

    def state_dict(self) -> dict[str, Tensor]:
        assert self.swaps_accepted is not None and self.swaps_attempted is not None
        return {
            "v": self.v.clone(),
            "rng": self.generator.get_state(),
            "steps": torch.tensor(self.steps, dtype=torch.int64),
            "swaps_accepted": self.swaps_accepted.clone(),
            "swaps_attempted": self.swaps_attempted.clone(),
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Tensor], device: torch.device | str = "cpu"
    ) -> TemperingState:
        try:
            generator = torch.Generator(device=device)
            generator.set_state(state["rng"].cpu())
            return cls(
                state["v"].to(device, copy=True),
                generator,
                int(state["steps"]),
                state["swaps_accepted"].to(device, copy=True),
                state["swaps_attempted"].to(device, copy=True),
            )
        except (KeyError, RuntimeError) as exc:
            raise GenphysError(f"tempering state is corrupt or incomplete: {exc}") from None


class ParallelTemperingSampler:
    """Replica-exchange Gibbs sampler.

    Args:
        betas: inverse temperatures, or their number for an even grid on [0, 1]
            (the last is always 1).
        k: sweeps (each followed by a swap round) per call of :meth:`sample`.
    """

    def __init__(self, betas: int | list[float] | Tensor = 10, k: int = 1) -> None:
        if isinstance(betas, numbers.Integral):  # an int, or NumPy's
            grid = torch.linspace(0, 1, int(betas), dtype=torch.float64)
        else:  # in float64 from the start: 0.3 stays 0.3, close betas stay apart
            grid = torch.as_tensor(betas, dtype=torch.float64)
        if grid.ndim != 1 or len(grid) < 2:
            raise GenphysError("parallel tempering needs at least 2 temperatures")
        if not (grid[-1] == 1 and (grid[1:] > grid[:-1]).all() and grid[0] >= 0):
            raise GenphysError("betas must increase strictly from >= 0 to exactly 1")
        if k < 1:
            raise GenphysError(f"k must be >= 1, got {k}")
        self.betas = grid
        self.k = k

    def init_state(
        self, model: RBMBase, n_chains: int, seed: int = 0, v0: Tensor | None = None
    ) -> TemperingState:
        """Every temperature starts at ``v0`` (copied) or at uniform random configurations."""
        device, dtype = model.weight.device, model.weight.dtype
        generator = make_generator(seed, device)
        shape = (len(self.betas), n_chains, model.n_visible)
        if v0 is not None:
            v = v0.detach().to(device=device, dtype=dtype).expand(shape).clone()
        elif model.binary_visible:
            v = torch.rand(shape, generator=generator, device=device, dtype=dtype).lt_(0.5)
        else:
            v = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        pairs = torch.zeros(len(self.betas) - 1, dtype=torch.float64, device=device)
        return TemperingState(v, generator, 0, pairs.clone(), pairs.clone())

    def _log_prob(self, model: RBMBase, v: Tensor, beta: Tensor) -> Tensor:
        """log p*_beta(v) for v of shape (..., n_visible) and matching beta (...)."""
        flat = v.reshape(-1, v.shape[-1])
        pre = model.hidden_input(flat).reshape(*v.shape[:-1], -1)
        return model.visible_term(flat).reshape(v.shape[:-1]) + F.softplus(
            beta.unsqueeze(-1) * pre
        ).sum(-1)

    @torch.no_grad()
    def sample(
        self, model: RBMBase, state: TemperingState, n_steps: int | None = None
    ) -> tuple[Tensor, TemperingState]:
        """Advance all replicas ``n_steps`` (default ``k``) sweeps; return the beta = 1 chains."""
        n_temps, n_chains, nv = state.v.shape
        betas = self.betas.to(device=state.v.device, dtype=state.v.dtype)
        column = betas.repeat_interleave(n_chains).unsqueeze(-1)  # one beta per flat chain
        g = state.generator
        v = state.v
        assert state.swaps_accepted is not None and state.swaps_attempted is not None
        for _ in range(self.k if n_steps is None else n_steps):
            flat = v.reshape(-1, nv)
            h = model.sample_h(flat, g, beta=column)
            v = model.sample_v(h, g, beta=column, base_bias=model.visible_bias).reshape(v.shape)
            start = state.steps % 2  # even pairs, then odd pairs
            lo = torch.arange(start, n_temps - 1, 2, device=v.device)
            if len(lo):
                hi = lo + 1
                b_lo, b_hi = betas[lo].unsqueeze(-1), betas[hi].unsqueeze(-1)
                log_a = (
                    self._log_prob(model, v[hi], b_lo.expand(-1, n_chains))
                    + self._log_prob(model, v[lo], b_hi.expand(-1, n_chains))
                    - self._log_prob(model, v[lo], b_lo.expand(-1, n_chains))
                    - self._log_prob(model, v[hi], b_hi.expand(-1, n_chains))
                )
                u = torch.rand(log_a.shape, generator=g, device=v.device, dtype=v.dtype)
                accept = u.log() < log_a  # (pairs, chains)
                swap = accept.unsqueeze(-1)
                new_lo = torch.where(swap, v[hi], v[lo])
                new_hi = torch.where(swap, v[lo], v[hi])
                v = v.clone()
                v[lo], v[hi] = new_lo, new_hi
                state.swaps_accepted[lo] += accept.sum(-1).double()
                state.swaps_attempted[lo] += n_chains
            state.steps += 1
        state.v = v
        return v[-1], state
