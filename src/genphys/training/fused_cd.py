"""Contrastive divergence for binary RBMs as one compiled graph.

A CD-k or PCD-k step of a :class:`~genphys.models.BernoulliRBM` is k Gibbs sweeps and the CD
gradient of [data; negatives]: 2k + 2 matrix products and a few elementwise kernels per sweep.
Eagerly, on a CPU, those elementwise kernels, torch's single-threaded MT19937 and the Python
between the kernels cost about as much as the products. Here the whole step is one function
that ``torch.compile`` turns into the products plus a few fused loops, with the Bernoulli
draws hashed from a counter-based stream (:mod:`genphys.kernels`) inside those loops.

With SGD in one process (no dampening or clipping), the graph applies the step too: plain
SGD (:func:`cd_sgd_graph`) never stores the gradient (lr enters the product), SGD with
momentum or weight decay updates the optimizer's momentum buffers in place. This saves
passes over the weights, the optimizer's Python and a call per step; the update is torch's,
rounded in another order.

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
from collections.abc import Callable
from typing import Any

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


def _phases(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    batch: Tensor,
    start: Tensor,
    base: Tensor,
    index: Tensor,
    k: int,
) -> tuple[Tensor, Tensor]:
    """k Gibbs sweeps from ``start``; returns x = [batch; negatives] and c + xW.

    Sweep s reads stream positions ``base + s m (nh + nv) + index``, ``index`` = 0, 1, ...,
    m (nh + nv) - 1: the first m nh for the hidden units, the rest for the visible ones (m
    chains). ``index`` is an input rather than made here: inductor would fold the stream's
    increments into its index arithmetic, which overflows. A bias enters as ``xW - (-c)``,
    the same number as ``c + xW``: inductor turns ``xW + c`` into an addmm, which first copies
    the broadcast bias into its output.
    """
    m, nv = start.shape
    nh = hidden_bias.shape[0]
    index_h, index_v = index[: m * nh].view(m, nh), index[m * nh :].view(m, nv)
    v = start
    for s in range(k):
        offset = base + kernels.signed(s * m * (nh + nv) * kernels.GAMMA)
        p_h = torch.sigmoid(v @ weight - (-hidden_bias))
        h = (kernels.uniform(offset, index_h, v.dtype) < p_h).to(v.dtype)
        p_v = torch.sigmoid(h @ weight.t() - (-visible_bias))
        v = (kernels.uniform(offset, index_v, v.dtype) < p_v).to(v.dtype)
    x = torch.cat([batch, v])
    return x, x @ weight - (-hidden_bias)


def cd_graph(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    batch: Tensor,
    start: Tensor,
    base: Tensor,
    index: Tensor,
    k: int,
    coef: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """k Gibbs sweeps (:func:`_phases`) and the gradients of sum_n coef_n F(x_n), x = [batch;
    negatives] (see :meth:`BernoulliRBM.free_energy_grads`). Returns (x, c + xW, dW, db, dc)."""
    x, pre = _phases(weight, visible_bias, hidden_bias, batch, start, base, index, k)
    neg = -coef
    gh = torch.sigmoid(pre) * neg.unsqueeze(-1)
    return x, pre, x.t() @ gh, neg @ x, gh.sum(0)


def cd_sgd_graph(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    batch: Tensor,
    start: Tensor,
    base: Tensor,
    index: Tensor,
    k: int,
    coef: Tensor,
    lr: Tensor,
    momentum: tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor], bool] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`cd_graph` followed by torch.optim.SGD's step, in place, in the same graph.

    Plain SGD (``momentum`` None) is written as ``W -= x^T (sigmoid(c + xW) (-lr coef))``
    (lr inside the product): the gradient is never stored, and the update is one pass over W.
    With ``momentum`` = (momentum m, weight decay wd, buffers of W, b, c, nesterov): ``g +=
    wd p; buf = m buf + g; p -= lr (g + m buf if nesterov else buf)`` (no dampening), the
    buffers updated in place. A step that is not finite changes nothing. Returns (x, c + xW
    before the step, the sum of the updated parameters, NaN for a skipped step: finite
    exactly when the step was taken and every parameter is finite, unless they near the
    largest float).
    """
    x, pre = _phases(weight, visible_bias, hidden_bias, batch, start, base, index, k)
    params = (weight, visible_bias, hidden_bias)
    db = -(x * coef.unsqueeze(-1)).sum(0)  # dF/db = -x
    if momentum is None:
        step = torch.sigmoid(pre) * (-lr * coef).unsqueeze(-1)  # lr (dF/dc) per row
        steps = [x.t() @ step, lr * db, step.sum(0)]
        ok = torch.isfinite(step.sum() + steps[1].sum())  # (small tensors: no pass over W)
    else:
        m, decay, buffers, nesterov = momentum
        gh = torch.sigmoid(pre) * (-coef).unsqueeze(-1)
        steps, news = [], []
        for p, g, buf in zip(params, (x.t() @ gh, db, gh.sum(0)), buffers, strict=True):
            g = g + decay * p
            news.append(m * buf + g)
            steps.append(lr * (g + m * news[-1] if nesterov else news[-1]))
        ok = torch.isfinite(gh.sum() + db.sum() + lr + m + decay)
    if momentum is not None:
        for buf, new in zip(momentum[2], news, strict=True):
            buf.copy_(torch.where(ok, new, buf))
    for p, step in zip(params, steps, strict=True):  # p - where(ok, dp, 0) is p when not ok
        p.sub_(torch.where(ok, step, 0.0))
    total = weight.sum() + visible_bias.sum() + hidden_bias.sum()
    return x, pre, torch.where(ok, total, float("nan"))


