r"""Sample-quality metrics for any model's samples, flat (N, D); sums accumulate in float64.

* **MMD**: unbiased :math:`\mathrm{MMD}^2` (Gretton et al. 2012) with a Gaussian kernel, its
  jackknife standard error and a permutation-test p-value.
* **Fréchet distance** between Gaussians fitted to two feature sets; on a classifier's
  penultimate features it is the FID (Heusel et al. 2017).
* **Classifier score**, the Inception score (Salimans et al. 2016) with any classifier.
* **Mode coverage** of a mixture with known centres (the ring of :mod:`genphys.data.toy`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.evaluation.stats import Estimate

F64 = torch.float64
_BLOCK = 1 << 22  # elements of one kernel block: 32 MB in float64
_MEDIAN_POINTS = 1000  # the median heuristic uses at most this many pooled points


def _matrix(x: Any, what: str) -> Tensor:
    """A float64 (N, D) tensor from a tensor or array; one clear error if it is not one."""
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise GenphysError(f"{what} must be a non-empty (N, D) array, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise GenphysError(f"{what} contains NaN or Inf values")
    return t.to(F64)


def _pair(x: Any, y: Any, what: tuple[str, str]) -> tuple[Tensor, Tensor]:
    """Two float64 matrices of one width, on the first one's device."""
    a, b = _matrix(x, what[0]), _matrix(y, what[1])
    if a.shape[1] != b.shape[1]:
        raise GenphysError(
            f"{what[0]} and {what[1]} have different widths: {a.shape[1]} and {b.shape[1]}"
        )
    return a, b.to(a.device)


# ------------------------------------------------------------------------------------ MMD
@dataclasses.dataclass(frozen=True)
class MMDResult:
    """Unbiased ``value`` of :math:`\\mathrm{MMD}^2` (can be negative), its jackknife
    ``stderr``, the kernel ``bandwidth`` :math:`\\sigma`, the permutation test's ``p_value``
    (``None`` without permutations), ``n_permutations`` and the sample sizes ``n_x``, ``n_y``."""

    value: float
    stderr: float
    bandwidth: float
    p_value: float | None
    n_permutations: int
    n_x: int
    n_y: int

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.value, self.stderr, n=self.n_x + self.n_y)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        p = "" if self.p_value is None else f" (p = {self.p_value:.3g})"
        return f"MMD^2 = {self.estimate}{p}"


def _median_bandwidth(z: Tensor, generator: torch.Generator | None) -> float:
    if z.shape[0] > _MEDIAN_POINTS:
        pick = torch.randperm(z.shape[0], generator=generator)[:_MEDIAN_POINTS]
        z = z[pick.to(z.device)]
    med = float(np.median(torch.pdist(z).cpu().numpy()))
    if not med > 0:
        raise GenphysError("the pooled samples' median distance is 0; pass a bandwidth")
    return med


def median_bandwidth(x: Any, generator: torch.Generator | None = None) -> float:
    """The median heuristic: the median Euclidean distance between rows of ``x`` (N, D) (of
    1000 random ones, drawn with ``generator``, when N is larger); :func:`mmd`'s default."""
    return _median_bandwidth(_matrix(x, "samples"), generator)


def _u_stat(s_xx: Tensor, s_yy: Tensor, s_xy: Tensor, m: int, n: int) -> Tensor:
    """MMD^2_u from kernel sums over distinct x pairs, distinct y pairs and x-y pairs."""
    return s_xx / (m * (m - 1)) + s_yy / (n * (n - 1)) - 2 * s_xy / (m * n)


