"""VAEs and autoencoders through the Trainer and CLI: learning, reproducibility, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_errors import code_and_err, one_line_error
from genphys import io
from genphys.data import DataConfig, prepare_data
from genphys.models import VAE, Autoencoder, VAEConfig
from genphys.training import Trainer, TrainerConfig, build_objective
from genphys.training.run import resolve_config, train

SMALL = {
    "model": {"config": {"latent_dim": 4, "hidden": [64]}},
    "trainer": {"epochs": 3, "progress": False},
}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_train_step_changes_weights_and_evaluation_does_not() -> None:
    data = prepare_data(DataConfig(binarize="dynamic"))
    for model in (
        VAE(n_features=64, latent_dim=2, hidden=(16,)),
        Autoencoder(n_features=64, latent_dim=2, hidden=(16,)),
    ):
        before = _weights(model)
        objective = build_objective("autoencoder")
        trainer = Trainer(
            model,
            objective,
            TrainerConfig(epochs=1, max_steps=1, progress=False, optimizer="adam", lr=1e-3),
        )
        trainer.fit(data.train, batch_transform=data.batch_transform)
        after = _weights(model)
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert changed, "a training step must change the weights"
        objective.validate(model.eval(), data.val.round())
        assert all(torch.equal(after[k], v) for k, v in _weights(model).items())


def test_training_improves_the_iwae_nll_and_reloading_reproduces_it(tmp_path: Path, cli) -> None:
    from genphys.evaluation import iwae_nll

    cfg = resolve_config("vae", {**SMALL, "trainer": {"epochs": 25, "progress": False}})
    data = prepare_data(DataConfig.from_dict(cfg["data"]))
    x = data.batch_transform(data.val, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    init = VAE(VAEConfig(n_features=64, latent_dim=4, hidden=(64,)))
    trainer, _ = train(cfg, out=tmp_path / "run")
    nll0 = iwae_nll(init, x, k=100, generator=torch.Generator().manual_seed(0))
    nll1 = iwae_nll(trainer.model, x, k=100, generator=torch.Generator().manual_seed(0))
    assert nll1.value < nll0.value - 10 * np.hypot(nll0.stderr, nll1.stderr), (nll0, nll1)
    first = json.loads(cli("evaluate", tmp_path / "run", "--k", "100", "--json")[1])
    second = json.loads(cli("evaluate", tmp_path / "run", "--k", "100", "--json")[1])
    assert first["nll"] == second["nll"]  # same seed, same number
    assert first["nll"]["value"] == pytest.approx(nll1.value, abs=1e-4)
    assert first["active_units"] >= 1 and first["kl"]["value"] > 0
    assert first["active_units"] == sum(a > 0.01 for a in first["unit_activity"])
    # the ELBO's KL term is the sum of the per-dimension KLs (rounded to 1e-6 each)
    assert sum(first["kl_per_dimension"]) == pytest.approx(first["kl"]["value"], abs=1e-5)


@pytest.mark.parametrize("family", ["vae", "ae"])
def test_resume_is_bit_identical(tmp_path: Path, family: str) -> None:
    base = {**SMALL, "model": {"config": {"latent_dim": 2, "hidden": [32]}}}
    train(resolve_config(family, base), out=tmp_path / "full")
    stop = {**base, "trainer": {**SMALL["trainer"], "max_steps": 17}}
    train(resolve_config(family, stop), out=tmp_path / "part")
    train(resolve_config(family, base), out=tmp_path / "part", resume=True)
    a = io.load_tensors(tmp_path / "full" / io.MODEL_FILE)
    b = io.load_tensors(tmp_path / "part" / io.MODEL_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_conv_vae_cli_end_to_end(tmp_path: Path, cli) -> None:
    out = tmp_path / "conv"
    code, _, err = cli(
        "train",
        "vae",
        "--architecture",
        "conv",
        "--latent-dim",
        "2",
        "--epochs",
        "2",
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    code, _, err = cli("sample", out, "--n", "16")
    assert code == 0, err
    assert np.load(out / "samples.npz")["samples"].shape == (16, 64)
    for kind in ("latent", "clusters", "reconstructions", "interpolation", "samples"):
        code, _, err = cli("plot", out, "--kind", kind)
        assert code == 0, err
        assert (out / f"{kind}.png").is_file()


def test_bad_input_through_the_cli(tmp_path: Path, cli) -> None:
    odd = tmp_path / "odd.npz"
    np.savez(odd, x=np.random.default_rng(0).random((50, 10, 10)))
    code, _, err = cli(
        "train",
        "vae",
        "--architecture",
        "conv",
        "--data",
        odd,
        "--binarize",
        "none",
        "--out",
        tmp_path / "a",
    )
    assert "multiples of 4" in one_line_error(code, err)
    big = tmp_path / "big.npz"
    np.savez(big, x=np.full((50, 16), 3.0))
    code, _, err = cli("train", "vae", "--data", big, "--binarize", "none", "--out", tmp_path / "b")
    assert re.search(r"\[0, ?1\]", one_line_error(code, err))  # the data check: scale 'unit'
    args = ("--data", big, "--binarize", "none", "--scale", "none", "--out", tmp_path / "b")
    line = one_line_error(*code_and_err(cli("train", "vae", *args)))  # the likelihood's check
    assert "outside [0, 1], which a Bernoulli likelihood needs" in line
    assert not (tmp_path / "b").exists()
    nan = tmp_path / "nan.npz"
    np.savez(nan, x=np.full((50, 16), np.nan))
    code, _, err = cli(
        "train",
        "vae",
        "--data",
        nan,
        "--binarize",
        "none",
        "--likelihood",
        "gaussian",
        "--out",
        tmp_path / "c",
    )
    assert "NaN" in one_line_error(code, err)
    code, _, err = cli("train", "ae", "--widths", "12,x", "--out", tmp_path / "d")
    one_line_error(code, err)
    assert not any((tmp_path / n).exists() for n in "abcd")
    ae = tmp_path / "ae"
    assert cli("train", "ae", "--epochs", "1", "--no-progress", "--out", ae)[0] == 0
    assert "no prior" in one_line_error(*code_and_err(cli("sample", ae)))
    assert "no prior" in one_line_error(*code_and_err(cli("plot", ae, "--kind", "samples")))
