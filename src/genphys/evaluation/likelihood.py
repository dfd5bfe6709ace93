r"""Likelihoods of RBMs: exact log partition functions, AIS, average log-likelihood.

An RBM defines :math:`p(v) = e^{-F(v)}/Z`. :func:`exact_log_partition` enumerates the smaller
layer (up to ~24 units); :func:`ais_log_partition` estimates :math:`\log Z` with a standard error
by annealed importance sampling (:mod:`genphys.evaluation.proxies` has the measures that need
no :math:`Z`). Every function works on a float64 copy of the model, never modifying it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genphys.errors import GenphysError
from genphys.evaluation.stats import Estimate, log_mean_exp_estimate, mean_estimate
from genphys.models.grbm import GaussianBernoulliRBM
from genphys.models.rbm import RBMBase, bernoulli

Schedule = Literal["linear", "sigmoid"]


def _float64(rbm: RBMBase) -> RBMBase:
    """A detached float64 copy of the model (the original is left untouched)."""
    if not isinstance(rbm, RBMBase):
        raise GenphysError(f"expected an RBM from genphys.models.rbm, got {type(rbm).__name__}")
    model = copy.deepcopy(rbm).to(torch.float64)
    model.requires_grad_(False)
    return model


def _batch(model: RBMBase, x: Tensor | np.ndarray, what: str, strict: bool = True) -> Tensor:
    """``x`` as a float64 (N, n_visible) tensor on the model's device, checked."""
    x = torch.as_tensor(x).detach().to(device=model.weight.device, dtype=torch.float64)
    (type(model) if strict else RBMBase).check_data(model, x, what)  # strict: binary check
    return x


# --------------------------------------------------------------------------- exact
def _enumerate(n: int, start: int, stop: int, like: Tensor) -> Tensor:
    """The binary configurations with integer codes ``start..stop-1`` as (stop-start, n) rows."""
    codes = torch.arange(start, stop, device=like.device, dtype=torch.int64)
    bits = torch.arange(n, device=like.device, dtype=torch.int64)
    return ((codes.unsqueeze(1) >> bits) & 1).to(like.dtype)


