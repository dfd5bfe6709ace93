"""Datasets as flat float32 tensors: MNIST, Fashion-MNIST, scikit-learn digits, user arrays.

Every loader returns a :class:`Dataset` whose ``x`` has shape (N, D) with the values as
stored (images scaled into [0, 1]); transforms such as binarisation live in
:mod:`genphys.data.transforms`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genphys.data.mnist import MNIST_NAMES, read_mnist
from genphys.errors import GenphysError

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "load_array",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_ring",
]

#: Built-in dataset names accepted by :func:`load_dataset` (besides .npy/.npz paths).
DATASET_NAMES = ("mnist", "fashion-mnist", "digits", "ring")

_X_KEYS = ("x", "data", "images")
_Y_KEYS = ("y", "labels")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}


@dataclass
class Dataset:
    """A set of examples flattened to vectors.

    Attributes:
        x: float32 tensor of shape (N, D), values as stored (images in [0, 1]).
        y: int64 labels of shape (N,), or ``None``.
        image_shape: shape of one example before flattening, e.g. ``(1, 28, 28)``;
            ``(D,)`` for plain vectors.
        name: where the data came from (a dataset name or a file path).
    """

    x: torch.Tensor
    y: torch.Tensor | None
    image_shape: tuple[int, ...]
    name: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_mnist(
    name: str = "mnist",
    split: str = "train",
    root: str | Path | None = None,
    download: bool = True,
) -> Dataset:
    """Load MNIST or Fashion-MNIST with pixels scaled to [0, 1].

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: folder searched first; then ``$GENPHYS_DATA/<name>``,
            ``~/.cache/genphys/<name>`` and ``/usr/share/datasets/<name>``.
        download: download missing files into ``~/.cache/genphys/<name>`` (checksummed).

    Returns:
        A :class:`Dataset` with ``x`` of shape (N, 784), labels, image shape (1, 28, 28).

    Raises:
        GenphysError: files missing and not downloadable, or malformed.
    """
    images, labels = read_mnist(name, split, root, download)
    n, h, w = images.shape
    x = torch.from_numpy(images.reshape(n, h * w).astype(np.float32) / np.float32(255.0))
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(x=x, y=y, image_shape=(1, h, w), name=name)


def load_ring(n: int = 10_000, seed: int = 0) -> Dataset:
    """The ring of 8 Gaussians in 2-D (radius 2, std 0.02; see :mod:`genphys.data.toy`):
    ``n`` draws with a fixed seed, labelled by mode. GAN diagnostics: train with
    ``scale="none"`` and a GAN ``output="identity"``, score with ``mode_coverage``."""
    from genphys.data.toy import ring_of_gaussians

    x, centers = ring_of_gaussians(n, generator=torch.Generator().manual_seed(seed))
    y = torch.cdist(x, centers).argmin(1)
    return Dataset(x=x, y=y, image_shape=(2,), name="ring")


def load_digits() -> Dataset:
    """Load scikit-learn's 8x8 handwritten digits (1797 images, shipped with sklearn).

    Returns:
        A :class:`Dataset` with values divided by 16 into [0, 1], image shape (1, 8, 8).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy(np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0))
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return Dataset(x=x, y=y, image_shape=(1, 8, 8), name="digits")


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read (x, y or None) from a .npy or .npz file without ever unpickling."""
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):  # a .npy file (an .npz under a .npy name is read below)
        return loaded, None
    with loaded as archive:
        keys = list(archive.files)
        x_key = next((k for k in _X_KEYS if k in keys), None)
        if x_key is None:
            if len(keys) != 1:
                raise GenphysError(
                    f"{path} holds arrays {keys}; name the data array one of {list(_X_KEYS)} "
                    f"(and labels {list(_Y_KEYS)})"
                )
            x_key = keys[0]
        y_key = next((k for k in _Y_KEYS if k in keys), None)
        return archive[x_key], (archive[y_key] if y_key is not None else None)


def _labels(y: np.ndarray, n: int, path: Path) -> torch.Tensor:
    if y.ndim != 1 or y.shape[0] != n:
        raise GenphysError(f"labels in {path} should have shape ({n},), got {y.shape}")
    if y.dtype.kind in "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise GenphysError(f"labels in {path} must be integers")
    elif y.dtype.kind not in "iub":
        raise GenphysError(f"labels in {path} must be integers, got dtype {y.dtype}")
    return torch.from_numpy(y.astype(np.int64))


def load_array(path: str | Path) -> Dataset:
    """Load a user array from ``.npy`` or ``.npz`` (never unpickling objects).

    A ``.npz`` file holds the data under ``x``, ``data`` or ``images`` (or as its only
    array) and optional integer labels under ``y`` or ``labels``. Data of shape (N, D),
    (N, H, W) or (N, C, H, W) is flattened to (N, D) and the per-example shape recorded;
    uint8 data is divided by 255, other numeric data is kept as stored (as float32).

    Args:
        path: the ``.npy`` or ``.npz`` file.

    Returns:
        A :class:`Dataset` named after the path.

    Raises:
        GenphysError: missing or unreadable file, object/non-numeric arrays, no
            examples, or an unsupported number of dimensions.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".npy", ".npz"):
        raise GenphysError(f"array file {path} must end in .npy or .npz")
    if not path.is_file():
        raise GenphysError(f"data file {path} does not exist")
    try:
        x, y = _read_arrays(path)
    except GenphysError:
        raise
    except ValueError as exc:
        text = str(exc).lower()
        if "object arrays" in text:
            raise GenphysError(
                f"{path} holds an object array, which is refused (no pickle); save numeric data"
            ) from None
        if "pickle" in text:
            why = "not a .npy/.npz file, and pickled data is refused"
        else:
            why = str(exc).splitlines()[0] if str(exc) else "corrupt file"
        raise GenphysError(f"cannot read {path}: {why}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GenphysError(f"cannot read {path}: corrupt or not a numpy file ({reason})") from None
    if x.dtype.kind == "O":
        raise GenphysError(f"{path} holds an object array, which is refused; save numeric data")
    if x.dtype.kind not in "biuf":
        raise GenphysError(f"{path} holds {x.dtype} data; expected numbers")
    if x.ndim not in (2, 3, 4):
        raise GenphysError(
            f"{path} holds an array of shape {x.shape}; expected (N, D), (N, H, W) or (N, C, H, W)"
        )
    n = x.shape[0]
    if n == 0 or x.size == 0:
        raise GenphysError(f"{path} holds no examples (shape {x.shape})")
    image_shape = tuple(int(d) for d in x.shape[1:])
    if x.ndim == 3:
        image_shape = (1, *image_shape)
    flat = x.reshape(n, -1)
    if flat.dtype == np.uint8:
        data = flat.astype(np.float32) / np.float32(255.0)
    else:
        data = flat.astype(np.float32)
    labels = _labels(y, n, path) if y is not None else None
    return Dataset(x=torch.from_numpy(data), y=labels, image_shape=image_shape, name=str(path))


def load_dataset(
    spec: str,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = True,
    temperature: float | None = None,
) -> Dataset:
    """Load a dataset by name (``mnist``, ``fashion-mnist``, ``digits``) or .npy/.npz path.

    Args:
        spec: dataset name or path to an array file.
        split: ``"train"`` or ``"test"``; only MNIST and Fashion-MNIST have a test split.
        root: extra folder searched for MNIST/Fashion-MNIST files.
        download: allow downloading MNIST/Fashion-MNIST files.
        temperature: which temperature of an Ising dataset to read (see
            :func:`genphys.physics.dataset.load_ising`); spins become 0/1.

    Returns:
        The loaded :class:`Dataset`.

    Raises:
        GenphysError: unknown name, a split the data does not have, or loader errors.
    """
    if split not in ("train", "test"):
        raise GenphysError(f"split must be 'train' or 'test', got {split!r}")
    key = str(spec).strip()
    name = _ALIASES.get(key.lower(), key.lower())
    is_file = key.lower().endswith((".npy", ".npz"))
    if temperature is not None and not is_file:
        raise GenphysError(f"a temperature is for Ising datasets (.npz files); {key} is not one")
    if name in MNIST_NAMES:
        return load_mnist(name, split, root, download)
    if name == "ring" and split == "test":  # a fresh draw of the same distribution
        return load_ring(seed=1)
    if name == "ring":
        return load_ring()
    if name == "digits" or is_file:
        if split != "train":
            raise GenphysError(
                f"{key} has no {split!r} split (only MNIST and Fashion-MNIST do); use "
                "split='train' and hold out data with val_fraction"
            )
        if name == "digits":
            return load_digits()
        from genphys.physics.dataset import is_ising_file, load_ising

        if is_ising_file(key):
            return load_ising(key).as_dataset(temperature)
        if temperature is not None:
            raise GenphysError(f"a temperature is for Ising datasets; {key} is not one")
        return load_array(key)
    raise GenphysError(
        f"unknown dataset {key!r}; choose from {', '.join(DATASET_NAMES)} "
        "or give a path to a .npy/.npz file"
    )
