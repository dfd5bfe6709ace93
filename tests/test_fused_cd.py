"""Fused CD / PCD steps (one compiled graph, counter-based random numbers) and the plain-SGD
update: exact distributions, closed-form gradients, compiled = eager, resume modes."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from exact import all_states, bernoulli_rbm, chisquare_p, codes_of, exact_p
from genphys import kernels
from genphys.data import DataConfig, prepare_data
from genphys.errors import GenphysError, TrainingDiverged
from genphys.models import BernoulliRBM, GaussianBernoulliRBM, RBMConfig
from genphys.samplers import GibbsState
from genphys.training import CDConfig, ContrastiveDivergence, Trainer, TrainerConfig, fused_cd
from genphys.training.fused_cd import FUSE_MIN_WORK, CounterChains, fused_sgd_step, fused_step

needs_compiler = pytest.mark.skipif(
    not kernels.compiler_available(), reason="torch.compile needs a C++ compiler"
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_counter_uniforms_are_uniform_and_use_the_dtypes_bits(dtype: torch.dtype) -> None:
    base = kernels.stream_base(seed=7, counter=123)
    u = kernels.uniform(base, torch.arange(200_000), dtype)
    assert u.dtype == dtype and float(u.min()) >= 0 and float(u.max()) < 1
    counts = np.bincount((u.double().numpy() * 100).astype(int), minlength=100)
    assert scipy.stats.chisquare(counts).pvalue > 0.01
    bits = 53 if dtype == torch.float64 else 24
    assert torch.equal(u, torch.round(u * 2**bits) / 2**bits)  # multiples of 2^-bits
    assert bool((u * 2**24 != torch.round(u * 2**24)).any()) == (bits == 53)
    # stream position counter + i is the same number, however the stream is cut
    later = kernels.uniform(kernels.stream_base(7, 123 + 1000), torch.arange(10), dtype)
    assert torch.equal(later, u[1000:1010])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_draws_use_float32_uniforms(dtype: torch.dtype) -> None:
    u = kernels.uniform(kernels.stream_base(1, 0), torch.arange(100_000), dtype)
    assert u.dtype == torch.float32 and float(u.max()) < 1
    p = torch.full((100_000,), 0.5, dtype=dtype)
    assert abs(float((u < p).double().mean()) - 0.5) < 5 * 0.5 / 100_000**0.5


@pytest.mark.parametrize("persistent", [True, False])
def test_fused_gradients_are_the_closed_form_of_their_negatives(persistent: bool) -> None:
    rbm = bernoulli_rbm(9, 5, 1.0, seed=3)
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(6, 9, generator=g, dtype=torch.float64) < 0.5).double()
    v0 = (torch.rand(4, 9, generator=g, dtype=torch.float64) < 0.5).double()
    chains = CounterChains(v0.clone() if persistent else None, seed=5)
    m = 4 if persistent else 6
    coef = torch.cat([torch.full((6,), 1 / 6), torch.full((m,), -1 / m)]).double()
    grads, x, pre = fused_step(rbm, batch, chains, coef, k=3, compile_=False)
    assert torch.equal(x[:6], batch) and x.shape == (6 + m, 9)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert chains.counter == 3 * m * (5 + 9)
    if persistent:
        assert torch.equal(chains.v, x[6:])
    expected, _ = rbm.free_energy_grads(x, coef)
    for k in ("weight", "visible_bias", "hidden_bias"):
        torch.testing.assert_close(grads[k], expected[k], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pre, rbm.hidden_input(x))


@pytest.mark.parametrize("compile_", [False, pytest.param(True, marks=needs_compiler)])
def test_a_fused_sgd_step_is_sgd_on_the_fused_gradients(compile_: bool) -> None:
    """The graph that updates the parameters in place draws the same chains, sees the same
    c + xW and moves each parameter by -lr times the closed-form gradient (float64)."""
    rbm = bernoulli_rbm(9, 5, 1.0, seed=3)
    ref = copy.deepcopy(rbm)
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(6, 9, generator=g, dtype=torch.float64) < 0.5).double()
    v0 = (torch.rand(4, 9, generator=g, dtype=torch.float64) < 0.5).double()
    coef = torch.cat([torch.full((6,), 1 / 6), torch.full((4,), -1 / 4)]).double()
    a, b = CounterChains(v0.clone(), seed=5), CounterChains(v0.clone(), seed=5)
    grads, x, pre = fused_step(ref, batch, a, coef, k=2, compile_=compile_)
    lr = torch.tensor(0.3, dtype=torch.float64)
    x2, pre2, total = fused_sgd_step(rbm, batch, b, coef, lr, k=2, compile_=compile_)
    assert torch.equal(x2, x) and b.counter == a.counter and torch.equal(b.v, a.v)
    torch.testing.assert_close(pre2, pre, rtol=1e-12, atol=1e-12)
    for name, grad in grads.items():
        expected = getattr(ref, name).detach() - 0.3 * grad
        torch.testing.assert_close(getattr(rbm, name).detach(), expected, rtol=1e-12, atol=1e-12)
    assert float(total) == pytest.approx(sum(float(p.detach().sum()) for p in rbm.parameters()))
    # a step that is not finite is not taken, and says so
    before = [p.detach().clone() for p in rbm.parameters()]
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    assert not torch.isfinite(fused_sgd_step(rbm, batch, b, coef, nan, 1, compile_)[2])
    assert all(torch.equal(p, q) for p, q in zip(rbm.parameters(), before, strict=True))
    with torch.no_grad():
        rbm.weight[2, 1] = float("nan")
    assert not torch.isfinite(fused_sgd_step(rbm, batch, b, coef, lr, 1, compile_)[2])


@pytest.mark.parametrize("compile_", [False, pytest.param(True, marks=needs_compiler)])
@pytest.mark.parametrize("nesterov", [False, True])
def test_a_fused_momentum_step_is_torch_sgd_on_the_fused_gradients(compile_, nesterov) -> None:
    """Three steps of the graph with momentum and weight decay against torch.optim.SGD on the
    closed-form gradients of the same draws: parameters and momentum buffers (float64)."""
    rbm = bernoulli_rbm(9, 5, 1.0, seed=3)
    ref = copy.deepcopy(rbm)
    g = torch.Generator().manual_seed(0)
    v0 = (torch.rand(4, 9, generator=g, dtype=torch.float64) < 0.5).double()
    coef = torch.cat([torch.full((6,), 1 / 6), torch.full((4,), -1 / 4)]).double()
    a, b = CounterChains(v0.clone(), seed=5), CounterChains(v0.clone(), seed=5)
    names = ["weight", "visible_bias", "hidden_bias"]
    opt = torch.optim.SGD(
        [getattr(ref, n) for n in names], lr=0.3, momentum=0.7, nesterov=nesterov,
        weight_decay=0.01,
    )  # fmt: skip
    buffers = tuple(torch.zeros_like(getattr(rbm, n)).detach() for n in names)
    hyper = torch.tensor([0.7, 0.01], dtype=torch.float64)
    settings = (hyper[0], hyper[1], buffers, nesterov)
    lr = torch.tensor(0.3, dtype=torch.float64)
    for _ in range(3):
        batch = (torch.rand(6, 9, generator=g, dtype=torch.float64) < 0.5).double()
        grads, x, _ = fused_step(ref, batch, a, coef, k=2, compile_=compile_)
        for n in names:
            getattr(ref, n).grad = grads[n]
        opt.step()
        x2, _, total = fused_sgd_step(rbm, batch, b, coef, lr, 2, compile_, momentum=settings)
        assert torch.equal(x2, x) and torch.isfinite(total)
    for n, buf in zip(names, buffers, strict=True):
        p, q = getattr(rbm, n).detach(), getattr(ref, n).detach()
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(buf, opt.state[getattr(ref, n)]["momentum_buffer"])
    kept = [t.clone() for t in (*rbm.parameters(), *buffers)]  # a non-finite step: no change
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    bad = fused_sgd_step(rbm, batch, b, coef, nan, 2, compile_, momentum=settings)[2]
    assert not torch.isfinite(bad)
    assert all(torch.equal(s, t) for s, t in zip((*rbm.parameters(), *buffers), kept, strict=True))


def _fused_samples(rbm: BernoulliRBM, n_chains: int, sweeps: int, k: int, compile_: bool):
    g = torch.Generator().manual_seed(1)
    v0 = (torch.rand(n_chains, rbm.n_visible, generator=g) < 0.5).to(rbm.weight.dtype)
    chains = CounterChains(v0, seed=11)
    batch = v0[:1]
    coef = torch.zeros(n_chains + 1, dtype=rbm.weight.dtype)
    for _ in range(sweeps // k):
        fused_step(rbm, batch, chains, coef, k=k, compile_=compile_)
    assert chains.v is not None
    return chains.v


@pytest.mark.parametrize("compile_", [False, pytest.param(True, marks=needs_compiler)])
def test_fused_gibbs_chains_reproduce_the_exact_distribution(compile_: bool) -> None:
    """Chi-square of 50,000 independent chains after 40 sweeps against enumeration
    (float32: 24-bit uniforms, as the trainer uses)."""
    rbm = bernoulli_rbm(8, 4, 1.0, seed=21, dtype=torch.float32)
    exact = copy.deepcopy(rbm).double()
    v = _fused_samples(rbm, 50_000, 40, 2, compile_)
    counts = np.bincount(codes_of(v).numpy(), minlength=2**8)
    assert chisquare_p(counts, exact_p(exact).numpy()) > 0.01
    # one sweep from a fixed v0 follows the exact kernel sum_h p(h|v0) p(v|h): this tests
    # each half-sweep's draws (a biased p(h|v) can leave the stationary law nearly intact)
    v0 = all_states(8)[77].float()
    chains = CounterChains(v0.repeat(50_000, 1), seed=3)
    fused_step(rbm, v0[None], chains, torch.zeros(50_001), k=1, compile_=compile_)
    assert chains.v is not None
    counts = np.bincount(codes_of(chains.v).numpy(), minlength=2**8)
    assert chisquare_p(counts, _one_sweep(exact, v0.double()).numpy()) > 0.01


def _one_sweep(rbm: BernoulliRBM, v0: torch.Tensor) -> torch.Tensor:
    """T(v | v0) = sum_h p(h | v0) p(v | h) over all_states(n_visible), by enumeration."""
    hs, vs = all_states(rbm.n_hidden), all_states(rbm.n_visible)
    with torch.no_grad():
        q = torch.sigmoid(rbm.hidden_bias + v0 @ rbm.weight)
        p_h = (hs * q + (1 - hs) * (1 - q)).prod(1)
        r = torch.sigmoid(rbm.visible_bias + hs @ rbm.weight.t())[:, None]
        p_v = (vs * r + (1 - vs) * (1 - r)).prod(-1)  # (hidden states, visible states)
    return p_h @ p_v


@needs_compiler
def test_compiled_and_eager_fused_steps_draw_the_same_numbers() -> None:
    rbm = bernoulli_rbm(16, 8, 1.0, seed=4, dtype=torch.float32)
    eager = _fused_samples(rbm, 512, 6, 3, False)
    compiled = _fused_samples(rbm, 512, 6, 3, True)
    # the same random numbers; a sigmoid differing in its last bit flips a draw about once
    # in 10^7, so all but (almost surely) none of the 8,192 units agree
    assert float((eager != compiled).double().mean()) < 1e-3


def _objective(compile_, persistent=True, **kw) -> ContrastiveDivergence:
    return ContrastiveDivergence(CDConfig(persistent=persistent, compile=compile_, **kw))


def test_auto_fuses_large_binary_rbms_on_cpu_only(monkeypatch) -> None:
    big, small = BernoulliRBM(784, 256), BernoulliRBM(64, 16)
    assert 128 * 784 * 256 >= FUSE_MIN_WORK > 10 * 64 * 64 * 16
    available = kernels.compiler_available()
    assert _objective("auto")._fuse(big, 128) is available
    assert _objective("auto", k=10)._fuse(small, 64) is False
    assert _objective("auto", reuse_hidden=True)._fuse(big, 128) is False
    assert _objective("auto", sampler="tempering")._fuse(big, 128) is False
    assert _objective(False)._fuse(big, 128) is False
    assert _objective(True)._fuse(small, 64) is True
    assert _objective("auto")._fuse(GaussianBernoulliRBM(784, 256), 128) is False
    assert _objective("auto")._fuse(BernoulliRBM(784, 256).half(), 128) is False
    monkeypatch.setenv("GENPHYS_COMPILE", "0")
    assert _objective("auto")._fuse(big, 128) is False
    forced = _objective(True)  # fused, but eager: the variable is obeyed
    forced.setup(small, (torch.rand(64, 64) < 0.5).float(), seed=0, rank=0, batch_size=32)
    assert isinstance(forced.chains, CounterChains) and forced._compile_graph is False
    with pytest.raises(GenphysError, match="BernoulliRBM"):
        _objective(True)._fuse(GaussianBernoulliRBM(4, 2), 8)
    with pytest.raises(GenphysError, match="compile"):
        CDConfig(compile="yes")
    with pytest.raises(GenphysError, match="reuse_hidden"):
        CDConfig(persistent=True, compile=True, reuse_hidden=True)


def test_a_checkpoint_keeps_the_mode_it_was_written_in() -> None:
    """A run resumes fused only from a fused checkpoint, whatever ``compile`` says now."""
    rbm = BernoulliRBM(6, 3)
    train = (torch.rand(32, 6) < 0.5).float()
    pcd = _objective(True)
    pcd.setup(rbm, train, seed=0, rank=0, batch_size=8)
    assert isinstance(pcd.chains, CounterChains) and pcd.chains.v is not None
    fused_state = pcd.state_dict()
    eager = _objective(False)
    eager.setup(rbm, train, seed=0, rank=0, batch_size=8)
    assert isinstance(eager.chains, GibbsState)
    pcd.load_state_dict(eager.state_dict())
    assert isinstance(pcd.chains, GibbsState)
    eager.load_state_dict(fused_state)
    assert isinstance(eager.chains, CounterChains)
    cd = _objective(True, persistent=False)
    cd.setup(rbm, train, seed=0, rank=0, batch_size=8)
    assert isinstance(cd.chains, CounterChains) and cd.chains.v is None
    assert set(cd.state_dict()) == {"chains.seed", "chains.counter"}
    cd.load_state_dict({})  # an eager CD checkpoint holds no chains
    assert cd.chains is None
    with pytest.raises(GenphysError, match="corrupt"):
        pcd.load_state_dict({"chains.counter": torch.tensor(3)})


def _fit(config: TrainerConfig, data: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    rbm = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. the LR scheduler's "step() before optimizer"
        Trainer(rbm, _objective(False), config).fit(data)
    return {k: p.detach().clone() for k, p in rbm.named_parameters()}


def test_plain_sgd_update_is_torch_sgd_bit_for_bit() -> None:
    """Without momentum, weight decay or clipping the trainer adds -lr g itself; a clip that
    never bites takes torch.optim.SGD's step instead, and the weights agree bit for bit."""
    data = prepare_data(DataConfig(name="digits", binarize="static", val_fraction=0.0)).train
    cfg = TrainerConfig(
        epochs=2, batch_size=20, lr=0.1, momentum=0.0, seed=3, progress=False, schedule="step"
    )
    plain = _fit(cfg, data)
    stepped = _fit(TrainerConfig(**{**cfg.to_dict(), "grad_clip": 1e9}), data)
    assert all(torch.equal(plain[k], stepped[k]) for k in plain)


