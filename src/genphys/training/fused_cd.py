"""Contrastive divergence for binary RBMs as one compiled graph.

A CD-k or PCD-k step of a :class:`~genphys.models.BernoulliRBM` is k Gibbs sweeps and the CD
gradient of [data; negatives]: 2k + 2 matrix products and a few elementwise kernels per sweep.
Eagerly, on a CPU, those elementwise kernels, torch's single-threaded MT19937 and the Python
between the kernels cost about as much as the products. Here the whole step is one function
that ``torch.compile`` turns into the products plus a few fused loops, with the Bernoulli
draws hashed from a counter-based stream (:mod:`genphys.kernels`) inside those loops.

The random numbers are thus not torch's: a :class:`CounterChains` state holds the persistent
chains (none for CD, whose chains start at the data), a seed and a counter, and is
checkpointed with them. Compiled and eager execution draw the same numbers; their sigmoids may
differ in the last bit, so the two agree in distribution (and nearly always draw for draw)
rather than bit for bit. A run resumed in the same mode continues bit for bit. The graph is
compiled once per shape; after torch's recompilation limit (8 shapes of one function in one
process, e.g. a sweep over model sizes) further shapes run eagerly, with torch's warning.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from genphys import kernels
from genphys.errors import GenphysError
from genphys.models.rbm import BernoulliRBM

#: ``compile="auto"`` fuses a step when k x (batch + chains) x n_visible x n_hidden is at
#: least this: below it, the few seconds of compilation cost more than they save
FUSE_MIN_WORK = 1 << 22


@dataclasses.dataclass
class CounterChains:
    """The random stream of fused CD steps (``seed``, ``counter``: numbers used so far) and,
    for PCD, the persistent chains ``v`` (chains, n_visible); None for CD."""

    v: Tensor | None
    seed: int
    counter: int = 0

    def state_dict(self) -> dict[str, Tensor]:
        state = {
            "seed": torch.tensor(self.seed, dtype=torch.int64),
            "counter": torch.tensor(self.counter, dtype=torch.int64),
        }
        return state if self.v is None else {"v": self.v, **state}

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Tensor], device: torch.device | str = "cpu"
    ) -> CounterChains:
        try:
            v = state["v"].to(device) if "v" in state else None
            return cls(v, int(state["seed"]), int(state["counter"]))
        except (KeyError, RuntimeError, ValueError) as exc:
            raise GenphysError(f"sampler state is corrupt or incomplete: {exc}") from None


def cd_graph(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    batch: Tensor,
    start: Tensor,
    coef: Tensor,
    base: Tensor,
    index: Tensor,
    k: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """k Gibbs sweeps from ``start`` and the gradients of sum_n coef_n F(x_n), x = [batch;
    negatives] (see :meth:`BernoulliRBM.free_energy_grads`).

    Sweep s reads stream positions ``base + s m (nh + nv) + index``, ``index`` = 0, 1, ...,
    m (nh + nv) - 1: the first m nh for the hidden units, the rest for the visible ones (m
    chains). ``index`` is an input rather than made here: inductor would fold the stream's
    increments into its index arithmetic, which overflows. Returns (dW, db, dc, x, c + xW).
    """
    m, nv = start.shape
    nh = hidden_bias.shape[0]
    index_h, index_v = index[: m * nh].view(m, nh), index[m * nh :].view(m, nv)
    v = start
    for s in range(k):
        offset = base + kernels.signed(s * m * (nh + nv) * kernels.GAMMA)
        p_h = torch.sigmoid(torch.addmm(hidden_bias, v, weight))
        h = (kernels.uniform(offset, index_h, v.dtype) < p_h).to(v.dtype)
        p_v = torch.sigmoid(torch.addmm(visible_bias, h, weight.t()))
        v = (kernels.uniform(offset, index_v, v.dtype) < p_v).to(v.dtype)
    x = torch.cat([batch, v])
    pre = torch.addmm(hidden_bias, x, weight)
    neg = -coef
    gh = torch.sigmoid(pre) * neg.unsqueeze(-1)
    return x.t() @ gh, neg @ x, gh.sum(0), x, pre


def fused_step(
    rbm: BernoulliRBM,
    batch: Tensor,
    chains: CounterChains,
    coef: Tensor,
    k: int,
    compile_: bool = True,
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """k sweeps from the persistent chains (advanced in place) or, for CD, from ``batch``;
    returns (gradients of the trainable parameters, x = [batch; negatives], c + xW)."""
    start = batch if chains.v is None else chains.v
    m, nv = start.shape
    nh = rbm.n_hidden
    base = kernels.stream_base(chains.seed, chains.counter, start.device)
    index = kernels.stream_index(m * (nh + nv), start.device)
    args = (rbm.weight, rbm.visible_bias, rbm.hidden_bias, batch, start, coef, base, index, k)
    with torch.no_grad():
        dw, db, dc, x, pre = kernels.call(cd_graph, compile_, *args)
    if chains.v is not None:
        chains.v = x[batch.shape[0] :]
    chains.counter += k * m * (nh + nv)
    grads = {"weight": dw, "visible_bias": db, "hidden_bias": dc}
    return {n: g for n, g in grads.items() if getattr(rbm, n).requires_grad}, x, pre