def _run(
    graph: Callable[..., tuple[Tensor, ...]],
    rbm: BernoulliRBM,
    batch: Tensor,
    chains: CounterChains,
    k: int,
    compile_: bool,
    *extra: Any,
) -> tuple[Tensor, ...]:
    """``graph`` from the persistent chains or, for CD, from ``batch``, at the chains' stream
    position; advances the chains and their counter."""
    start = batch if chains.v is None else chains.v
    m, nv = start.shape
    used = m * (rbm.n_hidden + nv)  # stream positions per sweep
    base = kernels.stream_base(chains.seed, chains.counter, start.device)
    index = kernels.stream_index(used, start.device)
    params = (rbm.weight, rbm.visible_bias, rbm.hidden_bias)
    with torch.no_grad():
        out = kernels.call(graph, compile_, *params, batch, start, base, index, k, *extra)
    if chains.v is not None:
        chains.v = out[0][batch.shape[0] :]
    chains.counter += k * used
    return out


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
    x, pre, dw, db, dc = _run(cd_graph, rbm, batch, chains, k, compile_, coef)
    grads = {"weight": dw, "visible_bias": db, "hidden_bias": dc}
    return {n: g for n, g in grads.items() if getattr(rbm, n).requires_grad}, x, pre


def fused_sgd_step(
    rbm: BernoulliRBM,
    batch: Tensor,
    chains: CounterChains,
    coef: Tensor,
    lr: Tensor,
    k: int,
    compile_: bool = True,
    momentum: tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor], bool] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`fused_step` and an SGD step with learning rate ``lr`` (a 0-d tensor, so that a
    schedule does not recompile), applied to the parameters in place by one graph
    (:func:`cd_sgd_graph`): plain, or given ``momentum`` = (momentum, weight decay, momentum
    buffers of W, b, c, nesterov) with momentum. Returns (x = [batch;
    negatives], c + xW before the step, sum of the new parameters: NaN for a skipped step)."""
    x, pre, total = _run(cd_sgd_graph, rbm, batch, chains, k, compile_, coef, lr, momentum)
    return x, pre, total
