r"""Langevin dynamics (ULA) and its Metropolis-adjusted version (MALA), with explicit state.

For a target :math:`p(x) \propto e^{-E(x)}` one step is

.. math:: x' = x - h\,\nabla_x E(x) + \sigma\,w, \qquad w \sim \mathcal N(0, I),

with step size :math:`h` (``step_size``) and noise scale :math:`\sigma` (``noise_scale``).
**Convention.** ``noise_scale=None`` means :math:`\sigma = \sqrt{2h}`: the Euler-Maruyama step
of the diffusion :math:`dX = -\nabla E\,dt + \sqrt2\,dW`, whose stationary law is exactly
:math:`e^{-E}`; the unadjusted chain (ULA) is then biased by :math:`O(h)` and exact as
:math:`h \to 0`. A free :math:`\sigma` targets, for small :math:`h`, the tempered law
:math:`e^{-E/T}` with :math:`T = \sigma^2/(2h)`:

* the course's :math:`x' = x + \eta\nabla\log p + \sqrt\eta\,w` is ``step_size=eta,
  noise_scale=sqrt(eta)`` (:math:`T = 1/2`, i.e. it samples :math:`p^2`; use ``noise_scale=None``
  with ``step_size=eta/2`` for :math:`p` itself);
* Du & Mordatch (2019) and the UvA tutorial 8 use :math:`h = 10`, :math:`\sigma = 0.005`
  (:math:`T \approx 10^{-6}`: a noisy descent of the energy, not a sampler of :math:`e^{-E}`),
  with the gradient clamped elementwise to :math:`[-0.03, 0.03]` (``grad_clamp``) and the samples
  to the data box :math:`(-1, 1)` (``clamp``); the update is applied in that order: gradient
  step, noise, clamp of :math:`x`.

**MALA** (``metropolis=True``) accepts the proposal :math:`x'` with probability
:math:`\min\{1, e^{-E(x') + E(x)}\,q(x \mid x')/q(x' \mid x)\}`, with the exact Gaussian proposal
density :math:`q(y \mid x) = \mathcal N(y;\, x - h\nabla E(x),\, \sigma^2 I)` for whatever
:math:`\sigma` is used, so the chain leaves :math:`e^{-E}` itself invariant (:math:`T = 1`)
for every :math:`h`; the default :math:`\sigma = \sqrt{2h}` is the one with good acceptance.
Chains accept or reject independently. Clamping breaks that exactness and is refused.

``energy`` is any callable (an ``nn.Module`` or a function) mapping a batch of shape (N, ...) to
energies of shape (N,). Gradients are taken with ``torch.autograd.grad`` with respect to
:math:`x` only: nothing is accumulated in the parameters' ``.grad``, and the chains and
energies are detached between steps, so no graph grows across steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.rng import make_generator

Energy = Callable[[Tensor], Tensor]


@dataclasses.dataclass
class LangevinState:
    """Chains ``x`` of shape (N, ...), the generator that drives them, counters.

    ``accepted`` and ``proposals`` count MALA proposals over all chains (0 for ULA).
    """

    x: Tensor
    generator: torch.Generator
    steps: int = 0
    accepted: int = 0
    proposals: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Fraction of MALA proposals accepted so far (NaN before any)."""
        return self.accepted / self.proposals if self.proposals else math.nan

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only (chains, generator state, counters): safe to save with safetensors."""
        return {
            "x": self.x.clone(),
            "rng": self.generator.get_state(),
            "steps": torch.tensor(self.steps, dtype=torch.int64),
            "accepted": torch.tensor(self.accepted, dtype=torch.int64),
            "proposals": torch.tensor(self.proposals, dtype=torch.int64),
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Tensor], device: torch.device | str = "cpu"
    ) -> LangevinState:
        """The state saved by :meth:`state_dict`, continuing exactly where it stopped."""
        try:
            generator = torch.Generator(device=device)
            generator.set_state(state["rng"].cpu())
            counters = (int(state[k]) for k in ("steps", "accepted", "proposals"))
            return cls(state["x"].to(device, copy=True), generator, *counters)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise GenphysError(f"Langevin state is corrupt or incomplete: {exc}") from None


def energy_and_grad(
    energy: Energy, x: Tensor, allow_infinite: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Detached :math:`E(x)` of shape (N,) and :math:`\nabla_x E(x)`, checked to be finite.

    Only :math:`x` is differentiated (``torch.autograd.grad(..., inputs=x)``): the parameters of
    an ``nn.Module`` energy keep their ``.grad`` untouched. ``allow_infinite`` lets
    :math:`E = +\infty` through (a MALA proposal outside a target's support, then rejected).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        e = energy(xg)
        if not isinstance(e, Tensor) or e.shape != (x.shape[0],):
            shape = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise GenphysError(
                f"energy must map a batch of shape {tuple(x.shape)} to a vector of shape "
                f"({x.shape[0]},), got {shape}"
            )
        if not e.requires_grad:
            raise GenphysError("energy does not depend differentiably on its input x")
        (grad,) = torch.autograd.grad(e.sum(), inputs=xg, allow_unused=True)
    if grad is None:
        raise GenphysError("energy does not depend differentiably on its input x")
    e = e.detach()
    ok = torch.isfinite(e) | (allow_infinite & (e == math.inf))
    if not bool(ok.all()):
        raise GenphysError(
            "energy is NaN or Inf on the chains: they diverged (reduce step_size or clamp)"
        )
    return e, grad


class LangevinSampler:
    r"""Unadjusted (ULA) or Metropolis-adjusted (MALA) Langevin sampler of :math:`e^{-E}`.

    Args:
        step_size: :math:`h > 0`, the gradient step.
        noise_scale: :math:`\sigma \ge 0`; None for :math:`\sqrt{2h}` (see the module docstring).
        n_steps: steps per call of :meth:`sample` when it is not told.
        metropolis: MALA (exact for any :math:`h`) instead of ULA.
        grad_clamp: clamp :math:`\nabla E` elementwise to :math:`[-c, c]` (ULA only).
        clamp: (low, high) box the chains are clamped to after every step (ULA only).
    """

    def __init__(
        self,
        step_size: float,
        noise_scale: float | None = None,
        n_steps: int = 60,
        metropolis: bool = False,
        grad_clamp: float | None = None,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        if not (math.isfinite(step_size) and step_size > 0):
            raise GenphysError(f"step_size must be a finite number > 0, got {step_size}")
        sigma = math.sqrt(2.0 * step_size) if noise_scale is None else float(noise_scale)
        if not (math.isfinite(sigma) and sigma >= 0):
            raise GenphysError(f"noise_scale must be a finite number >= 0, got {noise_scale}")
        if n_steps < 1:
            raise GenphysError(f"n_steps must be >= 1, got {n_steps}")
        if grad_clamp is not None and not grad_clamp > 0:
            raise GenphysError(f"grad_clamp must be > 0, got {grad_clamp}")
        if clamp is not None and not (len(clamp) == 2 and clamp[0] < clamp[1]):
            raise GenphysError(f"clamp must be (low, high) with low < high, got {clamp}")
        if metropolis and (grad_clamp is not None or clamp is not None):
            raise GenphysError(
                "metropolis=True is exact only without grad_clamp and clamp: drop them or use ULA"
            )
        if metropolis and sigma == 0:
            raise GenphysError("metropolis=True needs noise_scale > 0")
        self.step_size = float(step_size)
        self.noise_scale = sigma
        self.n_steps = n_steps
        self.metropolis = metropolis
        self.grad_clamp = grad_clamp
        self.clamp = clamp

    def init_state(
        self,
        x0: Tensor | Sequence[int],
        seed: int = 0,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> LangevinState:
        """Chains started at ``x0`` (copied; its dtype and device win) or, given a shape
        (N, ...), uniform in the ``clamp`` box, (-1, 1) without one."""
        if isinstance(x0, Tensor):
            if x0.ndim < 1 or x0.shape[0] < 1 or not x0.is_floating_point():
                raise GenphysError(f"x0 must be a float batch (N, ...), got {tuple(x0.shape)}")
            if not bool(torch.isfinite(x0).all()):
                raise GenphysError("x0 contains NaN or Inf values")
            return LangevinState(x0.detach().clone(), make_generator(seed, x0.device))
        shape = tuple(int(s) for s in x0)
        if not shape or min(shape) < 1:
            raise GenphysError(f"the chains' shape must be (N, ...) with sizes >= 1, got {shape}")
        generator = make_generator(seed, device)
        low, high = self.clamp if self.clamp is not None else (-1.0, 1.0)
        x = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        return LangevinState(x.mul_(high - low).add_(low), generator)

    @torch.no_grad()
    def sample(
        self,
        energy: Energy,
        state: LangevinState,
        n_steps: int | None = None,
        snapshots: Sequence[int] | None = None,
    ) -> tuple[Tensor, LangevinState]:
        """Advance every chain by ``n_steps`` steps; return (x, state).

        ``x`` is a new tensor, also stored as ``state.x`` (the state is advanced in place; copy
        ``state_dict()`` to keep a snapshot). With ``snapshots`` (step counts such as
        (0, 1, 3, 10), 0 being the start), ``x`` is instead the stack of the chains after each
        listed step, shape (len(snapshots), N, ...), and ``n_steps`` defaults to the largest.
        """
        marks = sorted(set(snapshots)) if snapshots is not None else []
        if n_steps is None:
            n_steps = max(marks) if marks else self.n_steps
        bad_marks = snapshots is not None and not (marks and 0 <= marks[0] <= marks[-1] <= n_steps)
        if n_steps < 0 or bad_marks:
            raise GenphysError(f"need 0 <= snapshots <= n_steps = {n_steps}, got {snapshots}")
        x, g, h, sigma = state.x, state.generator, self.step_size, self.noise_scale
        kept = [x.clone()] if marks and marks[0] == 0 else []
        e = grad = None
        if self.metropolis and n_steps:  # MALA carries E and grad E of the current chains
            e, grad = energy_and_grad(energy, x)
        for step in range(1, n_steps + 1):
            if not self.metropolis:
                _, grad = energy_and_grad(energy, x)
            assert grad is not None
            if self.grad_clamp is not None:
                grad = grad.clamp_(-self.grad_clamp, self.grad_clamp)
            noise = torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)
            proposal = (x - h * grad).add_(noise, alpha=sigma)
            if self.clamp is not None:
                proposal.clamp_(*self.clamp)
            if self.metropolis:
                assert e is not None
                x, e, grad = self._accept(energy, state, x, e, grad, proposal, noise)
            else:
                x = proposal
            if step in marks:
                kept.append(x.clone())
        if n_steps and not bool(torch.isfinite(x).all()):
            raise GenphysError("the chains became NaN or Inf: reduce step_size or clamp")
        state.x = x
        state.steps += n_steps
        return (torch.stack(kept) if marks else x), state

    def _accept(
        self,
        energy: Energy,
        state: LangevinState,
        x: Tensor,
        e: Tensor,
        grad: Tensor,
        proposal: Tensor,
        noise: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""Metropolis-Hastings accept/reject of ``proposal``, chain by chain.

        :math:`\log\alpha = E(x) - E(x') + \log q(x \mid x') - \log q(x' \mid x)`, where
        :math:`\log q(x' \mid x) = -|w|^2/2` and
        :math:`\log q(x \mid x') = -|x - x' + h\nabla E(x')|^2/(2\sigma^2)` (common constants
        cancel). The uniform of the test is drawn as :math:`-\log u \sim` Exp(1). A proposal
        of infinite energy (outside the target's support) is rejected.
        """
        h, sigma = self.step_size, self.noise_scale
        e_new, grad_new = energy_and_grad(energy, proposal, allow_infinite=True)
        outside = torch.isinf(e_new)
        n = x.shape[0]
        log_q_fwd = -0.5 * noise.reshape(n, -1).square().sum(1)
        back = (x - proposal).add_(grad_new, alpha=h).reshape(n, -1)
        log_q_back = -back.square().sum(1) / (2.0 * sigma**2)
        log_alpha = (e - e_new) + (log_q_back - log_q_fwd)
        log_alpha = log_alpha.masked_fill(outside, -math.inf)  # its gradient may be NaN
        # log u < log alpha with u ~ U(0, 1), drawn as -log u ~ Exp(1) (no elementwise log)
        exp1 = torch.empty(n, dtype=x.dtype, device=x.device)
        accept = exp1.exponential_(generator=state.generator) > -log_alpha
        state.accepted += int(accept.sum())
        state.proposals += n
        mask = accept.reshape((n,) + (1,) * (x.ndim - 1))
        x, grad = torch.where(mask, proposal, x), torch.where(mask, grad_new, grad)
        return x, torch.where(accept, e_new, e), grad


def langevin_sample(
    energy: Energy,
    x0: Tensor,
    n_steps: int,
    step_size: float,
    noise_scale: float | None = None,
    metropolis: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor | tuple[Tensor, float]:
    r"""Run ``n_steps`` of ULA (or MALA) from ``x0``; return the samples (and acceptance rate).

    The conventions are :class:`LangevinSampler`'s (``noise_scale=None``: :math:`\sqrt{2h}`).
    ``generator`` is advanced in place; without one a generator is seeded from torch's global
    generator, so ``torch.manual_seed`` makes the call reproducible.

    Returns:
        The chains after ``n_steps`` steps, shape of ``x0``; with ``metropolis=True`` the tuple
        (samples, acceptance_rate).
    """
    sampler = LangevinSampler(step_size, noise_scale, max(n_steps, 1), metropolis)
    state = sampler.init_state(x0)
    if generator is None:
        generator = make_generator(int(torch.randint(0, 2**62, (1,))), x0.device)
    state.generator = generator
    x, state = sampler.sample(energy, state, n_steps)
    return (x, state.acceptance_rate) if metropolis else x