def exact_log_partition(
    rbm: RBMBase,
    max_units: int = 24,
    chunk: int = 2**14,
    layer: Literal["auto", "visible", "hidden"] = "auto",
) -> float:
    r""":math:`\log Z` by enumerating one layer, in float64 with a chunked log-sum-exp.

    * Over the hidden layer: :math:`\log Z = \log\sum_h e^{\log\sum_v e^{-E(v,h)}}`, the inner
      sum (Bernoulli) or Gaussian integral in closed form (``log_marginal_hidden``).
    * Over the visible layer (Bernoulli only): :math:`\log Z = \log\sum_v e^{-F(v)}`.

    Args:
        rbm: a :class:`~genphys.models.rbm.BernoulliRBM` or ``GaussianBernoulliRBM``.
        max_units: refuse to enumerate more than ``2**max_units`` configurations.
        chunk: configurations evaluated at once (memory bound).
        layer: ``"auto"`` enumerates the smaller layer (the hidden one for a Gaussian RBM).

    Raises:
        GenphysError: the chosen layer has more than ``max_units`` units.
    """
    model = _float64(rbm)
    gaussian = isinstance(model, GaussianBernoulliRBM)
    if layer not in ("auto", "visible", "hidden"):
        raise GenphysError(f"layer must be 'auto', 'visible' or 'hidden', got {layer!r}")
    if layer == "visible" and gaussian:
        raise GenphysError("a Gaussian RBM's visible layer is continuous: enumerate 'hidden'")
    if layer == "auto":
        layer = "hidden" if gaussian or model.n_hidden <= model.n_visible else "visible"
    n = model.n_hidden if layer == "hidden" else model.n_visible
    if n > max_units:
        raise GenphysError(
            f"exact log Z would enumerate 2^{n} configurations of the {layer} layer "
            f"(max_units={max_units}); use ais_log_partition for a model this large"
        )
    chunk = max(1, int(chunk))
    parts = []
    with torch.no_grad():
        for start in range(0, 2**n, chunk):
            x = _enumerate(n, start, min(start + chunk, 2**n), model.weight)
            logp = model.log_marginal_hidden(x) if layer == "hidden" else -model.free_energy(x)
            parts.append(torch.logsumexp(logp, 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


# ----------------------------------------------------------------------------- AIS
@dataclasses.dataclass(frozen=True)
class AISResult:
    r"""Result of :func:`ais_log_partition`.

    Attributes:
        log_z: :math:`\log Z_A + \log\frac1M\sum_m w_m` with its delta-method standard error.
        log_z_base: :math:`\log Z_A` of the factorised base distribution (exact).
        log_weights: the M importance log weights :math:`\log w_m` (float64, CPU).
        lower: :math:`\log Z_A + \log(\bar w - 3\,\hat\sigma_{\bar w})` (``-inf`` when negative).
        upper: :math:`\log Z_A + \log(\bar w + 3\,\hat\sigma_{\bar w})`; S&M's ±3 s.d. bounds
            (-inf and +inf with one chain).
        ess: effective sample size :math:`(\sum w)^2/\sum w^2` (between 1 and M).
        base_bias: the visible bias of the base distribution that was used.
        betas: the inverse temperatures, from 0 to 1.
        certain_lower: :func:`mode_lower_bound`, a lower bound on :math:`\log Z` that holds
            surely (None when not computed).
    """

    log_z: Estimate
    log_z_base: float
    log_weights: Tensor
    lower: float
    upper: float
    ess: float
    base_bias: Tensor
    betas: Tensor
    certain_lower: float | None = None

    @property
    def trapped(self) -> bool:
        """Whether the estimate lies more than 3 standard errors below ``certain_lower``: the
        chains missed hidden states that hold more mass than their whole estimate (block Gibbs
        freezes early, e.g. in a Gaussian RBM with small learned variances)."""
        if self.certain_lower is None:
            return False
        slack = 1e-9 * max(1.0, abs(self.certain_lower))  # rounding, when stderr is 0
        return self.log_z.value + 3 * self.log_z.stderr + slack < self.certain_lower


def ais_schedule(
    n_betas: int, schedule: Schedule | Sequence[float] | Tensor = "linear", delta: float = 4.0
) -> Tensor:
    r"""Inverse temperatures :math:`0=\beta_0<\dots<\beta_K=1` (float64, ``n_betas`` of them).

    ``"linear"``: evenly spaced. ``"sigmoid"``: :math:`\sigma(\delta(2k/K-1))` rescaled to
    [0, 1] (Grosse et al. 2015), denser at both ends. A sequence is used as given after checks.
    """
    if isinstance(schedule, str):
        if n_betas < 2:
            raise GenphysError(f"AIS needs n_betas >= 2, got {n_betas}")
        if schedule == "linear":
            return torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)
        if schedule == "sigmoid":
            s = torch.sigmoid(delta * torch.linspace(-1.0, 1.0, n_betas, dtype=torch.float64))
            return (s - s[0]) / (s[-1] - s[0])
        raise GenphysError(f"unknown AIS schedule {schedule!r}: use 'linear' or 'sigmoid'")
    betas = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    if betas.numel() < 2 or betas[0] != 0 or betas[-1] != 1 or bool((betas.diff() < 0).any()):
        raise GenphysError("an AIS schedule must increase from exactly 0 to exactly 1")
    return betas


def _base_bias(
    model: RBMBase, base_bias: Tensor | None, data: Tensor | np.ndarray | None
) -> Tensor:
    """The base distribution's visible bias: given, fitted to data marginals, or a default."""
    like = model.visible_bias
    if base_bias is not None:
        b = torch.as_tensor(base_bias).detach().to(like)
        if b.shape != like.shape or not bool(torch.isfinite(b).all()):
            raise GenphysError(
                f"base_bias must be a finite vector of shape ({model.n_visible},), "
                f"got shape {tuple(b.shape)}"
            )
        return b
    if data is None:
        return like.clone() if isinstance(model, GaussianBernoulliRBM) else torch.zeros_like(like)
    x = _batch(model, data, "AIS data", strict=False)
    if isinstance(model, GaussianBernoulliRBM):
        return x.mean(0)
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)  # smoothed marginals: no infinite biases
    return torch.log(p / (1 - p))


