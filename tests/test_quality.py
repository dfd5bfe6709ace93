"""Sample-quality metrics checked against brute force, closed forms and their null distributions.

MMD against an O(N^2) reference and explicit leave-one-out jackknife; its unbiasedness and
error bars over repeated draws; permutation p-values uniform under the null. Fréchet distance
against the closed form for Gaussians; FID ordering on the digits; the classifier score at its
extremes 1 and K; mode coverage of the ring against the chi-square probability of a 3-sigma
disc. Fixed seeds make every run identical; tolerances are in standard errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import Tensor, nn

from genphys import io
from genphys.data import load_digits, ring_centers, ring_of_gaussians
from genphys.errors import GenphysError
from genphys.evaluation import (
    fid,
    frechet_distance,
    gaussian_frechet_distance,
    inception_score,
    inception_score_from_probs,
    median_bandwidth,
    mmd,
    mode_coverage,
)
from genphys.models import Classifier, ClassifierConfig
from genphys.registry import MODELS

F64 = torch.float64


def brute_mmd2(x: Tensor, y: Tensor, s: float) -> float:
    """The unbiased MMD^2 of Gretton et al. (2012, eq. 3), term by term."""

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-(torch.cdist(a, b) ** 2) / (2 * s * s))

    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return float(
        (kxx.sum() - kxx.trace()) / (m * (m - 1))
        + (kyy.sum() - kyy.trace()) / (n * (n - 1))
        - 2 * k(x, y).mean()
    )


def test_mmd_matches_brute_force_and_explicit_jackknife() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g, dtype=F64)
    y = torch.randn(11, 3, generator=g, dtype=F64) + 0.3
    res = mmd(x, y, bandwidth=0.9, n_permutations=50, generator=torch.Generator().manual_seed(1))
    chunked = mmd(x, y, 0.9, 50, torch.Generator().manual_seed(1), chunk_size=3)
    assert res.value == pytest.approx(brute_mmd2(x, y, 0.9), abs=1e-12)
    assert (chunked.value, chunked.p_value) == pytest.approx((res.value, res.p_value), abs=1e-12)
    loo_x = np.array([brute_mmd2(torch.cat([x[:i], x[i + 1 :]]), y, 0.9) for i in range(7)])
    loo_y = np.array([brute_mmd2(x, torch.cat([y[:j], y[j + 1 :]]), 0.9) for j in range(11)])
    var = (
        6 / 7 * ((loo_x - loo_x.mean()) ** 2).sum() + 10 / 11 * ((loo_y - loo_y.mean()) ** 2).sum()
    )
    assert res.stderr == pytest.approx(math.sqrt(var), rel=1e-9)
    assert res.p_value is not None and 1 / 51 <= res.p_value <= 1
    assert (res.n_x, res.n_y, res.n_permutations) == (7, 11, 50)
    # default bandwidth: median pairwise distance in the pooled sample
    pooled = torch.cat([x, y])
    median = float(np.median(torch.pdist(pooled).numpy()))
    assert mmd(x, y, n_permutations=0).bandwidth == pytest.approx(median, rel=1e-12)
    assert median_bandwidth(pooled) == pytest.approx(median, rel=1e-12)


def test_mmd_is_unbiased_under_the_null_with_calibrated_errors() -> None:
    g = torch.Generator().manual_seed(2)
    for shift in (0.0, 0.5):
        res = [
            mmd(torch.randn(30, 3, generator=g), torch.randn(30, 3, generator=g) + shift, 1.0, 0)
            for _ in range(200)
        ]
        values = np.array([r.value for r in res])
        sd = values.std(ddof=1)
        if shift == 0.0:  # E[MMD^2_u] = 0 exactly; a V-statistic would sit ~ +10 SE above
            assert abs(values.mean()) < 4 * sd / math.sqrt(len(values))
            assert (values < 0).mean() > 0.3
        else:
            assert values.mean() > 10 * sd / math.sqrt(len(values))
        # the jackknife error is close to the spread of repeated draws (conservative at the null)
        assert 0.8 < np.mean([r.stderr for r in res]) / sd < 2.0


def test_mmd_detects_a_mean_shift() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 2, generator=g)
    y = torch.randn(200, 2, generator=g) + torch.tensor([0.5, 0.0])
    res = mmd(x, y, generator=g)
    assert res.p_value is not None and res.p_value < 0.01
    assert res.value > 0  # its error is the spread under this alternative, larger than under
    # the null, so the test is decisive while value / stderr is only about 2
    assert "MMD^2" in str(res) and res.estimate.value == res.value


def test_mmd_permutation_p_values_are_uniform_under_the_null() -> None:
    g = torch.Generator().manual_seed(4)
    p = [
        mmd(torch.randn(15, 2, generator=g), torch.randn(15, 2, generator=g), None, 99, g).p_value
        for _ in range(150)
    ]
    assert scipy.stats.kstest(np.array(p, dtype=float), "uniform").pvalue > 0.01
    assert np.mean(np.array(p, dtype=float) <= 0.05) < 0.12


def test_mmd_refuses_bad_input() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(GenphysError, match="different widths"):
        mmd(x, torch.randn(10, 4))
    with pytest.raises(GenphysError, match="NaN or Inf"):
        mmd(x, torch.full((10, 3), math.nan))
    with pytest.raises(GenphysError, match=">= 3 samples"):
        mmd(x, x[:2])
    with pytest.raises(GenphysError, match="bandwidth"):
        mmd(x, x, bandwidth=0.0)
    with pytest.raises(GenphysError, match="median distance"):
        mmd(torch.ones(5, 3), torch.ones(5, 3))


def test_frechet_distance_of_identical_sets_is_zero() -> None:
    g = torch.Generator().manual_seed(5)
    for n in (500, 10):  # full-rank and rank-deficient covariances
        f = 5 * torch.randn(n, 20, generator=g, dtype=F64) + 3
        assert frechet_distance(f, f) < 1e-6
        assert frechet_distance(f, f + 1) == pytest.approx(20.0, rel=1e-9)


def _with_moments(z: Tensor, mu: Tensor, cov: Tensor) -> Tensor:
    """Rows whose sample mean is ``mu`` and sample covariance (ddof=1) is ``cov`` exactly."""
    c = z - z.mean(0)
    white = c @ torch.linalg.inv(torch.linalg.cholesky(c.T @ c / (len(z) - 1))).T
    return white @ torch.linalg.cholesky(cov).T + mu


def test_frechet_distance_equals_the_closed_form_for_gaussians() -> None:
    g = torch.Generator().manual_seed(6)
    mu1, mu2 = torch.randn(4, generator=g, dtype=F64), torch.randn(4, generator=g, dtype=F64)
    a, b = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64), torch.tensor([4.0, 1.0, 0.5, 0.1])
    exact = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.to(F64).sqrt()) ** 2).sum())
    assert gaussian_frechet_distance(mu1, a.diag(), mu2, b.diag()) == pytest.approx(exact)
    m1, m2 = torch.randn(4, 4, generator=g, dtype=F64), torch.randn(4, 4, generator=g, dtype=F64)
    s1, s2 = m1 @ m1.T, m2 @ m2.T + 0.1 * torch.eye(4, dtype=F64)  # full covariances
    root = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace()) - 2 * np.trace(root)
    assert gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    x = _with_moments(torch.randn(300, 4, generator=g, dtype=F64), mu1, s1)
    y = _with_moments(torch.randn(200, 4, generator=g, dtype=F64), mu2, s2)
    assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-8)


class _Identity(nn.Module):
    """A 'classifier' whose features are its input."""

    def features(self, x: Tensor) -> Tensor:
        return x


def test_fid_bootstrap_error_matches_the_spread_of_repeated_draws() -> None:
    g = torch.Generator().manual_seed(7)
    res = [
        fid(
            torch.randn(400, 4, generator=g),
            torch.randn(400, 4, generator=g) + 0.3,
            _Identity(),
            n_bootstrap=50,
            generator=g,
        )
        for _ in range(40)
    ]
    values = np.array([r.value for r in res])
    assert values.mean() == pytest.approx(4 * 0.3**2, abs=0.1)  # plus an O(D/N) bias
    assert 0.7 < np.mean([r.stderr for r in res]) / values.std(ddof=1) < 1.5


def test_fid_ranks_real_digits_far_below_noise() -> None:
    torch.manual_seed(0)
    digits = load_digits().x
    clf = Classifier(ClassifierConfig(image_shape=(1, 8, 8), feature_dim=32)).train()
    g = torch.Generator().manual_seed(8)
    perm = torch.randperm(len(digits), generator=g)
    real_a, real_b = digits[perm[:800]], digits[perm[800:1600]]
    noise = torch.rand(800, 64, generator=g)
    real = fid(real_a, real_b, clf, n_bootstrap=10, generator=g)
    fake = fid(noise, real_b, clf, n_bootstrap=10, generator=g)
    assert clf.training  # the mode is restored
    assert 0 < real.stderr and real.n == 800
    assert fake.value > 20 * real.value and fake.value - real.value > 10 * fake.stderr
    with pytest.raises(GenphysError, match=r"expects \(N, 64\)"):
        fid(real_a[:, :10], real_b, clf)


def test_inception_score_extremes_and_direct_formula() -> None:
    labels = torch.arange(1000) % 10
    confident = nn.functional.one_hot(labels, 10).double()
    top = inception_score(torch.zeros(1000, 5), lambda x: confident[: len(x)], batch_size=1000)
    assert top.value == pytest.approx(10.0, abs=1e-9) and top.stderr == pytest.approx(0, abs=1e-9)
    const = inception_score_from_probs(torch.full((1000, 10), 0.1), splits=10)
    assert const.value == pytest.approx(1.0, abs=1e-12)
    p = torch.softmax(torch.randn(300, 5, generator=torch.Generator().manual_seed(9)), 1)
    per_split = [
        math.exp(np.mean([scipy.stats.entropy(r, b.mean(0)) for r in b]))
        for b in np.split(p.numpy().astype(np.float64), 3)
    ]
    est = inception_score_from_probs(p, splits=3)
    assert est.value == pytest.approx(np.mean(per_split), rel=1e-6)
    assert est.stderr == pytest.approx(np.std(per_split, ddof=1) / math.sqrt(3), rel=1e-5)
    clf = Classifier(ClassifierConfig(image_shape=(1, 8, 8)))
    assert 1.0 <= inception_score(torch.rand(100, 64), clf, splits=5).value <= 10.0
    with pytest.raises(GenphysError, match="rows summing to 1"):
        inception_score_from_probs(torch.rand(20, 3))
    with pytest.raises(GenphysError, match="splits"):
        inception_score_from_probs(torch.full((5, 2), 0.5), splits=6)


def test_mode_coverage_of_the_ring() -> None:
    g = torch.Generator().manual_seed(10)
    samples, centers = ring_of_gaussians(4000, generator=g)
    cov = mode_coverage(samples, centers, std=0.02)
    assert cov.modes_hit == cov.n_modes == 8 and sum(cov.counts) <= 4000
    expected = 1 - math.exp(-4.5)  # P(chi^2_2 <= 9): a 2-D Gaussian within 3 sigma
    assert abs(cov.high_quality.z_score(expected)) < 4
    assert sum(cov.counts) == round(cov.high_quality.value * 4000)
    three = centers[torch.arange(600) % 3] + 0.02 * torch.randn(600, 2, generator=g)
    stray = centers[3:5] + 0.01  # two good samples in modes 3 and 4: below min_count (15)
    cov3 = mode_coverage(torch.cat([three, stray]), centers, std=0.02)
    assert cov3.modes_hit == 3 and cov3.counts[3] == 1 and cov3.min_count == 16
    assert mode_coverage(samples * 1.5, centers, 0.02).high_quality.value == 0.0
    with pytest.raises(GenphysError, match="different widths"):
        mode_coverage(torch.randn(10, 3), centers, 0.02)


def test_ring_of_gaussians() -> None:
    a, centers = ring_of_gaussians(5000, generator=torch.Generator().manual_seed(11))
    b, _ = ring_of_gaussians(5000, generator=torch.Generator().manual_seed(11))
    assert a.shape == (5000, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.allclose(centers.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(centers, ring_centers(8, 2.0))
    nearest = torch.cdist(a, centers).argmin(1)
    resid = a - centers[nearest]
    assert resid.std().item() == pytest.approx(0.02, rel=0.05)  # 10,000 values: 1% error
    counts = torch.bincount(nearest, minlength=8).numpy()
    assert scipy.stats.chisquare(counts).pvalue > 0.001
    with pytest.raises(GenphysError, match="std"):
        ring_of_gaussians(10, std=-1.0)


def test_classifier_shapes_checks_and_config() -> None:
    clf = Classifier()
    assert sum(p.numel() for p in clf.parameters()) < 250_000
    x = torch.rand(5, 784)
    assert clf(x).shape == (5, 10) and clf.features(x).shape == (5, 128)
    assert torch.allclose(clf.eval().predict_proba(x).sum(1), torch.ones(5))
    assert clf.loss(x, torch.arange(5)).shape == (5,)
    with pytest.raises(GenphysError, match=r"shape \(5, 64\); this classifier expects \(N, 784\)"):
        clf.check_data(torch.rand(5, 64), "samples")
    with pytest.raises(GenphysError, match="NaN or Inf"):
        clf.check_data(torch.full((2, 784), math.inf))
    with pytest.raises(GenphysError, match="empty"):
        clf.check_data(torch.rand(0, 784))
    with pytest.raises(GenphysError, match="too small"):
        ClassifierConfig(image_shape=(1, 8, 8), padding=0)
    with pytest.raises(GenphysError, match="n_features"):
        ClassifierConfig(n_features=64)
    small = ClassifierConfig(image_shape=(1, 8, 8))
    assert (small.padding, small.n_features) == (1, 64)
    assert ClassifierConfig.from_dict(small.to_dict()) == small
    assert MODELS["classifier"] is Classifier


def test_classifier_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    clf, other = Classifier().eval(), Classifier().eval()
    io.save_model(tmp_path / "c.safetensors", clf)
    assert (tmp_path / "c.safetensors").stat().st_size < 1_000_000
    io.load_model_weights(other, tmp_path / "c.safetensors")
    x = torch.rand(3, 784)
    assert torch.equal(clf.features(x), other.features(x))
    rebuilt = io.build_model({"name": "classifier", "config": clf.config.to_dict()})
    assert isinstance(rebuilt, Classifier) and rebuilt.config == clf.config


def test_mmd_is_translation_invariant_in_float64() -> None:
    """The Gaussian kernel depends on differences only: a common offset of 1e8 (features on
    a large scale) must not change MMD^2, its error or its p-value."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    y = torch.randn(50, 3, generator=g, dtype=torch.float64) + 0.3
    a = mmd(x, y, bandwidth=1.0, n_permutations=20, generator=torch.Generator().manual_seed(1))
    b = mmd(x + 1e8, y + 1e8, bandwidth=1.0, n_permutations=20,
            generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert b.value == pytest.approx(a.value, rel=1e-6) and b.stderr == pytest.approx(
        a.stderr, rel=1e-5
    )
    assert b.p_value == a.p_value
