"""Draw samples from any trained model (the ``genphys sample`` command uses this)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genphys.errors import GenphysError
from genphys.models.rbm import as_rbm
from genphys.rng import derive_seed, make_generator
from genphys.samplers.gibbs import GibbsSampler


@torch.no_grad()
def sample_model(
    model: nn.Module, n: int = 64, seed: int = 0, steps: int = 1000, mean: bool = True
) -> Tensor:
    """``n`` samples from ``model``.

    RBMs: ``n`` independent Gibbs chains from uniform random starts, ``steps`` sweeps each;
    with ``mean`` the last sweep returns E[v | h] (smoother images) instead of a sample.
    VAEs: decoded prior samples, E[x | z] with ``mean`` (``steps`` is unused).
    """
    if hasattr(model, "sample"):
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        generator = make_generator(derive_seed(seed, 5), device)
        out = model.sample(n, generator, mean=mean)  # type: ignore[operator]
        model.train(was_training)
        return out
    if hasattr(model, "encode"):
        raise GenphysError(
            "an autoencoder has no prior to sample from; look at its "
            "reconstructions instead (genphys plot RUN_DIR --kind reconstructions)"
        )
    rbm = as_rbm(model)
    sampler = GibbsSampler()
    state = sampler.init_state(rbm, n, derive_seed(seed, 5))
    v, state = sampler.sample(rbm, state, max(steps - 1, 0) if mean else steps)
    if mean:
        return rbm.mean_v(rbm.sample_h(v, state.generator))
    return v
