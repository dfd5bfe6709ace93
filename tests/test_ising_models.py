"""Ising datasets through the CLI, models trained on spins, judged against exact answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genphys.cli.main import main
from genphys.errors import GenphysError
from genphys.physics.compare import compare_runs
from genphys.physics.dataset import load_ising, parse_temperatures, simulate
from genphys.physics.ising_exact import exact_observables, kaufman_energy
from genphys.physics.observables import energy_per_spin, thermodynamics


@pytest.fixture(scope="module")
def ising_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ising") / "L4.npz"
    code = main(
        [
            "ising",
            "simulate",
            "--L",
            "4",
            "--T",
            "1.5,2.5",
            "--samples",
            "3000",
            "--chains",
            "100",
            "--seed",
            "3",
            "--out",
            str(path),
            "--json",
        ]
    )
    assert code == 0
    return path


def test_simulated_data_match_enumeration(ising_file: Path) -> None:
    data = load_ising(ising_file)
    assert data.spins.shape == (2, 3000, 4, 4) and data.spins.dtype == np.int8
    assert list(data.algorithm) == ["metropolis", "swendsen-wang"]  # SW within 0.5 of T_c
    np.testing.assert_allclose(data.energy[1], energy_per_spin(data.spins[1]))
    for k, T in enumerate(data.temperatures):
        est = thermodynamics(data.energy[k], data.magnetization[k], 4, T)
        exact = exact_observables(4, T)
        for name in ("energy", "abs_magnetization", "specific_heat", "binder"):
            assert abs(est[name].z_score(exact[name])) < 4, (T, name, est[name])
        assert abs(data.magnetization[k].mean()) < 0.1  # both ordered states are present
        assert data.thin[k] >= 1 and data.burn_in[k] >= 20 * data.tau_energy[k]


def test_negative_field_below_tc_starts_ordered_down() -> None:
    """h < 0 below T_c: chains start ordered along the field. From a random start, domains and
    chains ordered against the weak field outlive a short burn-in at L = 8, T = 1.5."""
    data = simulate(8, [1.5], 800, n_chains=200, seed=2, field=-0.05, burn_in=5)
    assert data.magnetization[0].max() < 0  # every sample ordered down, |m| about 0.99
    small = simulate(4, [2.0], 3000, n_chains=100, seed=2, field=-0.3)
    exact = exact_observables(4, 2.0, -0.3)
    est = thermodynamics(small.energy[0], small.magnetization[0], 4, 2.0)
    for name in ("energy", "abs_magnetization", "susceptibility", "binder"):
        assert abs(est[name].z_score(exact[name])) < 4, (name, est[name], exact[name])


def test_dataset_reproducible_and_loadable_as_data(ising_file: Path, tmp_path: Path) -> None:
    again = simulate(4, [1.5, 2.5], 3000, n_chains=100, seed=3)
    np.testing.assert_array_equal(again.spins, load_ising(ising_file).spins)
    from genphys.data import DataConfig, prepare_data

    prepared = prepare_data(
        DataConfig(name=str(ising_file), temperature=2.5, binarize="none", val_fraction=0.0)
    )
    assert prepared.train.shape == (3000, 16) and prepared.image_shape == (1, 4, 4)
    assert set(prepared.train.unique().tolist()) == {0.0, 1.0}
    spins = prepare_data(
        DataConfig(
            name=str(ising_file),
            temperature=2.5,
            binarize="none",
            scale="symmetric",
            val_fraction=0.0,
        )
    ).train
    assert set(spins.unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(GenphysError, match="pick one with --temperature"):
        prepare_data(DataConfig(name=str(ising_file)))
    with pytest.raises(GenphysError, match="not in the Ising data"):
        prepare_data(DataConfig(name=str(ising_file), temperature=3.0))


def test_exact_command_prints_kaufman_and_enumeration(capsys: pytest.CaptureFixture) -> None:
    assert main(["ising", "exact", "--L", "4", "--T", "2.0:3.0:0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["T"] for r in out["rows"]] == [2.0, 2.5, 3.0]
    row = out["rows"][1]
    exact = exact_observables(4, 2.5)
    assert row["energy"] == pytest.approx(exact["energy"], rel=1e-12)
    assert row["abs_magnetization"] == pytest.approx(exact["abs_magnetization"], rel=1e-12)
    assert main(["ising", "exact", "--L", "5", "--T", "2.5", "--json"]) == 0  # enumerated too
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["binder"] == pytest.approx(exact_observables(5, 2.5)["binder"], rel=1e-12)


def test_bad_ising_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = [
        ["ising", "simulate", "--L", "5", "--T", "2", "--out", str(tmp_path / "a.npz")],
        ["ising", "simulate", "--L", "4", "--T", "2:1:0.1", "--out", str(tmp_path / "a.npz")],
        ["ising", "simulate", "--L", "4", "--T", "2", "--out", str(tmp_path / "a.txt")],
        [
            "ising",
            "simulate",
            "--L",
            "4",
            "--T",
            "2",
            "--algorithm",
            "magic",
            "--out",
            str(tmp_path / "a.npz"),
        ],
        ["ising", "compare", str(tmp_path), "--data", str(tmp_path / "missing.npz")],
    ]
    quick = ["ising", "simulate", "--L", "4", "--T", "2", "--samples", "10"]
    bad += [[*quick, "--chains", "0", "--out", str(tmp_path / "a.npz")]]
    bad += [[*quick, "--seed", "-1", "--out", str(tmp_path / "a.npz")]]
    for argv in bad:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1, (argv, err)
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert parse_temperatures("1:2:0.5") == [1.0, 1.5, 2.0]


def test_train_rbm_on_spins_and_compare(ising_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "rbm"
    code = main(
        [
            "train",
            "rbm",
            "--data",
            str(ising_file),
            "--temperature",
            "2.5",
            "--binarize",
            "none",
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--no-progress",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    results = compare_runs([str(run)], ising_file, n_samples=200, gibbs_steps=100)
    (r,) = results
    assert r["T"] == 2.5 and r["L"] == 4 and r["family"] == "rbm"
    exact = exact_observables(4, 2.5)
    assert r["observables"]["energy"]["exact"] == pytest.approx(exact["energy"])
    assert r["observables"]["energy"]["model"]["tau"] >= 1.0
    assert (
        main(
            [
                "ising",
                "compare",
                str(run),
                "--data",
                str(ising_file),
                "--n-samples",
                "50",
                "--gibbs-steps",
                "20",
                "--out",
                str(tmp_path / "figs"),
            ]
        )
        == 0
    )
    assert (tmp_path / "figs" / "compare.png").stat().st_size > 0


@pytest.mark.slow
def test_rbm_reproduces_exact_energy_at_L4(tmp_path: Path) -> None:
    """Torlai & Melko at L = 4, T = 2.5: RBM samples' energy within 2% of the exact value."""
    data = tmp_path / "L4.npz"
    simulate(4, [2.5], 10000, seed=0).save(data)
    run = tmp_path / "rbm"
    recipe = "--hidden 32 --pcd --k 10 --lr 0.1 --momentum 0.5 --schedule cosine --init-std 0.1"
    argv = ["train", "rbm", "--data", str(data), "--binarize", "none", "--no-progress"]
    argv += [*recipe.split(), "--batch-size", "100", "--epochs", "300", "--out", str(run)]
    assert main(argv) == 0
    (r,) = compare_runs([str(run)], data, n_samples=1000, gibbs_steps=2000)
    energy = r["observables"]["energy"]
    exact = exact_observables(4, 2.5)["energy"]
    assert abs(energy["model"]["value"] - exact) / abs(exact) < 0.02, energy