def ais_log_partition(
    rbm: RBMBase,
    n_chains: int = 100,
    n_betas: int = 10000,
    base_bias: Tensor | None = None,
    data: Tensor | np.ndarray | None = None,
    seed: int = 0,
    schedule: Schedule | Sequence[float] | Tensor = "linear",
    check: bool = True,
) -> AISResult:
    r"""Estimate :math:`\log Z` by annealed importance sampling (Salakhutdinov and Murray 2008).

    The tempered distributions :math:`p^*_\beta(v) = e^{(1-\beta)\phi(v;b_A)+\beta\phi(v;b)}
    \prod_j(1+e^{\beta(c_j+(\tilde v W)_j)})` (``tempered_log_prob``) go from a factorised base
    :math:`p_A` (:math:`\beta=0`, :math:`Z_A` known) to the model (:math:`\beta=1`). Each chain
    starts from an exact sample of :math:`p_A`, adds :math:`\log p^*_{\beta_k}(v) -
    \log p^*_{\beta_{k-1}}(v)` to :math:`\log w`, then makes one block-Gibbs move leaving
    :math:`p^*_{\beta_k}` invariant. :math:`\mathbb E[w] = Z/Z_A`: the estimate of :math:`Z` is
    unbiased, that of :math:`\log Z` biased low when the weights are spread (small ``ess``), and
    far too low, with a small error bar and a healthy ``ess``, when every chain misses the
    states that hold the mass (``trapped``, checked against :func:`mode_lower_bound`).

    Args:
        rbm: a Bernoulli or Gaussian-Bernoulli RBM (evaluated on a float64 copy).
        n_chains: number of independent AIS runs M.
        n_betas: number of inverse temperatures, endpoints included.
        base_bias: visible bias :math:`b_A` of the base. Default: for a Bernoulli RBM the
            logits of the (clamped) data marginals when ``data`` is given, else zeros; for a
            Gaussian RBM the data mean, else the model's visible bias.
        data: examples of the data distribution (training or held-out), used only to fit
            the base distribution and to start :func:`mode_lower_bound`'s ascent.
        seed: seed of the ``torch.Generator`` that drives all chains.
        schedule: ``"linear"``, ``"sigmoid"`` or an explicit increasing sequence from 0 to 1.
        check: compare the estimate with :func:`mode_lower_bound` (``certain_lower``); a
            RuntimeWarning says when the chains were trapped (``trapped``).
    """
    if n_chains < 1:
        raise GenphysError(f"AIS needs n_chains >= 1, got {n_chains}")
    model = _float64(rbm)
    betas = ais_schedule(n_betas, schedule)
    base = _base_bias(model, base_bias, data)
    generator = torch.Generator(device=model.weight.device).manual_seed(int(seed))
    beta_list = betas.tolist()
    with torch.no_grad():
        h0 = torch.zeros(n_chains, model.n_hidden, dtype=torch.float64, device=base.device)
        v = model.sample_v(h0, generator, beta=0.0, base_bias=base)  # exact sample of p_A
        log_w = torch.zeros(n_chains, dtype=torch.float64, device=base.device)
        for k in range(1, len(beta_list)):
            b_prev, b_k = beta_list[k - 1], beta_list[k]
            # log p*_k(v) - log p*_{k-1}(v), sharing one hidden input c + (scaled v) W
            pre = model.hidden_input(v)
            vis = model.visible_term(v) - model.visible_term(v, base)
            log_w += (b_k - b_prev) * vis
            log_w += F.softplus(b_k * pre).sum(-1) - F.softplus(b_prev * pre).sum(-1)
            if k < len(beta_list) - 1:  # T_k leaves p*_k invariant; none needed after beta=1
                h = bernoulli(torch.sigmoid(b_k * pre), generator)  # = model.sample_h(v, g, b_k)
                v = model.sample_v(h, generator, beta=b_k, base_bias=base)
        log_z_base = float(model.base_log_partition(base))
    log_w = log_w.cpu()
    if not bool(torch.isfinite(log_w).all()):
        raise GenphysError("AIS produced non-finite log weights: check the model parameters")
    ratio = log_mean_exp_estimate(log_w)
    log_z = Estimate(log_z_base + ratio.value, ratio.stderr, n=n_chains)
    w = torch.exp(log_w - log_w.max())
    mean_w = float(w.mean())
    shift = log_z_base + float(log_w.max())
    if n_chains > 1:
        sd_mean = float(w.std()) / math.sqrt(n_chains)
        low, high = mean_w - 3 * sd_mean, mean_w + 3 * sd_mean
        lower = shift + math.log(low) if low > 0 else -math.inf
        upper = shift + math.log(high)
    else:  # one chain: no spread to bound it by
        lower, upper = -math.inf, math.inf
    result = AISResult(
        log_z=log_z,
        log_z_base=log_z_base,
        log_weights=log_w,
        lower=lower,
        upper=upper,
        ess=float(w.sum() ** 2 / (w**2).sum()),
        base_bias=base.cpu(),
        betas=betas,
        certain_lower=mode_lower_bound(model, data, seed=seed) if check else None,
    )
    if result.trapped:
        warnings.warn(
            f"AIS log Z = {log_z.value:.4g} ± {log_z.stderr:.2g} lies below the sure lower "
            f"bound {result.certain_lower:.4g} (mode_lower_bound): its chains missed most of "
            "the mass; enumerate (exact_log_partition) or anneal more slowly",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def mode_lower_bound(
    rbm: RBMBase,
    data: Tensor | np.ndarray | None = None,
    n_starts: int = 64,
    seed: int = 0,
    max_sweeps: int = 20,
) -> float:
    r"""A sure lower bound on :math:`\log Z`: :math:`\log\sum_{h\in S} p^*(h)` over a set S
    of distinct hidden states, :math:`p^*(h) = \sum_v e^{-E(v,h)}` (``log_marginal_hidden``).

    S holds the local maxima of :math:`\log p^*(h)` reached by zero-temperature sweeps (flip a
    hidden unit when that raises :math:`p^*`) from ``n_starts`` random states and from the
    data's most probable hidden states (at most 128 of them). When a few hidden states hold
    most of the mass, as in a Gaussian RBM with small learned variances, the bound is close to
    :math:`\log Z`, and an AIS estimate far below it is wrong (:attr:`AISResult.trapped`).
    Costs about ``n_hidden`` x sweeps products of (starts, n_hidden) and (n_hidden,
    n_visible) matrices.
    """
    model = _float64(rbm)
    nh, w = model.n_hidden, model.weight
    g = torch.Generator(device=w.device).manual_seed(int(seed))
    with torch.no_grad():
        starts = [torch.rand(n_starts, nh, generator=g, dtype=w.dtype, device=w.device) < 0.5]
        if data is not None:
            seen = (model.prob_h(_batch(model, data, "data", strict=False)) > 0.5).unique(dim=0)
            starts.append(seen[torch.randperm(len(seen), generator=g, device=w.device)[:128]])
        h = torch.cat(starts).to(w.dtype)
        value = model.log_marginal_hidden(h)
        for _ in range(max_sweeps):
            changed = False
            for j in torch.randperm(nh, generator=g, device=w.device).tolist():
                trial = h.clone()
                trial[:, j] = 1 - trial[:, j]
                new = model.log_marginal_hidden(trial)
                better = new > value
                if bool(better.any()):
                    h[better], value, changed = trial[better], torch.where(better, new, value), True
            if not changed:
                break
        return float(torch.logsumexp(model.log_marginal_hidden(h.unique(dim=0)), 0))


# ------------------------------------------------------------------ likelihoods
def average_log_likelihood(
    rbm: RBMBase, data: Tensor | np.ndarray, log_z: float | Estimate | AISResult
) -> Estimate:
    r"""Mean log-likelihood :math:`\frac1N\sum_n [-F(v_n)] - \log Z` in nats per example.

    The standard error adds in quadrature the spread over examples,
    :math:`\mathrm{sd}(-F)/\sqrt N`, and the standard error of ``log_z`` (zero for a float,
    e.g. from :func:`exact_log_partition`).
    """
    if isinstance(log_z, AISResult):
        log_z = log_z.log_z
    lz = log_z if isinstance(log_z, Estimate) else Estimate(float(log_z), 0.0)
    model = _float64(rbm)
    x = _batch(model, data, "data")
    with torch.no_grad():
        neg_f = torch.cat([-model.free_energy(b) for b in x.split(2**14)])
    per_example = mean_estimate(neg_f)  # one example: NaN error, which propagates
    stderr = math.hypot(per_example.stderr, lz.stderr)
    return Estimate(per_example.value - lz.value, stderr, n=per_example.n)
