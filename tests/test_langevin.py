"""Langevin (ULA/MALA), the replay buffer and Gaussian Gibbs against exact answers.

Tolerances: moments must lie within 4 standard errors of the exact value, the errors being
MCMC errors sqrt(tau var / N) with the integrated autocorrelation time measured on the chains
(genphys.evaluation.stats); Kolmogorov-Smirnov tests use the final states of independent chains
(so the samples are i.i.d.) and require p > 0.001. Seeds are fixed, so the tests are
deterministic; the tolerances say how unlucky a seed would have to be to fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from genphys.errors import GenphysError
from genphys.evaluation.stats import integrated_autocorrelation_time, mcmc_estimate
from genphys.samplers import (
    GaussianGibbsSampler,
    GaussianGibbsState,
    LangevinSampler,
    LangevinState,
    ReplayBuffer,
    langevin_sample,
)

F64 = torch.float64
COURSE_COV = [[1.0, 0.5], [0.5, 1.0]]
Z_MAX = 4.0


def gaussian_energy(cov: list[list[float]]):
    precision = torch.linalg.inv(torch.tensor(cov, dtype=F64))
    return lambda x: 0.5 * ((x @ precision) * x).sum(1)


def double_well(x: torch.Tensor) -> torch.Tensor:
    """E(x) = 2 (x^2 - 1)^2 + x / 2: wells near -1 (E = -0.5) and +1 (E = 0.5), E(0) = 2."""
    return 2.0 * (x[:, 0] ** 2 - 1.0) ** 2 + 0.5 * x[:, 0]


def double_well_exact() -> tuple[np.ndarray, np.ndarray, float]:
    """Grid, CDF and mean of exp(-E) / Z by the trapezoidal rule (E > 100 beyond the grid)."""
    grid = np.linspace(-3.0, 3.0, 30001)
    p = np.exp(-(2.0 * (grid**2 - 1.0) ** 2 + 0.5 * grid))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(grid))])
    z = cdf[-1]
    return grid, cdf / z, float(np.trapezoid(grid * p, grid) / z)


def assert_close(samples: torch.Tensor, exact: float) -> None:
    """The MCMC mean of (T, chains) samples is within Z_MAX standard errors of ``exact``."""
    est = mcmc_estimate(samples)
    assert abs(est.z_score(exact)) < Z_MAX, (str(est), est.tau, exact)


def test_mala_reproduces_the_correlated_gaussian() -> None:
    energy = gaussian_energy(COURSE_COV)
    sampler = LangevinSampler(step_size=0.5, metropolis=True)  # ULA would be 25% off here
    state = sampler.init_state(torch.tensor([[3.0, -3.0]], dtype=F64).repeat(1000, 1), seed=1)
    _, state = sampler.sample(energy, state, 100)  # burn-in
    trace, state = sampler.sample(energy, state, snapshots=range(1, 201))  # (200, 1000, 2)
    assert 0.6 < state.acceptance_rate < 0.95 and state.proposals == 300 * 1000
    for i in (0, 1):  # marginals N(0, 1): KS on the last sample of the independent chains
        assert stats.kstest(trace[-1, :, i].numpy(), "norm").pvalue > 1e-3
    x0, x1 = trace[..., 0], trace[..., 1]
    for values, exact in ((x0, 0.0), (x1, 0.0), (x0**2, 1.0), (x1**2, 1.0), (x0 * x1, 0.5)):
        assert_close(values, exact)


def test_mala_reproduces_an_asymmetric_double_well() -> None:
    grid, cdf, mean = double_well_exact()
    sampler = LangevinSampler(step_size=0.04, metropolis=True)
    # all chains start in the shallower well: the populations must equilibrate by hopping
    state = sampler.init_state(torch.ones(1000, 1, dtype=F64), seed=2)
    _, state = sampler.sample(double_well, state, 1500)
    trace, state = sampler.sample(double_well, state, snapshots=range(1, 1001))
    final = trace[-1, :, 0].numpy()
    assert stats.kstest(final, lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3
    assert_close(trace[..., 0], mean)  # about -0.40; tau is about 35 steps
    assert_close((trace[..., 0] < 0).to(F64), float(np.interp(0.0, grid, cdf)))


def test_mala_rejects_proposals_outside_the_support() -> None:
    """The half-normal (E = x^2/2 for x > 0, +inf elsewhere): KS against it, and its mean
    sqrt(2/pi); proposals below 0 are rejected, not an error."""

    def half_normal(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, 0] > 0, 0.5 * x[:, 0] ** 2, math.inf)

    sampler = LangevinSampler(step_size=0.3, metropolis=True)
    state = sampler.init_state(torch.full((1000, 1), 0.5, dtype=F64), seed=4)
    _, state = sampler.sample(half_normal, state, 300)
    trace, state = sampler.sample(half_normal, state, snapshots=range(1, 301))
    assert bool((trace > 0).all()) and 0.3 < state.acceptance_rate < 0.95
    assert stats.kstest(trace[-1, :, 0].numpy(), stats.halfnorm.cdf).pvalue > 1e-3
    assert_close(trace[..., 0], math.sqrt(2 / math.pi))
    with pytest.raises(GenphysError, match="NaN or Inf"):  # the start itself must be inside
        sampler.sample(half_normal, sampler.init_state(-torch.ones(4, 1, dtype=F64)), 1)


def test_ula_bias_is_first_order_in_the_step_size() -> None:
    r"""For E = x^2 / (2 s^2), ULA is the AR(1) recursion x' = (1 - h/s^2) x + sigma w, whose
    stationary variance v solves v = (1 - h/s^2)^2 v + sigma^2:

        v = sigma^2 / (2h/s^2 - h^2/s^4) = T s^2 / (1 - h/(2 s^2)),  T = sigma^2 / (2h).

    With sigma = sqrt(2h) (T = 1) the bias v - s^2 = s^2 (h/2s^2) / (1 - h/2s^2) = h/2 + O(h^2):
    bias / h = 1/2 / (1 - h/(2 s^2)) tends to the constant 1/2. A free sigma gives temperature
    T; sigma = sqrt(h) (the course's "sqrt(eta)" with step eta) gives T = 1/2.
    """
    s2 = 2.0
    energy = gaussian_energy([[s2]])
    ratios = []
    # chains much longer than tau (about 9.5 at h = 0.2), so that tau is estimated well
    gen = torch.Generator().manual_seed(9)
    start = math.sqrt(s2) * torch.randn(1000, 1, dtype=F64, generator=gen)
    for seed, h in enumerate((0.8, 0.4, 0.2)):
        exact = s2 / (1.0 - h / (2.0 * s2))
        sampler = LangevinSampler(h)
        state = sampler.init_state(start, seed=seed)  # in the target, which ULA does not keep
        _, state = sampler.sample(energy, state, 100)  # relaxes as (1 - h/s^2)^200
        trace, state = sampler.sample(energy, state, snapshots=range(1, 1201))
        est = mcmc_estimate(trace[..., 0] ** 2)
        assert abs(est.z_score(exact)) < Z_MAX, (h, str(est), exact)
        assert est.z_score(s2) > 10  # the bias is resolved, so the check above means something
        ratio, ratio_err = (est.value - s2) / h, est.stderr / h
        assert abs(ratio - 0.5 / (1.0 - h / (2.0 * s2))) < Z_MAX * ratio_err
        ratios.append(ratio)
    # bias / h is about constant (exactly 0.625 / 0.526 = 1.19 from h = 0.8 to 0.2, each ratio
    # known to 7% or better): first order in h; an O(1) bias would give 1/4 and O(h^2) 4
    assert 0.8 < ratios[0] / ratios[2] < 1.6

    h = 0.2
    sampler = LangevinSampler(h, noise_scale=math.sqrt(h))
    state = sampler.init_state(torch.zeros(1000, 1, dtype=F64), seed=3)
    _, state = sampler.sample(energy, state, 100)
    trace, _ = sampler.sample(energy, state, snapshots=range(1, 1201))
    assert_close(trace[..., 0] ** 2, 0.5 * s2 / (1.0 - h / (2.0 * s2)))


def test_course_gibbs_example_reproduces_the_covariance() -> None:
    sampler = GaussianGibbsSampler([0.0, 0.0], COURSE_COV)
    state = sampler.init_state(1000, seed=0, x0=[3.0, -3.0])
    _, state = sampler.sample(state, 20)  # the start is forgotten as (1/4)^sweeps
    trace, state = sampler.sample(state, 300, record=True)
    assert trace.shape == (300, 1000, 2) and state.steps == 320
    x0, x1 = trace[..., 0], trace[..., 1]
    for values, exact in ((x0, 0.0), (x1, 0.0), (x0**2, 1.0), (x1**2, 1.0), (x0 * x1, 0.5)):
        assert_close(values, exact)
    # each coordinate's chain is AR(1) with coefficient rho^2 = 1/4: tau = (1 + 1/4)/(1 - 1/4)
    for values in (x0, x1):
        assert integrated_autocorrelation_time(values) == pytest.approx(5 / 3, rel=0.1)


def test_gibbs_handles_a_general_gaussian_and_resumes_exactly() -> None:
    a = torch.tensor([[1.0, 0.3, -0.2], [0.0, 0.8, 0.5], [0.4, 0.0, 0.6]], dtype=F64)
    cov, mean = a @ a.T + 0.1 * torch.eye(3, dtype=F64), torch.tensor([1.0, -2.0, 0.5])
    sampler = GaussianGibbsSampler(mean, cov)
    state = sampler.init_state(500, seed=4)
    _, state = sampler.sample(state, 50)
    saved = {k: v.clone() for k, v in state.state_dict().items()}
    trace, state = sampler.sample(state, 400, record=True)
    centred = trace - mean.to(F64)
    for i in range(3):
        assert_close(trace[..., i], float(mean[i]))
        for j in range(i + 1):
            assert_close(centred[..., i] * centred[..., j], float(cov[i, j]))
    resumed = GaussianGibbsState.from_state_dict(saved)
    again, resumed = sampler.sample(resumed, 400, record=True)
    assert torch.equal(again, trace) and resumed.steps == state.steps == 450


def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
    return net


@pytest.mark.parametrize(
    "options",
    [
        {"step_size": 10.0, "noise_scale": 0.005, "grad_clamp": 0.03, "clamp": (-1.0, 1.0)},
        {"step_size": 0.05, "metropolis": True},
    ],
)
def test_langevin_state_round_trip_is_bit_identical(options: dict) -> None:
    net = small_net()
    energy = lambda x: net(x).squeeze(1)  # noqa: E731
    sampler = LangevinSampler(**options)
    state = sampler.init_state((32, 6), seed=5)
    _, state = sampler.sample(energy, state, 7)
    saved = {k: v.clone() for k, v in state.state_dict().items()}
    x, state = sampler.sample(energy, state, 9)
    resumed = LangevinState.from_state_dict(saved)
    y, resumed = sampler.sample(energy, resumed, 9)
    assert torch.equal(x, y) and resumed.steps == state.steps == 16
    assert (resumed.accepted, resumed.proposals) == (state.accepted, state.proposals)
    assert not x.requires_grad and x.grad_fn is None
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    if "clamp" in options:
        assert x.abs().max() <= 1.0 and math.isnan(state.acceptance_rate)


def test_snapshots_and_the_plain_entry_point() -> None:
    energy = gaussian_energy(COURSE_COV)
    sampler = LangevinSampler(0.1, n_steps=5)
    state = sampler.init_state((8, 2), seed=6, dtype=F64)
    start = state.x.clone()
    snaps, state = sampler.sample(energy, state, snapshots=(0, 1, 3, 5))
    assert snaps.shape == (4, 8, 2) and torch.equal(snaps[0], start)
    assert torch.equal(snaps[-1], state.x) and state.steps == 5

    x0 = torch.zeros(16, 2, dtype=F64)
    a = langevin_sample(energy, x0, 20, 0.1, generator=torch.Generator().manual_seed(1))
    b = langevin_sample(energy, x0, 20, 0.1, generator=torch.Generator().manual_seed(1))
    assert isinstance(a, torch.Tensor) and torch.equal(a, b) and not x0.any()
    out = langevin_sample(energy, x0, 20, 0.5, metropolis=True)
    assert isinstance(out, tuple) and out[0].shape == x0.shape and 0.0 < out[1] <= 1.0


def test_replay_buffer_reinitializes_the_requested_fraction() -> None:
    g = torch.Generator().manual_seed(7)
    buffer = ReplayBuffer(capacity=8192, reinit_fraction=0.05).init((3,), g)
    assert len(buffer) == 8192 and buffer.shape == (3,)
    assert buffer.x is not None and buffer.x.abs().max() <= 1.0
    buffer.x.fill_(5.0)  # mark the stored chains
    draws = [buffer.draw(8192, g) for _ in range(4)]
    assert all(idx.unique().numel() == 8192 for _, idx in draws)  # distinct slots
    x = torch.cat([x for x, _ in draws])
    fresh = (x != 5.0).all(1)
    assert ((x == 5.0).all(1) | fresh).all()  # whole examples are replaced
    # Binomial(32768, 0.05): 1638 ± 39, so a 10% error in the fraction is a 4-sigma miss
    assert stats.binomtest(int(fresh.sum()), x.shape[0], 0.05).pvalue > 1e-3
    assert stats.kstest(x[fresh].flatten().numpy(), "uniform", args=(-1.0, 2.0)).pvalue > 1e-3
    x[:] = 0.0  # the draws are copies
    assert (buffer.x == 5.0).all()


def test_replay_buffer_push_keeps_size_and_survives_save_load() -> None:
    g = torch.Generator().manual_seed(8)
    buffer = ReplayBuffer(capacity=64, reinit_fraction=0.2, low=0.0, high=2.0).init((2, 3), g)
    x, idx = buffer.draw(10, g)
    buffer.push(x + 10.0, idx)
    assert len(buffer) == 64 and buffer.x is not None
    assert torch.equal(buffer.x[idx], x + 10.0)
    buffer.push(torch.full((70 - 64 + 10, 2, 3), -1.0))  # FIFO over the oldest slots
    assert len(buffer) == 64 and int((buffer.x == -1.0).all((1, 2)).sum()) == 16
    saved, rng = {k: v.clone() for k, v in buffer.state_dict().items()}, g.get_state()

    def run(buf: ReplayBuffer, gen: torch.Generator) -> list[torch.Tensor]:
        out = []
        for _ in range(3):
            x, idx = buf.draw(12, gen)
            buf.push(x * 0.5, idx)
            buf.push(x[:5])
            out.append(x)
        return out

    first = run(buffer, g)
    restored = ReplayBuffer.from_state_dict(saved)
    assert (restored.capacity, restored.reinit_fraction, restored.low) == (64, 0.2, 0.0)
    second = run(restored, torch.Generator().set_state(rng))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert restored.x is not None and torch.equal(restored.x, buffer.x)


def one_line_error(fn, match: str) -> None:
    with pytest.raises(GenphysError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_input_gives_one_line_errors() -> None:
    x, g = torch.zeros(4, 2), torch.Generator()
    good = LangevinSampler(0.1)
    state = good.init_state(x)
    cases = [
        (lambda: LangevinSampler(-0.1), "step_size"),
        (lambda: LangevinSampler(float("nan")), "step_size"),
        (lambda: LangevinSampler(0.1, noise_scale=-1.0), "noise_scale"),
        (lambda: LangevinSampler(0.1, metropolis=True, grad_clamp=0.03), "exact only"),
        (lambda: LangevinSampler(0.1, metropolis=True, clamp=(-1, 1)), "exact only"),
        (lambda: LangevinSampler(0.1, metropolis=True, noise_scale=0.0), "noise_scale"),
        (lambda: LangevinSampler(0.1, clamp=(1, -1)), "clamp"),
        (lambda: good.sample(lambda v: v.sum(1, keepdim=True), state), "shape"),
        (lambda: good.sample(lambda v: v.sum(), state), "shape"),
        (lambda: good.sample(lambda v: v.sum(1) / 0.0, state), "NaN or Inf"),
        (lambda: good.sample(lambda v: torch.zeros(4), state), "differentiabl"),
        (lambda: LangevinSampler(100.0).sample(lambda v: (v**4).sum(1), state, 60), "NaN"),
        (lambda: good.sample(lambda v: v.sum(1), state, 2, snapshots=(5,)), "snapshots"),
        (lambda: good.init_state(torch.tensor([[float("inf")]])), "NaN or Inf"),
        (lambda: LangevinState.from_state_dict({"x": x}), "corrupt"),
        (lambda: GaussianGibbsSampler([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), "positive"),
        (lambda: GaussianGibbsSampler([0.0, 0.0], [[1.0, 0.1], [0.2, 1.0]]), "symmetric"),
        (lambda: GaussianGibbsSampler([0.0], COURSE_COV), "shape|cov"),
        (lambda: ReplayBuffer().draw(4, torch.Generator()), "init"),
        (lambda: ReplayBuffer(capacity=8).init((2,), torch.Generator()).draw(9, g), "draw"),
        (lambda: ReplayBuffer(reinit_fraction=1.5), "reinit_fraction"),
        (lambda: ReplayBuffer.from_state_dict({"x": x}), "corrupt"),
    ]
    for fn, match in cases:
        one_line_error(fn, match)
    buffer = ReplayBuffer(capacity=8).init((2,), torch.Generator())
    one_line_error(lambda: buffer.push(torch.zeros(3, 5)), "push")
    one_line_error(lambda: buffer.push(torch.zeros(3, 2), torch.arange(2)), "index")
