"""The EBM step for the one Trainer: Langevin samples from a replay buffer, contrastive loss."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.errors import GenphysError, TrainingDiverged
from genphys.models.ebm import EBM
from genphys.registry import register_objective
from genphys.rng import derive_seed, make_generator
from genphys.samplers.buffer import ReplayBuffer
from genphys.samplers.langevin import LangevinSampler, LangevinState
from genphys.training.objectives import Objective

if TYPE_CHECKING:
    from genphys.training.step import StepContext


@dataclasses.dataclass
class EnergyCDConfig(Config):
    """Langevin negative phase of an EBM, with the UvA tutorial 8's defaults.

    Args:
        langevin_steps: Langevin steps per training step (60).
        step_size: gradient step h of Langevin (10).
        noise: noise scale sigma (0.005; decoupled from h as in Du & Mordatch).
        grad_clamp: elementwise clamp of grad E (0.03); None: off.
        buffer_size: replay-buffer capacity (8192).
        reinit_fraction: share of drawn chains restarted from uniform noise (0.05).
        data_noise: std of the small Gaussian noise added to real data (0.005).
        max_energy: stop (TrainingDiverged, last good checkpoint kept) when the mean |E| of
            real or generated data exceeds this: the energy scale diverged.
    """

    langevin_steps: int = 60
    step_size: float = 10.0
    noise: float = 0.005
    grad_clamp: float | None = 0.03
    buffer_size: int = 8192
    reinit_fraction: float = 0.05
    data_noise: float = 0.005
    max_energy: float = 1e3

    def __post_init__(self) -> None:
        check(self.langevin_steps >= 1, "langevin_steps must be >= 1")
        check(self.step_size > 0 and math.isfinite(self.step_size), "step_size must be > 0")
        check(self.noise >= 0, "noise must be >= 0")
        check(self.grad_clamp is None or self.grad_clamp > 0, "grad_clamp must be > 0")
        check(self.buffer_size >= 1, "buffer_size must be >= 1")
        check(0 <= self.reinit_fraction <= 1, "reinit_fraction must be in [0, 1]")
        check(self.data_noise >= 0, "data_noise must be >= 0")
        check(self.max_energy > 0, "max_energy must be > 0")


def as_ebm(model: nn.Module) -> EBM:
    if not isinstance(model, EBM):
        raise GenphysError(f"the energy objective needs an EBM, got {type(model).__name__}")
    return model


@register_objective("energy_cd")
class EnergyContrastiveDivergence(Objective):
    r"""Minimise :math:`E(x_{data}) - E(x_{model}) + \alpha(E(x_{data})^2 + E(x_{model})^2)`.

    Each step draws a batch of chains from the replay buffer (5% fresh noise), runs
    ``langevin_steps`` of Langevin dynamics on the current energy (parameters frozen, eval
    mode), writes the chains back and updates the energy. The buffer and the generator that
    drives it are checkpointed, so a resumed run continues exactly.
    """

    Config = EnergyCDConfig
    config: EnergyCDConfig
    # the loss is computed on the model itself (Langevin needs it unwrapped too), so under DDP
    # the trainer averages the gradients explicitly instead of through a wrapper's forward
    ddp_wrap = False

    def __init__(self, config: EnergyCDConfig | None = None) -> None:
        super().__init__(config)
        self.buffer: ReplayBuffer | None = None
        self.chains: LangevinState | None = None  # holds the generator of buffer and chains
        self.sampler: LangevinSampler | None = None  # made in setup (clamped to the data box)

    def setup(self, model: nn.Module, train: Tensor, seed: int, rank: int, batch_size: int) -> None:
        ebm = as_ebm(model)
        generator = make_generator(derive_seed(seed, 23, rank), train.device)
        low, high = ebm.config.data_range or (-1.0, 1.0)
        cfg = self.config
        self.sampler = LangevinSampler(
            cfg.step_size,
            cfg.noise,
            cfg.langevin_steps,
            grad_clamp=cfg.grad_clamp,
            clamp=ebm.config.data_range,
        )
        self.buffer = ReplayBuffer(cfg.buffer_size, cfg.reinit_fraction, low, high)
        self.buffer.init(train.shape[1:], generator, train.dtype)
        self.chains = LangevinState(train[:0].clone(), generator)

    def negative_samples(self, model: EBM, n: int) -> Tensor:
        """Draw ``n`` chains from the buffer, run Langevin, store them back; return them."""
        assert self.buffer is not None and self.chains is not None and self.sampler is not None
        x, idx = self.buffer.draw(min(n, self.buffer.capacity), self.chains.generator)
        self.chains.x = x
        frozen = [(p, p.requires_grad) for p in model.parameters()]
        was_training = model.training
        model.eval()
        for p, _ in frozen:
            p.requires_grad_(False)
        try:
            fake, self.chains = self.sampler.sample(model.energy, self.chains)
        finally:
            for p, flag in frozen:
                p.requires_grad_(flag)
            model.train(was_training)
        self.buffer.push(fake, idx)
        return fake

    def step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        model = as_ebm(ctx.model)
        fake = self.negative_samples(model, len(batch))
        real = batch
        if self.config.data_noise:
            noise = torch.randn(batch.shape, generator=ctx.generator, device=batch.device)
            real = batch + self.config.data_noise * noise
            if model.config.data_range is not None:
                real = real.clamp(*model.config.data_range)
        out = model.loss(real, fake)
        limit = self.config.max_energy
        ok = abs(float(out["e_real"])) < limit and abs(float(out["e_fake"])) < limit
        if not ctx.all_ranks(ok):
            raise TrainingDiverged(
                f"the energy scale diverged (mean E(real) = {float(out['e_real']):.3g}, "
                f"E(model) = {float(out['e_fake']):.3g}, limit {limit:g}); a larger alpha (the "
                "energy regularizer) keeps energies small"
            )
        ctx.update("model", out["loss"])
        return {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def validate(self, model: nn.Module, data: Any) -> dict[str, float]:
        """Mean energy of held-out data and of uniform noise in the data box (a real/noise gap
        that should open as training goes on)."""
        ebm = as_ebm(model)
        x = data[:2048]
        low, high = ebm.config.data_range or (-1.0, 1.0)
        g = torch.Generator(device=x.device).manual_seed(0)
        noise = torch.rand(x.shape, generator=g, device=x.device) * (high - low) + low
        return {"e_data": float(ebm.energy(x).mean()), "e_noise": float(ebm.energy(noise).mean())}

    def state_dict(self) -> dict[str, Tensor]:
        if self.buffer is None or self.chains is None:
            return {}
        state = {f"buffer.{k}": v for k, v in self.buffer.state_dict().items()}
        state["rng"] = self.chains.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            return
        assert self.chains is not None
        device = self.chains.x.device
        self.buffer = ReplayBuffer.from_state_dict(
            {k.removeprefix("buffer."): v for k, v in state.items() if k.startswith("buffer.")},
            device,
        )
        self.chains.generator.set_state(state["rng"])


__all__ = ["EnergyCDConfig", "EnergyContrastiveDivergence"]
