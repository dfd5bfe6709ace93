"""GANs: the losses against their formulas, the tutorial's networks, the two-player step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_errors import code_and_err, one_line_error
from genphys import io
from genphys.errors import GenphysError
from genphys.models import GAN
from genphys.training import Adversarial, AdversarialConfig, Trainer, TrainerConfig
from genphys.training.run import resolve_config, train


def _n_trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_dcgan_matches_the_tensorflow_tutorial() -> None:
    gan = GAN(architecture="dcgan", image_shape=(1, 28, 28))
    # the tutorial's model.summary(): 2,305,472 trainable generator parameters (2,330,944 with
    # batch-norm statistics) and 212,865 discriminator parameters
    assert _n_trainable(gan.generator) == 2_305_472
    stats = sum(b.numel() for n, b in gan.generator.named_buffers() if "running" in n)
    assert _n_trainable(gan.generator) + stats == 2_330_944
    assert _n_trainable(gan.discriminator) == 212_865
    assert gan.noise_dim == 100
    x = gan.generate(gan.noise(5)).detach()
    assert x.shape == (5, 784) and float(x.abs().max()) <= 1.0
    assert gan(x).shape == (5,)


def test_mlp_pair_is_the_course_gan() -> None:
    gan = GAN()
    assert gan.noise_dim == 20
    shapes = [tuple(p.shape) for p in gan.generator.parameters()]
    assert shapes == [(100, 20), (100,), (784, 100), (784,)]
    assert tuple(gan.discriminator[0].weight.shape) == (100, 784)


def _logits(gan: GAN, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return gan(x).double()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_discriminator_loss_is_minus_the_value_function(smoothing: float) -> None:
    torch.manual_seed(0)
    gan = GAN(n_features=6, hidden=(5,), dropout=0.0, label_smoothing=smoothing).double()
    real, fake = torch.rand(7, 6).double(), torch.rand(9, 6).double()
    out = gan.discriminator_loss(real, fake)
    d_real, d_fake = torch.sigmoid(_logits(gan, real)), torch.sigmoid(_logits(gan, fake))
    # -(E_data[(1-s) log d + s log(1-d)] + E_model log(1 - d)); s = 0: minus v(d, g)
    expected = -(
        ((1 - smoothing) * d_real.log() + smoothing * (1 - d_real).log()).mean()
        + (1 - d_fake).log().mean()
    )
    assert out["loss"].item() == pytest.approx(float(expected), rel=1e-12)
    assert float(out["d_real"]) == pytest.approx(float(d_real.mean()), rel=1e-12)
    assert float(out["d_fake"]) == pytest.approx(float(d_fake.mean()), rel=1e-12)


@pytest.mark.parametrize(
    ("loss", "formula"),
    [
        ("minimax", lambda d: (1 - d).log().mean()),  # g minimises E log(1 - d(g(z)))
        ("non_saturating", lambda d: -d.log().mean()),  # g maximises E log d(g(z))
        ("wgan_gp", lambda d: -(d / (1 - d)).log().mean()),  # g maximises E D(g(z)), D = logit d
    ],
)
def test_generator_losses(loss: str, formula) -> None:
    torch.manual_seed(1)
    gan = GAN(n_features=4, hidden=(3,), dropout=0.0, loss=loss).double()
    fake = torch.rand(11, 4).double()
    d = torch.sigmoid(_logits(gan, fake))
    assert gan.generator_loss(fake)["loss"].item() == pytest.approx(float(formula(d)), rel=1e-12)


@pytest.mark.parametrize("pack", [1, 2])
def test_gradient_penalty_of_a_linear_critic_is_exact(pack: int) -> None:
    # D(x) = w.x + b has gradient w everywhere: the penalty is (|w| - 1)^2 for any interpolate;
    # a PacGAN critic sees packs [x1, x2]: its gradient per pack is the whole w
    gan = GAN(n_features=3, hidden=(), dropout=0.0, loss="wgan_gp", pack=pack).double()
    w = gan.discriminator[-1].weight
    with torch.no_grad():
        w.copy_(torch.tensor([[3.0, 0.0, 4.0] + [0.0] * 3 * (pack - 1)]))
    real, fake = torch.rand(8, 3).double(), torch.rand(8, 3).double()
    assert gan.gradient_penalty(real, fake).item() == pytest.approx(16.0, rel=1e-12)
    out = gan.discriminator_loss(real, fake)
    assert _logits(gan, real).shape == (8 // pack,)
    gap = _logits(gan, real).mean() - _logits(gan, fake).mean()
    assert out["wasserstein"].item() == pytest.approx(float(gap), rel=1e-12)
    assert out["loss"].item() == pytest.approx(float(-gap + 10 * 16.0), rel=1e-12)


@pytest.mark.parametrize("pack", [1, 2])
def test_gradient_penalty_is_taken_at_the_seeded_interpolate(pack: int) -> None:
    # the critic D(x) = |x|^2 / 2 of each pack has gradient x: the penalty is the mean of
    # (|x_hat| - 1)^2 over packs, x_hat = eps real + (1 - eps) fake with one eps per pack
    # drawn first from the generator
    gan = GAN(n_features=3, hidden=(), dropout=0.0, loss="wgan_gp", pack=pack).double()
    gan.discriminator = _Quadratic()
    g = torch.Generator().manual_seed(5)
    real, fake = torch.rand(8, 3, generator=g).double(), -torch.rand(8, 3, generator=g).double()
    eps = torch.rand(
        8 // pack, 1, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64
    )
    x_hat = eps * real.view(8 // pack, pack, 3) + (1 - eps) * fake.view(8 // pack, pack, 3)
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty = gan.gradient_penalty(real, fake, torch.Generator().manual_seed(7))
    assert penalty.item() == pytest.approx(float(expected), rel=1e-12)
    other = gan.gradient_penalty(real, fake, torch.Generator().manual_seed(8))
    assert abs(other.item() - penalty.item()) > 1e-3  # the interpolate matters here


class _Quadratic(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x**2).sum(-1, keepdim=True)


def test_trained_discriminator_reaches_the_optimal_value() -> None:
    # Goodfellow et al. (2014), Prop. 1 and Thm. 1: the best discriminator is
    # d* = p_data / (p_data + p_g) and its loss is log 4 - 2 JSD(p_data || p_g). For
    # N(0, 1) against N(2, 1), d*(x) = sigmoid(2 - 2x): a linear discriminator can reach it.
    torch.manual_seed(2)
    gan = GAN(n_features=1, hidden=(), dropout=0.0)
    n = 20_000
    real, fake = torch.randn(n, 1), torch.randn(n, 1) + 2.0
    opt = torch.optim.Adam(gan.discriminator.parameters(), lr=0.05)
    for _ in range(400):
        loss = gan.discriminator_loss(real, fake)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.linspace(-12, 14, 200_001, dtype=torch.float64)
    p, q = torch.exp(-(x**2) / 2), torch.exp(-((x - 2) ** 2) / 2)
    p, q = p / torch.trapezoid(p, x), q / torch.trapezoid(q, x)
    m = (p + q) / 2
    jsd = 0.5 * torch.trapezoid(p * (p / m).log(), x) + 0.5 * torch.trapezoid(q * (q / m).log(), x)
    # sampling error of a mean of two 20,000-sample averages of log-losses: ~0.006
    assert loss.item() == pytest.approx(math.log(4) - 2 * float(jsd), abs=0.02)
    linear = gan.discriminator[-1]
    assert float(linear.weight.detach()) == pytest.approx(-2.0, abs=0.1)
    assert float(linear.bias.detach()) == pytest.approx(2.0, abs=0.1)


def test_train_step_updates_both_players_and_validation_changes_nothing() -> None:
    torch.manual_seed(3)
    gan = GAN(n_features=64, hidden=(16,))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    data = torch.rand(256, 64) * 2 - 1
    objective = Adversarial(AdversarialConfig(d_steps=1))
    trainer = Trainer(gan, objective, TrainerConfig(epochs=1, batch_size=64, progress=False))
    trainer.fit(data)
    after = gan.state_dict()
    assert set(trainer.optimizers) == {"discriminator", "generator"}
    for k in before:
        assert not torch.equal(before[k], after[k]), k
    frozen = {k: v.clone() for k, v in after.items()}
    gan.eval()
    objective.validate(gan, data)
    for k in frozen:
        assert torch.equal(frozen[k], gan.state_dict()[k]), k


def test_d_steps_sets_the_update_ratio() -> None:
    torch.manual_seed(4)
    gan = GAN(n_features=8, hidden=(4,))
    objective = Adversarial(AdversarialConfig(d_steps=3, g_steps=2))
    cfg = TrainerConfig(epochs=1, batch_size=8, progress=False, optimizer="adam")
    trainer = Trainer(gan, objective, cfg)
    trainer.fit(torch.rand(96, 8))  # 12 steps: 12 discriminator updates, 4 turns of g
    steps = {k: int(opt.state_dict()["state"][0]["step"]) for k, opt in trainer.optimizers.items()}
    assert steps == {"discriminator": 12, "generator": 8}


def test_generator_average_follows_its_recurrence_and_is_not_trained() -> None:
    torch.manual_seed(5)
    gan = GAN(n_features=6, hidden=(4,), ema_decay=0.3).double()
    assert gan.generator_ema is not None
    average = [p.clone() for p in gan.generator_ema.parameters()]
    for a, p in zip(average, gan.generator.parameters(), strict=True):
        assert torch.equal(a, p)  # the average starts as a copy of g
    for n in range(8):  # decays 1/10, 2/11, 3/12, then the cap 0.3 (4/13 > 0.3)
        with torch.no_grad():
            for p in gan.generator.parameters():
                p.add_(torch.randn_like(p))
        gan.update_average()
        d = min(0.3, (1 + n) / (10 + n))
        live = gan.generator.parameters()
        average = [d * a + (1 - d) * p for a, p in zip(average, live, strict=True)]
    for a, p in zip(average, gan.generator_ema.parameters(), strict=True):
        torch.testing.assert_close(p, a, rtol=0, atol=1e-12)
    assert int(gan.ema_updates) == 8
    # training updates it once per generator update and never optimizes it
    gan = GAN(n_features=8, hidden=(4,), ema_decay=0.99)
    objective = Adversarial(AdversarialConfig(d_steps=3, g_steps=2))
    trainer = Trainer(gan, objective, TrainerConfig(epochs=1, batch_size=8, progress=False))
    trainer.fit(torch.rand(96, 8))
    assert int(gan.ema_updates) == 8
    optimized = {id(p) for opt in trainer.optimizers.values() for g in opt.param_groups
                 for p in g["params"]}  # fmt: skip
    assert optimized.isdisjoint(id(p) for p in gan.generator_ema.parameters())
    with pytest.raises(GenphysError, match="no moving average"):
        GAN(n_features=8, hidden=(4,)).update_average()


def test_samples_come_from_the_average_with_the_generators_batch_statistics() -> None:
    torch.manual_seed(6)
    gan = GAN(architecture="dcgan", n_features=64, image_shape=(1, 8, 8), noise_dim=4,
              ema_decay=0.999)  # fmt: skip
    assert gan.generator_ema is not None
    gan.generate(gan.noise(16))  # training mode: the live batch-norm statistics move
    gan.update_average()
    for mine, theirs in zip(gan.generator_ema.buffers(), gan.generator.buffers(), strict=True):
        assert torch.equal(mine, theirs)
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(0.5)
    gan.eval()
    z = gan.noise(5, torch.Generator().manual_seed(0))
    x = gan.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(x, gan.generate(z, average=True))
    assert not torch.allclose(x, gan.generate(z))  # the live generator has moved away


def test_epoch_warnings() -> None:
    objective = Adversarial()
    half = {"epoch": 10, "train/d_real": 0.505, "train/d_fake": 0.497}
    assert "1/2" in objective.epoch_warnings(half)[0]
    assert objective.epoch_warnings({**half, "epoch": 2}) == []  # still warming up
    wins = {"epoch": 10, "train/d_real": 0.995, "train/d_fake": 0.004}
    assert "wins completely" in objective.epoch_warnings(wins)[0]
    assert objective.epoch_warnings({"epoch": 10, "train/d_real": 0.7, "train/d_fake": 0.3}) == []
    # with label smoothing s the best d gives (1 - s)/2 at equilibrium and at most 1 - s
    smoothed = Adversarial()
    smoothed.setup(GAN(n_features=4, hidden=(3,), label_smoothing=0.2), torch.zeros(8, 4), 0, 0, 8)
    equal = {"epoch": 10, "train/d_real": 0.402, "train/d_fake": 0.398}
    assert "1/2" in smoothed.epoch_warnings(equal)[0] and objective.epoch_warnings(equal) == []
    apart = {"epoch": 10, "train/d_real": 0.79, "train/d_fake": 0.01}
    assert "wins completely" in smoothed.epoch_warnings(apart)[0]
    assert objective.epoch_warnings(apart) == []


def test_pacgan_judges_packs() -> None:
    gan = GAN(n_features=4, hidden=(3,), pack=4)
    with pytest.raises(GenphysError, match="packs of 4"):  # a pack would mix real and fake
        gan.discriminator_loss(torch.zeros(6, 4), torch.zeros(6, 4))
    assert tuple(gan.discriminator[0].weight.shape) == (3, 16)
    assert gan(torch.zeros(8, 4)).shape == (2,)
    with pytest.raises(GenphysError, match="packs of 4"):
        gan(torch.zeros(6, 4))


def test_pacgan_validates_on_whole_packs() -> None:
    """300 held-out examples in packs of 7: d is judged on the first 294 (it used to raise)."""
    gan = GAN(n_features=2, hidden=(8,), pack=7, output="identity")
    metrics = Adversarial().validate(gan, torch.randn(300, 2))
    assert set(metrics) == {"d_real", "d_fake"} and all(0 < v < 1 for v in metrics.values())
    assert Adversarial().validate(gan, torch.randn(6, 2)) == {}


def test_data_outside_the_output_range_is_refused() -> None:
    gan = GAN(n_features=4, hidden=(3,))
    with pytest.raises(GenphysError, match=r"outside \[-1, 1\].*symmetric"):
        gan.check_data(torch.full((2, 4), 1.5))
    with pytest.raises(GenphysError, match="NaN"):
        gan.check_data(torch.full((2, 4), float("nan")))
    with pytest.raises(GenphysError, match="expects"):
        gan.check_data(torch.zeros(2, 5))
    with pytest.raises(GenphysError, match="multiples of 4"):
        GAN(architecture="dcgan", n_features=100, image_shape=(1, 10, 10))


CFG = {
    "model": {"config": {"architecture": "dcgan", "noise_dim": 8, "ema_decay": 0.9}},
    "objective": {"config": {"d_steps": 2}},
    "trainer": {"epochs": 2, "batch_size": 32, "progress": False},
    "data": {"limit": 400},
}


RING = {  # a small PacGAN on the ring of 8 Gaussians (std 0.02); checked: all 8 modes, 56% near
    "model": {
        "config": {"output": "identity", "hidden": [256, 256], "dropout": 0.0, "noise_dim": 8,
                   "pack": 4}
    },
    "trainer": {"epochs": 300, "batch_size": 256, "lr": 3e-4, "betas": [0.5, 0.999],
                "progress": False},
    "data": {"name": "ring", "scale": "none", "val_fraction": 0.1},
}  # fmt: skip


def test_gan_resume_mid_epoch_is_bit_identical(tmp_path: Path) -> None:
    # two optimizers, batch norm, dropout (global RNG), the d_steps turn counter, the average
    cfg = resolve_config("gan", CFG)
    full, _ = train(cfg, out=tmp_path / "full")
    stopped = resolve_config("gan", {**CFG, "trainer": {**CFG["trainer"], "max_steps": 15}})
    train(stopped, out=tmp_path / "part")
    resumed, _ = train(cfg, out=tmp_path / "part", resume=True)
    a = io.load_tensors(tmp_path / "full" / io.MODEL_FILE)
    b = io.load_tensors(tmp_path / "part" / io.MODEL_FILE)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [m["train/g_loss"] for m in full.history] == [m["train/g_loss"] for m in resumed.history]
    figures = ("samples.png", "progress.png", "interpolation.png", "game.png", "curves.png")
    for name in (*figures, "samples/epoch-0002.png"):
        assert (tmp_path / "part" / name).is_file(), name


# ------------------------------------------------------------------------------ CLI
def test_gan_end_to_end_through_the_cli(tmp_path: Path, cli) -> None:
    run = tmp_path / "gan"
    code, out, err = cli(
        "train", "gan", "--epochs", "6", "--limit", "300", "--no-progress", "--out", run
    )
    assert code == 0, err
    history = [json.loads(x) for x in (run / io.METRICS_FILE).read_text().splitlines()]
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"} <= set(history[-1])
    assert len(list((run / "samples").glob("epoch-*.png"))) == 6
    code, out, err = cli("sample", run, "--n", "16")
    assert code == 0, err
    samples = np.load(run / "samples.npz")["samples"]
    assert samples.shape == (16, 64) and samples.min() >= -1 and samples.max() <= 1
    for kind in ("progress", "interpolation", "samples", "curves"):
        code, out, err = cli("plot", run, "--kind", kind)
        assert code == 0 and (run / f"{kind}.png").is_file(), err
    code, out, err = cli("evaluate", run, "--json", "--n-samples", "100")
    assert code == 0, err
    report = json.loads(out)
    mmd = report["mmd"]
    assert report["n_samples"] == 30  # capped by the 30 held-out images
    # an untrained-ish generator is told apart from the data; real vs real is not
    assert mmd["value"] > 3 * mmd["stderr"] and mmd["p_value"] < 0.05
    assert abs(mmd["real_vs_real"]["value"]) < 3 * mmd["real_vs_real"]["stderr"]


def test_gan_bad_input_through_the_cli(tmp_path: Path, cli) -> None:
    wide = tmp_path / "wide.npy"
    np.save(wide, np.full((50, 16), 3.0, dtype=np.float32))
    line = one_line_error(
        *code_and_err(
            cli(
                "train",
                "gan",
                "--data",
                wide,
                "--scale",
                "none",
                "--batch-size",
                "8",
                "--out",
                tmp_path / "a",
            )
        )
    )
    assert "outside [-1, 1]" in line
    odd = tmp_path / "odd.npy"
    np.save(odd, np.random.default_rng(0).random((50, 10, 10), dtype=np.float32))
    line = one_line_error(
        *code_and_err(
            cli("train", "gan", "--data", odd, "--architecture", "dcgan", "--out", tmp_path / "b")
        )
    )
    assert "multiples of 4" in line
    one_line_error(*code_and_err(cli("train", "gan", "--loss", "hinge", "--out", tmp_path / "c")))
    one_line_error(*code_and_err(cli("train", "gan", "--d-steps", "0", "--out", tmp_path / "d")))
    line = one_line_error(
        *code_and_err(cli("train", "gan", "--ema-decay", "1", "--out", tmp_path / "f"))
    )
    assert "ema_decay must be in (0, 1)" in line
    one_line_error(
        *code_and_err(
            cli(
                "train",
                "gan",
                "--loss",
                "wgan_gp",
                "--label-smoothing",
                "0.1",
                "--out",
                tmp_path / "e",
            )
        )
    )


@pytest.mark.slow
def test_mlp_gan_covers_the_ring_of_gaussians(tmp_path: Path, cli) -> None:
    from genphys.data.toy import ring_centers
    from genphys.evaluation import mode_coverage

    cfg = resolve_config("gan", RING)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count the configuration was checked with
    try:
        trainer, _ = train(cfg)
    finally:
        torch.set_num_threads(threads)
    gan = trainer.model.eval()
    with torch.no_grad():
        samples = gan.sample(5000, torch.Generator().manual_seed(0))
    cover = mode_coverage(samples, ring_centers(), std=0.02)
    assert cover.modes_hit >= 7, cover
    assert cover.high_quality.value > 0.5, cover


def test_slerp_follows_the_great_circle() -> None:
    from genphys.plotting_gan import slerp

    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])  # 90 degrees apart
    t = torch.tensor([[0.0], [0.5], [1.0], [0.25]])
    path = slerp(a, b, t)
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[2], b)
    torch.testing.assert_close(path[1], (a + b) / 2**0.5)  # the arc's midpoint, norm 3
    torch.testing.assert_close(path.norm(dim=1), torch.full((4,), 3.0))
    angle = torch.atan2(path[3, 1], path[3, 0])
    assert angle.item() == pytest.approx(torch.pi / 8, rel=1e-6)  # a quarter of the way
    same = slerp(a, a, t)  # no angle: the straight line (a constant here)
    torch.testing.assert_close(same, a.expand(4, 3))


def test_figures_of_2d_points_are_scatter_plots(tmp_path: Path) -> None:
    """The ring's GAN draws points in the plane: its figures hold the samples themselves."""
    from genphys.plotting_gan import (
        POINT_SAMPLES,
        plot_noise_interpolation,
        plot_progress,
        plot_samples,
        save_epoch_samples,
    )

    torch.manual_seed(0)
    gan = GAN(n_features=2, hidden=(8,), output="identity", noise_dim=3)
    points = plot_samples(gan, (2,), tmp_path / "s.png", seed=1)
    assert points.shape == (POINT_SAMPLES, 2) and (tmp_path / "s.png").is_file()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        expected = gan.eval().generate(gan.noise(POINT_SAMPLES, g), average=True)
    np.testing.assert_allclose(points, expected.numpy(), rtol=1e-6)
    for epoch in (1, 2):
        save_epoch_samples(gan, tmp_path, epoch, (2,), seed=0)
    kept = np.load(tmp_path / "samples" / "epoch-0002.npy")
    assert kept.shape == (POINT_SAMPLES, 2)
    assert plot_progress(tmp_path, (2,), tmp_path / "p.png").is_file()
    paths = plot_noise_interpolation(gan, (2,), tmp_path / "i.png", seed=2, steps=5, rows=3)
    assert paths.shape == (15, 2) and (tmp_path / "i.png").is_file()


