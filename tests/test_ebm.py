"""Energy-based models: the loss, the Langevin training step, generation, OOD scores, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_errors import code_and_err, one_line_error
from genphys import io
from genphys.errors import TrainingDiverged
from genphys.evaluation.ood import auroc, energy_scores, flipped, shrunken
from genphys.models import EBM
from genphys.samplers.generate import ebm_generate
from genphys.training.run import resolve_config, train

# small and quick: digits, 10 Langevin steps, a 256-example buffer
CFG = {
    "objective": {"config": {"langevin_steps": 8, "buffer_size": 256}},
    "trainer": {"epochs": 2, "batch_size": 32, "progress": False},
    "data": {"limit": 320},
}


def test_loss_is_contrastive_divergence_plus_the_energy_regularizer() -> None:
    torch.manual_seed(0)
    ebm = EBM(architecture="mlp", n_features=5, hidden=(7,), alpha=0.1, data_range=None).double()
    real, fake = torch.randn(6, 5).double(), torch.randn(9, 5).double()
    with torch.no_grad():
        e_r, e_f = -ebm.net(real).squeeze(-1), -ebm.net(fake).squeeze(-1)
    out = ebm.loss(real, fake)
    expected = e_r.mean() - e_f.mean() + 0.1 * ((e_r**2).mean() + (e_f**2).mean())
    assert out["loss"].item() == pytest.approx(float(expected), rel=1e-12)
    assert float(out["cd"]) == pytest.approx(float(e_r.mean() - e_f.mean()), rel=1e-12)


def test_cnn_energy_is_the_tutorials() -> None:
    ebm = EBM(image_shape=(1, 28, 28))
    convs = [m for m in ebm.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3), (3, 3), (3, 3)]
    assert all(c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, torch.nn.SiLU) for m in ebm.net) == 5  # Swish
    assert ebm(torch.zeros(3, 784)).shape == (3,)


def test_training_resumes_exactly_and_separates_data_from_noise(tmp_path: Path) -> None:
    cfg = resolve_config("ebm", CFG)
    full, _ = train(cfg, out=tmp_path / "full")
    stopped = resolve_config("ebm", {**CFG, "trainer": {**CFG["trainer"], "max_steps": 15}})
    train(stopped, out=tmp_path / "part")
    train(cfg, out=tmp_path / "part", resume=True)
    a = io.load_tensors(tmp_path / "full" / io.MODEL_FILE)
    b = io.load_tensors(tmp_path / "part" / io.MODEL_FILE)
    for k in a:
        assert torch.equal(a[k], b[k]), k  # buffer and its generator were checkpointed
    last = full.history[-1]
    # even this brief training gives real held-out digits lower energy than uniform noise
    assert last["val/e_data"] < last["val/e_noise"], last
    assert (tmp_path / "full" / "samples.png").is_file()


def test_energy_scale_guard_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(resolve_config("ebm", {**CFG, "trainer": {**CFG["trainer"], "epochs": 1}}), out=run)
    (kept,) = io.checkpoint_dirs(run)
    files = {f: f.read_bytes() for f in kept.iterdir()}
    # the second epoch trips the guard at its first step: a limit far below any energy
    strict = {**CFG["objective"]["config"], "max_energy": 1e-6}
    cfg = resolve_config("ebm", {**CFG, "objective": {"config": strict}})
    first = int(kept.name.removeprefix("step-")) + 1  # the step after the checkpoint
    with pytest.raises(TrainingDiverged, match=f"epoch 2, step {first}: the energy scale") as err:
        train(cfg, out=run, resume=True)
    assert str(kept) in str(err.value) and str(err.value).count("learning rate") == 1
    assert io.checkpoint_dirs(run) == [kept]
    for f, content in files.items():
        assert f.read_bytes() == content, f  # nothing written after the guard fired


def test_inpainting_keeps_known_pixels_and_moves_the_rest() -> None:
    torch.manual_seed(1)
    ebm = EBM(image_shape=(1, 8, 8), n_features=64)
    x0 = torch.rand(4, 64) * 2 - 1
    known = torch.zeros(4, 64, dtype=torch.bool)
    known[:, :32] = True  # the upper half is given
    frames = ebm_generate(ebm, 4, steps=5, x0=x0, known=known, snapshots=(0, 5))
    assert frames.shape == (2, 4, 64)
    assert torch.equal(frames[-1][known], x0[known])
    assert not torch.equal(frames[-1][~known], x0[~known])
    assert float(frames.abs().max()) <= 1.0  # clamped to the data box


def test_ood_helpers() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(50, generator=g), torch.randn(70, generator=g) + 1
    brute = ((a[:, None] < b[None, :]).double().mean()).item()
    assert auroc(a, b) == pytest.approx(brute, abs=1e-12)
    assert auroc(torch.zeros(3), torch.zeros(4)) == pytest.approx(0.5)
    img = torch.arange(16.0).reshape(1, 16)
    assert flipped(img, (1, 4, 4)).reshape(4, 4)[0].tolist() == [12, 13, 14, 15]
    small = shrunken(torch.ones(1, 16), (1, 4, 4), -1.0).reshape(4, 4)
    assert small.sum().item() == 4 - 12  # a 2x2 block of ones on a background of -1


class _DistanceToImage(torch.nn.Module):
    """E(x) = |x - x0|^2: lowest at one image, so the real images (x0 plus small noise) have
    lower energy than noise, their mirror images and shrunken copies."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x0", x0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.x0) ** 2).sum(-1)


