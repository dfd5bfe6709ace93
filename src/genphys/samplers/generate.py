"""Draw samples from any trained model (the ``genphys sample`` command uses this)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genphys.models.rbm import as_rbm
from genphys.rng import derive_seed
from genphys.samplers.gibbs import GibbsSampler


@torch.no_grad()
def sample_model(
    model: nn.Module, n: int = 64, seed: int = 0, steps: int = 1000, mean: bool = True
) -> Tensor:
    """``n`` samples from ``model``.

    RBMs: ``n`` independent Gibbs chains from uniform random starts, ``steps`` sweeps each;
    with ``mean`` the last sweep returns E[v | h] (smoother images) instead of a sample.
    """
    rbm = as_rbm(model)
    sampler = GibbsSampler()
    state = sampler.init_state(rbm, n, derive_seed(seed, 5))
    v, state = sampler.sample(rbm, state, max(steps - 1, 0) if mean else steps)
    if mean:
        return rbm.mean_v(rbm.sample_h(v, state.generator))
    return v
