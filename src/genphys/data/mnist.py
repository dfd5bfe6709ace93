"""MNIST and Fashion-MNIST files: finding them on disk, downloading and reading them.

The four IDX files of each set (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``) are looked for, in order, in

1. ``root`` (and ``root/<name>``) when given,
2. ``$GENPHYS_DATA/<name>``,
3. ``~/.cache/genphys/<name>``,
4. ``/usr/share/datasets/<name>`` (where Debian's dataset packages install them).

Uncompressed copies (the same names without ``.gz``) are accepted too. Missing files are
downloaded into ``~/.cache/genphys/<name>`` and checked against the canonical checksums;
files a user already has are never checked (recompressed copies have other checksums but
the same content).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from genphys.data.idx import read_idx
from genphys.errors import GenphysError

__all__ = ["MNIST_NAMES", "mnist_search_dirs", "read_mnist"]

MNIST_NAMES = ("mnist", "fashion-mnist")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# SHA-256 of the canonical gzip files as served by the mirrors above. The MNIST values agree
# across several independent public download scripts. The Fashion-MNIST README lists only MD5s
# (train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train-labels 25c81989df183df01b3e8a0aad5dffbe,
# t10k-images bef4ecab320f06d8554ea6380940ec79, t10k-labels bb300cfdad3c16e7a12a480ee83cd310);
# its SHA-256 values here are the ones that public tables list beside those MD5s and the
# sizes of the S3 files (26,421,880 bytes for train-images), and that most public loaders of
# that mirror pin. (An earlier version of this table held the values of a rehosted copy.)
# None was re-derived from a live download (no network when written).
_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
}

_SYSTEM_DIR = Path("/usr/share/datasets")
_TIMEOUT_S = 60.0


def _cache_dir(name: str) -> Path:
    return Path.home() / ".cache" / "genphys" / name


def mnist_search_dirs(name: str, root: str | Path | None = None) -> list[Path]:
    """The folders searched for the files of ``name``, in order (duplicates removed).

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        root: an extra folder searched first (it, then ``root/<name>``).
    """
    dirs: list[Path] = []
    if root is not None:
        dirs += [Path(root), Path(root) / name]
    env = os.environ.get("GENPHYS_DATA")
    if env:
        dirs.append(Path(env) / name)
    dirs += [_cache_dir(name), _SYSTEM_DIR / name]
    unique: list[Path] = []
    for d in dirs:
        d = d.expanduser()
        if d not in unique:
            unique.append(d)
    return unique


def _find(folder: Path, filename: str) -> Path | None:
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _locate(name: str, split: str, dirs: list[Path]) -> tuple[Path, Path] | None:
    """First folder holding both files of ``split``, as (images, labels) paths."""
    images_name, labels_name = _FILES[split]
    for folder in dirs:
        images, labels = _find(folder, images_name), _find(folder, labels_name)
        if images is not None and labels is not None:
            return images, labels
    return None


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (tests replace this function; it may raise URLError)."""
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, dest.open("wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download_file(name: str, filename: str, folder: Path) -> None:
    """Download one file into ``folder`` from the first mirror that serves a verified copy
    (folders made here and left empty by the failure are removed again)."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _download_verified(name, filename, folder)
    except OSError:
        for new in made:
            if new.is_dir() and not any(new.iterdir()):
                new.rmdir()
        raise


def _download_verified(name: str, filename: str, folder: Path) -> None:
    expected = _SHA256[name][filename]
    problems: list[str] = []
    for mirror in _MIRRORS[name]:
        url = mirror + filename
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(url, tmp)
            got = _sha256(tmp)
            if got != expected:
                problems.append(f"{url}: sha256 {got[:12]}... != expected {expected[:12]}...")
                continue
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o666 & ~umask)  # mkstemp's file is private; a data file need not be
            os.replace(tmp, folder / filename)
            return
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = str(getattr(exc, "reason", None) or exc)
            problems.append(f"{url}: {reason.splitlines()[0] if reason else repr(exc)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise OSError("; ".join(problems))


def _missing_message(name: str, split: str, dirs: list[Path], why: str) -> str:
    files = ", ".join(_FILES[split])
    searched = ", ".join(str(d) for d in dirs)
    return (
        f"{name} {split} files missing ({files}); searched: {searched}; {why}; "
        f"place the files in $GENPHYS_DATA/{name}/ (set GENPHYS_DATA) or ~/.cache/genphys/{name}/"
    )


def read_mnist(
    name: str = "mnist",
    split: str = "train",
    root: str | Path | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Find (or download) and read one split of MNIST or Fashion-MNIST.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` (60,000 examples) or ``"test"`` (10,000).
        root: folder searched before the standard ones (see the module docstring).
        download: fetch missing files into ``~/.cache/genphys/<name>``.

    Returns:
        ``(images, labels)``: uint8 arrays of shape (N, 28, 28) and (N,).

    Raises:
        GenphysError: unknown name or split, files missing (and not downloadable), a
            download with the wrong checksum, or malformed files.
    """
    if name not in MNIST_NAMES:
        raise GenphysError(f"unknown IDX dataset {name!r}; choose from {list(MNIST_NAMES)}")
    if split not in _FILES:
        raise GenphysError(f"{name} split must be one of {list(_FILES)}, got {split!r}")
    dirs = mnist_search_dirs(name, root)
    found = _locate(name, split, dirs)
    if found is None:
        if not download:
            raise GenphysError(_missing_message(name, split, dirs, "download disabled"))
        cache = _cache_dir(name)
        try:
            for filename in _FILES[split]:
                if _find(cache, filename) is None:
                    _download_file(name, filename, cache)
        except OSError as exc:
            why = f"download failed ({exc})"
            raise GenphysError(_missing_message(name, split, dirs, why)) from None
        found = _locate(name, split, [cache])
        assert found is not None
    images_path, labels_path = found
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise GenphysError(
            f"{images_path} should hold uint8 images of shape (N, H, W), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise GenphysError(
            f"{labels_path} should hold {images.shape[0]} labels, got shape {labels.shape}"
        )
    return images, labels
