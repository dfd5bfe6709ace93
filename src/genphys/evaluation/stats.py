r"""Monte Carlo estimates with standard errors and autocorrelation times.

Conventions used throughout :mod:`genphys`:

* The **integrated autocorrelation time** is :math:`\tau = 1 + 2\sum_{t\ge 1}\rho(t)`, with
  :math:`\rho` the normalised autocorrelation function. Independent samples have
  :math:`\tau = 1`; an AR(1) chain :math:`x_t = \rho x_{t-1} + \epsilon_t` has
  :math:`\tau = (1+\rho)/(1-\rho)`. (Sokal's notes use :math:`\tau/2`; ours is the factor by
  which correlation inflates the variance of a mean.)
* The **standard error of an MCMC mean** of :math:`N` correlated samples with variance
  :math:`\sigma^2` is :math:`\sqrt{\tau\sigma^2/N}`, i.e. :math:`N/\tau` effective samples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genphys.errors import GenphysError

ArrayLike = Tensor | np.ndarray


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: ``value ± stderr``.

    Attributes:
        value: the point estimate.
        stderr: its standard error (one standard deviation of the estimator).
        n: number of samples (chains, examples or MCMC steps) behind it, where meaningful.
        tau: integrated autocorrelation time (``1 + 2 sum rho``) where it was estimated.

    >>> str(Estimate(-85.3123, 0.1234))
    '-85.31 ± 0.12'
    """

    value: float
    stderr: float
    n: int | None = None
    tau: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the four fields."""
        return dataclasses.asdict(self)

    def z_score(self, exact: float) -> float:
        """(value - exact) / stderr: how many standard errors the estimate is from ``exact``."""
        diff = self.value - float(exact)
        if math.isnan(self.stderr):  # one sample: no spread to measure by
            return math.nan
        if self.stderr > 0:
            return diff / self.stderr
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)

    def __str__(self) -> str:
        err = self.stderr
        if not math.isfinite(err) or err <= 0 or not math.isfinite(self.value):
            return f"{self.value:.6g} ± {err:.2g}"
        decimals = min(12, max(0, 1 - math.floor(math.log10(err))))
        return f"{self.value:.{decimals}f} ± {err:.{decimals}f}"


def _to_numpy(x: ArrayLike | Any, what: str = "samples") -> np.ndarray:
    """A float64 NumPy copy of a tensor, array or sequence."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    out = np.asarray(x, dtype=np.float64)
    if out.size == 0:
        raise GenphysError(f"{what} is empty: an estimate needs at least one sample")
    return out


def mean_estimate(x: ArrayLike) -> Estimate:
    r"""Sample mean of i.i.d. samples with standard error :math:`s/\sqrt{N}` (``ddof=1``).

    All elements of ``x`` are pooled. With one sample the standard error is NaN.
    """
    a = _to_numpy(x).ravel()
    n = a.size
    if not np.isfinite(a).all():
        raise GenphysError("samples contain NaN or Inf values")
    stderr = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Estimate(float(a.mean()), stderr, n=n)


def log_mean_exp_estimate(log_w: ArrayLike) -> Estimate:
    r""":math:`\log \frac1M\sum_m e^{\ell_m}` with its delta-method standard error.

    With :math:`w_m = e^{\ell_m - \max\ell}` (shifted so nothing overflows),
    the value is :math:`\max\ell + \log\bar w` and the standard error of the log is
    :math:`\mathrm{sd}(w)/(\sqrt M\,\bar w)` (delta method, ``ddof=1``). This is the estimator of
    :math:`\log Z/Z_A` in annealed importance sampling, and of the IWAE bound.
    """
    a = _to_numpy(log_w, "log weights").ravel()
    if np.isnan(a).any() or np.isposinf(a).any():
        raise GenphysError("log weights contain NaN or +Inf: the estimator diverged")
    m = a.size
    top = float(a.max())
    if top == -math.inf:
        return Estimate(-math.inf, math.nan, n=m)
    w = np.exp(a - top)
    mean_w = float(w.mean())
    stderr = float(w.std(ddof=1) / (math.sqrt(m) * mean_w)) if m > 1 else math.nan
    return Estimate(top + math.log(mean_w), stderr, n=m)


