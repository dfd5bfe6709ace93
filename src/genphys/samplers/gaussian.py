r"""Gibbs sampling of a multivariate Gaussian from its one-dimensional conditionals.

For :math:`x \sim \mathcal N(\mu, \Sigma)` each coordinate given the others is Gaussian,

.. math::
    x_i \mid x_{-i} &\sim \mathcal N\big(\mu_i + \Sigma_{i,-i}\Sigma_{-i,-i}^{-1}
        (x_{-i} - \mu_{-i}),\; \Sigma_{ii} - \Sigma_{i,-i}\Sigma_{-i,-i}^{-1}\Sigma_{-i,i}\big) \\
    &= \mathcal N\Big(\mu_i - \frac{1}{Q_{ii}}\sum_{j\ne i} Q_{ij}(x_j - \mu_j),\;
        \frac{1}{Q_{ii}}\Big),

with the precision matrix :math:`Q = \Sigma^{-1}` (the second form needs one inverse for all
coordinates). A sweep updates :math:`x_1, \dots, x_D` in turn, each from its conditional given
the latest values of the others. The course's example is :math:`\Sigma = [[1, .5], [.5, 1]]`
started at (3, -3); there the chain of :math:`x_2` after each sweep is AR(1) with coefficient
:math:`\rho^2 = 1/4`, so it forgets its start quickly. Many chains run in parallel; the state
is explicit and checkpointable like the other samplers'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.rng import make_generator


@dataclasses.dataclass
class GaussianGibbsState:
    """Chains ``x`` of shape (N, D), the generator that drives them, the sweep count."""

    x: Tensor
    generator: torch.Generator
    steps: int = 0

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only: chains, generator state, sweep count."""
        return {
            "x": self.x.clone(),
            "rng": self.generator.get_state(),
            "steps": torch.tensor(self.steps, dtype=torch.int64),
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Tensor], device: torch.device | str = "cpu"
    ) -> GaussianGibbsState:
        """The state saved by :meth:`state_dict`, continuing exactly where it stopped."""
        try:
            generator = torch.Generator(device=device)
            generator.set_state(state["rng"].cpu())
            return cls(state["x"].to(device, copy=True), generator, int(state["steps"]))
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise GenphysError(f"Gibbs state is corrupt or incomplete: {exc}") from None


class GaussianGibbsSampler:
    r"""Coordinate-wise Gibbs sampler of :math:`\mathcal N(\mu, \Sigma)`.

    Args:
        mean: :math:`\mu`, shape (D,).
        cov: :math:`\Sigma`, shape (D, D), symmetric positive definite.
        dtype: the chains' dtype (float64 by default).
    """

    def __init__(
        self,
        mean: Tensor | Sequence[float],
        cov: Tensor | Sequence[Sequence[float]],
        dtype: torch.dtype = torch.float64,
    ) -> None:
        mu = torch.as_tensor(mean, dtype=torch.float64).detach().cpu()
        sigma = torch.as_tensor(cov, dtype=torch.float64).detach().cpu()
        d = mu.shape[0] if mu.ndim == 1 else -1
        if d < 1 or sigma.shape != (d, d):
            raise GenphysError(
                f"mean must be (D,) and cov (D, D), got {tuple(mu.shape)} and {tuple(sigma.shape)}"
            )
        if not bool(torch.isfinite(sigma).all() and torch.isfinite(mu).all()):
            raise GenphysError("mean and cov must be finite")
        if not torch.allclose(sigma, sigma.T, rtol=1e-10, atol=1e-12):
            raise GenphysError("cov must be symmetric")
        chol, info = torch.linalg.cholesky_ex(sigma)
        if int(info) != 0:
            raise GenphysError("cov must be positive definite")
        precision = torch.cholesky_inverse(chol)
        diag = precision.diagonal()
        self.dtype = dtype
        self.mean = mu.to(dtype)
        self.cov = sigma.to(dtype)
        # x_i = mu_i + sum_j coupling[i, j] (x_j - mu_j) + std_i z: coupling = -Q_ij / Q_ii, j != i
        coupling = -precision / diag[:, None]
        coupling.fill_diagonal_(0.0)
        self.coupling = coupling.to(dtype)
        self.std = diag.rsqrt().to(dtype)

    @property
    def dim(self) -> int:
        """D, the number of coordinates."""
        return int(self.mean.shape[0])

    def init_state(
        self,
        n_chains: int,
        seed: int = 0,
        x0: Tensor | Sequence[float] | None = None,
        device: torch.device | str = "cpu",
    ) -> GaussianGibbsState:
        """Chains started at ``x0`` ((D,) for all chains, or (N, D); copied), the mean without."""
        if n_chains < 1:
            raise GenphysError(f"n_chains must be >= 1, got {n_chains}")
        start = self.mean if x0 is None else torch.as_tensor(x0, dtype=self.dtype)
        if start.shape not in ((self.dim,), (n_chains, self.dim)):
            raise GenphysError(
                f"x0 must have shape ({self.dim},) or ({n_chains}, {self.dim}), "
                f"got {tuple(start.shape)}"
            )
        if not bool(torch.isfinite(start).all()):
            raise GenphysError("x0 contains NaN or Inf values")
        x = start.to(device=device, dtype=self.dtype).expand(n_chains, self.dim).clone()
        return GaussianGibbsState(x, make_generator(seed, device))

    @torch.no_grad()
    def sample(
        self, state: GaussianGibbsState, n_steps: int = 1, record: bool = False
    ) -> tuple[Tensor, GaussianGibbsState]:
        """Advance every chain by ``n_steps`` sweeps; return (x, state).

        ``x`` (N, D) is a new tensor, also stored as ``state.x``. With ``record=True`` it is
        instead the chains after every sweep, shape (n_steps, N, D), for autocorrelation
        analysis. Each sweep draws one (N, D) block of standard normals.
        """
        if n_steps < 0:
            raise GenphysError(f"n_steps must be >= 0, got {n_steps}")
        x = state.x
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise GenphysError(f"chains must have shape (N, {self.dim}), got {tuple(x.shape)}")
        mean, coupling, std = (t.to(x.device) for t in (self.mean, self.coupling, self.std))
        d = x - mean  # deviations, updated coordinate by coordinate
        kept = []
        for _ in range(n_steps):
            z = torch.randn(d.shape, generator=state.generator, dtype=d.dtype, device=d.device)
            for i in range(self.dim):
                d[:, i] = d @ coupling[i] + std[i] * z[:, i]
            if record:
                kept.append(d + mean)
        x = d + mean
        state.x = x
        state.steps += n_steps
        if record:
            return (torch.stack(kept) if kept else x.new_empty((0, *x.shape))), state
        return x, state
