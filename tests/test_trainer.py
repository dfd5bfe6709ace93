"""The one Trainer: exact resume, Ctrl-C, NaN guard, atomic checkpoints, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from genphys import io
from genphys.data import DataConfig, prepare_data
from genphys.errors import GenphysError, TrainingDiverged
from genphys.models import EBM, GAN, VAE, BernoulliRBM, RBMConfig, VAEConfig
from genphys.training import (
    CDConfig,
    ContrastiveDivergence,
    Trainer,
    TrainerConfig,
    build_objective,
)
from genphys.training.distributed import average_over_processes
from genphys.training.objectives import AutoencoderObjective
from genphys.training.run import resolve_config, train

# dynamic binarization, momentum and persistent chains: every random stream and optimizer
# state must survive a checkpoint for resume to be exact
CFG = {
    "model": {"config": {"n_hidden": 16}},
    "trainer": {
        "epochs": 3,
        "batch_size": 32,
        "lr": 0.05,
        "momentum": 0.5,
        "progress": False,
        "schedule": "step",
        "step_size": 1,
        "gamma": 0.9,
    },
    "data": {"binarize": "dynamic"},
}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return io.load_tensors(run / io.MODEL_FILE)


@pytest.mark.parametrize(
    "sampler", ["gibbs", "gibbs-reuse", "tempering", "fused", "fused-cd", "fused-sgd"]
)
def test_resume_mid_epoch_is_bit_identical(tmp_path: Path, sampler: str) -> None:
    chains = {
        "sampler": "tempering" if sampler == "tempering" else "gibbs",
        "temperatures": 4,
        "reuse_hidden": sampler.endswith("-reuse"),  # cached p(h|v) is state too
        "compile": sampler.startswith("fused"),  # the counter-based stream is state too
        "persistent": sampler != "fused-cd",
    }
    # plain SGD: the fused graph applies the step itself
    trainer = {**CFG["trainer"], "momentum": 0.0} if sampler == "fused-sgd" else CFG["trainer"]
    base = {**CFG, "trainer": trainer, "objective": {"config": chains}}
    cfg = resolve_config("rbm", base)
    full, _ = train(cfg, out=tmp_path / "full")
    stopped = resolve_config("rbm", {**base, "trainer": {**trainer, "max_steps": 70}})
    part, _ = train(stopped, out=tmp_path / "part")
    assert part.global_step == 70 and part.epoch == 1 and part.batch_in_epoch == 20
    assert not (tmp_path / "part" / io.MODEL_FILE).exists()
    resumed, _ = train(cfg, out=tmp_path / "part", resume=True)
    assert resumed.global_step == full.global_step
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [m["train/free_energy_gap"] for m in full.history] == [
        m["train/free_energy_gap"] for m in resumed.history
    ]


def test_ctrl_c_checkpoints_after_the_current_step(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(binarize="static"))
    torch.manual_seed(0)
    model = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=8))

    class Interrupting(ContrastiveDivergence):
        calls = 0

        def step(self, ctx, batch):
            Interrupting.calls += 1
            if Interrupting.calls == 7:
                signal.raise_signal(signal.SIGINT)  # what Ctrl-C does
            return super().step(ctx, batch)

    trainer = Trainer(
        model,
        Interrupting(CDConfig(persistent=True)),
        TrainerConfig(epochs=2, progress=False),
        run_dir=tmp_path,
    )
    trainer.fit(data.train, data.val)
    assert trainer.global_step == 7 and trainer.epoch == 0
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-000000007"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # resumed, it ends bit for bit where an uninterrupted run does
    cfg = TrainerConfig(epochs=2, progress=False)
    resumed = Trainer(model, ContrastiveDivergence(CDConfig(persistent=True)), cfg, tmp_path)
    resumed.fit(data.train, data.val, resume=True)
    torch.manual_seed(0)
    straight = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=8))
    Trainer(straight, ContrastiveDivergence(CDConfig(persistent=True)), cfg).fit(
        data.train, data.val
    )
    for k, v in straight.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_nan_guard_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(binarize="static"))
    model = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=8))

    class Exploding(ContrastiveDivergence):
        calls = 0

        def step(self, ctx, batch):
            Exploding.calls += 1
            if Exploding.calls == 60:  # during the third epoch (25 steps per epoch)
                ctx.update("model", torch.tensor(float("nan"), requires_grad=True))
            return super().step(ctx, batch)

    trainer = Trainer(
        model, Exploding(CDConfig()), TrainerConfig(epochs=3, progress=False), run_dir=tmp_path
    )
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint kept: .*step-000000050"):
        trainer.fit(data.train, data.val)
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-000000025", "step-000000050"]
    good = io.load_tensors(tmp_path / "checkpoints" / "step-000000050" / io.MODEL_FILE)
    assert all(torch.isfinite(t).all() for t in good.values())


def test_parameters_gone_bad_at_an_epochs_last_step_stop_before_validation(
    tmp_path: Path,
) -> None:
    data = prepare_data(DataConfig(binarize="static"))
    model = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=8))

    class Poisoning(ContrastiveDivergence):
        calls = 0

        def step(self, ctx, batch):
            out = super().step(ctx, batch)
            Poisoning.calls += 1
            if Poisoning.calls == 50:  # the last step of the second epoch (25 per epoch)
                with torch.no_grad():
                    ctx.model.weight[0, 0] = float("nan")
            return out

    trainer = Trainer(
        model, Poisoning(CDConfig()), TrainerConfig(epochs=3, progress=False), run_dir=tmp_path
    )
    with pytest.raises(TrainingDiverged, match=r"by step 50: parameters \['weight'\].*step-0+25"):
        trainer.fit(data.train, data.val)  # not the validation's complaint about its input
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-000000025"]
    assert len(trainer.history) == 1


def test_a_resumed_run_at_its_step_limit_takes_no_step(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(binarize="static"))
    cfg = TrainerConfig(epochs=2, progress=False, max_steps=5)
    Trainer(BernoulliRBM(64, 8), ContrastiveDivergence(), cfg, run_dir=tmp_path).fit(data.train)
    again = Trainer(BernoulliRBM(64, 8), ContrastiveDivergence(), cfg, run_dir=tmp_path)
    again.fit(data.train, resume=True)
    assert again.global_step == 5 and again.stop_reason == "max_steps"
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-000000005"]


def test_nan_gradient_behind_a_finite_loss_stops_at_the_next_step(tmp_path: Path) -> None:
    """One process checks the loss only: sqrt(|w - w|) is 0 with a NaN gradient, which makes
    the weights NaN, so the next loss is NaN; no checkpoint holds the NaN weights."""
    data = prepare_data(DataConfig())
    model = VAE(VAEConfig(n_features=64, latent_dim=2, hidden=(8,)))

    class Poisoned(AutoencoderObjective):
        calls = 0

        def step(self, ctx, batch):
            Poisoned.calls += 1
            if Poisoned.calls == 60:  # during the third epoch (25 steps per epoch)
                w = ctx.model.decoder[0].weight
                loss = torch.sqrt((w - w.detach()).abs().sum())
                ctx.update("model", loss)
                assert float(loss.detach()) == 0.0 and not bool(torch.isfinite(w).all())
                return {}
            return super().step(ctx, batch)

    cfg = TrainerConfig(epochs=3, progress=False, optimizer="adam", lr=1e-3)
    trainer = Trainer(model, Poisoned(), cfg, run_dir=tmp_path)
    stop = r"step 61: the model loss became nan.*kept: .*step-000000050"
    with pytest.raises(TrainingDiverged, match=stop):
        trainer.fit(data.train, data.val)
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-000000025", "step-000000050"]


def test_failed_checkpoint_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch) -> None:
    model = BernoulliRBM(RBMConfig(n_visible=4, n_hidden=2))
    io.write_checkpoint(tmp_path, 1, model, {"x": torch.ones(2)})

    def broken(path, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_tensors", broken)
    with pytest.raises(OSError):
        io.write_checkpoint(tmp_path, 2, model, {"x": torch.ones(2)})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000000001"]


def test_schedule_and_metrics_file(tmp_path: Path) -> None:
    trainer, _ = train(resolve_config("rbm", CFG), out=tmp_path)
    lrs = [m["lr/model"] for m in trainer.history]
    assert lrs == pytest.approx([0.05, 0.045, 0.0405])
    lines = (tmp_path / io.METRICS_FILE).read_text().splitlines()
    assert len(lines) == 3 and (tmp_path / "samples.png").is_file()
    assert (tmp_path / "curves.png").is_file()
    with pytest.raises(GenphysError, match="already holds a run"):
        train(resolve_config("rbm", CFG), out=tmp_path)


def test_batch_larger_than_data_is_refused() -> None:
    data = prepare_data(DataConfig(binarize="static", limit=20))
    model = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=8))
    with pytest.raises(GenphysError, match="fewer than one batch"):
        Trainer(model, ContrastiveDivergence(), TrainerConfig(batch_size=64)).fit(data.train)


# ------------------------------------------------------------------ distributed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, family: str = "rbm") -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    data = prepare_data(DataConfig(binarize="static"))
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    if family == "rbm":
        model: torch.nn.Module = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=8, init_std=0.1))
        objective = ContrastiveDivergence(CDConfig(persistent=True))
    elif family == "vae":  # autograd through the DDP-wrapped forward, Adam, reparam. noise
        model = VAE(n_features=64, latent_dim=2, hidden=(16,))
        objective = build_objective("autoencoder")
    elif family == "ebm":  # no DDP wrapper, one optimizer: explicit all-reduce, grad clipping
        data = prepare_data(DataConfig(scale="symmetric"))
        model = EBM(architecture="mlp", n_features=64, hidden=(16,))
        objective = build_objective("energy_cd", {"langevin_steps": 5, "buffer_size": 64})
    else:  # two optimizers, no DDP wrapper: explicit all-reduce, batch-norm buffers broadcast
        data = prepare_data(DataConfig(scale="symmetric"))
        model = GAN(
            architecture="dcgan", image_shape=(1, 8, 8), n_features=64, noise_dim=8, ema_decay=0.9
        )
        objective = build_objective("adversarial", {"d_steps": 2})
    threads = len(os.listdir("/proc/self/task"))
    steps: list[tuple[int, str, float]] = []  # this rank's measured step metrics

    def record(ctx, batch, step=objective.step):
        losses = step(ctx, batch)
        steps.extend((trainer.epoch, k, float(v)) for k, v in losses.items())
        return losses

    objective.step = record
    trainer = Trainer(
        model,
        objective,
        TrainerConfig(
            epochs=2,
            batch_size=16,
            progress=False,
            optimizer="adam",
            lr=1e-3,
            grad_clip=0.1 if family == "ebm" else None,  # clipped after the all-reduce
        ),
        run_dir=out if rank == 0 else None,
    )
    # the average is a mean, not a sum (identical ranks alone would not show that)
    mine = {"g": torch.full((3,), float(rank + 1)), "h": torch.tensor([[2.0 * rank]])}
    mean = average_over_processes(mine, world)
    assert torch.equal(mean["g"], torch.full((3,), 1.5)) and mean["h"].item() == 1.0
    trainer.fit(data.train, data.val)
    assert not torch.distributed.is_initialized()  # the trainer cleans up the group it made
    # and gloo's threads are joined: one still running when Python exits may abort the process
    assert len(os.listdir("/proc/self/task")) == threads
    io.save_model(Path(out) / f"rank{rank}.safetensors", model)
    (Path(out) / f"rank{rank}-steps.json").write_text(json.dumps(steps))


def test_two_process_ddp_keeps_ranks_identical(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    _assert_same_weights(tmp_path)
    state = io.read_checkpoint_state(io.checkpoint_dirs(tmp_path)[-1])
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    chains = [r["objective.chains.v"] for r in state["ranks"]]
    assert not torch.equal(chains[0], chains[1])  # each rank runs its own chains
    # an epoch's train/* metrics average the measured steps of both ranks
    steps = [json.loads((tmp_path / f"rank{r}-steps.json").read_text()) for r in (0, 1)]
    logged = [json.loads(line) for line in (tmp_path / io.METRICS_FILE).read_text().splitlines()]
    for epoch, metrics in enumerate(logged):
        values = {r: [v for e, k, v in steps[r] if e == epoch] for r in (0, 1)}
        assert values[0] != values[1]  # the ranks' own means differ
        mean = sum(values[0] + values[1]) / len(values[0] + values[1])
        assert metrics["train/free_energy_gap"] == pytest.approx(mean, rel=1e-12)


def _assert_same_weights(folder: Path) -> None:
    w0 = io.load_tensors(folder / "rank0.safetensors")
    w1 = io.load_tensors(folder / "rank1.safetensors")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k


def test_two_process_ddp_vae(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), "vae"), nprocs=2, join=True)
    _assert_same_weights(tmp_path)


def test_two_process_ddp_ebm(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), "ebm"), nprocs=2, join=True)
    _assert_same_weights(tmp_path)


def test_two_process_ddp_gan(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), "gan"), nprocs=2, join=True)
    _assert_same_weights(tmp_path)  # batch-norm running statistics and the average included


def test_torchrun_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "genphys.cli",
        "train",
        "rbm",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-6000:] + proc.stdout[-2000:]
    assert (out / io.MODEL_FILE).is_file()
    assert len((out / io.METRICS_FILE).read_text().splitlines()) == 2  # rank 0 alone writes
    assert proc.stdout.count("run directory") == 1


@pytest.mark.skipif(
    "parallel backend: OpenMP" not in torch.__config__.parallel_info()
    or not torch.set_flush_denormal(False),
    reason="needs torch's OpenMP backend and a CPU with flush-to-zero",
)
def test_flush_denormals_reaches_every_openmp_thread() -> None:
    """With libgomp, torch.set_flush_denormal sets the calling thread only: after the team has
    started, half of a two-thread product still sees denormals; flush_denormals sets all."""
    code = """
