r"""Generative adversarial networks (Goodfellow et al. 2014).

A generator :math:`g(z)`, :math:`z \sim N(0, I)`, and a discriminator :math:`d(x) =
\sigma(D(x))` (``D`` gives logits) play the zero-sum game with value
:math:`v = E_{data}\log d(x) + E_{model}\log(1 - d(g(z)))`: d maximises it, g minimises it.
Losses (per batch, means over examples):

- ``minimax``: the game as written; g minimises :math:`E\log(1 - d(g(z)))`, whose gradient
  vanishes while d rejects every sample;
- ``non_saturating`` (default): g maximises :math:`E\log d(g(z))` instead (same fixed point,
  strong gradients early on);
- ``wgan_gp`` (Gulrajani et al. 2017): ``D`` is a critic; d minimises
  :math:`E D(g(z)) - E D(x) + \lambda E(\|\nabla D(\hat x)\|_2 - 1)^2` on random
  interpolates :math:`\hat x`, g minimises :math:`-E D(g(z))`.

One-sided label smoothing (Salimans et al. 2016) replaces the real target 1 by 1 - s.

With ``ema_decay`` the model also keeps ``generator_ema``, an exponential moving average of
the generator's weights (Yazici et al. 2019, "The unusual effectiveness of averaging in GAN
training"; StyleGAN's ``G_ema``), updated after every generator step with decay
:math:`\min(d, (1 + n)/(10 + n))` at its n-th update, so that early averages do not remember
the initialisation. Its batch-norm statistics are the live generator's. Training uses the live
generator; :meth:`GAN.sample` (and so sampling, evaluation and plots of a run) uses the average.

Networks: ``mlp`` (the course's PyTorch GAN: noise 20, one hidden layer of 100, output 784) and
``dcgan`` (the TensorFlow DCGAN tutorial: Dense 7*7*256 -> BN -> LeakyReLU -> ConvTranspose 128
(stride 1) -> 64 (stride 2) -> C (stride 2, tanh), 5x5 kernels, noise 100; discriminator Conv 64
and 128 (5x5, stride 2), LeakyReLU, dropout 0.3, Dense 1). Data are flattened, (N, C*H*W).
With ``periodic`` the DCGAN pads circularly, for images on a torus such as Ising spins: the
generator's transposed convolutions become upsampling and circular convolutions
(:func:`~genphys.models.nets.up_conv`).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.errors import GenphysError
from genphys.models.nets import check_batch, check_image_shape, conv, up_conv
from genphys.registry import register_model

#: the data range each generator output activation produces
OUTPUT_RANGE = {
    "tanh": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "identity": (-float("inf"), float("inf")),
}


@dataclasses.dataclass
class GANConfig(Config):
    """Architecture and loss of a GAN.

    Args:
        n_features: size of one flattened example (C*H*W).
        image_shape: (C, H, W); needed by ``architecture="dcgan"`` (H, W multiples of 4).
        architecture: "mlp" or "dcgan".
        noise_dim: size of z (None: 20 for mlp, 100 for dcgan, as the course).
        hidden: widths of the MLP generator's hidden layers (the discriminator mirrors them).
        output: generator output activation: "tanh" for data in [-1, 1] (scale symmetric),
            "sigmoid" for data in [0, 1], "identity" for unbounded vectors (the toy ring).
        dropout: discriminator dropout (None: the tutorial's 0.3; 0 for WGAN-GP, whose critic
            is deterministic (Gulrajani et al. 2017): with dropout, the penalized gradient
            would be that of another random critic than the one the loss sees).
        loss: "non_saturating", "minimax" or "wgan_gp".
        gp_weight: lambda of the WGAN-GP gradient penalty.
        label_smoothing: one-sided: real examples get target 1 - label_smoothing.
        pack: the discriminator judges packs of this many examples at once (PacGAN, Lin et al.
            2018), which penalises a generator that repeats itself: mode collapse; batches
            must be multiples of it.
        periodic: circular padding for data on a torus, e.g. Ising spins; dcgan only.
        ema_decay: keep a moving average of the generator's weights with this decay (e.g.
            0.999) and sample from it; None: sample from the generator as trained.
    """

    n_features: int = 784
    image_shape: tuple[int, ...] = ()
    architecture: Literal["mlp", "dcgan"] = "mlp"
    noise_dim: int | None = None
    hidden: tuple[int, ...] = (100,)
    output: Literal["tanh", "sigmoid", "identity"] = "tanh"
    dropout: float | None = None
    loss: Literal["non_saturating", "minimax", "wgan_gp"] = "non_saturating"
    gp_weight: float = 10.0
    label_smoothing: float = 0.0
    pack: int = 1
    periodic: bool = False
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.noise_dim is None:
            self.noise_dim = 100 if self.architecture == "dcgan" else 20
        if self.dropout is None:
            self.dropout = 0.0 if self.loss == "wgan_gp" else 0.3
        check(self.n_features >= 1, f"n_features must be >= 1, got {self.n_features}")
        check(self.noise_dim >= 1, f"noise_dim must be >= 1, got {self.noise_dim}")
        check(all(h >= 1 for h in self.hidden), "hidden widths must be >= 1")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.pack >= 1, f"pack must be >= 1, got {self.pack}")
        check(self.gp_weight >= 0, f"gp_weight must be >= 0, got {self.gp_weight}")
        check(
            0 <= self.label_smoothing < 0.5,
            f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}",
        )
        check(
            not (self.loss == "wgan_gp" and self.label_smoothing),
            "label smoothing applies to the probabilistic losses, not wgan_gp",
        )
        check(
            not (self.periodic and self.architecture != "dcgan"),
            f"periodic (circular padding) needs architecture 'dcgan', got '{self.architecture}'",
        )
        check(
            self.ema_decay is None or 0 < self.ema_decay < 1,
            f"ema_decay must be in (0, 1), got {self.ema_decay}",
        )


def _mlp_pair(cfg: GANConfig) -> tuple[nn.Module, nn.Module]:
    def stack(sizes: Sequence[int], dropout: float) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        return layers

    assert cfg.noise_dim is not None
    g_sizes = [cfg.noise_dim, *cfg.hidden]
    d_sizes = [cfg.n_features * cfg.pack, *reversed(cfg.hidden)]
    generator = nn.Sequential(*stack(g_sizes, 0.0), nn.Linear(g_sizes[-1], cfg.n_features))
    discriminator = nn.Sequential(*stack(d_sizes, cfg.dropout or 0.0), nn.Linear(d_sizes[-1], 1))
    return generator, discriminator


def _dcgan_pair(cfg: GANConfig) -> tuple[nn.Module, nn.Module]:
    c, h, w = check_image_shape(cfg.image_shape, cfg.n_features, "the DCGAN")
    h4, w4 = h // 4, w // 4
    assert cfg.noise_dim is not None
    periodic = cfg.periodic
    check(
        not periodic or min(h4, w4) >= 2,
        f"the periodic DCGAN pads 5x5 kernels circularly on its (H/4)x(W/4) start, which needs "
        f"H and W >= 8, got {h}x{w}",
    )

    def up(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [
            up_conv(cin, cout, 5, stride, periodic, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.3),  # Keras's LeakyReLU default slope
        ]

    generator = nn.Sequential(
        nn.Linear(cfg.noise_dim, 256 * h4 * w4, bias=False),
        nn.BatchNorm1d(256 * h4 * w4),
        nn.LeakyReLU(0.3),
        nn.Unflatten(1, (256, h4, w4)),
        *up(256, 128, 1),
        *up(128, 64, 2),
        up_conv(64, c, 5, 2, periodic, bias=False),
        nn.Flatten(),
    )
    discriminator = nn.Sequential(
        nn.Unflatten(1, (c * cfg.pack, h, w)),  # a pack's images stacked as channels
        conv(c * cfg.pack, 64, 5, 2, periodic),
        nn.LeakyReLU(0.3),
        nn.Dropout(cfg.dropout or 0.0),
        conv(64, 128, 5, 2, periodic),
        nn.LeakyReLU(0.3),
        nn.Dropout(cfg.dropout or 0.0),
        nn.Flatten(),
        nn.Linear(128 * h4 * w4, 1),
    )
    return generator, discriminator


@register_model("gan")
class GAN(nn.Module):
    """Generator and discriminator of a GAN, with the losses of both players.

    The :class:`~genphys.training.adversarial.Adversarial` objective trains it; the model holds
    only the math. ``forward(x)`` is the discriminator's logit ``D(x)``.
    """

    Config = GANConfig
    ema_updates: Tensor  # a buffer when the model keeps a generator average

    def __init__(self, config: GANConfig | None = None, **kwargs: object) -> None:
        super().__init__()
        self.config = GANConfig.given(config, kwargs)
        pair = _dcgan_pair if self.config.architecture == "dcgan" else _mlp_pair
        self.generator, self.discriminator = pair(self.config)
        self.generator_ema: nn.Module | None = None
        if self.config.ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))

    @property
    def noise_dim(self) -> int:
        assert self.config.noise_dim is not None
        return self.config.noise_dim

    @property
    def data_range(self) -> tuple[float, float]:
        """The interval the generator's samples (and so the data) live in."""
        return OUTPUT_RANGE[self.config.output]

    # ------------------------------------------------------------------ players
    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I), shape (n, noise_dim), on the model's device."""
        p = next(self.parameters())
        return torch.randn((n, self.noise_dim), generator=generator, device=p.device, dtype=p.dtype)

    def generate(self, z: Tensor, average: bool = False) -> Tensor:
        """g(z): flattened samples (N, n_features) in :attr:`data_range`; with ``average``, from
        the moving average of the generator when the model keeps one."""
        net = self.generator_ema if average and self.generator_ema is not None else self.generator
        out = net(z)
        if self.config.output == "tanh":
            return torch.tanh(out)
        return torch.sigmoid(out) if self.config.output == "sigmoid" else out

    def forward(self, x: Tensor) -> Tensor:
        """D(x): the discriminator's logit (critic value for WGAN-GP), shape (N,), or one per
        pack of ``pack`` consecutive examples, (N / pack,)."""
        pack = self.config.pack
        if pack > 1:
            if len(x) % pack:
                raise GenphysError(f"a batch of {len(x)} cannot be cut into packs of {pack}")
            x = x.reshape(len(x) // pack, -1)
        return self.discriminator(x).squeeze(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> Tensor:
        """``n`` samples g(z), from the generator's moving average when there is one (``mean``
        is accepted for a uniform interface; g is deterministic)."""
        return self.generate(self.noise(n, generator), average=True)

    @torch.no_grad()
    def update_average(self) -> None:
        """One step of the generator's moving average (after a generator update); its
        batch-norm statistics are copied from the generator."""
        if self.generator_ema is None or self.config.ema_decay is None:
            raise GenphysError("this GAN keeps no moving average (set ema_decay)")
        n = int(self.ema_updates)
        decay = min(self.config.ema_decay, (1 + n) / (10 + n))
        average, live = self.generator_ema, self.generator
        torch._foreach_lerp_(list(average.parameters()), list(live.parameters()), 1 - decay)
        for mine, theirs in zip(average.buffers(), live.buffers(), strict=True):
            mine.copy_(theirs)
        self.ema_updates.add_(1)

    # ------------------------------------------------------------------- losses
    def discriminator_loss(
        self, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The discriminator's (critic's) loss on a real and a generated batch.

        Returns ``loss`` and diagnostics: ``d_real``/``d_fake`` (mean d(x) = sigmoid(D(x)); for
        WGAN-GP the mean critic values), and for WGAN-GP ``wasserstein`` (E D(real) - E D(fake))
        and ``gradient_penalty``.
        """
        cfg = self.config
        if len(real) % cfg.pack or len(fake) % cfg.pack:  # a pack would mix real and fake
            raise GenphysError(
                f"batches of {len(real)} real and {len(fake)} generated examples cannot be cut "
                f"into packs of {cfg.pack}"
            )
        logits = self(torch.cat([real, fake]))
        n = len(real) // cfg.pack  # outputs for the real examples (one per pack)
        if cfg.loss == "wgan_gp":
            gap = logits[:n].mean() - logits[n:].mean()
            gp = self.gradient_penalty(real, fake, generator)
            return {
                "loss": -gap + cfg.gp_weight * gp,
                "d_real": logits[:n].mean(),
                "d_fake": logits[n:].mean(),
                "wasserstein": gap,
                "gradient_penalty": gp,
            }
        target = torch.cat([logits.new_full((n,), 1.0 - cfg.label_smoothing),
                            logits.new_zeros(len(logits) - n)])  # fmt: skip
        # mean over each half, as the two expectations of the value function
        per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        prob = torch.sigmoid(logits.detach())
        return {"loss": per[:n].mean() + per[n:].mean(), "d_real": prob[:n].mean(),
                "d_fake": prob[n:].mean()}  # fmt: skip

    def generator_loss(self, fake: Tensor) -> dict[str, Tensor]:
        """The generator's loss on a generated batch (gradients flow into g through ``fake``)."""
        logits = self(fake)
        if self.config.loss == "wgan_gp":
            loss = -logits.mean()
        elif self.config.loss == "minimax":  # minimise E log(1 - d) = -E softplus(D)
            loss = -F.softplus(logits).mean()
        else:  # maximise E log d = -E softplus(-D)
            loss = F.softplus(-logits).mean()
        return {"loss": loss}

    def gradient_penalty(
        self, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """E (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = eps real + (1 - eps) fake, eps ~ U(0, 1)."""
        shape = (len(real) // self.config.pack, 1, 1)  # one mixing weight per pack
        eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
        eps = eps.expand(-1, self.config.pack, 1).reshape(len(real), 1)
        x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self(x_hat).sum(), x_hat, create_graph=True)
        grad = grad.reshape(len(real) // self.config.pack, -1)  # the gradient of each pack
        return ((grad.norm(dim=1) - 1) ** 2).mean()

    # --------------------------------------------------------------------- data
    def check_data(self, x: Tensor, what: str = "data") -> None:
        """Raise :class:`GenphysError` unless ``x`` is a finite (N, n_features) batch inside the
        generator's output range (tanh: [-1, 1], sigmoid: [0, 1])."""
        cfg = self.config
        scale = "scale 'symmetric'" if cfg.output == "tanh" else "scale 'unit'"
        check_batch(
            x,
            cfg.n_features,
            what,
            cfg.image_shape,
            "this GAN",
            self.data_range,
            f", the range of the generator's {cfg.output} output; use {scale} or another output "
            "(tanh, sigmoid, identity)",
        )


__all__ = ["GAN", "OUTPUT_RANGE", "GANConfig"]
