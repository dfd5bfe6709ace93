r"""Replay buffer of persistent Langevin chains for energy-based models (Du & Mordatch 2019).

Training an EBM needs samples of the current model; starting Langevin from noise at every
step needs many steps, so the chains are kept in a buffer of ``capacity`` examples and continued
from step to step. ``x, idx = buffer.draw(n, generator)`` takes ``n`` distinct stored examples at
random; each is replaced, independently with probability ``reinit_fraction`` (a per-example
Bernoulli draw, so the number of fresh starts is Binomial(n, reinit_fraction), as in Du &
Mordatch's code), by uniform noise in the box (low, high), which keeps new modes being explored.
After Langevin updates ``x``, ``buffer.push(x, idx)`` writes the chains back to the slots they
came from; ``buffer.push(x)`` without indices writes first-in first-out over the oldest slots.
Either way the buffer keeps its size.

**Randomness.** The buffer holds no generator: the caller passes its own (typically the
:class:`~genphys.samplers.langevin.LangevinState`'s, so that one checkpointed generator drives
both the buffer and the chains). An exact resume restores the buffer from :meth:`state_dict`
*and* the caller's generator state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genphys.errors import GenphysError


class ReplayBuffer:
    """A fixed-size store of chains, uniform noise in a box to start with.

    Args:
        capacity: number of stored examples (the tutorial's 8192).
        reinit_fraction: probability that a drawn example is replaced by fresh noise (0.05).
        low: lower edge of the noise box.
        high: upper edge of the noise box.
    """

    def __init__(
        self,
        capacity: int = 8192,
        reinit_fraction: float = 0.05,
        low: float = -1.0,
        high: float = 1.0,
    ) -> None:
        if capacity < 1:
            raise GenphysError(f"buffer capacity must be >= 1, got {capacity}")
        if not 0.0 <= reinit_fraction <= 1.0:
            raise GenphysError(f"reinit_fraction must be in [0, 1], got {reinit_fraction}")
        if not low < high:
            raise GenphysError(f"the noise box must have low < high, got ({low}, {high})")
        self.capacity = int(capacity)
        self.reinit_fraction = float(reinit_fraction)
        self.low, self.high = float(low), float(high)
        self.x: Tensor | None = None  # (capacity, *shape), set by init
        self.pos = 0  # next slot FIFO pushes write to

    def __len__(self) -> int:
        return 0 if self.x is None else self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return tuple(self._data().shape[1:])

    def _data(self) -> Tensor:
        if self.x is None:
            raise GenphysError("the replay buffer is empty: call init(shape, generator) first")
        return self.x

    def _noise(self, shape: Sequence[int], generator: torch.Generator, like: Tensor) -> Tensor:
        u = torch.rand(tuple(shape), generator=generator, dtype=like.dtype, device=like.device)
        return u.mul_(self.high - self.low).add_(self.low)

    def init(
        self,
        shape: Sequence[int],
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
    ) -> ReplayBuffer:
        """Fill the buffer with uniform noise: ``capacity`` examples of ``shape`` (one example's,
        e.g. (784,) or (1, 28, 28)), on the generator's device. Returns the buffer."""
        shape = tuple(int(s) for s in shape)
        if min(shape, default=1) < 1:
            raise GenphysError(f"example shape must have sizes >= 1, got {shape}")
        like = torch.empty(0, dtype=dtype, device=generator.device)
        self.x = self._noise((self.capacity, *shape), generator, like)
        self.pos = 0
        return self

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` distinct stored examples at random, each reset to noise with probability
        ``reinit_fraction``.

        Returns:
            (x, idx): a new tensor (n, *shape) to run Langevin on, and the slots it came from
            (for :meth:`push`). The random draws are, in order: a permutation of the slots,
            n uniforms for the reinit decisions, the noise for all n examples.
        """
        data = self._data()
        if not 1 <= n <= self.capacity:
            raise GenphysError(f"can draw 1 to {self.capacity} examples, asked for {n}")
        idx = torch.randperm(self.capacity, generator=generator, device=data.device)[:n]
        fresh = torch.rand(n, generator=generator, device=data.device) < self.reinit_fraction
        noise = self._noise((n, *data.shape[1:]), generator, data)
        mask = fresh.reshape((n,) + (1,) * (data.ndim - 1))
        return torch.where(mask, noise, data[idx]), idx

    def push(self, x: Tensor, idx: Tensor | None = None) -> None:
        """Store updated chains ``x`` (n, *shape) in slots ``idx`` (from :meth:`draw`), or,
        without ``idx``, over the oldest slots, first in first out. The size stays ``capacity``.
        """
        data = self._data()
        if x.shape[1:] != data.shape[1:] or not 1 <= x.shape[0] <= self.capacity:
            raise GenphysError(
                f"can push (n <= {self.capacity}, *{tuple(data.shape[1:])}) into the buffer, "
                f"got {tuple(x.shape)}"
            )
        x = x.detach().to(dtype=data.dtype, device=data.device)
        if idx is None:
            n = x.shape[0]
            idx = (torch.arange(n, device=data.device) + self.pos) % self.capacity
            self.pos = (self.pos + n) % self.capacity
        elif idx.shape != (x.shape[0],):
            raise GenphysError(f"push needs one index per example, got {tuple(idx.shape)}")
        data[idx.to(data.device)] = x

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only: the stored examples, the FIFO position and the configuration."""
        return {
            "x": self._data().clone(),  # a snapshot: push writes in place
            "pos": torch.tensor(self.pos, dtype=torch.int64),
            "reinit_fraction": torch.tensor(self.reinit_fraction, dtype=torch.float64),
            "box": torch.tensor([self.low, self.high], dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Tensor], device: torch.device | str = "cpu"
    ) -> ReplayBuffer:
        """The buffer saved by :meth:`state_dict` (its capacity is the stored size)."""
        try:
            x = state["x"].to(device)
            low, high = (float(v) for v in state["box"])
            buffer = cls(x.shape[0], float(state["reinit_fraction"]), low, high)
            buffer.x, buffer.pos = x.clone(), int(state["pos"]) % x.shape[0]
        except (KeyError, RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise GenphysError(f"replay buffer state is corrupt or incomplete: {exc}") from None
        return buffer
