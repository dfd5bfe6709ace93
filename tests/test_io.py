"""Checkpoint files: nested state round trips, refusal of mismatched or corrupt weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from genphys import io
from genphys.errors import GenphysError
from genphys.models import BernoulliRBM, GaussianBernoulliRBM, GaussianRBMConfig, RBMConfig


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path: Path) -> None:
    model = BernoulliRBM(RBMConfig(n_visible=5, n_hidden=3))
    for opt in (
        torch.optim.Adam(model.parameters(), lr=0.1, betas=(0.8, 0.9)),
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5),
    ):
        model.free_energy(torch.ones(2, 5)).sum().backward()
        opt.step()
        state = {"opt": opt.state_dict(), "tuple": (1, 2.5, None, "x"), "n": 3}
        ckpt = io.write_checkpoint(tmp_path, 7, model, state)
        back = io.read_checkpoint_state(ckpt)
        assert back["tuple"] == (1, 2.5, None, "x") and back["n"] == 3
        assert back["opt"]["param_groups"] == state["opt"]["param_groups"]
        for k, v in state["opt"]["state"].items():
            for name, t in v.items():
                assert torch.equal(back["opt"]["state"][k][name], t)
        fresh = type(opt)(model.parameters(), lr=1.0)
        fresh.load_state_dict(back["opt"])  # loads without complaint


def test_model_weights_refuse_mismatch_and_nonfinite(tmp_path: Path) -> None:
    rbm = BernoulliRBM(RBMConfig(n_visible=5, n_hidden=3))
    io.save_model(tmp_path / "m.safetensors", rbm)
    with pytest.raises(GenphysError, match="shape or dtype mismatch"):
        io.load_model_weights(
            BernoulliRBM(RBMConfig(n_visible=5, n_hidden=4)), tmp_path / "m.safetensors"
        )
    with pytest.raises(GenphysError, match="missing \\['log_sigma'\\]"):
        io.load_model_weights(
            GaussianBernoulliRBM(GaussianRBMConfig(n_visible=5, n_hidden=3)),
            tmp_path / "m.safetensors",
        )
    with torch.no_grad():
        rbm.weight[0, 0] = float("nan")
    io.save_model(tmp_path / "nan.safetensors", rbm)
    with pytest.raises(GenphysError, match="non-finite"):
        io.load_model_weights(
            BernoulliRBM(RBMConfig(n_visible=5, n_hidden=3)), tmp_path / "nan.safetensors"
        )
    with pytest.raises(GenphysError, match="dtype mismatch"):
        io.load_model_weights(BernoulliRBM(5, 3).double(), tmp_path / "m.safetensors")
    wide = BernoulliRBM(5, 3).double()  # trained in float64 from Python: a run keeps it
    io.save_model(tmp_path / "f64.safetensors", wide)
    adopted = BernoulliRBM(5, 3)
    io.load_model_weights(adopted, tmp_path / "f64.safetensors", adopt_dtype=True)
    assert adopted.weight.dtype == torch.float64 and torch.equal(adopted.weight, wide.weight)
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{junk")
    with pytest.raises(GenphysError, match="not a valid safetensors"):
        io.load_tensors(tmp_path / "junk.safetensors")


def test_checkpoints_keep_the_newest(tmp_path: Path) -> None:
    rbm = BernoulliRBM(RBMConfig(n_visible=2, n_hidden=2))
    for step in (5, 10, 15):
        io.write_checkpoint(tmp_path, step, rbm, {}, keep=2)
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-000000010", "step-000000015"]
    for step in (999_999_999, 1_000_000_000, 1_000_000_001):  # by number, not by name
        io.write_checkpoint(tmp_path, step, rbm, {}, keep=2)
    assert [p.name for p in io.checkpoint_dirs(tmp_path)] == ["step-1000000000", "step-1000000001"]
    with pytest.raises(ValueError, match=r"stored as 'a\.b'"):
        io.flatten_state({"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}})
    (tmp_path / "checkpoints" / ".tmp-abandoned").mkdir()  # a crash mid-write is ignored
    assert len(io.checkpoint_dirs(tmp_path)) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_atomic_files_get_the_modes_open_would_give(tmp_path: Path) -> None:
    umask = io._read_umask()
    io.atomic_write_json(tmp_path / "a.json", {"x": 1})
    io.save_model(tmp_path / "m.safetensors", BernoulliRBM(3, 2))  # safetensors makes 0600
    ckpt = io.write_checkpoint(tmp_path, 1, BernoulliRBM(3, 2), {"epoch": 1})
    for name in ("a.json", "m.safetensors", *(f.relative_to(tmp_path) for f in ckpt.iterdir())):
        mode = (tmp_path / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~umask != 0o600, name  # not tempfile's owner-only 0600
    assert ckpt.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "checkpoints", "m.safetensors"]


def test_output_directories_are_checked_before_any_work(tmp_path: Path) -> None:
    io.check_output_dir(tmp_path / "new" / "run")  # creatable: fine, and nothing is made
    assert not (tmp_path / "new").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GenphysError, match="not a directory"):
        io.check_output_dir(blocker)
    with pytest.raises(GenphysError, match="cannot write into"):
        io.check_output_dir(blocker / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(GenphysError, match=r"symbolic link to .*gone, which is missing"):
        io.check_output_dir(tmp_path / "dangling")
    with pytest.raises(GenphysError, match="which is missing"):  # a link on the way too
        io.check_output_dir(tmp_path / "dangling" / "run")
