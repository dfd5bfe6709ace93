r"""Monte Carlo of the 2-D Ising ferromagnet on an L x L torus, many chains at once.

Energy :math:`E = -\sum_{\langle ij\rangle} s_i s_j - h \sum_i s_i` (J = 1, k_B = 1, the 2N
nearest-neighbour bonds of the torus each counted once). Two samplers share one explicit
state (:class:`IsingState`: spins, seed, counter):

* :class:`Metropolis`: checkerboard single-flip Metropolis. The two sublattices are updated
  in turn; the sites of one sublattice do not interact, so each half sweep is a product of
  single-site Metropolis updates and satisfies detailed balance.
* :class:`SwendsenWang`: the cluster algorithm of Swendsen and Wang (1987): bonds between
  aligned neighbours are frozen with probability :math:`1 - e^{-2\beta}`, the resulting
  clusters of all chains are found at once (SciPy's connected components of the bond graph),
  and every cluster takes a new spin from its conditional (a fair coin when h = 0). It beats
  critical slowing down near T_c.

Spins are stored chain-last, ``(L, L, chains)`` int32, so that the update vectorizes over
chains. Random numbers are not drawn from a ``torch.Generator``: site ``k`` of sweep ``t``
reads output number ``counter + k`` of a SplitMix64 stream (a counter-based generator that
passes BigCrush) keyed by the seed. The state is thus two integers plus the spins, a run is
reproducible bit for bit, and the update is a pure integer function that ``torch.compile``
fuses into one loop (about 10x faster than eager PyTorch on a CPU; results are identical).
Acceptance tests compare 31-bit integers with thresholds ``floor(p 2^31)``, so acceptance
probabilities are exact to :math:`2^{-31}`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genphys import kernels
from genphys.errors import GenphysError

_ONE = 1 << 31  # acceptance thresholds are in units of 2^-31
#: Every this many Metropolis sweeps, ties (dE = 0) are accepted with probability 1/2.
TIE_EVERY = 8
#: Smallest lattice x chains for which ``compile="auto"`` compiles the update.
COMPILE_MIN_SITES = 1 << 15


def _random_pair(base: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Two independent 31-bit integers per site from the stream position ``base + index``."""
    z = kernels.random_bits(base, index)
    low, high = z & (_ONE - 1), (z >> 33) & (_ONE - 1)
    return low.to(torch.int32), high.to(torch.int32)


def _neighbour_sum(s: Tensor) -> Tensor:
    return torch.roll(s, 1, 0) + torch.roll(s, -1, 0) + torch.roll(s, 1, 1) + torch.roll(s, -1, 1)


def _metropolis_half(s: Tensor, r: Tensor, mask: Tensor, thresholds: Tensor) -> Tensor:
    """Offer a flip to every site where ``mask`` is set (one sublattice), accepting where the
    31-bit random ``r`` is at most the threshold.

    ``thresholds[5 (s+1)/2 + (s nn + 4)/2] + 1`` is the acceptance probability in units of
    2^-31 (int32: -1 never accepts, 2^31 - 1 always does).
    """
    snn = s * _neighbour_sum(s)
    up = s > 0
    threshold = torch.where(up, thresholds[5], thresholds[0])
    for j in range(1, 5):
        level = torch.where(up, thresholds[5 + j], thresholds[j])
        threshold = torch.where(snn == 2 * j - 4, level, threshold)
    threshold = torch.where(mask != 0, threshold, -1)  # an int32 mask: a bool one is slow
    return torch.where(r <= threshold, -s, s)


def _metropolis_half_hashed(
    s: Tensor, base: Tensor, index: Tensor, mask: Tensor, thresholds: Tensor
) -> Tensor:
    """:func:`_metropolis_half` with its random numbers made inside: the form that
    ``torch.compile`` fuses into one loop (hashing is cheaper than reading stored numbers)."""
    return _metropolis_half(s, _random_pair(base, index)[0], mask, thresholds)


