r"""Measures of fit that need no partition function: pseudo-likelihood and reconstruction error.

The pseudo-log-likelihood (Besag 1975) of a binary vector is
:math:`\mathrm{PL}(v) = \sum_i \log p(v_i\mid v_{-i})`; for an RBM each conditional is
:math:`\sigma(F(v^{(i)}) - F(v))`, with :math:`v^{(i)}` the vector with bit :math:`i` flipped,
so :math:`Z` cancels. scikit-learn's ``BernoulliRBM.score_samples`` reports the one-bit
stochastic estimate :math:`n_v\log\sigma(F(v^{(i)}) - F(v))`, :math:`i` uniform.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genphys.errors import GenphysError
from genphys.evaluation.likelihood import _batch, _float64
from genphys.evaluation.stats import Estimate, mean_estimate
from genphys.models.grbm import GaussianBernoulliRBM
from genphys.models.rbm import RBMBase


def _binary(rbm: RBMBase) -> RBMBase:
    """A float64 copy of a Bernoulli RBM; GenphysError for continuous visibles."""
    model = _float64(rbm)
    if isinstance(model, GaussianBernoulliRBM) or not model.binary_visible:
        raise GenphysError("the pseudo-likelihood needs binary visibles (a Bernoulli RBM)")
    return model


def conditional_log_probs(rbm: RBMBase, v: Tensor | np.ndarray, chunk: int = 2**22) -> Tensor:
    r"""All conditionals :math:`\log p(v_i\mid v_{-i}) = \log\sigma(F(v^{(i)}) - F(v))`.

    With :math:`s_i = 1 - 2v_i` and hidden input :math:`a = c + vW`,
    :math:`F(v^{(i)}) - F(v) = -s_i b_i - \sum_j[\mathrm{softplus}(a_j + s_iW_{ij})
    - \mathrm{softplus}(a_j)]`: every flip in one broadcast, in blocks of at most ``chunk``
    elements of the (examples, units, hidden) array.

    Returns:
        A float64 tensor of shape (N, n_visible).
    """
    model = _binary(rbm)
    x = _batch(model, v, "data")
    nv, nh = model.n_visible, model.n_hidden
    units = max(1, min(nv, chunk // nh))
    rows = max(1, chunk // (units * nh))
    out = torch.empty_like(x)
    with torch.no_grad():
        w, b = model.weight, model.visible_bias
        for r in range(0, x.shape[0], rows):
            xb = x[r : r + rows]
            pre = model.hidden_input(xb)
            sp = F.softplus(pre).sum(-1, keepdim=True)
            sign = 1 - 2 * xb
            for i in range(0, nv, units):
                s = sign[:, i : i + units]
                flipped = pre.unsqueeze(1) + s.unsqueeze(-1) * w[i : i + units]
                delta = -s * b[i : i + units] - (F.softplus(flipped).sum(-1) - sp)
                out[r : r + rows, i : i + units] = F.logsigmoid(delta)
    return out


def pseudo_log_likelihood_terms(
    rbm: RBMBase,
    v: Tensor | np.ndarray,
    exact: bool = False,
    generator: torch.Generator | None = None,
    chunk: int = 2**22,
) -> Tensor:
    r"""Per-example pseudo-log-likelihood :math:`\mathrm{PL}(v_n)`, a float64 tensor (N,).

    ``exact=True``: the sum of all :math:`n_v` conditionals (:func:`conditional_log_probs`).
    ``exact=False``: scikit-learn's ``score_samples`` estimator, one unit :math:`i` drawn
    uniformly per example (from ``generator``; the global RNG if None) and
    :math:`n_v\log\sigma(F(v^{(i)}) - F(v))`, an unbiased estimate of the exact sum.
    """
    model = _binary(rbm)
    x = _batch(model, v, "data")
    if exact:
        return conditional_log_probs(model, x, chunk).sum(-1)
    device = x.device if generator is None else generator.device
    idx = torch.randint(0, model.n_visible, (x.shape[0],), generator=generator, device=device)
    idx = idx.to(x.device)
    with torch.no_grad():
        flipped = x.clone()
        rows = torch.arange(x.shape[0], device=x.device)
        flipped[rows, idx] = 1 - flipped[rows, idx]
        delta = model.free_energy(flipped) - model.free_energy(x)
        return model.n_visible * F.logsigmoid(delta)


def pseudo_log_likelihood(
    rbm: RBMBase,
    v: Tensor | np.ndarray,
    exact: bool = False,
    generator: torch.Generator | None = None,
    chunk: int = 2**22,
) -> Estimate:
    r"""Mean pseudo-log-likelihood :math:`\frac1N\sum_n\mathrm{PL}(v_n)` of a Bernoulli RBM.

    The per-example values come from :func:`pseudo_log_likelihood_terms` (exact, or
    scikit-learn's one-random-bit estimator); the standard error is that of their mean, so for
    ``exact=False`` it includes the randomness of the drawn units.

    Raises:
        GenphysError: for a Gaussian RBM, or data that is not binary.
    """
    return mean_estimate(pseudo_log_likelihood_terms(rbm, v, exact, generator, chunk))


def reconstruction_error(rbm: RBMBase, v: Tensor | np.ndarray) -> Estimate:
    r"""Mean squared reconstruction error :math:`\frac1N\sum_n\sum_i (v_{ni} - \hat v_{ni})^2`.

    :math:`\hat v = \mathbb E[v\mid h = p(h\mid v)]` is the mean-field reconstruction
    (``rbm.reconstruct``). Per example the squared error is *summed* over visible units, then
    averaged over examples, with the standard error of that mean. Data need not be binary.
    """
    model = _float64(rbm)
    x = _batch(model, v, "data", strict=False)
    with torch.no_grad():
        err = torch.cat([((b - model.reconstruct(b)) ** 2).sum(-1) for b in x.split(2**14)])
    return mean_estimate(err)
