"""Draw samples from any trained model (the ``genphys sample`` command uses this)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genphys.errors import GenphysError
from genphys.models.ebm import EBM
from genphys.models.nets import evaluating
from genphys.models.rbm import as_rbm
from genphys.rng import derive_seed, make_generator
from genphys.samplers.gibbs import GibbsSampler
from genphys.samplers.langevin import LangevinSampler

#: Langevin settings of EBM generation (the UvA tutorial 8's), overridden by ``langevin``
LANGEVIN_DEFAULTS = {"step_size": 10.0, "noise": 0.005, "grad_clamp": 0.03}
#: the tutorial's snapshots along a chain started from noise
SNAPSHOTS = (0, 1, 3, 5, 10, 30, 50, 100, 300, 999)


def langevin_sampler(model: EBM, langevin: dict[str, Any] | None = None) -> LangevinSampler:
    """The Langevin sampler of an EBM: step size, noise and gradient clamp from ``langevin``
    (keys of :data:`LANGEVIN_DEFAULTS`; an ``energy_cd`` objective config fits), clamped to the
    model's data range."""
    cfg = {
        **LANGEVIN_DEFAULTS,
        **{k: v for k, v in (langevin or {}).items() if k in LANGEVIN_DEFAULTS},
    }
    return LangevinSampler(
        cfg["step_size"], cfg["noise"], grad_clamp=cfg["grad_clamp"], clamp=model.config.data_range
    )


def ebm_generate(
    model: EBM,
    n: int,
    seed: int = 0,
    steps: int = 1000,
    langevin: dict[str, Any] | None = None,
    snapshots: Sequence[int] | None = None,
    x0: Tensor | None = None,
    known: Tensor | None = None,
) -> Tensor:
    """Langevin chains of an EBM from uniform noise in its data box (or from ``x0``).

    With ``snapshots`` (step counts, 0 the start) the result stacks the chains at those steps,
    shape (S, n, D). With a boolean ``known`` mask (n, D) the entries of ``x0`` where it is True
    are clamped after every step: inpainting (known pixels fixed) or denoising.
    """
    sampler = langevin_sampler(model, langevin)
    param = next(model.parameters())  # chains in the model's device and dtype
    device, dtype = param.device, param.dtype
    if x0 is None:
        shape = (n, model.config.n_features)
        state = sampler.init_state(shape, derive_seed(seed, 5), device=device, dtype=dtype)
    else:
        state = sampler.init_state(x0.to(device, dtype), derive_seed(seed, 5))
    with evaluating(model):  # Langevin enables the input gradients it needs
        if known is None:
            x, _ = sampler.sample(model.energy, state, None if snapshots else steps, snapshots)
            return x
        fixed, mask = state.x.clone(), known.to(device)
        frames = [fixed.clone()] if snapshots and 0 in snapshots else []
        for step in range(1, steps + 1):
            x, state = sampler.sample(model.energy, state, 1)
            state.x = torch.where(mask, fixed, x)
            if snapshots and step in snapshots:
                frames.append(state.x.clone())
        return torch.stack(frames) if snapshots else state.x


@torch.no_grad()
def sample_model(
    model: nn.Module,
    n: int = 64,
    seed: int = 0,
    steps: int = 1000,
    mean: bool = True,
    langevin: dict[str, Any] | None = None,
) -> Tensor:
    """``n`` samples from ``model``.

    RBMs: ``n`` independent Gibbs chains from uniform random starts, ``steps`` sweeps each;
    with ``mean`` the last sweep returns E[v | h] (smoother images) instead of a sample.
    VAEs: decoded prior samples, E[x | z] with ``mean`` (``steps`` is unused); GANs: g(z).
    EBMs: ``steps`` Langevin steps from uniform noise (settings ``langevin``, see
    :func:`langevin_sampler`).
    """
    if isinstance(model, EBM):
        return ebm_generate(model, n, seed, steps, langevin)
    if hasattr(model, "sample"):
        generator = make_generator(derive_seed(seed, 5), next(model.parameters()).device)
        with evaluating(model):
            return model.sample(n, generator, mean=mean)  # type: ignore[operator]
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