def _energy_magnetization(s: Tensor, h: float) -> tuple[Tensor, Tensor]:
    n = s.shape[0] * s.shape[1]
    bonds = (s * (torch.roll(s, 1, 0) + torch.roll(s, 1, 1))).sum((0, 1))
    m = s.sum((0, 1))
    return (-bonds - h * m).double() / n, m.double() / n


@dataclasses.dataclass
class IsingState:
    """Explicit sampler state: ``spins`` (L, L, chains) int32 in {-1, +1}, ``seed``,
    ``counter`` (random numbers used so far) and ``sweeps`` done."""

    spins: Tensor
    seed: int
    counter: int = 0
    sweeps: int = 0

    @property
    def L(self) -> int:
        return int(self.spins.shape[0])

    @property
    def n_chains(self) -> int:
        return int(self.spins.shape[2])

    def configurations(self) -> np.ndarray:
        """Spins as an (chains, L, L) int8 array of +-1."""
        return self.spins.permute(2, 0, 1).to(torch.int8).numpy().copy()

    def energy_magnetization(self, h: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Energy and magnetization per spin of every chain (float64 arrays)."""
        e, m = _energy_magnetization(self.spins, h)
        return e.numpy(), m.numpy()

    def state_dict(self) -> dict[str, Any]:
        return {
            "spins": self.spins.clone(),
            "seed": self.seed,
            "counter": self.counter,
            "sweeps": self.sweeps,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> IsingState:
        return cls(
            state["spins"].to(torch.int32).contiguous(),
            int(state["seed"]),
            int(state["counter"]),
            int(state["sweeps"]),
        )

    def _base(self) -> Tensor:
        """Stream position ``counter`` of this seed's SplitMix64 stream, as an int64 scalar."""
        return kernels.stream_base(self.seed, self.counter)


def init_state(
    L: int,
    n_chains: int,
    seed: int = 0,
    start: str = "random",
) -> IsingState:
    """A fresh state: ``start="random"`` (infinite temperature), ``"up"`` or ``"down"``."""
    if not isinstance(L, int) or L < 2 or L % 2:
        raise GenphysError(f"the lattice size L must be an even integer >= 2, got {L!r}")
    if not isinstance(n_chains, int) or n_chains < 1:
        raise GenphysError(f"n_chains must be a positive integer, got {n_chains!r}")
    if start == "random":
        g = torch.Generator().manual_seed(int(seed))
        spins = torch.randint(0, 2, (L, L, n_chains), generator=g, dtype=torch.int32) * 2 - 1
    elif start in ("up", "down"):
        spins = torch.full((L, L, n_chains), 1 if start == "up" else -1, dtype=torch.int32)
    else:
        raise GenphysError(f"start must be 'random', 'up' or 'down', got {start!r}")
    return IsingState(spins, int(seed))


def state_from_configurations(configs: Any, seed: int = 0) -> IsingState:
    """A state whose chains start from given (chains, L, L) configurations of +-1."""
    x = torch.as_tensor(np.asarray(configs))
    if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[1] % 2:
        raise GenphysError(
            f"configurations must have shape (chains, L, L), L even; got {tuple(x.shape)}"
        )
    if not bool(((x == 1) | (x == -1)).all()):
        raise GenphysError("configurations must hold spins -1 and +1 only")
    return IsingState(x.permute(1, 2, 0).to(torch.int32).contiguous(), int(seed))


class _Sampler:
    """Shared set-up: temperature, field, and whether to compile."""

    def __init__(self, T: float, h: float = 0.0, compile: str | bool = "auto") -> None:
        if not (isinstance(T, (int, float)) and math.isfinite(T) and T > 0):
            raise GenphysError(f"the temperature T must be a positive number, got {T!r}")
        if not math.isfinite(h):
            raise GenphysError(f"the field h must be finite, got {h!r}")
        if compile not in ("auto", True, False):
            raise GenphysError(f"compile must be 'auto', True or False, got {compile!r}")
        self.T, self.h, self.beta = float(T), float(h), 1.0 / float(T)
        self.compile = compile

    def _use_compile(self, spins: Tensor, fn: Callable[..., Any]) -> bool:
        if self.compile is False or fn in kernels.DISABLED:
            return False
        if self.compile == "auto":
            return spins.numel() >= COMPILE_MIN_SITES and kernels.compiler_available()
        return True

    def index(self, spins: Tensor) -> Tensor:
        return kernels.stream_index(spins.numel()).view(spins.shape)

    def _check(self, state: IsingState, n: int) -> None:
        if not isinstance(state, IsingState):
            raise GenphysError(f"expected an IsingState, got {type(state).__name__}")
        if not isinstance(n, int) or n < 0:
            raise GenphysError(f"the number of sweeps must be a non-negative integer, got {n!r}")

    def run(
        self, state: IsingState, n_sweeps: int, measure_every: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sweep ``n_sweeps`` times; return energy and magnetization per spin measured
        every ``measure_every`` sweeps, as (measurements, chains) float64 arrays."""
        if not isinstance(measure_every, int) or measure_every < 1:
            raise GenphysError(f"measure_every must be a positive integer, got {measure_every!r}")
        es, ms = [], []
        for _ in range(n_sweeps // measure_every):
            self.sweep_(state, measure_every)
            e, m = state.energy_magnetization(self.h)
            es.append(e)
            ms.append(m)
        self.sweep_(state, n_sweeps % measure_every)
        shape = (0, state.n_chains)
        return (np.stack(es) if es else np.zeros(shape)), (np.stack(ms) if ms else np.zeros(shape))

    def sweep_(self, state: IsingState, n: int = 1) -> IsingState:  # pragma: no cover
        raise NotImplementedError


class Metropolis(_Sampler):
    """Checkerboard single-spin-flip Metropolis at temperature ``T`` and field ``h``.

    A flip is accepted with probability :math:`\\min(1, e^{-\\beta\\Delta E})`. Every
    :data:`TIE_EVERY`-th sweep accepts flips that cost nothing (:math:`\\Delta E = 0`) with
    probability 1/2 instead of 1: always accepted, such ties make whole sublattices of stripe
    configurations flip back and forth forever, a set the chain can neither leave nor enter
    (a quarter of the L = 2 states at h = 0). Both kinds of sweep keep the Boltzmann
    distribution; tie-breaking at every sweep would triple the autocorrelation time of |m|
    at T_c. (A field so weak that it barely breaks the ties still mixes slowly there.)

    ``compile="auto"`` compiles the sweep with ``torch.compile`` for lattices x chains of at
    least :data:`COMPILE_MIN_SITES` when a C++ compiler is available (set the environment
    variable ``GENPHYS_COMPILE=0`` to never compile); results do not depend on it.

    >>> sampler = Metropolis(T=2.5)
    >>> state = init_state(L=8, n_chains=4, seed=0)
    >>> _ = sampler.sweep_(state, 10)
    >>> state.sweeps, state.counter
    (10, 2560)
    """

    def __init__(self, T: float, h: float = 0.0, compile: str | bool = "auto") -> None:
        super().__init__(T, h, compile)
        self.thresholds = self._table(tie=1.0)
        self.tie_thresholds = self._table(tie=0.5)
        self._masks: dict[int, tuple[Tensor, Tensor]] = {}

    def _table(self, tie: float) -> Tensor:
        """Acceptance thresholds: probability min(1, exp(-beta dE)), ``tie`` when dE = 0."""
        table = []
        for s in (-1, 1):
            for snn in (-4, -2, 0, 2, 4):
                d_energy = 2.0 * (snn + self.h * s)
                p = tie if d_energy == 0 else min(1.0, math.exp(-self.beta * d_energy))
                table.append((_ONE if p >= 1.0 else math.floor(p * _ONE)) - 1)
        return torch.tensor(table, dtype=torch.int32)

    def masks(self, L: int) -> tuple[Tensor, Tensor]:
        """The two sublattices (sites with i + j even, odd) as (L, L, 1) int32 0/1 masks."""
        if L not in self._masks:
            i = torch.arange(L)
            odd = ((i[:, None] + i[None, :]) % 2).to(torch.int32)[:, :, None]
            self._masks[L] = (1 - odd, odd)
        return self._masks[L]

    def sweep_(self, state: IsingState, n: int = 1) -> IsingState:
        """Do ``n`` sweeps in place (each site is offered one flip per sweep)."""
        self._check(state, n)
        if state.L % 2:  # odd periodic lattice: not bipartite
            raise GenphysError(f"Metropolis (a checkerboard sweep) needs an even L, got {state.L}")
        spins, index = state.spins, self.index(state.spins)
        compile_ = self._use_compile(spins, _metropolis_half_hashed)
        masks = self.masks(state.L)
        for _ in range(n):  # each site reads one random number per sweep, in its half
            base = state._base()
            tied = state.sweeps % TIE_EVERY == TIE_EVERY - 1
            thresholds = self.tie_thresholds if tied else self.thresholds
            if compile_ and _metropolis_half_hashed not in kernels.DISABLED:
                for mask in masks:
                    args = (spins, base, index, mask, thresholds)
                    spins = kernels.call(_metropolis_half_hashed, True, *args)
            else:  # eager: hash once for both halves
                r = _random_pair(base, index)[0]
                for mask in masks:
                    spins = _metropolis_half(spins, r, mask, thresholds)
            state.counter += index.numel()
            state.sweeps += 1
        state.spins = spins
        return state


class SwendsenWang(_Sampler):
    """Swendsen-Wang cluster updates at temperature ``T`` and field ``h``.

    With a field, each cluster of size n is set up with probability
    :math:`1/(1 + e^{-2\\beta h n})` (heat bath on the cluster), which keeps detailed balance.
    The cluster search runs in SciPy's compiled code; nothing here is ``torch.compile``d.
    """

    def __init__(self, T: float, h: float = 0.0) -> None:
        super().__init__(T, h, compile=False)
        self.bond_threshold = math.floor(-math.expm1(-2.0 * self.beta) * _ONE)

    def sweep_(self, state: IsingState, n: int = 1) -> IsingState:
        """Do ``n`` cluster updates in place."""
        self._check(state, n)
        for _ in range(n):
            self._update(state)
        return state

    def _update(self, state: IsingState) -> None:
        s, index = state.spins, self.index(state.spins)
        r_right, r_down = _random_pair(state._base(), index)
        state.counter += index.numel()
        right = (s == torch.roll(s, -1, 1)) & (r_right < self.bond_threshold)  # (i,j)-(i,j+1)
        down = (s == torch.roll(s, -1, 0)) & (r_down < self.bond_threshold)  # (i,j)-(i+1,j)
        n_clusters, label = _cluster_labels(index.numpy(), right.numpy(), down.numpy())
        coin, _ = _random_pair(state._base(), torch.arange(n_clusters))
        state.counter += n_clusters
        if self.h == 0.0:
            up_threshold = torch.full((n_clusters,), _ONE // 2, dtype=torch.int64)
        else:
            size = torch.from_numpy(np.bincount(label, minlength=n_clusters)).double()
            up_threshold = torch.floor(torch.sigmoid(2.0 * self.beta * self.h * size) * _ONE)
        cluster_up = coin < up_threshold.long()
        up = cluster_up[torch.from_numpy(label)].view_as(s)
        state.spins = torch.where(up, 1, -1).to(torch.int32)
        state.sweeps += 1


def _cluster_labels(
    index: np.ndarray, right: np.ndarray, down: np.ndarray
) -> tuple[int, np.ndarray]:
    """Connected components of the frozen-bond graph of all chains (SciPy's union of
    breadth-first searches in C): the number of clusters and each site's cluster."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src = np.concatenate([index[right], index[down]])
    dst = np.concatenate([np.roll(index, -1, 1)[right], np.roll(index, -1, 0)[down]])
    ones = np.ones(src.size, dtype=np.int8)
    graph = coo_matrix((ones, (src, dst)), shape=(index.size, index.size)).tocsr()
    n, label = connected_components(graph, directed=False)
    return int(n), label.reshape(-1)