def test_vae_and_gan_on_spins_are_compared(tmp_path: Path) -> None:
    data = tmp_path / "L8.npz"
    simulate(8, [2.5], 400, n_chains=100, seed=1).save(data)
    common = ["--data", str(data), "--epochs", "1", "--no-progress", "--binarize", "none"]
    vae, gan = tmp_path / "vae", tmp_path / "gan"
    assert (
        main(
            [
                "train",
                "vae",
                "--architecture",
                "conv",
                "--periodic",
                "--latent-dim",
                "4",
                *common,
                "--out",
                str(vae),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "gan",
                "--architecture",
                "dcgan",
                "--periodic",
                "--scale",
                "symmetric",
                "--batch-size",
                "64",
                *common,
                "--out",
                str(gan),
            ]
        )
        == 0
    )
    # the VAE's decoder made constant, logit 1 per spin: Bernoulli draws of independent spins
    # with mean mu = 2 sigmoid(1) - 1, whose energy per spin is -2 mu^2
    from genphys import io

    weights = io.load_tensors(vae / io.MODEL_FILE)
    last = [k for k in weights if k.startswith("decoder.") and k.endswith(".weight")][-1]
    weights[last] = torch.zeros_like(weights[last])
    weights[last.replace(".weight", ".bias")] = torch.ones_like(
        weights[last.replace(".weight", ".bias")]
    )
    io.save_tensors(vae / io.MODEL_FILE, weights)
    results = compare_runs([str(vae), str(gan)], data, n_samples=2000)
    assert [r["family"] for r in results] == ["gan", "vae"]
    for r in results:
        energy = r["observables"]["energy"]
        assert energy["model"]["tau"] == 1.0  # independent samples
        assert energy["exact"] == pytest.approx(float(kaufman_energy(8, 2.5)))
    mu = 2 * torch.sigmoid(torch.tensor(1.0)).item() - 1
    model = results[1]["observables"]["energy"]["model"]
    assert abs(model["value"] + 2 * mu**2) < 4 * model["stderr"], model


