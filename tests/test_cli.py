"""The command line end to end, and every kind of bad input: one line, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_errors import code_and_err, one_line_error
from genphys import io
from genphys.models import BernoulliRBM

QUICK = ["--hidden", "12", "--epochs", "2", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genphys.cli.main import main

    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "rbm", *QUICK, "--out", str(out)]) == 0
    return out


def test_train_writes_a_complete_run_directory(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "checkpoints",
        "samples.png",
        "curves.png",
    } <= names
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"] == {
        "name": "rbm",
        "config": {"n_visible": 64, "n_hidden": 12, "init_std": 0.01},
    }
    assert cfg["image_shape"] == [1, 8, 8]


def test_sample_and_evaluate_from_the_run_directory_alone(run_dir: Path, cli) -> None:
    code, out, err = cli("sample", run_dir, "--n", "9", "--steps", "20")
    assert code == 0, err
    x = np.load(run_dir / "samples.npz")["samples"]
    assert x.shape == (9, 64) and ((x >= 0) & (x <= 1)).all()
    code, out, err = cli("evaluate", run_dir, "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["log_z_method"] == "exact"  # 12 hidden units: enumerated
    assert metrics["log_z"]["stderr"] == 0.0
    ll = metrics["log_likelihood"]
    assert -64 * np.log(2) < ll["value"] < 0 and ll["stderr"] > 0
    assert {"pseudo_log_likelihood", "reconstruction_error"} <= set(metrics)
    code, out, _ = cli("evaluate", run_dir, "--method", "ais", "--ais-betas", "2000", "--json")
    ais = json.loads(out)
    diff = abs(ais["log_z"]["value"] - metrics["log_z"]["value"])
    assert diff < 0.1 and diff < 3 * ais["log_z"]["stderr"] + 1e-3


def test_sample_out_must_be_a_png_file(run_dir: Path, tmp_path: Path, cli) -> None:
    for out in (tmp_path / "x.npz", tmp_path / "noext", tmp_path, tmp_path / "no" / "x.png"):
        line = one_line_error(*code_and_err(cli("sample", run_dir, "--out", out)))
        assert "--out" in line, line
    code, _, err = cli("sample", run_dir, "--n", "4", "--steps", "2", "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file() and (tmp_path / "s.npz").is_file(), err


def test_tampered_run_configuration_is_one_line(run_dir: Path, tmp_path: Path, cli) -> None:
    import shutil

    for key, value in [("data", 5), ("objective", 5), ("image_shape", [3, 3]),
                       ("image_shape", "8x8"), ("model", [1])]:  # fmt: skip
        copy = tmp_path / f"{key}-{value}".replace(" ", "")
        shutil.copytree(run_dir, copy)
        cfg = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**cfg, key: value}))
        one_line_error(*code_and_err(cli("sample", copy, "--out", copy / "x.png")))
        one_line_error(*code_and_err(cli("evaluate", copy)))


def test_config_file_with_flag_override(tmp_path: Path, cli) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  config:\n    n_hidden: 5\ntrainer:\n  epochs: 1\n  lr: 0.01\n")
    code, _, err = cli(
        "train", "rbm", "--config", cfg, "--lr", "0.02", "--no-progress", "--out", tmp_path / "r"
    )
    assert code == 0, err
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["model"]["config"]["n_hidden"] == 5
    assert saved["trainer"]["lr"] == 0.02 and saved["trainer"]["epochs"] == 1


def test_help_on_every_command(cli) -> None:
    for args in ([], ["train"], ["sample"], ["evaluate"]):
        code, out, _ = cli(*args, "--help")
        assert code == 0 and "usage:" in out


def _npz(path: Path, x: np.ndarray) -> Path:
    np.savez(path, x=x)
    return path


BAD_DATA = {
    "wrong_ndim": (np.zeros((4, 2, 3, 4, 5)), "dimension|ndim|shape"),
    "non_binary": (np.full((50, 6), 0.5), "not binary"),
    "nan": (np.full((50, 6), np.nan), "NaN"),
    "inf": (np.full((50, 6), -np.inf), "Inf"),
    "empty": (np.zeros((0, 6)), "empty|no examples|0 examples"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_through_the_cli(case: str, tmp_path: Path, cli) -> None:
    x, pattern = BAD_DATA[case]
    path = _npz(tmp_path / "d.npz", x)
    out = tmp_path / "run"
    code, _, err = cli("train", "rbm", "--data", path, "--binarize", "none", *QUICK, "--out", out)
    import re

    assert re.search(pattern, one_line_error(code, err))
    assert not out.exists()  # nothing half-written


def test_missing_and_corrupt_data_files(tmp_path: Path, cli, monkeypatch) -> None:
    one_line_error(
        *cli("train", "rbm", "--data", tmp_path / "nope.npz", *QUICK)[:1],
        cli("train", "rbm", "--data", tmp_path / "nope.npz", *QUICK)[2],
    )
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    code, _, err = cli("train", "rbm", "--data", bad, *QUICK, "--out", tmp_path / "r")
    one_line_error(code, err)
    # MNIST files absent and no network: says where to put them
    from urllib.error import URLError

    import genphys.data.mnist as mnist

    def offline(*args, **kwargs):
        raise URLError("offline")

    monkeypatch.setattr(mnist, "_fetch", offline)
    monkeypatch.setenv("GENPHYS_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, _, err = cli("train", "rbm", "--data", "fashion-mnist", *QUICK, "--out", tmp_path / "m")
    assert "GENPHYS_DATA" in one_line_error(code, err)


def test_unknown_options_and_bad_values(tmp_path: Path, cli) -> None:
    one_line_error(*code_and_err(cli("train", "rbm", "--no-such-flag")))
    one_line_error(*code_and_err(cli("train", "rbm", "--lr", "abc")))
    one_line_error(*code_and_err(cli("train", "rbm", "--lr", "-1", "--out", tmp_path / "a")))
    one_line_error(*code_and_err(cli("train", "rbm", "--binarize", "sometimes")))
    line = one_line_error(
        *code_and_err(cli("train", "rbm", "--seed", "-1", "--out", tmp_path / "a"))
    )
    assert "seed must be in [0, 2^63)" in line
    line = one_line_error(*code_and_err(cli("train", "rbm", "--seed", str(2**70))))
    assert "seed" in line
    for betas in ("1,2", "0.5,1.0", "-0.1,0.9"):  # torch would raise deep inside Adam
        line = one_line_error(
            *code_and_err(
                cli(
                    "train",
                    "rbm",
                    "--optimizer",
                    "adam",
                    f"--betas={betas}",
                    "--out",
                    tmp_path / "a",
                )
            )
        )
        assert "betas must be two numbers in [0, 1)" in line
    cfg = tmp_path / "c.yaml"
    cfg.write_text("trainer:\n  epochz: 3\n")
    assert "epochz" in one_line_error(*code_and_err(cli("train", "rbm", "--config", cfg)))
    cfg.write_text("trainer: [unclosed\n")
    one_line_error(*code_and_err(cli("train", "rbm", "--config", cfg)))
    for text, expected in [  # mistakes the audit found passing silently or as tracebacks
        ("model:\n  configs:\n    n_hidden: 8\n", "configs"),
        ("objective:\n  foo: 1\n", "foo"),
        ("family: vae\n", "family 'vae'"),
        ("trainer:\n  epochs: true\n", "epochs must be int"),
        ("trainer:\n  lr: true\n", "lr must be float"),
        ("model:\n  config:\n    n_hidden: true\n", "n_hidden must be int"),
        ("trainer:\n  optimizer: adam\n  betas: [0.1, 0.2, 0.3]\n", "2 entries"),
        ("model:\n  config: null\n", "must be a mapping"),
        ("objective:\n  name: [cd]\n", "unknown objective"),
        ("model: [rbm]\n", "section 'model' must be a mapping"),
        ("trainer:\n  lr: abc\n", "lr must be float"),
        ("trainer:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n", "key 'lr' is given twice"),
        ("trainer: {lr: 0.1}\ntrainer: {epochs: 2}\n", "key 'trainer' is given twice"),
    ]:
        cfg.write_text(text)
        line = one_line_error(*code_and_err(cli("train", "rbm", "--config", cfg)))
        assert expected in line, (text, line)
    out = tmp_path / "never"
    for text, flags in (("model: [rbm]\n", ("--hidden", "3")), ("objective: [cd]\n", ("--k", "2"))):
        cfg.write_text(text)  # a malformed section is named, not hidden by the flags
        line = one_line_error(
            *code_and_err(cli("train", "rbm", "--config", cfg, *flags, "--out", out))
        )
        assert "must be a mapping" in line, line
    assert not out.exists()
    cfg.write_bytes(b"\xff\xfe")
    assert "UTF-8" in one_line_error(*code_and_err(cli("train", "rbm", "--config", cfg)))
    dup = tmp_path / "c.json"
    dup.write_text('{"trainer": {"epochs": 1, "epochs": 2}}')
    assert "given twice" in one_line_error(*code_and_err(cli("train", "rbm", "--config", dup)))
    chained = tmp_path / "chained.yaml"  # a merged mapping that merges another
    chained.write_text(
        "base: &a {lr: 0.1, epochs: 5}\npresets: {fast: &b {<<: *a, lr: 0.5}}\n"
        "trainer: {<<: *b, epochs: 2}\n"
    )
    from genphys.config import load_config_file

    assert load_config_file(chained)["trainer"] == {"lr": 0.5, "epochs": 2}
    cfg.write_text("base: &b {lr: 0.5, epochs: 1}\ntrainer:\n  <<: *b\n  lr: 0.02\n")

    # a key merged in with << may be overridden
    assert load_config_file(cfg)["trainer"] == {"lr": 0.02, "epochs": 1}
    cfg.write_text("trainer:\n  lr: 1e-3\n  epochs: 1\n")  # YAML 1.1 reads 1e-3 as a string
    code, _, err = cli("train", "rbm", "--config", cfg, "--no-progress", "--out", tmp_path / "y")
    assert code == 0, err
    saved = json.loads((tmp_path / "y" / "config.json").read_text())
    assert saved["trainer"]["lr"] == 0.001
    one_line_error(*code_and_err(cli("sample", tmp_path / "no-run")))
    one_line_error(*code_and_err(cli("train", "rbm", "--resume", "--out", tmp_path / "no-run")))
    assert not (tmp_path / "a").exists()


def test_corrupt_or_mismatched_checkpoints(run_dir: Path, tmp_path: Path, cli) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    data = (broken / io.MODEL_FILE).read_bytes()
    (broken / io.MODEL_FILE).write_bytes(data[: len(data) // 2])
    assert "safetensors" in one_line_error(*code_and_err(cli("sample", broken)))
    (broken / io.MODEL_FILE).write_bytes(b"\x00" * 64)
    one_line_error(*code_and_err(cli("evaluate", broken)))
    mismatched = tmp_path / "mismatched"
    shutil.copytree(run_dir, mismatched)
    cfg = json.loads((mismatched / "config.json").read_text())
    cfg["model"]["config"]["n_hidden"] = 13
    (mismatched / "config.json").write_text(json.dumps(cfg))
    assert "does not match" in one_line_error(*code_and_err(cli("sample", mismatched)))
    (mismatched / "config.json").write_text("{not json")
    one_line_error(*code_and_err(cli("evaluate", mismatched)))
    # resume from a checkpoint whose state file is corrupt
    resumable = tmp_path / "resumable"
    shutil.copytree(run_dir, resumable)
    ckpt = io.checkpoint_dirs(resumable)[-1]
    (ckpt / io.STATE_TENSORS).write_bytes(b"garbage")
    before = _files(resumable)
    one_line_error(
        *code_and_err(cli("train", "rbm", "--resume", "--epochs", "3", "--out", resumable))
    )
    assert _files(resumable) == before  # config.json, metrics and weights untouched
    # resume from a checkpoint whose weights belong to another model
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    ckpt = io.checkpoint_dirs(other)[-1]
    io.save_model(ckpt / io.MODEL_FILE, BernoulliRBM(n_visible=64, n_hidden=13))
    before = _files(other)
    line = one_line_error(
        *code_and_err(cli("train", "rbm", "--resume", "--epochs", "3", "--out", other))
    )
    assert "does not match" in line and _files(other) == before
    # resume from a checkpoint whose state is malformed or does not fit the model
    edits = {
        "malformed": lambda meta, tensors: {**meta, "optimizers": {"__items__": 5}},
        "a negative epoch": lambda meta, tensors: {**meta, "epoch": -5},
        "chains of another shape": lambda meta, tensors: tensors.update(
            {"ranks.0.objective.chains.v": torch.zeros(3, 7)}
        ),
        "a momentum buffer of another shape": lambda meta, tensors: tensors.update(
            {"optimizers.model.state.0.momentum_buffer": torch.zeros(5)}
        ),
    }
    for what, edit in edits.items():
        bad = tmp_path / what.replace(" ", "-")
        shutil.copytree(run_dir, bad)
        ckpt = io.checkpoint_dirs(bad)[-1]
        meta = json.loads((ckpt / io.STATE_JSON).read_text())
        tensors = io.load_tensors(ckpt / io.STATE_TENSORS)
        assert "ranks.0.objective.chains.v" in tensors
        assert "optimizers.model.state.0.momentum_buffer" in tensors
        meta = edit(meta, tensors) or meta
        io.save_tensors(ckpt / io.STATE_TENSORS, tensors)
        (ckpt / io.STATE_JSON).write_text(json.dumps(meta))
        before = _files(bad)
        cmd = ("train", "rbm", "--resume", "--epochs", "3", "--out", bad)
        one_line_error(*code_and_err(cli(*cmd)))
        assert _files(bad) == before, what


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in folder.rglob("*") if f.is_file()}


def test_resume_extends_a_finished_run(run_dir: Path, tmp_path: Path, cli) -> None:
    import shutil

    longer = tmp_path / "longer"
    shutil.copytree(run_dir, longer)
    code, _, err = cli("train", "rbm", "--resume", "--epochs", "3", "--out", longer)
    assert code == 0, err
    assert len((longer / io.METRICS_FILE).read_text().splitlines()) == 3
    assert json.loads((longer / "config.json").read_text())["trainer"]["epochs"] == 3
    code, _, err = cli("train", "rbm", "--resume", "--hidden", "20", "--out", longer)
    assert "cannot change" in one_line_error(code, err)
    before = (longer / "config.json").read_text()
    code, _, err = cli("train", "rbm", "--resume", "--epochs", "1", "--out", longer)
    assert "--epochs >= 3" in one_line_error(code, err)
    assert (longer / "config.json").read_text() == before  # still says 3 epochs
    afile = tmp_path / "afile"
    afile.write_text("")
    line = one_line_error(*code_and_err(cli("train", "rbm", *QUICK, "--out", afile)))
    assert "not a directory" in line


def test_real_exit_codes_in_a_subprocess(tmp_path: Path) -> None:
    bad = _npz(tmp_path / "d.npz", np.full((50, 6), 0.5))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genphys.cli",
            "train",
            "rbm",
            "--data",
            str(bad),
            "--binarize",
            "none",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_gaussian_rbm_end_to_end(tmp_path: Path, cli) -> None:
    out = tmp_path / "g"
    code, _, err = cli(
        "train",
        "grbm",
        "--hidden",
        "10",
        "--epochs",
        "2",
        "--learn-sigma",
        "--no-progress",
        "--out",
        out,
    )
    assert code == 0, err
    code, stdout, err = cli("evaluate", out, "--json")
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["log_z_method"] == "exact" and "pseudo_log_likelihood" not in metrics
    # the mean of -F(v) - log Z over the validation split, log Z by enumerating h
    import torch

    from genphys.data import DataConfig, prepare_data
    from genphys.evaluation import exact_log_partition

    model, cfg = io.load_run(out)
    model = model.double()
    val = prepare_data(DataConfig.from_dict(cfg["data"])).val.double()
    with torch.no_grad():
        log_z = exact_log_partition(model)
        expected = float((-model.free_energy(val)).mean()) - log_z
    assert metrics["log_z"]["value"] == pytest.approx(log_z, rel=1e-5)
    assert metrics["log_likelihood"]["value"] == pytest.approx(expected, rel=1e-5)


def test_max_steps_is_for_one_invocation_and_resume_checks_everything(tmp_path: Path, cli) -> None:
    out = tmp_path / "r"
    assert cli("train", "rbm", *QUICK, "--max-steps", "30", "--out", out)[0] == 0
    assert not (out / io.MODEL_FILE).exists()  # stopped early: no final weights yet
    assert json.loads((out / "config.json").read_text())["trainer"]["max_steps"] is None
    for flag in (["--seed", "9"], ["--val-fraction", "0.5"], ["--optimizer", "adam"]):
        code, _, err = cli("train", "rbm", "--resume", *flag, "--out", out)
        assert "cannot change" in one_line_error(code, err)
    code, _, err = cli("train", "vae", "--resume", "--out", out)
    assert "'rbm' run" in one_line_error(code, err)
    with open(out / io.METRICS_FILE, "a") as fh:
        fh.write('{"torn": ')  # a crash mid-append
    code, stdout, err = cli("train", "rbm", "--resume", "--no-progress", "--out", out)
    assert code == 0, err
    assert "finished at epoch 2, step 100" in stdout  # ran to the end, not one step
    assert len((out / io.METRICS_FILE).read_text().splitlines()) == 2


def test_more_bad_input(tmp_path: Path, cli) -> None:
    x = np.zeros((400, 6))
    x[:4] = 0.5  # a few non-binary rows deep in the set
    path = _npz(tmp_path / "mostly.npz", x)
    code, _, err = cli(
        "train",
        "rbm",
        "--data",
        path,
        "--binarize",
        "none",
        *QUICK,
        "--batch-size",
        "8",
        "--out",
        tmp_path / "a",
    )
    assert "not binary" in one_line_error(code, err)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  config:\n    hidden: abc\n")
    one_line_error(*code_and_err(cli("train", "vae", "--config", cfg, "--out", tmp_path / "b")))
    cfg.write_text("objective: null\n")
    one_line_error(*code_and_err(cli("train", "rbm", "--config", cfg, "--out", tmp_path / "b")))
    code, _, err = cli("train", "vae", "--learn-sigma", "--out", tmp_path / "b")
    assert "Gaussian" in one_line_error(code, err)
    code, _, err = cli("train", "vae", "--loss", "bce", "--out", tmp_path / "b")
    assert "loss" in one_line_error(code, err)
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(*code_and_err(cli("train", "rbm", *QUICK, "--out", blocker / "run")))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tensorboard_without_the_package_fails_before_training(tmp_path: Path, cli) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    code, _, err = cli("train", "rbm", *QUICK, "--tensorboard", "--out", tmp_path / "tb")
    assert "pip install tensorboard" in one_line_error(code, err)
    assert not (tmp_path / "tb").exists()


def test_a_run_on_a_relative_data_path_works_from_anywhere(
    tmp_path: Path, cli, monkeypatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _npz(work / "bin.npz", (np.random.default_rng(0).random((200, 6)) < 0.4).astype(np.float32))
    monkeypatch.chdir(work)
    code, _, err = cli("train", "rbm", "--data", "bin.npz", *QUICK, "--out", "run")
    assert code == 0, err
    config = json.loads((work / "run" / "config.json").read_text())
    assert config["data"]["name"] == str(work / "bin.npz")
    config["data"]["name"] = "bin.npz"  # as runs made before paths were stored absolute
    (work / "run" / "config.json").write_text(json.dumps(config))
    code, _, err = cli("train", "rbm", "--data", "bin.npz", "--resume", "--epochs", "3",
                       "--no-progress", "--out", "run")  # fmt: skip
    assert code == 0, err  # the same file, named relatively again: not a changed setting
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("evaluate", work / "run", "--json")
    assert code == 0, err
    assert json.loads(out)["n_examples"] == 20  # the run's own validation split


def test_compile_switch_and_config(tmp_path: Path, cli) -> None:
    code, _, err = cli("train", "rbm", *QUICK, "--no-compile", "--out", tmp_path / "eager")
    assert code == 0, err
    saved = json.loads((tmp_path / "eager" / "config.json").read_text())
    assert saved["objective"]["config"]["compile"] is False
    cfg = tmp_path / "fused.yaml"
    cfg.write_text("objective:\n  config:\n    compile: true\n")
    code, _, err = cli("train", "rbm", *QUICK, "--config", cfg, "--out", tmp_path / "fused")
    assert code == 0, err
    ckpt = io.checkpoint_dirs(tmp_path / "fused")[-1]
    rank = io.read_checkpoint_state(ckpt)["ranks"][0]
    assert {"objective.chains.seed", "objective.chains.counter"} <= set(rank)
    line = one_line_error(*code_and_err(cli("train", "vae", "--no-compile", "--out", tmp_path)))
    assert "compile" in line


def test_classifier_labels_out_of_range_are_one_line_and_write_nothing(tmp_path: Path, cli) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8)).astype(np.float32)  # images, as the CNN needs
    for name, y in [("negative", np.arange(64) % 3 - 1), ("huge", np.arange(64) * 10**7)]:
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=x, y=y)
        out = tmp_path / f"run-{name}"
        line = one_line_error(*code_and_err(cli(
            "train", "classifier", "--data", path, "--epochs", "1", "--batch-size", "16",
            "--binarize", "none", "--no-progress", "--out", out)))  # fmt: skip
        assert "labels" in line and not out.exists(), line
    cfg = tmp_path / "two.yaml"  # digits have 10 classes
    cfg.write_text("model:\n  config:\n    n_classes: 2\n")
    out = tmp_path / "run-two"
    line = one_line_error(*code_and_err(cli(
        "train", "classifier", "--config", cfg, "--epochs", "1", "--no-progress",
        "--out", out)))  # fmt: skip
    assert "[0, 2)" in line and not out.exists(), line


def test_exit_codes_of_a_diverged_and_an_interrupted_run(tmp_path: Path, cli) -> None:
    """The README's promise: divergence exits with 1, Ctrl-C checkpoints and exits with 130."""
    import signal
    import time

    out = tmp_path / "diverged"
    code, _, err = cli(
        "train", "vae", "--optimizer", "sgd", "--lr", "1e30", "--no-progress", "--out", out
    )
    assert code == 1 and "diverged" in err and len(err.strip().splitlines()) == 1
    assert not (out / io.MODEL_FILE).exists()
    run = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "genphys.cli", "train", "rbm", "--epochs", "1000"]
    proc = subprocess.Popen(
        [*cmd, "--no-progress", "--out", str(run)], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (run / io.METRICS_FILE).exists() or not (run / io.METRICS_FILE).read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)  # an epoch is done: the trainer is in its loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert io.checkpoint_dirs(run) and not (run / io.MODEL_FILE).exists()


def test_messages_name_the_flags_and_the_command(run_dir: Path, tmp_path: Path, cli) -> None:
    line = one_line_error(*code_and_err(cli("train", "rbm", "--loss", "bce")))
    assert line == "error: --loss does not apply to rbm"
    assert "--no-compile does not apply to vae" in one_line_error(
        *code_and_err(cli("train", "vae", "--no-compile"))
    )
    line = one_line_error(*code_and_err(cli("train", "rbm", "--bogus", "1")))
    assert "genphys train: unrecognized arguments: --bogus 1 (see genphys train --help)" in line
    assert "COMMAND" in one_line_error(*code_and_err(cli("ebm")))
    line = one_line_error(*code_and_err(cli("evaluate", run_dir, "--split", "test")))
    assert "--split picks the file split of --data" in line
    line = one_line_error(*code_and_err(cli("plot", run_dir, "--kind", "latent")))
    assert "holds a BernoulliRBM; genphys sample RUN_DIR draws its samples" in line
    code, out, _ = cli("train", "--help")
    assert code == 0 and "(default 100; vae, ae 50; grbm 40; ebm 60; classifier 10)" in " ".join(
        out.split()
    )
