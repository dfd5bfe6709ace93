"""Exact references shared by the tests: enumeration of small RBMs and a pooled chi-square."""

from __future__ import annotations

import numpy as np
import scipy.stats
import torch

from genphys.models.grbm import GaussianBernoulliRBM
from genphys.models.rbm import BernoulliRBM

D = torch.float64


def all_states(n: int) -> torch.Tensor:
    """All 2^n binary vectors as float64 rows; row k is the binary expansion of k."""
    codes = torch.arange(2**n)
    return ((codes[:, None] >> torch.arange(n)) & 1).to(D)


def codes_of(v: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`all_states`: the integer code of each binary row."""
    return (v.long() << torch.arange(v.shape[1])).sum(1)


def bernoulli_rbm(
    nv: int, nh: int, w_std: float, b_std: float = 0.5, seed: int = 0, dtype=D
) -> BernoulliRBM:
    """A random Bernoulli RBM with Gaussian weights and biases of the given scales."""
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(n_visible=nv, n_hidden=nh).to(dtype)
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(nv, nh, generator=g, dtype=dtype) * w_std)
        rbm.visible_bias.copy_(torch.randn(nv, generator=g, dtype=dtype) * b_std)
        rbm.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=dtype) * b_std)
    return rbm


def gaussian_rbm(
    nv: int, nh: int, seed: int = 0, learn_sigma: bool = True, dtype=D
) -> GaussianBernoulliRBM:
    """A random Gaussian-Bernoulli RBM (random per-unit sigma when learned)."""
    g = torch.Generator().manual_seed(seed)
    rbm = GaussianBernoulliRBM(n_visible=nv, n_hidden=nh, learn_sigma=learn_sigma).to(dtype)
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(nv, nh, generator=g, dtype=dtype) * 0.8)
        rbm.visible_bias.copy_(torch.randn(nv, generator=g, dtype=dtype))
        rbm.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=dtype) * 0.5)
        if learn_sigma:
            rbm.log_sigma.copy_(torch.randn(nv, generator=g, dtype=dtype) * 0.3)
    return rbm


def joint_log_weights(rbm, vs: torch.Tensor, hs: torch.Tensor) -> torch.Tensor:
    """-E(v, h) for every pair, shape (len(vs), len(hs))."""
    v = vs.repeat_interleave(len(hs), 0)
    h = hs.repeat(len(vs), 1)
    with torch.no_grad():
        return -rbm.energy(v, h).reshape(len(vs), len(hs))


def exact_p(rbm: BernoulliRBM, beta: float = 1.0, base: torch.Tensor | None = None) -> torch.Tensor:
    """p(v) (or the tempered p*_beta with base bias ``base``) over all_states(n_visible)."""
    vs = all_states(rbm.n_visible).to(rbm.weight.dtype)
    with torch.no_grad():
        if base is None:
            return (-rbm.free_energy(vs)).softmax(0)
        return rbm.tempered_log_prob(vs, beta, base).softmax(0)


def chisquare_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square p-value, pooling bins with expected count < 5 into one bin."""
    expected = probs / probs.sum() * counts.sum()
    rare = expected < 5
    obs = np.append(counts[~rare], counts[rare].sum())
    exp = np.append(expected[~rare], expected[rare].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(scipy.stats.chisquare(obs, exp).pvalue)