import torch
from genphys.denormals import _openmp_runtime, flush_denormals
torch.set_num_threads(2)
x = torch.full((1_000_000,), 1e-40)
assert int(((x * 1.0) == 0).sum()) == 0  # the team has started and keeps denormals
torch.set_flush_denormal(True)
partial = int(((x * 1.0) == 0).sum())
assert flush_denormals()
flushed = int(((x * 1.0) == 0).sum())
assert flush_denormals(False)  # a run's flush_denormal: false, on every thread again
print(partial, flushed, int(((x * 1.0) == 0).sum()), "libgomp" in str(_openmp_runtime()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    partial, flushed, kept, gnu = out.stdout.split()
    assert int(flushed) == 1_000_000 and int(kept) == 0
    if gnu == "True":  # the team of GNU's runtime keeps its own flags: the bug this fixes
        assert int(partial) < 1_000_000


class _FixedGradient:
    """An objective whose gradient is ``g`` for every parameter entry, given by backprop of
    sum(g * p) (``update``) or in closed form (``apply_gradients``)."""

    def __new__(cls, closed_form: bool, g: float):
        from genphys.training.objectives import Objective

        class Fixed(Objective):
            def step(self, ctx, batch):
                params = dict(ctx.model.named_parameters())
                if closed_form:
                    ctx.apply_gradients(
                        "model", {k: torch.full_like(p, g) for k, p in params.items()}
                    )
                    return {}
                loss = sum((g * p).sum() for p in params.values())
                ctx.update("model", loss)
                return {"loss": loss.detach()}

        return Fixed()


@pytest.mark.parametrize("closed_form", [False, True])
def test_weight_decay_and_gradient_clipping_steps(closed_form: bool) -> None:
    """One SGD step: w1 = w0 - lr (g + wd w0); with clipping the step has norm lr * clip."""
    x = (torch.rand(8, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    g, lr = 0.3, 0.1
    for options in ({"weight_decay": 0.2}, {"grad_clip": 0.05}, {"momentum": 0.5}):
        model = BernoulliRBM(RBMConfig(n_visible=6, n_hidden=3, init_std=0.5))
        before = {k: p.detach().clone() for k, p in model.named_parameters()}
        cfg = TrainerConfig(epochs=1, batch_size=8, lr=lr, max_steps=1, progress=False, **options)
        Trainer(model, _FixedGradient(closed_form, g), cfg).fit(x)
        n = sum(p.numel() for p in before.values())
        for k, p in model.named_parameters():
            w0 = before[k]
            if "weight_decay" in options:
                expected = w0 - lr * (g + 0.2 * w0)
            elif "grad_clip" in options:  # the whole gradient, norm g sqrt(n), scaled to 0.05
                expected = w0 - lr * g * 0.05 / (g * n**0.5 + 1e-6)
            else:  # the first momentum step is the plain gradient
                expected = w0 - lr * g
            torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("schedule", "lrs"),
    [("exponential", [0.05, 0.045, 0.0405]), ("cosine", [0.05, 0.0375, 0.0125])],
)
def test_exponential_and_cosine_schedules(schedule: str, lrs: list[float]) -> None:
    """lr_e = lr gamma^e; cosine: lr (1 + cos(pi e / epochs)) / 2, e = 0, 1, 2."""
    x = (torch.rand(32, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    cfg = TrainerConfig(
        epochs=3, batch_size=16, lr=0.05, schedule=schedule, gamma=0.9, progress=False
    )
    model = BernoulliRBM(RBMConfig(n_visible=6, n_hidden=3))
    trainer = Trainer(model, _FixedGradient(False, 0.0), cfg)
    trainer.fit(x)
    assert [m["lr/model"] for m in trainer.history] == pytest.approx(lrs, rel=1e-12)


def test_resume_with_other_epochs_keeps_the_cosine_schedule_annealing_to_zero(
    tmp_path: Path,
) -> None:
    """lr_e = lr (1 + cos(pi e / epochs)) / 2 with the resumed run's epochs from then on."""
    import math

    data = prepare_data(DataConfig(binarize="static", limit=256))
    cfg = TrainerConfig(epochs=2, batch_size=64, lr=0.1, schedule="cosine", progress=False)

    def fit(run: str, epochs: int, resume: bool, **kw: int) -> list[float]:
        config = dataclasses.replace(cfg, epochs=epochs, **kw)
        trainer = Trainer(
            BernoulliRBM(64, 8), ContrastiveDivergence(), config, run_dir=tmp_path / run
        )
        trainer.fit(data.train, resume=resume)
        return [m["lr/model"] for m in trainer.history]

    def cosine(epochs: int) -> list[float]:
        return [0.05 * (1 + math.cos(math.pi * e / epochs)) for e in range(epochs)]

    assert fit("longer", 2, False) == pytest.approx([0.1, 0.05])
    assert fit("longer", 4, True) == pytest.approx([0.1, 0.05, *cosine(4)[2:]], rel=1e-12)
    two_epochs = 2 * (len(data.train) // 64)
    assert fit("shorter", 4, False, max_steps=two_epochs) == pytest.approx(cosine(4)[:2])
    assert fit("shorter", 3, True) == pytest.approx([*cosine(4)[:2], cosine(3)[2]], rel=1e-12)


def test_resume_cannot_publish_a_started_epoch_as_the_final_model(tmp_path: Path) -> None:
    data = prepare_data(DataConfig(binarize="static", limit=256))
    steps = len(data.train) // 64 + 2  # one epoch and two batches
    cfg = TrainerConfig(epochs=2, batch_size=64, progress=False, max_steps=steps)
    Trainer(BernoulliRBM(64, 8), ContrastiveDivergence(), cfg, run_dir=tmp_path).fit(data.train)
    assert not (tmp_path / io.MODEL_FILE).exists()
    again = Trainer(
        BernoulliRBM(64, 8),
        ContrastiveDivergence(),
        dataclasses.replace(cfg, epochs=1),
        run_dir=tmp_path,
    )
    with pytest.raises(GenphysError, match=r"done 1 epochs \(and started the next\).*>= 2"):
        again.fit(data.train, resume=True)
    assert not (tmp_path / io.MODEL_FILE).exists()


def test_fit_trains_in_training_mode() -> None:
    """A model handed over in eval mode (as io.load_run returns it) trains in training mode."""
    x = (torch.rand(32, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    modes: list[bool] = []
    objective = _FixedGradient(False, 0.1)
    step = objective.step
    objective.step = lambda ctx, batch: (modes.append(ctx.model.training), step(ctx, batch))[1]
    model = BernoulliRBM(RBMConfig(n_visible=6, n_hidden=3)).eval()
    Trainer(model, objective, TrainerConfig(epochs=2, batch_size=16, progress=False)).fit(x, x)
    assert modes == [True] * 4


def test_a_lasting_epoch_warning_is_printed_once_and_logged_every_epoch(capsys) -> None:
    x = (torch.rand(16, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    objective = _FixedGradient(False, 0.0)
    objective.epoch_warnings = lambda m: [] if m["epoch"] == 4 else [f"d = {m['epoch'] / 10}"]
    cfg = TrainerConfig(epochs=6, batch_size=16, progress=False)
    trainer = Trainer(BernoulliRBM(RBMConfig(n_visible=6, n_hidden=3)), objective, cfg)
    trainer.fit(x)
    printed = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert [line.split(":")[2].strip() for line in printed] == ["epoch 1", "epoch 5"]
    assert [m.get("warnings") for m in trainer.history] == [
        ["d = 0.1"],
        ["d = 0.2"],
        ["d = 0.3"],
        None,
        ["d = 0.5"],
        ["d = 0.6"],
    ]
