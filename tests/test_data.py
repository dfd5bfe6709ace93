"""Tests for genphys.data: IDX files, dataset loaders, transforms. Never touches the network."""

from __future__ import annotations

import gzip
import hashlib
import math
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import genphys.data.mnist as mnist_mod
from genphys.config import Config
from genphys.data import (
    DataConfig,
    binarize,
    dynamic_binarize,
    load_array,
    load_dataset,
    load_digits,
    load_mnist,
    mnist_search_dirs,
    prepare_data,
    read_idx,
    to_symmetric,
    to_unit,
    train_val_split,
    write_idx,
)
from genphys.errors import GenphysError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to download fails as if offline."""

    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(mnist_mod, "_fetch", offline)


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, no GENPHYS_DATA, and no system dataset folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GENPHYS_DATA", raising=False)
    monkeypatch.setattr(mnist_mod, "_SYSTEM_DIR", tmp_path / "no-system-datasets")
    return home


def _write_fake_mnist(folder: Path, split: str = "test", n: int = 12, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n, dtype=np.uint8) % 10)


# --- IDX -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path: Path, dtype: type, name: str) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    write_idx(tmp_path / name, array)
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_idx_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.int32)
    write_idx(tmp_path / "x.gz", array)
    (tmp_path / "x.gz").rename(tmp_path / "plain-name")
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), array)


def test_idx_header_is_big_endian(tmp_path: Path) -> None:
    write_idx(tmp_path / "h", np.zeros((2, 300), dtype=np.int16))
    raw = (tmp_path / "h").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (300).to_bytes(4, "big")


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[:-1], "needs 24 data bytes, found 23"),
        (lambda b: b + b"\x00", "found 25"),
        (lambda b: b"\x01" + b[1:], "bad magic"),
        (lambda b: b[:2] + b"\x42" + b[3:], "unknown dtype code 0x42"),
        (lambda b: b[:6], "ends early"),
        (lambda b: b[:3], "at least 4 bytes"),
        (lambda b: b"", "at least 4 bytes"),
        (lambda b: b"hello, this is not IDX at all", "bad magic"),
    ],
)
def test_idx_invalid_files(tmp_path: Path, mutate, reason: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(mutate(_idx_bytes(np.ones((2, 3, 4), dtype=np.uint8))))
    with pytest.raises(GenphysError, match="is not a valid IDX file") as info:
        read_idx(path)
    assert reason in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(_idx_bytes(np.ones((50, 50), dtype=np.uint8)))
    path = tmp_path / "t.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GenphysError, match="not a valid IDX file: corrupt or truncated gzip"):
        read_idx(path)


def test_idx_missing_file_and_bad_dtype(tmp_path: Path) -> None:
    with pytest.raises(GenphysError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(GenphysError, match="cannot store dtype"):
        write_idx(tmp_path / "c", np.zeros(3, dtype=np.complex64))


# --- MNIST search order, download and offline errors ---------------------------------


def test_search_order(tmp_path: Path, isolated_home: Path, monkeypatch) -> None:
    env = tmp_path / "env"
    monkeypatch.setenv("GENPHYS_DATA", str(env))
    dirs = mnist_search_dirs("mnist", root=tmp_path / "root")
    assert dirs == [
        tmp_path / "root",
        tmp_path / "root" / "mnist",
        env / "mnist",
        isolated_home / ".cache" / "genphys" / "mnist",
        tmp_path / "no-system-datasets" / "mnist",
    ]
    # The cache is found when it is the only place holding the files ...
    _write_fake_mnist(isolated_home / ".cache" / "genphys" / "mnist", n=5)
    assert len(load_mnist("mnist", "test", download=False)) == 5
    # ... GENPHYS_DATA takes precedence over the cache, and root over both.
    _write_fake_mnist(env / "mnist", n=7, gz=False)
    assert len(load_mnist("mnist", "test", download=False)) == 7
    _write_fake_mnist(tmp_path / "root", n=9)
    ds = load_mnist("mnist", "test", root=tmp_path / "root", download=False)
    assert len(ds) == 9 and ds.image_shape == (1, 28, 28) and ds.x.shape == (9, 784)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0


def test_offline_failure_lists_folders(tmp_path: Path, isolated_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENPHYS_DATA", str(tmp_path / "env"))
    with pytest.raises(GenphysError) as info:
        load_mnist("fashion-mnist", "train", root=tmp_path / "r")
    msg = str(info.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte.gz" in msg and "download failed" in msg
    assert "network disabled" in msg and "$GENPHYS_DATA/fashion-mnist/" in msg
    for folder in mnist_search_dirs("fashion-mnist", tmp_path / "r"):
        assert str(folder) in msg
    with pytest.raises(GenphysError, match="download disabled"):
        load_dataset("mnist", "test", download=False)


def test_download_verifies_checksum(tmp_path: Path, isolated_home: Path, monkeypatch) -> None:
    source = tmp_path / "server"
    _write_fake_mnist(source, n=4)
    fetched: list[str] = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        dest.write_bytes((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(mnist_mod, "_fetch", fake_fetch)
    # Canonical checksums do not match the fake files: every mirror is refused.
    with pytest.raises(GenphysError, match="sha256"):
        load_mnist("mnist", "test")
    cache = isolated_home / ".cache" / "genphys" / "mnist"
    assert not (isolated_home / ".cache").exists()  # no partial files, no empty folders
    assert len(fetched) == 2  # both mirrors tried for the first file
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir()}
    monkeypatch.setitem(mnist_mod._SHA256, "mnist", sums)
    ds = load_mnist("mnist", "test")
    assert len(ds) == 4 and sorted(p.name for p in cache.iterdir()) == sorted(sums)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST data absent")
def test_real_mnist_test_set() -> None:
    ds = load_mnist("mnist", "test", root=SHARED_DATA / "mnist", download=False)
    assert len(ds) == 10_000 and ds.image_shape == (1, 28, 28) and ds.x.shape == (10_000, 784)
    assert torch.bincount(ds.y, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert abs(float(ds.x.double().mean()) - 0.1325) < 1e-3


@pytest.mark.skipif(
    not (SHARED_DATA / "fashion-mnist").is_dir(), reason="shared Fashion-MNIST data absent"
)
def test_real_fashion_mnist_train_set() -> None:
    ds = load_dataset("fashion-mnist", "train", root=SHARED_DATA, download=False)
    assert len(ds) == 60_000 and ds.image_shape == (1, 28, 28)
    assert torch.bincount(ds.y, minlength=10).tolist() == [6000] * 10


# --- digits, user arrays, dispatch ----------------------------------------------------


def test_digits() -> None:
    ds = load_dataset("digits")
    assert len(ds) == 1797 and ds.x.shape == (1797, 64) and ds.image_shape == (1, 8, 8)
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert ds.y is not None and set(ds.y.tolist()) == set(range(10))
    with pytest.raises(GenphysError, match="no 'test' split"):
        load_dataset("digits", split="test")


def test_load_npy_shapes_and_uint8_scaling(tmp_path: Path) -> None:
    images = np.full((5, 6, 7), 255, dtype=np.uint8)
    np.save(tmp_path / "a.npy", images)
    ds = load_array(tmp_path / "a.npy")
    assert ds.x.shape == (5, 42) and ds.image_shape == (1, 6, 7) and ds.y is None
    assert torch.all(ds.x == 1.0) and ds.x.dtype == torch.float32
    np.save(tmp_path / "b.npy", np.ones((4, 3, 2, 2), dtype=np.float64) * 0.25)
    ds = load_dataset(str(tmp_path / "b.npy"))
    assert ds.image_shape == (3, 2, 2) and torch.all(ds.x == 0.25)
    spins = np.where(np.arange(12).reshape(3, 4) % 2 == 0, 1, -1).astype(np.int8)
    np.save(tmp_path / "s.npy", spins)
    ds = load_array(tmp_path / "s.npy")  # non-uint8 integers are kept as stored
    assert ds.image_shape == (4,) and set(ds.x.unique().tolist()) == {-1.0, 1.0}


def test_load_npz_keys_and_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", images=np.zeros((3, 4), np.float32), labels=[0, 1, 2])
    ds = load_array(tmp_path / "a.npz")
    assert ds.x.shape == (3, 4) and ds.y.tolist() == [0, 1, 2] and ds.y.dtype == torch.int64
    np.savez(tmp_path / "single.npz", whatever=np.zeros((2, 3)))
    assert load_array(tmp_path / "single.npz").x.shape == (2, 3)
    np.savez(tmp_path / "two.npz", p=np.zeros((2, 3)), q=np.zeros((2, 3)))
    with pytest.raises(GenphysError, match="name the data array"):
        load_array(tmp_path / "two.npz")
    np.savez(tmp_path / "badlab.npz", x=np.zeros((2, 3)), y=[0, 1, 2])
    with pytest.raises(GenphysError, match="labels"):
        load_array(tmp_path / "badlab.npz")
    (tmp_path / "zip.npy").write_bytes((tmp_path / "a.npz").read_bytes())  # misnamed
    assert load_array(tmp_path / "zip.npy").x.shape == (3, 4)
    # an object array beside the data is never unpickled, even where Ising files are sought
    odd = np.array([{"a": 1}], dtype=object)
    np.savez(tmp_path / "objkind.npz", x=np.zeros((2, 3)), kind=odd)
    assert load_dataset(str(tmp_path / "objkind.npz")).x.shape == (2, 3)


def test_load_array_errors(tmp_path: Path) -> None:
    with pytest.raises(GenphysError, match="does not exist"):
        load_array(tmp_path / "missing.npz")
    np.savez(tmp_path / "good.npz", x=np.zeros((50, 50)))
    raw = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "corrupt.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(GenphysError, match="cannot read"):
        load_array(tmp_path / "corrupt.npz")
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all" * 10)
    with pytest.raises(GenphysError, match="cannot read"):
        load_array(tmp_path / "garbage.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(GenphysError, match="object array"):
        load_array(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", x=np.array([[1, "a"]], dtype=object))
    with pytest.raises(GenphysError, match="object array"):
        load_array(tmp_path / "obj.npz")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    with pytest.raises(GenphysError, match="no examples"):
        load_array(tmp_path / "empty.npy")
    np.save(tmp_path / "vec.npy", np.zeros(4))
    with pytest.raises(GenphysError, match="expected"):
        load_array(tmp_path / "vec.npy")
    with pytest.raises(
        GenphysError, match=r"unknown dataset 'cifar'.*mnist, fashion-mnist, digits"
    ):
        load_dataset("cifar")


# --- transforms -------------------------------------------------------------------------


def test_binarize_and_scaling() -> None:
    x = torch.tensor([0.0, 0.2, 0.5, 0.51, 1.0])
    assert binarize(x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert binarize(x, threshold=0.1).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert binarize(torch.tensor([0, 3])).dtype == torch.float32
    assert to_unit(x) is x
    assert to_symmetric(x).tolist() == pytest.approx([-1.0, -0.6, 0.0, 0.02, 1.0])
    with pytest.raises(GenphysError, match=r"\[0, 1\]"):
        to_unit(torch.tensor([0.5, 1.5]))
    with pytest.raises(GenphysError, match=r"\[0, 1\]"):
        to_symmetric(torch.tensor([-0.1]))


def test_dynamic_binarize_statistics_and_reproducibility() -> None:
    x = load_digits().x
    b1 = dynamic_binarize(x, torch.Generator().manual_seed(3))
    b2 = dynamic_binarize(x, torch.Generator().manual_seed(3))
    assert torch.equal(b1, b2) and set(b1.unique().tolist()) <= {0.0, 1.0}
    p = x.double()
    standard_error = math.sqrt(float((p * (1 - p)).sum())) / p.numel()
    assert abs(float(b1.double().mean() - p.mean())) < 5 * standard_error
    assert not torch.equal(b1, dynamic_binarize(x, torch.Generator().manual_seed(4)))
    with pytest.raises(GenphysError, match="dynamic binarisation"):
        dynamic_binarize(torch.tensor([1.2]), torch.Generator())


def test_train_val_split() -> None:
    train, val = train_val_split(103, 0.2, seed=5)
    assert len(val) == round(103 * 0.2) and len(train) + len(val) == 103
    assert sorted(torch.cat([train, val]).tolist()) == list(range(103))
    again = train_val_split(103, 0.2, seed=5)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    assert not torch.equal(val, train_val_split(103, 0.2, seed=6)[1])
    assert len(train_val_split(10, 0.0, seed=0)[1]) == 0
    with pytest.raises(GenphysError, match="no training data"):
        train_val_split(1, 0.6, seed=0)
    with pytest.raises(GenphysError, match="val_fraction"):
        train_val_split(10, 1.0, seed=0)


@pytest.mark.parametrize(
    "bad",
    [
        {"binarize": "sometimes"},
        {"scale": "log"},
        {"split": "validation"},
        {"val_fraction": 1.0},
        {"threshold": -0.1},
        {"limit": 0},
        {"seed": -1},
        {"name": ""},
    ],
)
def test_data_config_bad_choices(bad: dict) -> None:
    with pytest.raises(GenphysError):
        DataConfig(**bad)


def test_data_config_round_trip() -> None:
    cfg = DataConfig(name="mnist", binarize="dynamic", limit=100)
    assert isinstance(cfg, Config) and DataConfig.from_dict(cfg.to_dict()) == cfg


def test_prepare_data_digits_static_and_dynamic() -> None:
    data = prepare_data(DataConfig(val_fraction=0.2, seed=1))
    assert data.train.shape[0] + data.val.shape[0] == 1797 and data.n_features == 64
    assert set(data.train.unique().tolist()) == {0.0, 1.0} and data.image_shape == (1, 8, 8)
    assert data.labels_train.shape[0] == data.train.shape[0]
    batch = data.train[:8]
    assert data.batch_transform(batch, torch.Generator()) is batch
    dyn = prepare_data(DataConfig(binarize="dynamic", scale="symmetric", limit=50))
    assert dyn.train.shape[0] + dyn.val.shape[0] == 50 and 0 < float(dyn.train.max()) < 1.01
    out = dyn.batch_transform(dyn.train, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {-1.0, 1.0}


def test_prepare_data_rejects_nan_and_out_of_range(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((20, 4))
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(GenphysError, match="contains NaN or Inf"):
        prepare_data(DataConfig(name=str(tmp_path / "nan.npy")))
    np.save(tmp_path / "wide.npy", np.linspace(-2, 2, 40).reshape(10, 4))
    with pytest.raises(GenphysError, match=r"scale 'none' \(--scale none\)"):
        prepare_data(DataConfig(name=str(tmp_path / "wide.npy"), binarize="none"))
    kept = prepare_data(DataConfig(name=str(tmp_path / "wide.npy"), binarize="none", scale="none"))
    assert float(kept.train.min()) < 0


@pytest.mark.parametrize("binarize", ["static", "dynamic"])
def test_binarization_needs_values_in_the_unit_interval(tmp_path: Path, binarize: str) -> None:
    """Spins stored as 0/-1 (or raw 16-bit counts) are refused, not thresholded to zeros."""
    path = tmp_path / "spins.npy"
    np.save(path, -(np.arange(40) % 2).reshape(10, 4).astype(np.int8))
    with pytest.raises(GenphysError, match=r"must lie in \[0, 1\]"):
        prepare_data(DataConfig(name=str(path), binarize=binarize))
