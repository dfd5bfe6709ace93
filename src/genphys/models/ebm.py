r"""Deep energy-based models :math:`p(x) = e^{-E(x)}/Z` (Du & Mordatch 2019).

Training (the :class:`~genphys.training.energy.EnergyContrastive` objective) follows the UvA
deep-learning tutorial 8: samples from the model come from Langevin dynamics started in a
replay buffer, and the loss is the contrastive divergence
:math:`E(x_{data}) - E(x_{model})` plus :math:`\alpha\,(E(x_{data})^2 + E(x_{model})^2)`, which
keeps the energy scale from drifting (alpha = 0.1).

Networks: ``cnn`` (the tutorial's: convolutions of 16, 32, 64 and 64 channels, kernel 5 then 3,
stride 2, Swish activations, a dense layer of 64 and the output) for images, ``mlp`` (Swish)
for vectors. Data are flattened, (N, n_features), scaled to [-1, 1] for images.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Literal

import torch
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.models.nets import check_batch
from genphys.registry import register_model


@dataclasses.dataclass
class EBMConfig(Config):
    """Architecture and loss of an energy-based model.

    Args:
        n_features: size of one flattened example (C*H*W).
        image_shape: (C, H, W); needed by ``architecture="cnn"``.
        architecture: "cnn" (images) or "mlp" (vectors).
        hidden: the CNN's base width (the tutorial's 32: channels 16, 32, 64, 64) or the MLP's
            widths.
        alpha: weight of the energy-magnitude regularizer.
        data_range: the box samples live in (Langevin clamps to it, the buffer draws from it);
            None for unbounded vector data.
    """

    n_features: int = 784
    image_shape: tuple[int, ...] = ()
    architecture: Literal["cnn", "mlp"] = "cnn"
    hidden: tuple[int, ...] = (32,)
    alpha: float = 0.1
    data_range: tuple[float, float] | None = (-1.0, 1.0)

    def __post_init__(self) -> None:
        check(self.n_features >= 1, f"n_features must be >= 1, got {self.n_features}")
        check(len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden widths must be >= 1")
        check(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        if self.data_range is not None:
            lo, hi = self.data_range
            check(lo < hi, f"data_range must be (low, high) with low < high, got {self.data_range}")
        if self.architecture == "cnn":
            check(
                len(self.image_shape) == 3 and math.prod(self.image_shape) == self.n_features,
                f"the CNN energy needs images (C, H, W) with C*H*W = {self.n_features}, "
                f"got {tuple(self.image_shape)}",
            )


def _cnn(cfg: EBMConfig) -> nn.Sequential:
    c, h, w = cfg.image_shape
    base = cfg.hidden[0]
    c1, c2, c3 = base // 2 or 1, base, base * 2
    net = nn.Sequential(
        nn.Unflatten(1, (c, h, w)),
        nn.Conv2d(c, c1, 5, stride=2, padding=4),
        nn.SiLU(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(c2, c3, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(c3, c3, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = net(torch.zeros(1, cfg.n_features)).shape[1]
    return nn.Sequential(*net, nn.Linear(flat, c3), nn.SiLU(), nn.Linear(c3, 1))


def _mlp(cfg: EBMConfig) -> nn.Sequential:
    sizes = [cfg.n_features, *cfg.hidden]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


@register_model("ebm")
class EBM(nn.Module):
    """An energy network :math:`E_\\theta(x)`; ``forward(x)`` returns the energies, shape (N,).

    The network outputs :math:`-E` (the tutorial's score); low energy means likely data.
    """

    Config = EBMConfig

    def __init__(self, config: EBMConfig | None = None, **kwargs: object) -> None:
        super().__init__()
        self.config = EBMConfig.given(config, kwargs)
        self.net = _cnn(self.config) if self.config.architecture == "cnn" else _mlp(self.config)

    def energy(self, x: Tensor) -> Tensor:
        """:math:`E(x)` per example, shape (N,)."""
        return -self.net(x).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.energy(x)

    def loss(self, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """Contrastive divergence and energy regularizer on a data and a model batch.

        Returns ``loss`` = cd + alpha * reg, ``cd`` = mean E(real) - mean E(fake),
        ``reg`` = mean E(real)^2 + mean E(fake)^2, and the mean energies ``e_real``, ``e_fake``.
        """
        energies = self.energy(torch.cat([real, fake]))
        e_real, e_fake = energies[: len(real)], energies[len(real) :]
        cd = e_real.mean() - e_fake.mean()
        reg = (e_real**2).mean() + (e_fake**2).mean()
        return {
            "loss": cd + self.config.alpha * reg,
            "cd": cd.detach(),
            "reg": reg.detach(),
            "e_real": e_real.detach().mean(),
            "e_fake": e_fake.detach().mean(),
        }

    def check_data(self, x: Tensor, what: str = "data") -> None:
        """GenphysError unless ``x`` is a finite (N, n_features) batch inside ``data_range``."""
        cfg = self.config
        check_batch(
            x,
            cfg.n_features,
            what,
            cfg.image_shape,
            "this EBM",
            cfg.data_range,
            "; images for an EBM are scaled to [-1, 1] (scale 'symmetric'); for other data "
            "set data_range (None: unbounded)",
        )


__all__ = ["EBM", "EBMConfig"]
