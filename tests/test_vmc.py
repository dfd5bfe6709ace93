"""Variational Monte Carlo with an RBM wavefunction against exact answers.

Derivatives against autograd and finite differences; the trap Hamiltonian against Taut's exact
two-electron states; samplers against quadrature and each other; blocking errors against the
spread of independent runs; optimisation against exact ground-state energies.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from genphys.cli.main import build_parser
from genphys.cli.vmc import vmc
from genphys.errors import GenphysError
from genphys.io import load_tensors
from genphys.physics.vmc import energy_estimate, optimize
from genphys.physics.vmc_run import VMCConfig, load_run, run_vmc
from genphys.physics.walkers import (
    ImportanceSampling,
    Metropolis,
    SamplerState,
    init_state,
    sample,
)
from genphys.physics.wavefunction import (
    HarmonicTrap,
    RBMWavefunction,
    WaveValues,
    reference_energy,
)

F64 = torch.float64
Z_MAX = 4.0  # |z| bound for single comparisons (p ~ 6e-5 under a correct implementation)


@pytest.fixture(autouse=True)
def _one_thread():
    """VMC moves tensors of a few thousand elements: on a busy 2-core box every op that enters
    torch's thread pool waits milliseconds for the second thread, so run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _positions(wf: RBMWavefunction, walkers: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(walkers, wf.particles, wf.dim, generator=g, dtype=F64)


def _autograd_values(log_psi, x: torch.Tensor) -> WaveValues:
    """ln Psi, its gradient and Laplacian by autograd (second derivatives one by one)."""
    x = x.clone().requires_grad_(True)
    lp = log_psi(x)
    (g,) = torch.autograd.grad(lp.sum(), x, create_graph=True)
    gf = g.reshape(len(x), -1)
    lap = torch.zeros(len(x), dtype=F64)
    for k in range(gf.shape[1]):
        (h,) = torch.autograd.grad(gf[:, k].sum(), x, retain_graph=True)
        lap = lap + h.reshape(len(x), -1)[:, k]
    return WaveValues(lp.detach(), g.detach(), lap.detach())


