"""Explicit sampler state: chains + generator survive a save/load and continue identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exact import bernoulli_rbm, chisquare_p, codes_of, exact_p, gaussian_rbm
from genphys.errors import GenphysError
from genphys.models import BernoulliRBM, GaussianBernoulliRBM, GaussianRBMConfig, RBMConfig
from genphys.samplers import (
    GibbsSampler,
    GibbsState,
    ParallelTemperingSampler,
    TemperingState,
    sample_model,
)


def test_gibbs_state_round_trip_continues_the_same_chain() -> None:
    torch.manual_seed(0)
    for model in (
        BernoulliRBM(RBMConfig(n_visible=7, n_hidden=4, init_std=1.0)),
        GaussianBernoulliRBM(GaussianRBMConfig(n_visible=7, n_hidden=4)),
    ):
        sampler = GibbsSampler(k=3)
        state = sampler.init_state(model, n_chains=5, seed=11)
        _, state = sampler.sample(model, state)
        saved = {k: v.clone() for k, v in state.state_dict().items()}
        a, state = sampler.sample(model, state, n_steps=10)
        restored = GibbsState.from_state_dict(saved)
        assert restored.steps == 3
        b, restored = sampler.sample(model, restored, n_steps=10)
        assert torch.equal(a, b) and restored.steps == state.steps == 13


def test_sample_model_is_seeded_and_binary() -> None:
    rbm = BernoulliRBM(RBMConfig(n_visible=6, n_hidden=3, init_std=1.0))
    x = sample_model(rbm, n=8, seed=3, steps=5, mean=False)
    assert torch.equal(x, sample_model(rbm, n=8, seed=3, steps=5, mean=False))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    m = sample_model(rbm, n=8, seed=3, steps=5, mean=True)
    assert ((m > 0) & (m < 1)).all()


def test_parallel_tempering_reproduces_the_exact_distribution() -> None:
    """beta = 1 replicas of a strongly coupled (multi-modal) RBM match enumeration."""
    rbm = bernoulli_rbm(8, 4, 2.5, 0.5, seed=21)
    p = exact_p(rbm).numpy()
    sampler = ParallelTemperingSampler(betas=6, k=1)
    state = sampler.init_state(rbm, n_chains=2000, seed=21)
    sampler.sample(rbm, state, n_steps=100)  # burn in
    codes = []
    for _ in range(5):
        v, state = sampler.sample(rbm, state, n_steps=20)
        codes.append(codes_of(v))
    counts = np.bincount(torch.cat(codes).numpy(), minlength=2**8)
    assert chisquare_p(counts, p) > 0.01
    rates = state.swap_rate
    assert rates.shape == (5,) and bool(((rates > 0.05) & (rates <= 1)).all()), rates


def test_parallel_tempering_state_round_trip_and_checks() -> None:
    rbm = bernoulli_rbm(5, 3, 1.0, seed=2)
    sampler = ParallelTemperingSampler(betas=[0.0, 0.5, 1.0])
    state = sampler.init_state(rbm, n_chains=4, seed=1)
    _, state = sampler.sample(rbm, state, n_steps=3)
    saved = {k: v.clone() for k, v in state.state_dict().items()}
    a, _ = sampler.sample(rbm, state, n_steps=5)
    b, _ = sampler.sample(rbm, TemperingState.from_state_dict(saved), n_steps=5)
    assert torch.equal(a, b)
    with pytest.raises(GenphysError, match="betas"):
        ParallelTemperingSampler(betas=[0.0, 0.7, 0.5, 1.0])
    with pytest.raises(GenphysError, match="at least 2"):
        ParallelTemperingSampler(betas=1)


def test_cached_hidden_probabilities_start_the_next_sweep() -> None:
    """state.hidden = p(h|v) must give exactly the sweep the sampler would have done."""
    rbm = bernoulli_rbm(6, 4, 1.0, seed=5)
    sampler = GibbsSampler(k=2)
    plain = sampler.init_state(rbm, n_chains=7, seed=9)
    cached = GibbsState(plain.v.clone(), torch.Generator().manual_seed(0), 0, rbm.prob_h(plain.v))
    cached.generator.set_state(plain.generator.get_state())
    a, plain = sampler.sample(rbm, plain)
    b, cached = sampler.sample(rbm, cached)
    assert torch.equal(a, b) and cached.hidden is None and cached.steps == 2
    restored = GibbsState.from_state_dict({**plain.state_dict(), "hidden": rbm.prob_h(a)})
    assert restored.hidden is not None  # the cache survives a checkpoint


def test_in_place_sweeps_equal_sample_and_reuse_their_buffers() -> None:
    """sample_ gives the chains of sample, bit for bit, overwriting state.v, with no new
    buffers after the first call (what PCD training relies on); the cached p(h|v) start works
    the same."""
    for rbm in (bernoulli_rbm(6, 4, 1.0, seed=6), gaussian_rbm(5, 3, seed=6)):
        sampler = GibbsSampler(k=3)
        a = sampler.init_state(rbm, n_chains=9, seed=4)
        b = GibbsState.from_state_dict({k: v.clone() for k, v in a.state_dict().items()})
        b.hidden = a.hidden = rbm.prob_h(a.v)
        for _ in range(3):
            old = a.v
            va, a = sampler.sample(rbm, a)
            ptr = b.v.data_ptr()
            vb, b = sampler.sample_(rbm, b)
            assert torch.equal(va, vb) and va is not old and vb is b.v
            assert b.v.data_ptr() == ptr and a.steps == b.steps and b.hidden is None
            buffers = {k: t.data_ptr() for k, t in sampler._scratch.items()}
        _, b = sampler.sample_(rbm, b)
        assert {k: t.data_ptr() for k, t in sampler._scratch.items()} == buffers


def test_gibbs_input_checks() -> None:
    rbm = BernoulliRBM(6, 3)
    sampler = GibbsSampler()
    state = sampler.init_state(rbm, 4, seed=0)
    for bad in (-3, 2.5):
        with pytest.raises(GenphysError, match="sweeps"):
            sampler.sample(rbm, state, bad)  # type: ignore[arg-type]
        with pytest.raises(GenphysError, match="sweeps"):
            sampler.sample_(rbm, state, bad)  # type: ignore[arg-type]
    assert state.steps == 0  # nothing was counted
    assert sampler.sample(rbm, state, np.int64(2))[1].steps == 2
    with pytest.raises(GenphysError, match="chains"):
        sampler.init_state(rbm, 0)
    with pytest.raises(GenphysError, match=r"\(chains, 6\)"):
        sampler.init_state(rbm, 4, v0=torch.zeros(4, 5))


def test_state_dicts_are_snapshots_and_restores_are_independent() -> None:
    """A saved state does not move with the chains (sample_ and the replay buffer write in
    place), and two restores from one saved dict run the same chains."""
    from genphys.samplers.buffer import ReplayBuffer

    model = BernoulliRBM(RBMConfig(n_visible=7, n_hidden=4, init_std=1.0))
    sampler = GibbsSampler(k=2)
    state = sampler.init_state(model, n_chains=50, seed=3)
    saved = state.state_dict()
    before = saved["v"].clone()
    sampler.sample_(model, state)
    assert torch.equal(saved["v"], before) and not torch.equal(state.v, before)
    one, two = GibbsState.from_state_dict(saved), GibbsState.from_state_dict(saved)
    a, _ = sampler.sample_(model, one)
    b, _ = sampler.sample_(model, two)
    assert torch.equal(a, b) and torch.equal(saved["v"], before)
    buffer = ReplayBuffer(10).init((3,), torch.Generator().manual_seed(0))
    snapshot = buffer.state_dict()
    x = snapshot["x"].clone()
    buffer.push(torch.full((4, 3), 0.5))
    assert torch.equal(snapshot["x"], x)


def test_tempering_betas_are_exact_in_float64() -> None:
    sampler = ParallelTemperingSampler(betas=[0.0, 0.3, 0.99999999, 1.0])
    assert sampler.betas.dtype == torch.float64 and sampler.betas[1].item() == 0.3
    grid = ParallelTemperingSampler(betas=np.int64(5)).betas
    assert grid.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_ebm_chains_take_the_models_dtype() -> None:
    from genphys.models import EBM
    from genphys.samplers.generate import ebm_generate

    model = EBM(n_features=4, architecture="mlp", hidden=(8,)).double()
    x = sample_model(model, 3, steps=2)
    assert x.dtype == torch.float64 and x.shape == (3, 4)
    y = ebm_generate(model, 3, steps=2, x0=torch.zeros(3, 4))
    assert y.dtype == torch.float64
