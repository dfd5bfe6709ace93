"""The GAN step for the one Trainer: alternate discriminator and generator updates."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.errors import GenphysError
from genphys.models.gan import GAN
from genphys.registry import register_objective
from genphys.training.objectives import Objective

if TYPE_CHECKING:
    from genphys.training.step import StepContext


@dataclasses.dataclass
class AdversarialConfig(Config):
    """How the two players take turns.

    Args:
        d_steps: discriminator updates per generator update (WGAN-GP's n_critic, e.g. 5):
            every training step updates the discriminator on its batch, and every
            ``d_steps``-th step also updates the generator.
        g_steps: generator updates on those steps (the first on the generated examples the
            discriminator just saw, the others on fresh noise).
        generator_lr, discriminator_lr: learning rates of the two optimizers (None: the
            trainer's ``lr``; the DCGAN tutorial uses Adam with 1e-4 for both).
        balance_tolerance: warn when mean d(real) and d(fake) both lie within this distance
            of 1/2 (the discriminator can no longer tell; training stops being meaningful);
            of (1 - s)/2 with label smoothing s, where the best discriminator then sits.
        win_margin: warn when d(real) > 1 - margin and d(fake) < margin (the discriminator
            wins completely; the generator's gradients vanish); 1 - s - margin with label
            smoothing s.
        warmup_epochs: no warnings before this many epochs (an untrained d sits at 1/2 too).
    """

    d_steps: int = 1
    g_steps: int = 1
    generator_lr: float | None = None
    discriminator_lr: float | None = None
    balance_tolerance: float = 0.02
    win_margin: float = 0.02
    warmup_epochs: int = 5

    def __post_init__(self) -> None:
        check(self.d_steps >= 1, f"d_steps must be >= 1, got {self.d_steps}")
        check(self.g_steps >= 1, f"g_steps must be >= 1, got {self.g_steps}")
        for name in ("generator_lr", "discriminator_lr"):
            lr = getattr(self, name)
            check(lr is None or (lr > 0 and math.isfinite(lr)), f"{name} must be > 0, got {lr}")
        check(0 < self.balance_tolerance < 0.5, "balance_tolerance must be in (0, 0.5)")
        check(0 < self.win_margin < 0.5, "win_margin must be in (0, 0.5)")
        check(self.warmup_epochs >= 0, "warmup_epochs must be >= 0")


def as_gan(model: nn.Module) -> GAN:
    if not isinstance(model, GAN):
        raise GenphysError(f"the adversarial objective needs a GAN, got {type(model).__name__}")
    return model


@register_objective("adversarial")
class Adversarial(Objective):
    r"""One step: a discriminator update on the batch against fresh generated samples, then
    (every ``d_steps`` steps) ``g_steps`` generator updates. The losses are the model's
    (:meth:`GAN.discriminator_loss`, :meth:`GAN.generator_loss`); each player has its own
    optimizer ("discriminator", "generator"), checkpointed with the run.

    Logged per step: ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (mean d(x) on the real
    and generated batch, before the update), and for WGAN-GP ``wasserstein`` and
    ``gradient_penalty``. A model with ``ema_decay`` updates its generator average after every
    generator update.
    """

    Config = AdversarialConfig
    config: AdversarialConfig
    ddp_wrap = False  # the step calls generator and discriminator separately

    def param_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        gan = as_gan(model)
        return {
            "discriminator": list(gan.discriminator.parameters()),
            "generator": list(gan.generator.parameters()),
        }

    def setup(self, model: nn.Module, train: Tensor, seed: int, rank: int, batch_size: int) -> None:
        self._smoothing = as_gan(model).config.label_smoothing  # where d's targets lie

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        cfg = self.config
        out: dict[str, dict[str, Any]] = {}
        if cfg.discriminator_lr is not None:
            out["discriminator"] = {"lr": cfg.discriminator_lr}
        if cfg.generator_lr is not None:
            out["generator"] = {"lr": cfg.generator_lr}
        return out

    def step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        gan = as_gan(ctx.model)
        n = len(batch)
        train_g = (ctx.step + 1) % self.config.d_steps == 0
        # one generator pass serves both players (the PyTorch DCGAN example's scheme): the
        # discriminator sees it detached, the generator's first update backpropagates through it
        with torch.set_grad_enabled(train_g):
            fake = gan.generate(gan.noise(n, ctx.generator))
        d = gan.discriminator_loss(batch, fake.detach(), ctx.generator)
        ctx.update("discriminator", d["loss"])
        metrics = {("d_loss" if k == "loss" else k): v.detach() for k, v in d.items()}
        if train_g:
            for i in range(self.config.g_steps):
                if i:
                    fake = gan.generate(gan.noise(n, ctx.generator))
                g = gan.generator_loss(fake)
                ctx.update("generator", g["loss"])
                if gan.generator_ema is not None:
                    gan.update_average()
            metrics["g_loss"] = g["loss"].detach()
        return metrics

    @torch.no_grad()
    def validate(self, model: nn.Module, data: Any) -> dict[str, float]:
        """Mean d(x) (critic value for WGAN-GP) on held-out data and on as many samples from
        fixed noise, in eval mode: up to 2,048 examples, a whole number of packs (none when
        the held-out set is smaller than one pack)."""
        gan = as_gan(model)
        pack = gan.config.pack
        x = data[: min(len(data), 2048) // pack * pack]
        if not len(x):
            return {}
        g = torch.Generator(device=x.device).manual_seed(0)
        fake = gan.generate(gan.noise(len(x), g))
        squash = (lambda t: t) if gan.config.loss == "wgan_gp" else torch.sigmoid
        return {"d_real": float(squash(gan(x)).mean()), "d_fake": float(squash(gan(fake)).mean())}

    def epoch_warnings(self, metrics: dict[str, Any]) -> list[str]:
        if "train/wasserstein" in metrics or "train/d_real" not in metrics:
            return []
        if metrics.get("epoch", 0) <= self.config.warmup_epochs:
            return []
        real, fake = metrics["train/d_real"], metrics["train/d_fake"]
        shown = f"mean d(real) = {real:.3f}, d(fake) = {fake:.3f}"
        tol, margin = self.config.balance_tolerance, self.config.win_margin
        top = 1.0 - getattr(self, "_smoothing", 0.0)  # the real examples' target
        if abs(real - top / 2) < tol and abs(fake - top / 2) < tol:
            return [
                f"{shown}: the discriminator outputs 1/2 (1/2 of its real target {top:.3g}) on "
                "both and can no longer tell real "
                "from generated: the game's equilibrium, or a discriminator too weak to teach "
                "the generator more (judge by the samples and their metrics)"
            ]
        if real > top - margin and fake < margin:
            return [
                f"{shown}: the discriminator wins completely and the generator's gradients "
                "vanish; try loss non_saturating or wgan_gp, label smoothing, or a lower "
                "discriminator_lr"
            ]
        return []


__all__ = ["Adversarial", "AdversarialConfig"]
