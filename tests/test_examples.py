"""The scripts in examples/ run, with short settings, and print what their docstrings promise:
Monte Carlo against exact answers within their standard errors, AIS against enumeration,
MALA exact where ULA is biased, the Jastrow factor exact for two electrons."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ising_thermodynamics_match_kaufman(tmp_path: Path) -> None:
    args = ["--L", "8", "--temperatures", "1.5:3.0:0.75", "--sweeps", "300"]
    result = _example("ising_thermodynamics").main([*args, "--out", str(tmp_path)])
    assert result["T"] == [1.5, 2.25, 3.0]
    assert max(abs(z) for z in result["energy_z"] + result["specific_heat_z"]) < 4, result
    assert (tmp_path / "observables.png").is_file()


def test_rbm_digits_ais_agrees_with_enumeration(tmp_path: Path) -> None:
    r = _example("rbm_digits").main(
        ["--epochs", "5", "--ais-betas", "2000", "--out", str(tmp_path)]
    )
    assert abs(r["ais"] - r["log_z"]) < max(4 * r["ais_stderr"], 0.05), r
    assert r["log_likelihood"] > -64 * math.log(2)  # better than a uniform guess per pixel
    assert (tmp_path / "samples.png").is_file()


def test_rbm_ising_data_are_exact_and_the_rbm_learns_them(tmp_path: Path) -> None:
    args = ["--samples", "5000", "--epochs", "120", "--gibbs-steps", "400", "--out", str(tmp_path)]
    r = _example("rbm_ising").main(args)
    assert all(abs(v["data_z"]) < 4 for v in r.values()), r  # the Monte Carlo training data
    for name in ("energy", "abs_magnetization"):  # an untrained RBM: energy ~0, |m| ~0.3
        assert abs(r[name]["value"] - r[name]["exact"]) < 0.1 * abs(r[name]["exact"]), r


def test_vae_importance_weighting_tightens_the_elbo(tmp_path: Path) -> None:
    r = _example("vae_latent").main(["--epochs", "5", "--k", "100", "--out", str(tmp_path)])
    assert r["iwae_nll"] < r["neg_elbo"], r  # per image L_k >= L_1; same held-out images
    assert (tmp_path / "latent.png").is_file() and (tmp_path / "clusters.png").is_file()


def test_mala_is_exact_where_ula_is_biased(tmp_path: Path) -> None:
    args = ["--chains", "5000", "--steps", "500", "--out", str(tmp_path)]
    r = _example("langevin_double_well").main(args)
    assert r["MALA"]["p_value"] > 1e-3 and r["ULA"]["p_value"] < 1e-6, r
    assert 0.5 < r["MALA"]["acceptance"] < 1


def test_vmc_jastrow_is_exact_for_two_electrons(tmp_path: Path) -> None:
    args = ["--iterations", "60", "--final-samples", "16384", "--out", str(tmp_path)]
    r = _example("vmc_quantum_dot").main(args)
    jastrow, rbm = r["rbm+jastrow"], r["rbm"]
    assert abs(jastrow["energy"] - 3.0) < 4 * jastrow["stderr"], r
    assert rbm["energy"] > 3.0 + 3 * rbm["stderr"], r  # variational: the RBM alone lies above


@pytest.mark.slow
def test_pacgan_covers_the_ring_where_a_plain_gan_collapses(tmp_path: Path) -> None:
    r = _example("gan_ring").main(["--out", str(tmp_path)])
    assert r[4]["modes_hit"] == 8 and r[4]["high_quality"] > 0.5, r
    assert r[1]["modes_hit"] < 8, r