class _FixedSamples(torch.nn.Module):
    """A generator stand-in whose samples are given (model_spins thresholds them)."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = torch.nn.Parameter(x, requires_grad=False)

    def sample(self, n, generator=None, mean=True):
        return self.x[:n]


def test_generator_outputs_are_thresholded_at_the_middle_of_their_range() -> None:
    from genphys.physics.compare import model_spins

    pattern = torch.tensor([[0.9, 0.2, 0.6, 0.45]] * 3)  # [0, 1] outputs: up, down, up, down
    spins = model_spins(_FixedSamples(pattern), {"data": {"scale": "unit"}}, 3, 0)
    np.testing.assert_array_equal(spins.reshape(3, 4), [[1, -1, 1, -1]] * 3)
    symmetric = model_spins(_FixedSamples(2 * pattern - 1), {"data": {"scale": "symmetric"}}, 3, 0)
    np.testing.assert_array_equal(symmetric.reshape(3, 4), [[1, -1, 1, -1]] * 3)
    binary = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # exact 0/1 values are spins as they are
    np.testing.assert_array_equal(
        model_spins(_FixedSamples(binary), {"data": {}}, 1, 0).reshape(4), [1, -1, -1, 1]
    )


def test_compare_includes_the_field(tmp_path: Path) -> None:
    """At h = 0.5 an RBM of independent spins (W = 0, b = 1: <s> = mu = 2 sigmoid(1) - 1) has
    energy per spin -2 mu^2 - h mu exactly; data and exact columns are those at h = 0.5."""
    from genphys import io

    data = tmp_path / "field.npz"
    simulate(4, [2.5], 2000, seed=0, field=0.5).save(data)
    run = tmp_path / "rbm"
    argv = ["train", "rbm", "--data", str(data), "--binarize", "none", "--hidden", "4"]
    assert main([*argv, "--epochs", "1", "--no-progress", "--out", str(run)]) == 0
    weights = io.load_tensors(run / io.MODEL_FILE)
    weights = {k: torch.zeros_like(v) for k, v in weights.items()}
    weights["visible_bias"] += 1.0
    io.save_tensors(run / io.MODEL_FILE, weights)
    (r,) = compare_runs([str(run)], data, n_samples=400, gibbs_steps=200)
    assert r["h"] == 0.5
    mu = 2 * torch.sigmoid(torch.tensor(1.0)).item() - 1
    energy = r["observables"]["energy"]
    model = energy["model"]
    assert abs(model["value"] - (-2 * mu**2 - 0.5 * mu)) < 4 * model["stderr"], model
    exact = exact_observables(4, 2.5, 0.5)
    assert energy["exact"] == pytest.approx(float(exact["energy"]), rel=1e-12)
    mc = energy["monte_carlo"]
    assert abs(mc["value"] - energy["exact"]) < 4 * mc["stderr"], mc


def test_simulate_json_is_strict_with_exact_energies_at_any_field_for_small_lattices(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    rows = {}
    for L in (4, 6):
        argv = ["ising", "simulate", "--L", str(L), "--T", "2.5", "--samples", "400"]
        assert main([*argv, "--field", "0.5", "--out", str(tmp_path / f"{L}.npz"), "--json"]) == 0
        rows[L] = json.loads(capsys.readouterr().out, parse_constant=refuse)["temperatures"][0]
    exact = float(exact_observables(4, 2.5, 0.5)["energy"])
    assert rows[4]["exact_energy"] == pytest.approx(exact, rel=1e-12)
    assert abs(rows[4]["z_energy"]) < 4
    assert rows[6]["exact_energy"] is None and rows[6]["z_energy"] is None  # no exact result


def test_ising_files_are_checked_and_compare_matches_the_training_data(tmp_path: Path) -> None:
    with pytest.raises(GenphysError, match="distinct"):
        parse_temperatures("2,2.0")
    with pytest.raises(GenphysError, match="at most"):
        parse_temperatures("0.001:1e9:0.001")
    t2, t3, field = tmp_path / "t2.npz", tmp_path / "t3.npz", tmp_path / "t2h.npz"
    simulate(4, [2.0], 300, n_chains=50, seed=1).save(t2)
    simulate(4, [3.0], 300, n_chains=50, seed=1).save(t3)
    simulate(4, [2.0], 300, n_chains=50, seed=1, field=0.5).save(field)
    arrays = dict(np.load(t2))
    for key, value in (("temperatures", np.float64(2.0)), ("energy", arrays["energy"][:, :10]),
                       ("temperatures", np.array([-1.0]))):  # fmt: skip
        bad = tmp_path / f"bad-{key}.npz"
        np.savez(bad, **{**arrays, key: value})
        with pytest.raises(GenphysError, match=r"corrupt|does not fit"):
            load_ising(bad)
    old = tmp_path / "old.npz"  # written before repeated temperatures were refused
    two = {**arrays, **{k: np.concatenate([arrays[k]] * 2) for k in arrays if k not in (
        "L", "field", "seed", "n_chains", "kind")}}  # fmt: skip
    np.savez(old, **two)
    with pytest.raises(GenphysError, match="appears 2 times"):
        load_ising(old).index(2.0)
    run = tmp_path / "rbm"
    argv = ["train", "rbm", "--data", str(t2), "--binarize", "none", "--hidden", "4"]
    assert main([*argv, "--epochs", "1", "--no-progress", "--out", str(run)]) == 0
    for other in (t3, field):  # another temperature; the same temperature in a field
        with pytest.raises(GenphysError, match="learned L=4"):
            compare_runs([str(run)], other, n_samples=20, gibbs_steps=8)
    (r,) = compare_runs([str(run)], t2, n_samples=20, gibbs_steps=8)
    assert r["T"] == 2.0 and r["h"] == 0.0


def test_equilibration_that_hits_its_cap_warns() -> None:
    from genphys.physics.dataset import equilibrate
    from genphys.physics.ising import Metropolis, init_state

    with pytest.warns(UserWarning, match="tau may be underestimated"):
        done, _, _ = equilibrate(Metropolis(2.27), init_state(16, 8, seed=0), max_sweeps=400)
    assert done == 400