# ---------------------------------------------------------------------- derivatives
@pytest.mark.parametrize("sqrt", [False, True])
@pytest.mark.parametrize("jastrow", [False, True])
@pytest.mark.parametrize(("particles", "dim"), [(3, 2), (2, 3)])
def test_log_psi_gradient_and_laplacian_match_autograd(
    particles: int, dim: int, jastrow: bool, sqrt: bool
) -> None:
    wf = RBMWavefunction(particles, dim, 4, sqrt=sqrt, jastrow=jastrow, beta=0.7, init_std=0.5)
    x = _positions(wf)
    ours, ref = wf.evaluate(x), _autograd_values(wf.log_psi, x)
    for a, b in zip(
        (ours.log_psi, ours.grad, ours.laplacian),
        (ref.log_psi, ref.grad, ref.laplacian),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradient_and_laplacian_match_finite_differences() -> None:
    wf = RBMWavefunction(2, 2, 3, jastrow=True, beta=0.5, init_std=0.7, seed=3)
    x = _positions(wf, 3, seed=1)
    v = wf.evaluate(x)
    h = 1e-4
    lap = torch.zeros(3, dtype=F64)
    for p in range(2):
        for d in range(2):
            e = torch.zeros_like(x)
            e[:, p, d] = h
            up, mid, down = wf.log_psi(x + e), wf.log_psi(x), wf.log_psi(x - e)
            torch.testing.assert_close((up - down) / (2 * h), v.grad[:, p, d], rtol=0, atol=1e-8)
            lap = lap + (up - 2 * mid + down) / h**2
    torch.testing.assert_close(lap, v.laplacian, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sqrt", [False, True])
def test_parameter_derivatives_match_autograd(sqrt: bool) -> None:
    wf = RBMWavefunction(3, 2, 3, sqrt=sqrt, jastrow=True, beta=1.3, init_std=0.5)
    x = _positions(wf, 5)
    params = list(wf.parameters().values())
    for p in params:
        p.requires_grad_(True)
    rows = []
    for lp in wf.log_psi(x):
        grads = torch.autograd.grad(lp, params, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    for p in params:
        p.requires_grad_(False)
    torch.testing.assert_close(wf.log_derivatives(x), torch.stack(rows), rtol=1e-12, atol=1e-12)
    assert wf.log_derivatives(x).shape == (5, wf.n_parameters)


def test_local_energy_is_h_psi_over_psi_by_autograd() -> None:
    wf = RBMWavefunction(3, 2, 3, jastrow=True, init_std=0.4)
    ham = HarmonicTrap(omega=0.7, interaction=True)
    x = _positions(wf, 4)
    v = _autograd_values(lambda y: wf.log_psi(y).exp(), x)  # Psi itself, not its log
    psi = wf.log_psi(x).exp()
    r = torch.cdist(x, x)
    coulomb = torch.triu(1 / r.masked_fill(r == 0, math.inf), 1).sum((1, 2))
    expected = -0.5 * v.laplacian / psi + 0.5 * 0.7**2 * (x * x).sum((1, 2)) + coulomb
    torch.testing.assert_close(ham.local_energy(x, wf.evaluate(x)), expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("dim", "omega", "a"), [(2, 1.0, 1.0), (3, 0.5, 0.5)])
def test_taut_states_have_constant_local_energy(dim: int, omega: float, a: float) -> None:
    """Psi = (1 + a r12) exp(-omega (r1^2 + r2^2) / 2) is exact (Taut 1993): E_L is constant."""

    def log_psi(x: torch.Tensor) -> torch.Tensor:
        r12 = (x[:, 0] - x[:, 1]).norm(dim=-1)
        return torch.log1p(a * r12) - 0.5 * omega * (x * x).sum((1, 2))

    x = torch.randn(50, 2, dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    e_local = HarmonicTrap(omega, interaction=True).local_energy(x, _autograd_values(log_psi, x))
    ref = reference_energy(2, dim, omega, True)
    assert ref is not None and ref.exact
    torch.testing.assert_close(e_local, torch.full_like(e_local, ref.energy), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- exact energies
@pytest.mark.parametrize(("omega", "sqrt"), [(1.0, False), (2.5, True)])
def test_one_particle_in_1d_at_the_optimum_has_energy_omega_over_2_and_zero_variance(
    omega: float, sqrt: bool
) -> None:
    wf = RBMWavefunction(1, 1, 3, omega=omega, sqrt=sqrt, init_std=0.3)
    wf.a.zero_()
    wf.w.zero_()  # b is irrelevant once w = 0
    ham = HarmonicTrap(omega)
    state = init_state(wf, 64, seed=0)
    smp = sample(wf, ham, Metropolis(1.0), state, 32)
    assert float((smp.local_energy - omega / 2).abs().max()) < 1e-13  # rounding of sigma only
    est = energy_estimate(smp.local_energy)
    assert abs(est.value - omega / 2) < 1e-13 and est.stderr < 1e-13
    if omega == 1.0:  # sigma = 1: every local energy is exactly 0.5
        assert torch.equal(smp.local_energy, torch.full_like(smp.local_energy, 0.5))


@pytest.mark.parametrize(
    ("particles", "dim", "omega", "sqrt"),
    [(1, 1, 1.0, False), (2, 2, 1.0, False), (3, 3, 0.5, False), (2, 3, 2.0, True)],
)
def test_noninteracting_particles_reach_p_d_omega_over_2(
    particles: int, dim: int, omega: float, sqrt: bool
) -> None:
    cfg = VMCConfig(
        particles=particles, dim=dim, omega=omega, hidden=2, sqrt=sqrt, iterations=150,
        final_samples=2**15, init_std=0.2, seed=1,
    )  # fmt: skip
    result = run_vmc(cfg)
    exact = particles * dim * omega / 2
    assert result.reference is not None and result.reference.energy == exact
    assert abs(result.energy.value - exact) < 1e-4, result.energy
    assert result.variance < 1e-4 * exact  # zero-variance principle: E_L is nearly constant
    assert result.history[0].variance > 100 * result.variance  # the optimiser got it there


def test_every_optimizer_lowers_the_energy() -> None:
    ham = HarmonicTrap(1.0)
    for method, lr in (("sgd", 0.05), ("adam", 0.02), ("sr", 0.05)):
        wf = RBMWavefunction(1, 2, 2, init_std=0.5, seed=2)
        hist = optimize(wf, ham, ImportanceSampling(), method, lr, 60, 2048, seed=0).history
        start, end = hist[0].energy, hist[-1].energy
        assert end.value < start.value - 5 * math.hypot(start.stderr, end.stderr), method
        assert end.value > 1.0 - Z_MAX * end.stderr  # never below the exact 1.0 (variational)


# ---------------------------------------------------------------------- sampling
def test_both_samplers_agree_with_quadrature_in_1d() -> None:
    wf = RBMWavefunction(1, 1, 3, init_std=0.6, seed=4)  # far from the optimum: E_L varies
    ham = HarmonicTrap(1.3)
    grid = torch.linspace(-12, 12, 40001, dtype=F64)[:, None, None]
    weight = (2 * wf.log_psi(grid)).exp()
    exact = float((weight * ham.local_energy(grid, wf.evaluate(grid))).sum() / weight.sum())
    for sampler in (Metropolis(2.0), ImportanceSampling(0.3)):
        state = init_state(wf, 256, seed=5)
        smp = sample(wf, ham, sampler, state, 512, burn_in=100)
        est = energy_estimate(smp.local_energy)
        assert abs(est.z_score(exact)) < Z_MAX, (sampler, est, exact)
        assert 0.3 < smp.acceptance < 1.0


def test_importance_and_brute_force_sampling_agree_for_interacting_electrons() -> None:
    wf = RBMWavefunction(2, 2, 2, jastrow=True, beta=0.6, init_std=0.5, seed=6)
    ham = HarmonicTrap(1.0, interaction=True)
    ests = []
    for sampler in (Metropolis(2.0), ImportanceSampling(0.3)):
        smp = sample(wf, ham, sampler, init_state(wf, 256, seed=7), 512, burn_in=100)
        ests.append(energy_estimate(smp.local_energy))
    (m, i) = ests
    assert abs(m.value - i.value) < Z_MAX * math.hypot(m.stderr, i.stderr), ests
    assert m.value > 3.0 and i.value > 3.0  # variational


def test_blocking_error_matches_the_spread_of_independent_runs() -> None:
    """40 independent runs (4 walkers each, one vectorised chain); small Metropolis steps make
    tau about 15. Var(run means) / mean(blocking se^2) ~ chi2(39) / 39 if the errors are right."""
    runs, per_run, steps = 40, 4, 2048
    wf = RBMWavefunction(1, 1, 2, init_std=0.6, seed=8)
    ham = HarmonicTrap(1.0)
    state = init_state(wf, runs * per_run, seed=9)
    e_local = sample(wf, ham, Metropolis(1.2), state, steps, burn_in=500).local_energy
    ests = [energy_estimate(e_local[:, k * per_run : (k + 1) * per_run]) for k in range(runs)]
    means = torch.tensor([e.value for e in ests], dtype=F64)
    se2 = torch.tensor([e.stderr**2 for e in ests], dtype=F64)
    ratio = float(means.var() / se2.mean())
    dof = runs - 1
    lo, hi = stats.chi2.ppf([0.001, 0.999], dof) / dof
    assert lo < ratio < hi, (ratio, lo, hi)
    naive = float(means.var() / (e_local.var() / (steps * per_run)))
    assert naive > 3 * hi  # correlated enough that ignoring tau would fail the test
    assert float(torch.tensor([e.tau for e in ests]).median()) > 5


def test_walker_spread_gives_the_error_of_series_shorter_than_tau() -> None:
    """64 independent AR(1) walkers (rho 0.95, tau 39) of 16 steps: the blocked series alone
    underestimated the error about 2.4x; the spread of the walkers' means does not."""
    rho, steps, walkers = 0.95, 16, 64
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(steps, walkers, dtype=F64)
    x[0] = torch.randn(walkers, generator=g, dtype=F64) / math.sqrt(1 - rho**2)
    for t in range(1, steps):
        x[t] = rho * x[t - 1] + torch.randn(walkers, generator=g, dtype=F64)
    lags = torch.arange(steps, dtype=F64)
    corr = rho ** (lags[:, None] - lags[None, :]).abs()  # Var(series) = 1 / (1 - rho^2)
    exact = math.sqrt(float(corr.sum()) / (1 - rho**2) / steps**2 / walkers)
    # the estimate's own relative sd is about 1 / sqrt(2 (walkers - 1)) = 9%
    assert energy_estimate(x).stderr == pytest.approx(exact, rel=0.3)


def test_sampler_state_is_reproducible_and_resumable(tmp_path: Path) -> None:
    from genphys.io import save_tensors

    wf = RBMWavefunction(2, 2, 2, seed=1)
    ham, sampler = HarmonicTrap(1.0, interaction=True), ImportanceSampling()
    a, b = init_state(wf, 16, seed=3), init_state(wf, 16, seed=3)
    whole = sample(wf, ham, sampler, a, 20).local_energy
    first = sample(wf, ham, sampler, b, 8).local_energy
    save_tensors(tmp_path / "state.safetensors", b.to_tensors())
    resumed = SamplerState.from_tensors(load_tensors(tmp_path / "state.safetensors"), wf)
    rest = sample(wf, ham, sampler, resumed, 12).local_energy
    assert torch.equal(whole, torch.cat([first, rest]))
    assert resumed.steps == 20 and torch.equal(resumed.accepted, a.accepted)
    assert resumed.acceptance().shape == (16,) and 0 < float(resumed.acceptance().mean()) <= 1


# ---------------------------------------------------------------------- interacting electrons
def test_two_electrons_plain_rbm_is_variational_and_below_3_10() -> None:
    cfg = VMCConfig(particles=2, dim=2, hidden=2, interaction=True, iterations=200, seed=0)
    result = run_vmc(cfg)
    assert result.reference is not None and result.reference.energy == 3.0
    assert result.energy.value < 3.10, result.energy
    assert result.energy.z_score(3.0) > 3  # a cusp-less RBM stays clearly above the exact 3
    assert all(r.energy.z_score(3.0) > -3 for r in result.history)


def test_two_electrons_with_pade_jastrow_below_3_01() -> None:
    cfg = VMCConfig(particles=2, dim=2, hidden=2, interaction=True, jastrow=True, iterations=150)
    result = run_vmc(cfg)
    assert result.energy.value < 3.01, result.energy
    assert result.energy.z_score(3.0) > -3, result.energy
    assert result.variance < 0.01  # the cusp removes the 1/r divergence of E_L


# ---------------------------------------------------------------------- runs and CLI
def _cli(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["vmc", *argv])  # the real genphys parser


QUICK = ["--iterations", "20", "--samples", "1024", "--final-samples", "4096", "--walkers", "64"]


def test_cli_json_and_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = _cli("--particles", "2", "--dim", "2", "--omega", "1.0", "--hidden", "2",
                "--interaction", "--jastrow", "--json", "--out", str(out), *QUICK)  # fmt: skip
    assert vmc(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reference"] == 3.0 and summary["reference_exact"] is True
    assert summary["stderr"] > 0 and 0 < summary["acceptance"] < 1 and summary["variance"] > 0
    assert summary["energy"] > 3.0 - 4 * summary["stderr"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "parameters.safetensors", "sampler_state.safetensors", "history.jsonl",
            "result.json", "energy.png", "density.png"} <= names  # fmt: skip
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 20 and {"energy", "stderr", "variance", "acceptance"} <= set(history[0])
    config, wf = load_run(out)
    assert config.jastrow and config.interaction and wf.jastrow
    assert json.loads((out / "result.json").read_text())["energy"] == summary["energy"]
    # the same run from Python gives the same numbers
    same = run_vmc(config)
    assert same.energy.value == summary["energy"]
    assert torch.equal(same.wavefunction.parameter_vector(), wf.parameter_vector())


def test_cli_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert vmc(_cli("--particles", "1", "--dim", "1", "--sampler", "metropolis", *QUICK)) == 0
    out = capsys.readouterr().out
    assert "energy" in out and "reference 0.5" in out and "iter" in out
    few = ("--particles", "1", "--dim", "1", "--walkers", "4", "--iterations", "1")
    assert vmc(_cli(*few)) == 0  # too few walkers for the walker-spread error check
    assert "warning: with 4 walkers the error bars" in capsys.readouterr().err


def test_system_trap_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for extra in ([], ["--system", "trap"]):
        assert vmc(_cli("--particles", "1", "--dim", "2", "--json", *QUICK, *extra)) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0]["energy"] == runs[1]["energy"] and runs[0]["config"] == runs[1]["config"]
    assert "system" not in runs[0]  # the trap summary is unchanged


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--particles", "0"], "particles"),
        (["--dim", "0"], "dimension"),
        (["--omega", "0"], "omega"),
        (["--omega", "-1"], "omega"),
        (["--hidden", "0"], "hidden"),
        (["--optimizer", "lbfgs"], "optimizer"),
        (["--sampler", "gibbs"], "sampler"),
        (["--walkers", "0"], "walkers"),
        (["--lr", "0"], "learning rate"),
        (["--dt", "0"], "dt"),
        (["--omega", "1e-200"], "between 1e-6 and 1e6"),  # overflowed in the wavefunction
        (["--omega", "1e200"], "between 1e-6 and 1e6"),
        (["--sigma", "1e-200"], "between 1e-6 and 1e6"),
        (["--step", "-1"], "step"),
        (["--dim", "1", "--interaction"], "dim >= 2"),
        (["--particles", "1", "--jastrow"], "2 particles"),
        (["--threads", "0"], "threads"),
        (["--samples", "0"], "samples"),
        (["--seed", "-1"], "seed"),
        (["--system", "tfim", "--seed", "-3"], "seed"),
        (["--out", "/dev/null/run"], "cannot write into"),  # before any optimisation
    ],
)
def test_bad_input_is_one_line_genphys_error(argv: list[str], message: str) -> None:
    with pytest.raises(GenphysError, match=message) as info:
        vmc(_cli(*argv))
    assert "\n" not in str(info.value)


def test_load_run_refuses_foreign_directories(tmp_path: Path) -> None:
    with pytest.raises(GenphysError, match="missing"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text('{"model": {}}')
    with pytest.raises(GenphysError, match="not a VMC run"):
        load_run(tmp_path)


def test_resumed_and_interrupted_runs_continue_exactly(tmp_path: Path) -> None:
    """A run stopped after 3 of 7 iterations (a finished shorter run, or stop() = Ctrl-C)
    and resumed ends with the parameters, records and energy of the uninterrupted run."""
    import dataclasses

    cfg = VMCConfig(particles=2, dim=2, interaction=True, jastrow=True, optimizer="adam",
                    iterations=7, samples=512, walkers=64, final_samples=2048,
                    equilibration=20)  # fmt: skip
    full = run_vmc(cfg, out=tmp_path / "full", checkpoint_every=2)
    run_vmc(dataclasses.replace(cfg, iterations=3), out=tmp_path / "short")
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] == 3

    with pytest.raises(KeyboardInterrupt):
        run_vmc(cfg, out=tmp_path / "stopped", stop=stop, checkpoint_every=5)
    for name in ("short", "stopped"):
        resumed = run_vmc(cfg, out=tmp_path / name, resume=True)
        assert resumed.history == full.history and resumed.energy == full.energy, name
        assert torch.equal(
            resumed.wavefunction.parameter_vector(), full.wavefunction.parameter_vector()
        )
    with pytest.raises(GenphysError, match="done 7 iterations"):
        run_vmc(dataclasses.replace(cfg, iterations=5), out=tmp_path / "full", resume=True)
    with pytest.raises(GenphysError, match="no checkpoint"):
        run_vmc(cfg, out=tmp_path / "nothing", resume=True)


def test_cli_resume_takes_only_more_iterations(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    quick = ["--samples", "512", "--final-samples", "2048", "--walkers", "64", "--json"]
    assert vmc(_cli("--interaction", "--iterations", "4", "--out", str(out), *quick)) == 0
    capsys.readouterr()
    assert vmc(_cli("--resume", "--out", str(out), "--iterations", "6", "--json")) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert (
        vmc(_cli("--interaction", "--iterations", "6", "--out", str(tmp_path / "b"), *quick)) == 0
    )
    assert json.loads(capsys.readouterr().out)["energy"] == resumed["energy"]
    with pytest.raises(GenphysError, match="only --iterations may change"):
        vmc(_cli("--resume", "--out", str(out), "--lr", "0.1"))
    with pytest.raises(GenphysError, match="give its directory"):
        vmc(_cli("--resume"))


def test_ctrl_c_checkpoints_a_vmc_run_between_iterations(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from genphys.physics.vmc_checkpoint import CHECKPOINT_FILE

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "genphys.cli", "vmc", "--iterations", "100000", "--samples",
           "256", "--walkers", "32", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / CHECKPOINT_FILE).exists():  # 10 iterations done
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "--resume --out" in stderr
    from genphys.physics.vmc_checkpoint import load_checkpoint

    n = load_tensors(out / CHECKPOINT_FILE)["theta"].numel()
    settings = {
        k: v
        for k, v in json.loads((out / "config.json").read_text()).items()
        if k != "genphys_version"
    }
    progress = load_checkpoint(out, n, settings, 10**9)[1]
    assert progress.done >= 10 and len(progress.history) == progress.done


def test_resume_guards(tmp_path: Path, capsys) -> None:
    """A Ctrl-C in the last iteration stops before the evaluation (a resume redoes it); a
    finished directory is not overwritten by a new run; a run of 0 iterations can be
    extended; an edited config.json or a checkpoint of other settings is one line."""
    import dataclasses

    cfg = VMCConfig(particles=2, dim=2, iterations=4, samples=256, walkers=32,
                    final_samples=1024, equilibration=10)  # fmt: skip
    full = run_vmc(cfg, out=tmp_path / "full")
    calls = [0]

    def stop() -> bool:  # set during the last iteration
        calls[0] += 1
        return calls[0] >= 4

    with pytest.raises(KeyboardInterrupt):
        run_vmc(cfg, out=tmp_path / "late", stop=stop)
    assert run_vmc(cfg, out=tmp_path / "late", resume=True).energy == full.energy
    with pytest.raises(GenphysError, match="already holds a run"):
        run_vmc(cfg, out=tmp_path / "full")
    (tmp_path / "diverged").mkdir()  # stopped before its first checkpoint: config.json alone
    (tmp_path / "diverged" / "config.json").write_text("{}")
    assert run_vmc(cfg, out=tmp_path / "diverged").energy == full.energy
    run_vmc(dataclasses.replace(cfg, iterations=0), out=tmp_path / "zero")
    extended = run_vmc(cfg, out=tmp_path / "zero", resume=True)
    assert extended.history == full.history and extended.energy == full.energy
    with pytest.raises(GenphysError, match="other settings"):
        run_vmc(dataclasses.replace(cfg, seed=5), out=tmp_path / "full", resume=True)
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    config["vmc"]["omega"] = "1"
    (tmp_path / "full" / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenphysError, match="omega must be a number"):
        vmc(_cli("--resume", "--out", str(tmp_path / "full")))