def test_wgan_gp_critic_has_no_dropout_by_default() -> None:
    assert GAN(n_features=4, loss="wgan_gp").config.dropout == 0.0
    assert GAN(n_features=4).config.dropout == 0.3  # the tutorial's, for the other losses
    critic = GAN(n_features=4, loss="wgan_gp", hidden=(8,)).train()
    x = torch.rand(16, 4)
    torch.testing.assert_close(critic(x), critic(x))  # deterministic in training mode
    assert GAN(n_features=4, loss="wgan_gp", dropout=0.2).config.dropout == 0.2


def test_sampling_a_ring_gan_from_the_cli_draws_a_scatter_plot(tmp_path: Path, cli) -> None:
    import matplotlib.image

    run = tmp_path / "ring"
    args = ("--data", "ring", "--scale", "none", "--output", "identity", "--widths", "16")
    code, _, err = cli("train", "gan", *args, "--epochs", "1", "--limit", "512", "--no-progress",
                       "--out", run)  # fmt: skip
    assert code == 0, err
    code, _, err = cli("sample", run, "--n", "300")
    assert code == 0, err
    assert matplotlib.image.imread(run / "samples.png").shape[:2] == (500, 500)  # one 5" panel
    assert np.load(run / "samples.npz")["samples"].shape == (300, 2)