def test_energy_scores_of_a_known_energy() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(16, generator=g) * 2 - 1
    x0[:8] = -1.0  # asymmetric: the mirror image of x0 is far from it
    real = (x0 + 0.05 * torch.randn(300, 16, generator=g)).clamp(-1, 1)
    model = _DistanceToImage(x0)
    mine = real[:50] + 0.5  # an extra set, 0.25 per pixel more energy on average
    scores = energy_scores(model, real, (1, 4, 4), others={"mine": mine}, seed=3)
    assert list(scores) == ["real", "noise", "flipped", "shrunken", "mine"]
    e_real = ((real - x0) ** 2).sum(-1).double()
    got = scores["real"]["energy"]
    assert got["value"] == pytest.approx(float(e_real.mean()), rel=1e-12)
    assert got["stderr"] == pytest.approx(float(e_real.std() / 300**0.5), rel=1e-12)
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    expected = float(((noise - x0) ** 2).sum(-1).double().mean())
    assert scores["noise"]["energy"]["value"] == pytest.approx(expected, rel=1e-12)
    for name in ("noise", "flipped", "shrunken", "mine"):  # every real image scores lower
        assert scores[name]["auroc"] == 1.0, name
    e_mine = ((mine - x0) ** 2).sum(-1).double().mean()
    assert scores["mine"]["energy"]["value"] == pytest.approx(float(e_mine), rel=1e-12)


def test_ebm_through_the_cli(tmp_path: Path, cli) -> None:
    run = tmp_path / "ebm"
    args = ("--epochs", "1", "--limit", "200", "--langevin-steps", "5", "--buffer-size", "128")
    code, out, err = cli("train", "ebm", *args, "--no-progress", "--out", run)
    assert code == 0, err
    code, out, err = cli("sample", run, "--snapshots", "--n", "3", "--steps", "30")
    assert code == 0 and "[0, 1, 3, 5, 10, 30]" in out, err
    assert np.load(run / "snapshots.npz")["samples"].shape == (3, 64)
    code, out, err = cli("evaluate", run, "--json", "--n-samples", "20", "--steps", "10")
    assert code == 0, err  # no likelihood: the sample-quality metrics its data allow
    mmd = json.loads(out)["mmd"]
    assert 0 < mmd["p_value"] <= 1 and "real_vs_real" in mmd
    images = tmp_path / "mine.npy"
    np.save(images, np.random.default_rng(0).random((20, 8, 8)).astype(np.float32))
    code, out, err = cli("ebm", "score", run, images, "--json")
    assert code == 0, err
    scores = json.loads(out)["scores"]
    assert set(scores) == {"real", "noise", "flipped", "shrunken", "mine.npy"}
    assert 0 <= scores["noise"]["auroc"] <= 1
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((40, 8, 8), 5.0, dtype=np.float32))
    line = one_line_error(
        *code_and_err(
            cli("train", "ebm", "--data", bad, "--scale", "none", "--out", tmp_path / "b")
        )
    )
    assert "outside [-1, 1]" in line
    gan = tmp_path / "gan"
    cli("train", "gan", "--epochs", "1", "--limit", "100", "--no-progress", "--out", gan)
    one_line_error(*code_and_err(cli("sample", gan, "--snapshots")))
    one_line_error(*code_and_err(cli("ebm", "score", gan)))
