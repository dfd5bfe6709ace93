"""The transverse-field Ising chain: exact energies, the RBM spin state and its VMC.

Exact diagonalization against Kronecker products and against the free-fermion solution (and
NetKet's published N = 20 energy); the state's derivatives against autograd; local energies
against H psi / psi; the sampler against |psi|^2 by enumeration; SR against the exact energy.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from genphys.cli.main import build_parser
from genphys.cli.vmc import vmc
from genphys.errors import GenphysError, TrainingDiverged
from genphys.io import load_tensors
from genphys.physics.tfim import (
    RBMSpinState,
    SpinChains,
    all_configurations,
    exact_energy,
    exact_ground_energy,
    free_fermion_ground_energy,
    hamiltonian_matrix,
    init_chains,
    local_energy,
    metropolis_sweep,
    optimize_tfim,
    reference_energy,
    sample_tfim,
)
from genphys.physics.vmc import energy_estimate

F64 = torch.float64
NETKET_N20 = -25.49098969  # NetKet's Ising tutorial: N = 20, J = Gamma = 1, periodic


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-spin flips move small tensors: on a busy 2-core box run torch on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------- exact energies
def _kron_hamiltonian(n: int, J: float, gamma: float) -> np.ndarray:
    """H from Kronecker products of Pauli matrices; site 0 is the least significant bit."""
    sx, sz, one = np.array([[0, 1], [1, 0]]), np.diag([1.0, -1.0]), np.eye(2)

    def site(ops: dict[int, np.ndarray]) -> np.ndarray:
        return functools.reduce(np.kron, [ops.get(i, one) for i in reversed(range(n))])

    h = sum(-J * site({i: sz} | {(i + 1) % n: sz}) for i in range(n) if n > 2 or i == 0)
    if n == 2:  # both bonds (0, 1) and (1, 0) of the ring join the same pair
        h = 2 * h
    return h - gamma * sum(site({i: sx}) for i in range(n))


@pytest.mark.parametrize(("n", "J", "gamma"), [(2, 1.0, 0.7), (3, -0.8, 1.3), (4, 1.0, 1.0)])
def test_hamiltonian_matrix_is_the_pauli_sum(n: int, J: float, gamma: float) -> None:
    np.testing.assert_allclose(
        hamiltonian_matrix(n, J, gamma).toarray(), _kron_hamiltonian(n, J, gamma), atol=1e-15
    )


@pytest.mark.parametrize("n", [4, 6, 8, 10])
def test_free_fermions_match_exact_diagonalization(n: int) -> None:
    assert abs(free_fermion_ground_energy(n) - exact_ground_energy(n)) < 1e-10


@pytest.mark.parametrize("n", [2, 3, 5, 7, 9])
@pytest.mark.parametrize(("J", "gamma"), [(1.0, 0.3), (0.4, 1.0), (-1.0, 0.6), (0.7, -2.0)])
def test_free_fermion_parity_sectors_match_ed_for_any_signs(n: int, J: float, gamma: float) -> None:
    """Odd chains, antiferromagnets (frustrated for odd N) and negative fields: the lower parity
    sector, with the unpaired k = 0, pi modes, must be picked every time."""
    assert abs(free_fermion_ground_energy(n, J, gamma) - exact_ground_energy(n, J, gamma)) < 1e-10


def test_free_fermions_reproduce_netket_n20() -> None:
    assert abs(free_fermion_ground_energy(20) - NETKET_N20) < 1e-8


@pytest.mark.slow
def test_exact_diagonalization_reproduces_netket_n20() -> None:
    assert abs(exact_ground_energy(20) - NETKET_N20) < 1e-8  # about 20 s, 0.7 GB


def test_limits_and_references() -> None:
    assert exact_ground_energy(6, 1.0, 0.0) == -6.0  # Gamma = 0: diagonal
    assert exact_ground_energy(10, 0.0, 0.0) == 0.0
    assert reference_energy(8).source == "exact diagonalization"
    far = reference_energy(40)
    assert far.source == "free fermions" and far.exact and far.energy < -40
    for bad in (1, 21, 2.5, True):
        with pytest.raises(GenphysError, match="spins"):
            hamiltonian_matrix(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the RBM state
@pytest.mark.parametrize("complex_", [False, True])
def test_log_psi_is_the_product_formula(complex_: bool) -> None:
    psi = RBMSpinState(5, 7, seed=2, init_std=0.6, complex=complex_)
    s = all_configurations(5).to(psi.dtype)
    direct = (s @ psi.a).exp() * (2 * torch.cosh(psi.b + s @ psi.W)).prod(1)
    torch.testing.assert_close(psi.log_psi(s.real).exp(), direct, rtol=1e-12, atol=0)
    big = RBMSpinState(5, 7, seed=2, init_std=300.0)  # 2 cosh overflows; its log must not
    assert torch.isfinite(big.log_psi(s.real)).all()


def test_log_derivatives_match_autograd() -> None:
    psi = RBMSpinState(6, 9, seed=3, init_std=0.7)
    s = all_configurations(6)[::5]
    params = [psi.a, psi.b, psi.W]
    for p in params:
        p.requires_grad_(True)
    rows = []
    for lp in psi.log_psi(s):
        grads = torch.autograd.grad(lp, params, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    for p in params:
        p.requires_grad_(False)
    ours = psi.log_derivatives(s)
    assert ours.shape == (len(s), psi.n_parameters) == (len(s), 6 + 9 + 54)
    torch.testing.assert_close(ours, torch.stack(rows), rtol=1e-12, atol=1e-12)


def test_complex_log_derivatives_are_holomorphic_derivatives() -> None:
    """d ln psi / d theta along a real and an imaginary step agree (Cauchy-Riemann) and
    equal O_k: central differences, step 1e-5."""
    psi = RBMSpinState(4, 3, seed=4, init_std=0.5, complex=True)
    s = all_configurations(4)
    theta, o = psi.parameter_vector(), psi.log_derivatives(s)
    h = 1e-5
    for k in range(psi.n_parameters):
        for step in (h, 1j * h):
            e = torch.zeros_like(theta)
            e[k] = step
            psi.set_parameter_vector(theta + e)
            up = psi.log_psi(s)
            psi.set_parameter_vector(theta - e)
            down = psi.log_psi(s)
            torch.testing.assert_close((up - down) / (2 * step), o[:, k], rtol=0, atol=1e-8)
    psi.set_parameter_vector(theta)


@pytest.mark.parametrize("complex_", [False, True])
def test_local_energy_is_h_psi_over_psi(complex_: bool) -> None:
    n, J, gamma = 6, 0.8, 1.3
    psi = RBMSpinState(n, 12, seed=5, init_std=0.5, complex=complex_)
    s = all_configurations(n)
    h = torch.tensor(_kron_hamiltonian(n, J, gamma), dtype=psi.dtype)
    amp = psi.log_psi(s).exp()
    torch.testing.assert_close(local_energy(psi, s, J, gamma), h @ amp / amp, rtol=1e-10, atol=0)
    e = exact_energy(psi, J, gamma)
    assert e == pytest.approx(float((amp.conj() @ h @ amp).real / (amp.abs() ** 2).sum()), 1e-12)
    assert e > exact_ground_energy(n, J, gamma)  # variational


# ---------------------------------------------------------------------- sampling
@pytest.mark.parametrize("complex_", [False, True])
def test_metropolis_histogram_matches_psi_squared(complex_: bool) -> None:
    """20000 independent chains, 30 sweeps each: their configurations against |psi|^2."""
    n = 6
    psi = RBMSpinState(n, 6, seed=6, init_std=0.15, complex=complex_)
    chains = init_chains(n, 20000, seed=7)
    for _ in range(30):
        metropolis_sweep(psi, chains)
    index = ((1 - chains.spins) / 2).long() @ (1 << torch.arange(n))  # the matrix's order
    observed = torch.bincount(index, minlength=1 << n).double()
    p = torch.softmax(2 * psi.log_psi(all_configurations(n)).real, 0)
    expected = p * observed.sum()
    assert float(expected.min()) > 5 and float(p.max() / p.min()) > 10  # a real test
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3
    assert 0.2 < float(chains.acceptance().mean()) < 1 and chains.steps == 30


def test_global_flips_cross_between_mirror_image_peaks() -> None:
    """A sharply two-peaked state (the top configuration holds 73% of |psi|^2): single flips
    alone left half of the chains in the mirror peak (44.7% on the top configuration)."""
    n = 8
    psi = RBMSpinState(n, n, seed=1, init_std=0.5)
    chains = init_chains(n, 2000, seed=3)
    for _ in range(300):
        metropolis_sweep(psi, chains)
    index = ((1 - chains.spins) / 2).long() @ (1 << torch.arange(n))
    observed = torch.bincount(index, minlength=1 << n).double() / 2000
    p = torch.softmax(2 * psi.log_psi(all_configurations(n)).real, 0)
    for k in torch.argsort(p, descending=True)[:4]:
        sd = float((p[k] * (1 - p[k]) / 2000).sqrt())
        assert abs(float(observed[k] - p[k])) < 4 * sd, (int(k), float(observed[k]), float(p[k]))


def test_chains_are_reproducible_and_resumable() -> None:
    psi = RBMSpinState(7, 7, seed=8, init_std=0.3)
    a, b = init_chains(7, 32, seed=9), init_chains(7, 32, seed=9)
    whole = sample_tfim(psi, a, 1.0, 0.5, 10, derivatives=True)
    first = sample_tfim(psi, b, 1.0, 0.5, 4, derivatives=True)
    rest = sample_tfim(psi, b, 1.0, 0.5, 6, derivatives=True)
    assert torch.equal(whole.local_energy, torch.cat([first.local_energy, rest.local_energy]))
    assert whole.log_derivatives is not None and rest.log_derivatives is not None
    assert whole.log_derivatives.shape == (10, 32, psi.n_parameters)
    assert torch.equal(a.spins, b.spins) and torch.equal(a.accepted, b.accepted)
    assert a.steps == b.steps == 10 and isinstance(a, SpinChains)


def test_sampled_energy_agrees_with_enumeration() -> None:
    psi = RBMSpinState(8, 8, seed=10, init_std=0.3)
    smp = sample_tfim(psi, init_chains(8, 256, seed=11), 1.0, 1.0, 256, burn_in=20)
    est = energy_estimate(smp.local_energy)
    assert abs(est.z_score(exact_energy(psi))) < 4, (est, exact_energy(psi))


# ---------------------------------------------------------------------- optimisation
@pytest.mark.parametrize("alpha", [1, 2])
def test_sr_reaches_the_exact_energy_for_n8(alpha: int) -> None:
    n = 8
    exact = exact_ground_energy(n)
    psi = RBMSpinState(n, alpha * n, seed=0)
    opt = optimize_tfim(psi, 1.0, 1.0, "sr", 0.1, 60, 1024, seed=0)
    ansatz = exact_energy(psi)  # the optimised state's energy without sampling noise
    assert exact - 1e-10 < ansatz < exact + 1e-3 * abs(exact), ansatz
    final = energy_estimate(sample_tfim(psi, opt.chains, 1.0, 1.0, 128).local_energy)
    assert abs(final.value - exact) < 1e-3 * abs(exact) and final.z_score(exact) > -3, final
    assert all(r.energy.z_score(exact) > -4 for r in opt.history[-10:])
    assert opt.history[0].energy.value > exact + 0.1 * abs(exact)  # it started far away


def test_default_sr_step_is_stable_in_a_strong_field() -> None:
    """At Gamma = 8 an SR step of 0.1 overshoots (lr x 4 Gamma > 2) and diverges within a few
    iterations; the default scales the step down by the energy scale and converges."""
    n, gamma = 6, 8.0
    exact = exact_ground_energy(n, 1.0, gamma)
    psi = RBMSpinState(n, n, seed=0)
    optimize_tfim(psi, 1.0, gamma, "sr", None, 60, 512, seed=0)
    assert exact_energy(psi, 1.0, gamma) < exact + 1e-3 * abs(exact)


@pytest.mark.slow
def test_sr_reaches_netkets_n20_energy() -> None:
    """N = 20, alpha = 1, 100 SR iterations (about 10 s): within 3e-4 of -25.49098969."""
    psi = RBMSpinState(20, 20, seed=0)
    opt = optimize_tfim(psi, 1.0, 1.0, "sr", 0.1, 100, 2048, seed=0)
    final = energy_estimate(sample_tfim(psi, opt.chains, 1.0, 1.0, 256).local_energy)
    assert abs(final.value - NETKET_N20) < 3e-4 * abs(NETKET_N20), final
    assert final.z_score(NETKET_N20) > -3, final


def test_complex_state_reaches_the_exact_energy() -> None:
    psi = RBMSpinState(6, 6, seed=1, complex=True)
    exact = exact_ground_energy(6, 1.0, 0.5)
    optimize_tfim(psi, 1.0, 0.5, "sr", 0.1, 60, 1024, seed=1)
    assert exact - 1e-10 < exact_energy(psi, 1.0, 0.5) < exact + 1e-3 * abs(exact)


@pytest.mark.parametrize(("method", "lr"), [("sgd", 0.02), ("adam", 0.02), ("sr", 0.05)])
def test_every_optimizer_lowers_the_energy(method: str, lr: float) -> None:
    psi = RBMSpinState(6, 6, seed=2)
    before = exact_energy(psi)
    hist = optimize_tfim(psi, 1.0, 1.0, method, lr, 40, 512, seed=3).history
    after = exact_energy(psi)
    assert after < before - 0.5 and after > exact_ground_energy(6), (method, before, after)
    assert len(hist) == 40 and hist[-1].energy.value < hist[0].energy.value


def test_optimizer_input_errors() -> None:
    psi = RBMSpinState(4, 4)
    for kwargs, message in [
        ({"method": "lbfgs"}, "optimizer"),
        ({"lr": 0.0}, "learning rate"),
        ({"samples": 0}, "samples"),
        ({"chains": 0}, "chains"),
    ]:
        with pytest.raises(GenphysError, match=message):
            optimize_tfim(psi, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TrainingDiverged, match="non-finite"):
        optimize_tfim(psi, method="sgd", lr=1e8, iterations=10, samples=256, chains=64)
    with pytest.raises(GenphysError, match="spins"):
        RBMSpinState(1, 4)
    with pytest.raises(GenphysError, match="shape"):
        psi.log_psi(torch.ones(3, 5, dtype=F64))


# ---------------------------------------------------------------------- CLI
def _cli(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["vmc", *argv])  # the real genphys parser


QUICK = ["--iterations", "30", "--samples", "1024", "--final-samples", "16384", "--walkers", "128"]


def test_cli_json_and_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = _cli("--system", "tfim", "--spins", "8", "--field", "0.8", "--hidden", "16",
                "--json", "--out", str(out), *QUICK)  # fmt: skip
    assert vmc(args) == 0
    summary = json.loads(capsys.readouterr().out)
    exact = exact_ground_energy(8, 1.0, 0.8)
    assert summary["system"] == "tfim" and summary["reference"] == pytest.approx(exact, abs=1e-12)
    assert summary["reference_source"] == "exact diagonalization" and summary["reference_exact"]
    assert abs(summary["relative_error"]) < 2e-3 and summary["z"] > -4
    assert summary["relative_error"] == pytest.approx((summary["energy"] - exact) / abs(exact))
    assert summary["stderr"] > 0 and 0 < summary["acceptance"] < 1
    cfg = summary["config"]
    assert (cfg["spins"], cfg["coupling"], cfg["field"], cfg["hidden"]) == (8, 1.0, 0.8, 16)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "parameters.safetensors", "history.jsonl", "result.json",
            "energy.png"} <= names  # fmt: skip
    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) == 30 and json.loads(history[-1])["iteration"] == 29
    assert json.loads((out / "result.json").read_text())["energy"] == summary["energy"]
    params = load_tensors(out / "parameters.safetensors")
    assert params["W"].shape == (8, 16) and json.loads((out / "config.json").read_text())["tfim"]


def test_cli_text_output_uses_free_fermions_beyond_16_spins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--system", "tfim", "--spins", "18", "--iterations", "3", "--samples", "256",
            "--final-samples", "1024", "--walkers", "64"]  # fmt: skip
    assert vmc(_cli(*argv)) == 0
    out = capsys.readouterr().out
    assert "iter" in out and "free fermions" in out and "relative error" in out
    assert f"{free_fermion_ground_energy(18):.10g}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--system", "ising"], "unknown system"),
        (["--system", "tfim", "--spins", "1"], "spins"),
        (["--system", "tfim", "--hidden", "0"], "hidden"),
        (["--system", "tfim", "--field", "inf"], "finite"),
        (["--system", "tfim", "--field", "-1"], r"field must be >= 0.*--field 1\.0"),
        (["--system", "tfim", "--optimizer", "lbfgs"], "optimizer"),
        (["--system", "tfim", "--lr", "-1"], "learning rate"),
        (["--system", "tfim", "--walkers", "0"], "walkers"),
        (["--system", "tfim", "--particles", "2"], "--particles applies to --system trap"),
        (["--system", "tfim", "--jastrow"], "--jastrow applies to --system trap"),
        (["--spins", "8"], "--spins applies to --system tfim"),
        (["--coupling", "2"], "--coupling applies to --system tfim"),
        (["--coupling", "0"], "--coupling applies to --system tfim"),  # 0 == False
        (["--system", "tfim", "--omega", "0"], "--omega applies to --system trap"),
    ],
)
def test_bad_input_is_one_line_genphys_error(argv: list[str], message: str) -> None:
    with pytest.raises(GenphysError, match=message) as info:
        vmc(_cli(*argv))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("system", ["trap", "tfim"])
def test_singular_sr_matrix_is_one_clear_line(system: str) -> None:
    """Identical hidden units (init_std 0) and no diagonal shift make S singular."""
    args = _cli("--system", system, "--init-std", "0", "--diag-shift", "0", "--iterations", "2",
                "--samples", "256", "--final-samples", "256", "--walkers", "16")  # fmt: skip
    with pytest.raises(TrainingDiverged, match="singular") as info:
        vmc(args)
    assert "\n" not in str(info.value)


def test_cli_resume_continues_a_tfim_run_exactly(tmp_path: Path, capsys) -> None:
    quick = ["--system", "tfim", "--spins", "6", "--samples", "256", "--final-samples", "2048",
             "--walkers", "32", "--optimizer", "adam", "--json"]  # fmt: skip
    assert vmc(_cli(*quick, "--iterations", "6", "--out", str(tmp_path / "full"))) == 0
    full = json.loads(capsys.readouterr().out)
    assert vmc(_cli(*quick, "--iterations", "3", "--out", str(tmp_path / "part"))) == 0
    capsys.readouterr()
    resumed_args = ["--resume", "--out", str(tmp_path / "part"), "--iterations", "6", "--json"]
    assert vmc(_cli(*resumed_args)) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["energy"] == full["energy"] and resumed["config"] == full["config"]
    history = (tmp_path / "part" / "history.jsonl").read_text()
    assert history == (tmp_path / "full" / "history.jsonl").read_text()


def test_complex_states_checkpoint_and_resume_exactly(tmp_path: Path) -> None:
    from genphys.physics.tfim import RBMSpinState, optimize_tfim
    from genphys.physics.vmc_checkpoint import load_checkpoint, save_checkpoint

    meta = {"tfim": {"spins": 4}}

    def run(iterations: int, resume: bool):
        psi = RBMSpinState(4, 4, seed=1, complex=True)
        chains = progress = None
        if resume:
            theta, progress, tensors = load_checkpoint(tmp_path, psi.n_parameters, meta, 6)
            psi.set_parameter_vector(theta)
            chains = SpinChains.from_tensors(tensors)

        def checkpoint(p, c) -> None:
            save_checkpoint(tmp_path, psi.parameter_vector(), p, c.to_tensors(), meta)

        opt = optimize_tfim(psi, 1.0, 0.8, "adam", None, iterations, 128, 0, chains=16,
                            state=chains, progress=progress, checkpoint=checkpoint,
                            equilibration=10)  # fmt: skip
        return psi.parameter_vector(), opt.history

    theta_full, history_full = run(6, False)
    run(3, False)
    theta, history = run(6, True)
    assert theta.is_complex() and torch.equal(theta, theta_full) and history == history_full


def test_cli_resume_refuses_edited_tfim_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    quick = ["--system", "tfim", "--spins", "4", "--iterations", "2", "--samples", "64",
             "--walkers", "16", "--final-samples", "256", "--json"]  # fmt: skip
    assert vmc(_cli(*quick, "--out", str(out))) == 0
    config = json.loads((out / "config.json").read_text())
    for key, value in (("lr", "abc"), ("walkers", 0), ("coupling", "x")):
        edited = {**config, "tfim": {**config["tfim"], key: value}}
        (out / "config.json").write_text(json.dumps(edited))
        with pytest.raises(GenphysError):
            vmc(_cli("--resume", "--out", str(out)))
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenphysError, match="holds a --system tfim run"):
        vmc(_cli("--resume", "--out", str(out), "--system", "trap"))