def mmd(
    x: Any,
    y: Any,
    bandwidth: float | None = None,
    n_permutations: int = 200,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> MMDResult:
    r"""Unbiased :math:`\mathrm{MMD}^2` between samples ``x`` (m, D) and ``y`` (n, D).

    The U-statistic of Gretton et al. (2012, eq. 3), :math:`\frac{S_{xx}}{m(m-1)} +
    \frac{S_{yy}}{n(n-1)} - \frac{2S_{xy}}{mn}`, with :math:`S` the sums of
    :math:`k(a,b) = \exp(-\|a-b\|^2/2\sigma^2)` over distinct pairs; for a fixed :math:`\sigma`
    its expectation is exactly :math:`\mathrm{MMD}^2`, so under the null it scatters around 0.
    The standard error is the two-sample jackknife (Arvesen 1969),
    :math:`\frac{m-1}{m}\sum_i(\hat\theta_{(i)}-\bar\theta_x)^2 + \frac{n-1}{n}\sum_j
    (\hat\theta_{(j)}-\bar\theta_y)^2`, each leave-one-out value following from the kernel's
    row sums; at the null, where the statistic is degenerate, it errs on the large side.
    The p-value relabels the pooled sample ``n_permutations`` times: :math:`(1 + \#\{
    \text{permuted} \ge \text{observed}\})/(1 + n_\text{perm})`, an exact test.

    The kernel is built in blocks of ``chunk_size`` rows (default: about 32 MB each): memory
    :math:`O(\text{chunk}\,(m+n) + (m+n)\,n_\text{perm})`, time :math:`O((m+n)^2(D+n_\text{perm}))`
    (10,000 against 10,000 images of 784 pixels: about 20 s on two cores).

    Args:
        x, y: samples, (m, D) and (n, D), with m, n >= 3.
        bandwidth: :math:`\sigma`; ``None`` takes the median heuristic, the median Euclidean
            distance between points of the pooled sample (of 1000 random ones if it is larger).
        n_permutations: permutations for the p-value; 0 skips the test.
        generator: random generator of the permutations and the median's subset.
        chunk_size: rows per kernel block.
    """
    xs, ys = _pair(x, y, ("x", "y"))
    m, n = xs.shape[0], ys.shape[0]
    step = chunk_size if chunk_size is not None else max(1, _BLOCK // (m + n))
    if min(m, n) < 3 or n_permutations < 0 or step < 1:
        raise GenphysError(
            f"MMD needs >= 3 samples per set, n_permutations >= 0 and chunk_size >= 1; got "
            f"{m} and {n} samples, {n_permutations}, {chunk_size}"
        )
    z, total = torch.cat([xs, ys]), m + n
    z = z - z.mean(
        0
    )  # the kernel is translation-invariant; centring keeps |a|^2 + |b|^2 - 2ab exact
    if bandwidth is None:
        bandwidth = _median_bandwidth(z, generator)
    elif not (math.isfinite(bandwidth) and bandwidth > 0):
        raise GenphysError(f"bandwidth must be a finite number > 0, got {bandwidth}")
    labels = torch.zeros(total, n_permutations + 1, dtype=F64)  # column 0: the observed split
    labels[:m, 0] = 1.0
    for p in range(1, n_permutations + 1):
        labels[torch.randperm(total, generator=generator)[:m], p] = 1.0
    labels = labels.to(z.device)
    sq = (z * z).sum(1)
    to_x = torch.zeros(total, dtype=F64, device=z.device)  # row sums over the x columns
    to_y = torch.zeros_like(to_x)  # ... over the y columns (the diagonal excluded)
    quad = torch.zeros(n_permutations + 1, dtype=F64, device=z.device)  # a^T K a per labelling
    for start in range(0, total, step):
        stop = min(start + step, total)
        d2 = torch.addmm(sq[start:stop, None] + sq[None, :], z[start:stop], z.T, alpha=-2.0)
        k = torch.exp(d2.clamp_min_(0.0).mul_(-0.5 / bandwidth**2))
        rows = torch.arange(stop - start, device=z.device)
        k[rows, rows + start] = 0.0
        to_x[start:stop], to_y[start:stop] = k[:, :m].sum(1), k[:, m:].sum(1)
        quad += (labels[start:stop] * (k @ labels)).sum(0)
    # labels a (1 = x): S_xx = a'Ka, S_xy = a'r - a'Ka, S_yy = 1'r - 2a'r + a'Ka (r = K 1)
    r = to_x + to_y
    lin = labels.T @ r
    stats = _u_stat(quad, r.sum() - 2 * lin + quad, lin - quad, m, n)
    p_value = None
    if n_permutations:
        p_value = (1 + int((stats[1:] >= stats[0] - 1e-12).sum())) / (1 + n_permutations)
    s_xx, s_yy, s_xy = to_x[:m].sum(), to_y[m:].sum(), to_y[:m].sum()
    loo_x = _u_stat(s_xx - 2 * to_x[:m], s_yy, s_xy - to_y[:m], m - 1, n)
    loo_y = _u_stat(s_xx, s_yy - 2 * to_y[m:], s_xy - to_x[m:], m, n - 1)
    var = (m - 1) * loo_x.var(correction=0) + (n - 1) * loo_y.var(correction=0)
    return MMDResult(
        float(stats[0]), math.sqrt(float(var)), float(bandwidth), p_value, n_permutations, m, n
    )


# ------------------------------------------------------------------------ Fréchet / FID
def _factor(cov: Tensor) -> Tensor:
    """B with B^T B = cov for a symmetric PSD ``cov``: sqrt(s) V^T from its SVD."""
    _, s, vh = torch.linalg.svd(0.5 * (cov + cov.T))
    return s.sqrt()[:, None] * vh


def _frechet(mu1: Tensor, b1: Tensor, mu2: Tensor, b2: Tensor) -> float:
    """Fréchet distance of N(mu1, b1^T b1) and N(mu2, b2^T b2)."""
    tr_sqrt = torch.linalg.svdvals(b2 @ b1.T).sum()
    dist = ((mu1 - mu2) ** 2).sum() + (b1**2).sum() + (b2**2).sum() - 2.0 * tr_sqrt
    return max(float(dist), 0.0)


def gaussian_frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    r"""Fréchet (2-Wasserstein squared) distance between :math:`N(\mu_1,\Sigma_1)` and
    :math:`N(\mu_2,\Sigma_2)`: :math:`\|\mu_1-\mu_2\|^2 + \mathrm{tr}\,\Sigma_1 + \mathrm{tr}\,
    \Sigma_2 - 2\,\mathrm{tr}(\Sigma_1\Sigma_2)^{1/2}`, in float64.

    With :math:`\Sigma_i = B_i^TB_i`, :math:`\Sigma_1\Sigma_2` has the eigenvalues of the
    symmetric PSD :math:`(B_2B_1^T)^T(B_2B_1^T)`, so the trace is the sum of the singular values
    of :math:`B_2B_1^T`; :math:`B_i = S_i^{1/2}V_i^T` from the SVD of the symmetric
    :math:`\Sigma_i` (its eigen-decomposition with rounding's tiny negative eigenvalues taken as
    their absolute values, never NaN). Singular values rather than square roots of eigenvalues
    keep null directions (dead features, fewer samples than features) from adding
    :math:`\sqrt{\text{rounding}}` terms; traces are :math:`\|B_i\|_F^2`, so identical
    covariances give 0 to rounding. The result is clipped at 0.
    """
    mu1, mu2, cov1, cov2 = (t.to(F64) for t in (mu1, mu2, cov1, cov2))
    return _frechet(mu1, _factor(cov1), mu2, _factor(cov2))


def _gaussian_fit(f: Tensor) -> tuple[Tensor, Tensor]:
    """Sample mean and a factor of the sample covariance (ddof=1) of rows f."""
    c = f - f.mean(0)
    return f.mean(0), _factor(c.T @ c / (f.shape[0] - 1))


def frechet_distance(feat_x: Any, feat_y: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F): sample means and
    covariances (``ddof=1``) into :func:`gaussian_frechet_distance`. Identical sets give 0."""
    fx, fy = _pair(feat_x, feat_y, ("features of x", "features of y"))
    if min(fx.shape[0], fy.shape[0]) < 2:
        raise GenphysError("a covariance needs at least 2 feature vectors in each set")
    return _frechet(*_gaussian_fit(fx), *_gaussian_fit(fy))


def _batched(model: Any, method: str, x: Any, batch_size: int, what: str) -> Tensor:
    """``model.<method>`` (or ``model(...)``) on batches, eval mode, no grad, float64 on CPU."""
    fn = getattr(model, method, model)
    xt = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    if hasattr(model, "check_data"):
        model.check_data(xt, what)
    module = isinstance(model, torch.nn.Module)
    param, training = (next(model.parameters(), None), model.training) if module else (None, 0)
    if module:
        model.eval()
    try:
        with torch.no_grad():
            out = [
                torch.as_tensor(fn(b if param is None else b.to(param.device, param.dtype)))
                for b in xt.split(batch_size)
            ]
    finally:
        if training:
            model.train()
    return torch.cat([o.to("cpu", F64) for o in out])


def fid(
    samples: Any,
    reference: Any,
    classifier: Any,
    n_bootstrap: int = 100,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> Estimate:
    r"""FID: Fréchet distance between ``classifier.features`` of ``samples`` and ``reference``.

    The value is the plug-in distance of the full sets; its standard error the bootstrap
    standard deviation (both sets resampled with replacement ``n_bootstrap`` times). That is
    the sampling spread, not the bias: FID is biased upward by a term of order :math:`1/N`
    (Chong and Forsyth 2020), so compare models at equal N against the same reference set.

    Args:
        samples, reference: flat images (N, C*H*W) in the classifier's input range.
        classifier: a module with ``features`` (e.g. :class:`genphys.models.Classifier`); it
            runs in eval mode without gradients, in batches of ``batch_size``.
        n_bootstrap: bootstrap resamples (fewer than 2: the error is NaN).
        generator: random generator of the bootstrap.
    """
    if not hasattr(classifier, "features"):
        raise GenphysError(f"the FID needs a classifier with features(), got {classifier!r}")
    fx = _batched(classifier, "features", samples, batch_size, "samples")
    fy = _batched(classifier, "features", reference, batch_size, "reference")
    value = frechet_distance(fx, fy)
    boot = []
    for _ in range(n_bootstrap):
        ix, iy = (torch.randint(len(f), (len(f),), generator=generator) for f in (fx, fy))
        boot.append(_frechet(*_gaussian_fit(fx[ix]), *_gaussian_fit(fy[iy])))
    stderr = float(np.std(boot, ddof=1)) if len(boot) > 1 else math.nan
    return Estimate(value, stderr, n=int(fx.shape[0]))


# --------------------------------------------------------------------- classifier score
def inception_score_from_probs(probs: Any, splits: int = 10) -> Estimate:
    r"""Classifier score :math:`\exp\big(E_x KL(p(y|x)\,\|\,p(y))\big)` from probabilities.

    The rows (N, K) are cut into ``splits`` consecutive blocks (shuffle first if their order
    means something); in each, :math:`p(y)` is the mean row and the score the exp of the mean
    KL (:math:`0\log 0 = 0`). Returns the mean over blocks and its standard error (Salimans et
    al. report the standard deviation). It lies in [1, K]: 1 when every prediction is the same,
    K when confident and balanced; smaller blocks bias it, so compare at equal block sizes.
    """
    p = _matrix(probs, "class probabilities")
    if bool((p < 0).any()) or float((p.sum(1) - 1).abs().max()) > 1e-4:
        raise GenphysError("class probabilities must be >= 0 with rows summing to 1")
    if not 1 <= splits <= p.shape[0]:
        raise GenphysError(f"splits must be in [1, {p.shape[0]}] (the samples), got {splits}")
    scores = []
    for part in torch.tensor_split(p, splits):
        marginal = part.mean(0, keepdim=True)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(1).mean()
        scores.append(math.exp(float(kl)))
    stderr = float(np.std(scores, ddof=1) / math.sqrt(splits)) if splits > 1 else math.nan
    return Estimate(float(np.mean(scores)), stderr, n=splits)


def inception_score(
    samples: Any, classifier: Any, splits: int = 10, batch_size: int = 500
) -> Estimate:
    """:func:`inception_score_from_probs` of ``classifier.predict_proba(samples)`` (or of
    ``classifier(samples)`` for a plain function returning probabilities), batched, no grad."""
    return inception_score_from_probs(
        _batched(classifier, "predict_proba", samples, batch_size, "samples"), splits
    )


# ------------------------------------------------------------------------ mode coverage
@dataclasses.dataclass(frozen=True)
class ModeCoverage:
    """``modes_hit`` of ``n_modes`` (holding at least ``min_count`` high-quality samples), the
    ``high_quality`` fraction with its binomial error :math:`\\sqrt{f(1-f)/N}`, and the
    high-quality ``counts`` per mode."""

    modes_hit: int
    n_modes: int
    high_quality: Estimate
    counts: tuple[int, ...]
    min_count: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def mode_coverage(
    samples: Any, centers: Any, std: float, threshold: float = 3.0, min_share: float = 0.2
) -> ModeCoverage:
    r"""Count the modes of a mixture with known ``centers`` (K, D) and within-mode ``std``.

    A sample is **high quality** if its nearest centre lies within ``threshold * std``
    (Euclidean) and then counts for that mode. A mode is **hit** if it holds at least
    :math:`\max(1, \lceil \text{min\_share}\cdot N/K\rceil)` such samples: by default a fifth
    of the share a uniform mixture would give it. For exact
    samples of an isotropic Gaussian mode the high-quality fraction is
    :math:`P(\chi^2_D \le \text{threshold}^2)`: 0.989 in 2-D at 3 standard deviations.
    """
    s, c = _pair(samples, centers, ("samples", "centers"))
    if not (0 < std < math.inf and 0 < threshold < math.inf and 0 <= min_share <= 1):
        raise GenphysError(
            f"need std > 0, threshold > 0, min_share in [0, 1]; got {std}, {threshold}, {min_share}"
        )
    dist, nearest = torch.cdist(s, c).min(1)
    good = dist <= threshold * std
    n, k = s.shape[0], c.shape[0]
    counts = torch.bincount(nearest[good], minlength=k)
    min_count = max(1, math.ceil(min_share * n / k))
    f = float(good.to(F64).mean())
    quality = Estimate(f, math.sqrt(f * (1 - f) / n), n=n)
    hit = int((counts >= min_count).sum())
    return ModeCoverage(hit, k, quality, tuple(int(v) for v in counts), min_count)
