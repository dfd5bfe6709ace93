r"""Gaussian-Bernoulli RBM: continuous visible units with a fixed or learned std per unit.

Energy :math:`E(v, h) = \sum_i (v_i - b_i)^2 / 2\sigma_i^2 - c^\top h
- \sum_{ij} v_i W_{ij} h_j / \sigma_i^2`; the shared math (free energy, conditionals,
tempered forms) is :class:`~genphys.models.rbm.RBMBase`'s.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from genphys.config import check
from genphys.models.rbm import Beta, RBMBase, RBMConfig, rbm_config
from genphys.registry import register_model


@dataclasses.dataclass
class GaussianRBMConfig(RBMConfig):
    """A Gaussian-Bernoulli RBM: ``sigma`` is the initial (or fixed) visible standard deviation;
    a learned sigma is floored at ``min_sigma`` (a constant feature would drive it to 0)."""

    sigma: float = 1.0
    learn_sigma: bool = False
    min_sigma: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        check(
            self.min_sigma > 0 and (self.min_sigma <= self.sigma or not self.learn_sigma),
            f"min_sigma must be in (0, sigma = {self.sigma}], got {self.min_sigma}",
        )


@register_model("grbm")
class GaussianBernoulliRBM(RBMBase):
    """Gaussian-Bernoulli RBM for continuous data, with fixed or learned visible std ``sigma``.

    p(v | h) = N(b + W h, diag(sigma^2));
    p(h_j = 1 | v) = sigmoid(c_j + sum_i v_i W_ij / sigma_i^2).
    """

    Config = GaussianRBMConfig
    binary_visible = False

    def __init__(
        self,
        config: GaussianRBMConfig | int | None = None,
        n_hidden: int | None = None,
        **kwargs: object,
    ) -> None:
        made = rbm_config(GaussianRBMConfig, config, n_hidden, kwargs)
        assert isinstance(made, GaussianRBMConfig)  # checked by Config.given
        super().__init__(made)
        log_sigma = torch.full((made.n_visible,), math.log(made.sigma))
        if made.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    @property
    def sigma(self) -> Tensor:
        return self.visible_log_sigma().exp()

    def visible_log_sigma(self) -> Tensor:
        """log sigma per visible unit; learned, floored at ``min_sigma``."""
        cfg = self.config
        assert isinstance(cfg, GaussianRBMConfig)
        if not cfg.learn_sigma:
            return self.log_sigma
        return self.log_sigma.clamp(min=math.log(cfg.min_sigma))

    def scaled_visible(self, v: Tensor) -> Tensor:
        return v * torch.exp(-2 * self.visible_log_sigma())

    def visible_term(self, v: Tensor, bias: Tensor | None = None) -> Tensor:
        b = self.visible_bias if bias is None else bias
        return -0.5 * (((v - b) * torch.exp(-self.visible_log_sigma())) ** 2).sum(-1)

    def mean_v(
        self,
        h: Tensor,
        beta: Beta = 1.0,
        base_bias: Tensor | None = None,
        out: Tensor | None = None,
    ) -> Tensor:
        x = self._tempered_visible_input(h, beta, base_bias, out)
        return x if out is None or x is out else out.copy_(x)

    def sample_v_given_mean(
        self, mean: Tensor, generator: torch.Generator | None = None, out: Tensor | None = None
    ) -> Tensor:
        if out is None:
            out = torch.empty_like(mean)
        noise = torch.randn(mean.shape, generator=generator, out=out)
        return noise.mul_(self.sigma).add_(mean)  # mean + noise * sigma

    def base_log_partition(self, base_bias: Tensor) -> Tensor:
        log_norm = (self.visible_log_sigma() + 0.5 * math.log(2 * math.pi)).sum()
        return log_norm + self.n_hidden * math.log(2.0)

    def log_marginal_hidden(self, h: Tensor) -> Tensor:
        b = self.visible_bias
        m = h @ self.weight.t()
        inv_var = torch.exp(-2 * self.visible_log_sigma())
        quad = 0.5 * (((b + m) ** 2 - b**2) * inv_var).sum(-1)
        log_norm = (self.visible_log_sigma() + 0.5 * math.log(2 * math.pi)).sum()
        return h @ self.hidden_bias + quad + log_norm

    def init_visible_bias(self, data: Tensor) -> None:
        with torch.no_grad():
            self.visible_bias.copy_(data.float().mean(0))


__all__ = ["GaussianBernoulliRBM", "GaussianRBMConfig"]