def _fit_fused(data: torch.Tensor, **trainer) -> tuple[Trainer, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    rbm = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=12))
    cfg = TrainerConfig(epochs=1, batch_size=20, lr=0.1, momentum=0.0, seed=3, progress=False)
    cfg = TrainerConfig(**{**cfg.to_dict(), **trainer})
    with warnings.catch_warnings():  # the LR scheduler's "step() before optimizer.step()"
        warnings.filterwarnings("error", message=".*lr_scheduler.step")
        tr = Trainer(rbm, _objective(True), cfg)
        tr.fit(data)
    return tr, {k: p.detach().clone() for k, p in rbm.named_parameters()}


@needs_compiler
def test_plain_sgd_fused_steps_update_in_the_graph(monkeypatch) -> None:
    """With plain SGD the fused graph applies the step itself; the weights and the logged
    free-energy gap are those of the fused gradients stepped by torch.optim.SGD (a clip that
    never bites), up to float32 rounding: the same draws, the update summed in another order."""
    data = prepare_data(DataConfig(name="digits", binarize="static", val_fraction=0.0)).train
    calls = {"sgd": 0}
    original = fused_cd.fused_sgd_step

    def counting(*args, **kwargs):
        calls["sgd"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr("genphys.training.objectives.fused_sgd_step", counting)
    plain, a = _fit_fused(data)
    assert calls["sgd"] == plain.global_step == len(data) // 20
    stepped, b = _fit_fused(data, grad_clip=1e9)
    assert calls["sgd"] == plain.global_step  # the clip takes the optimizer's step
    for k in a:  # (a draw flipped by a last-bit difference, about 1 in 10^7, would show here)
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    gaps = [t.history[0]["train/free_energy_gap"] for t in (plain, stepped)]
    assert gaps[0] == pytest.approx(gaps[1], rel=1e-6)
    # with momentum (the rbm family's default) the graph keeps the optimizer's buffers
    heavy, c = _fit_fused(data, momentum=0.5, weight_decay=1e-4)
    assert calls["sgd"] == 2 * plain.global_step
    _, d = _fit_fused(data, momentum=0.5, weight_decay=1e-4, grad_clip=1e9)
    for k in c:  # float32 rounding (~1e-7 a step) adds up over 89 steps, doubled by m = 0.5
        torch.testing.assert_close(c[k], d[k], rtol=0, atol=2e-5)
    buffers = heavy.optimizers["model"].state
    assert len(buffers) == 3 and all("momentum_buffer" in v for v in buffers.values())
    # a schedule's new rate reaches the graph (a tensor input: no recompilation)
    scheduled, _ = _fit_fused(data, epochs=2, schedule="step", step_size=1, gamma=0.5)
    assert scheduled.objective._sgd is not None and scheduled.objective._sgd[0][0].lr == 0.05


@needs_compiler
def test_fused_sgd_stops_when_the_parameters_go_non_finite(tmp_path) -> None:
    data = prepare_data(DataConfig(name="digits", binarize="static", val_fraction=0.0)).train

    class Poisoning(ContrastiveDivergence):
        calls = 0

        def step(self, ctx, batch):
            Poisoning.calls += 1
            if Poisoning.calls == 4:
                with torch.no_grad():
                    ctx.model.hidden_bias[3] = float("inf")
            return super().step(ctx, batch)

    cfg = TrainerConfig(epochs=1, batch_size=20, lr=0.1, momentum=0.0, progress=False)
    trainer = Trainer(BernoulliRBM(64, 12), Poisoning(CDConfig(compile=True)), cfg, tmp_path)
    with pytest.raises(TrainingDiverged, match="step 4: the model parameters became non-finite"):
        trainer.fit(data)
    assert trainer.global_step == 3