def _as_chains(x: ArrayLike) -> np.ndarray:
    """A (T, chains) float64 array from a 1-D chain or a (T, chains) array."""
    a = _to_numpy(x, "chain")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise GenphysError(f"a chain must be 1-D (T,) or 2-D (T, chains), got shape {a.shape}")
    if a.shape[0] < 2:
        raise GenphysError(f"a chain needs at least 2 steps, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise GenphysError("chain contains NaN or Inf values")
    return a


def autocorrelation(x: ArrayLike) -> np.ndarray:
    r"""Normalised autocorrelation :math:`\rho(t)`, :math:`t = 0..T-1`, averaged over chains.

    Computed by FFT (zero-padded, so not circular) from each chain's autocovariance about the
    mean of all chains, :math:`C(t) = \frac1T\sum_s (x_s-\bar x)(x_{s+t}-\bar x)`; the
    chains' autocovariances are averaged, then divided by :math:`C(0)`. (About each chain's
    own mean, every chain's autocovariances would sum to zero, which biases :math:`\tau` low
    by about :math:`\tau/T` per lag: by half for chains of 10 tau. Chains that disagree in
    their means show as long correlations, as they should.) A constant chain gives
    :math:`\rho = (1, 0, 0, \dots)`.
    """
    a = _as_chains(x)
    t = a.shape[0]
    if np.ptp(a) == 0:  # constant: the mean's rounding would leave a constant offset
        out = np.zeros(t)
        out[0] = 1.0
        return out
    d = a - a.mean()
    size = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(d, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:t].mean(1) / t
    if acov[0] <= 0:
        out = np.zeros(t)
        out[0] = 1.0
        return out
    return acov / acov[0]


def integrated_autocorrelation_time(x: ArrayLike, c: float = 5.0) -> float:
    r"""Integrated autocorrelation time :math:`\tau = 1 + 2\sum_{t=1}^{M}\rho(t)`.

    Sokal's automatic windowing: the window :math:`M` is the smallest lag with
    :math:`M \ge c\,\tau(M)`; :math:`c \approx 5` balances the bias of truncating the sum
    against the variance of summing noise. Reliable when the chain is much longer than
    :math:`c\tau` (say :math:`T > 50\tau`).

    Args:
        x: a chain of shape (T,) or several of shape (T, chains); their autocorrelation
            functions are averaged (after Goodman and Weare / emcee).
        c: window constant.

    Returns:
        :math:`\tau \ge` about 1 for correlated chains; when :math:`\tau(1) < 1` (the window
        closed at once, as for anticorrelated chains) Geyer's initial positive sequence,
        usually below 1 then but never negative (0 when the first pair is not positive);
        exactly 1 for a constant chain.
    """
    if not (c > 0 and math.isfinite(c)):
        raise GenphysError(f"the window constant c must be a finite number > 0, got {c}")
    rho = autocorrelation(x)
    taus = 2.0 * np.cumsum(rho) - 1.0  # taus[M] = 1 + 2 sum_{t=1}^{M} rho(t)
    window = np.arange(taus.size) >= c * taus
    m = int(np.argmax(window)) if window.any() else taus.size - 1
    if taus[m] >= 1.0:
        return float(taus[m])
    # anticorrelated (the window closed at once): Geyer's initial positive sequence sums
    # the pairs rho(2k) + rho(2k+1) while they are positive; (1+r)/(1-r) for AR(1) with r < 0
    pairs = rho[: rho.size // 2 * 2].reshape(-1, 2).sum(1)
    k = int(np.argmax(pairs <= 0)) if (pairs <= 0).any() else pairs.size
    return float(max(2.0 * pairs[:k].sum() - 1.0, 0.0))


def mcmc_estimate(x: ArrayLike, c: float = 5.0) -> Estimate:
    r"""Mean of MCMC samples with standard error :math:`\sqrt{\tau\sigma^2/N}`.

    Args:
        x: a chain (T,) or chains (T, chains); all ``N`` values are pooled for the mean and
            variance :math:`\sigma^2`, and :math:`\tau` comes from
            :func:`integrated_autocorrelation_time`, floored at 1: an anticorrelated chain
            (true tau < 1) gets the conservative independent-sample error, and a short chain,
            whose window can close at a lag with tau near 0, no longer gets an error near 0.
        c: Sokal window constant.
    """
    a = _as_chains(x)
    if a.size < 2:
        raise GenphysError(f"an MCMC error needs at least 2 samples, got {a.size}")
    tau = max(1.0, integrated_autocorrelation_time(a, c))
    n = a.size
    var = float(a.var(ddof=1)) if np.ptp(a) > 0 else 0.0  # not the mean's rounding
    return Estimate(float(a.mean()), math.sqrt(tau * var / n), n=n, tau=tau)


def _blocking_1d(x: np.ndarray) -> tuple[float, int]:
    """Variance of the mean of a 1-D chain by blocking; returns (var, number of samples used)."""
    d = int(math.log2(x.size))
    x = x[x.size - 2**d :]  # keep the last 2^d samples (the start is the least equilibrated)
    n0 = x.size
    var_means = []
    while x.size >= 2:
        var_means.append(x.var(ddof=1) / x.size)
        x = 0.5 * (x[0::2] + x[1::2])
    if var_means[0] == 0:
        return 0.0, n0
    for k, var_mean in enumerate(var_means):  # block size 2^k
        if 2.0 ** (3 * k) > 2 * n0 * (var_mean / var_means[0]) ** 2:
            return float(var_mean), n0
    return float(var_means[-1]), n0


def binning_error(x: ArrayLike) -> Estimate:
    r"""Mean with the standard error from a blocking (binning) analysis.

    Consecutive samples are averaged in pairs, level after level (Flyvbjerg and Petersen 1989);
    the naive error of the blocked series grows until blocks of size :math:`B` are independent,
    then plateaus. The block size is chosen by the criterion of Lee, Needs and Drummond (2011):
    the smallest :math:`B = 2^k` with :math:`B^3 > 2N\,(\mathrm{se}_B/\mathrm{se}_1)^4`, which
    balances the bias of too-small blocks (about :math:`\tau/B`) against the noise of too few.

    Only the last :math:`2^{\lfloor\log_2 T\rfloor}` steps of each chain are used. For a
    (T, chains) array the chains are treated as independent and their errors combined. The
    implied :math:`\tau = N\,\mathrm{se}^2/\sigma^2` is reported in ``tau``.
    """
    a = _as_chains(x)
    if a.shape[0] < 4:
        raise GenphysError(f"binning needs at least 4 steps per chain, got {a.shape[0]}")
    results = [_blocking_1d(a[:, j].copy()) for j in range(a.shape[1])]
    n_used = results[0][1]
    used = a[a.shape[0] - n_used :]
    var_mean = sum(v for v, _ in results) / a.shape[1] ** 2
    var = float(used.var(ddof=1))
    tau = var_mean * used.size / var if var > 0 else 1.0
    return Estimate(float(used.mean()), math.sqrt(var_mean), n=used.size, tau=tau)
