"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a big-endian header followed by the raw array:

* two zero bytes,
* one byte dtype code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
  ``0x0D`` float32, ``0x0E`` float64),
* one byte ``ndim``,
* ``ndim`` big-endian uint32 dimensions,
* the data, C order, big-endian.

Files may be gzip-compressed; compression is detected from the magic bytes ``1f 8b``,
not from the file name.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from genphys.errors import GenphysError

__all__ = ["IDX_DTYPES", "read_idx", "write_idx"]

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _invalid(path: Path, reason: str) -> GenphysError:
    return GenphysError(f"{path} is not a valid IDX file: {reason}")


def _decompress(path: Path, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _invalid(path, f"corrupt or truncated gzip data ({reason})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-endian numpy array.

    Args:
        path: file to read.

    Returns:
        The array with the shape and dtype recorded in the header (native byte order).

    Raises:
        GenphysError: if the file is missing or unreadable, or is not a well-formed IDX
            file (bad magic, unknown dtype code, truncated header, or a payload whose size
            does not match the header exactly).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GenphysError(f"IDX file {path} does not exist") from None
    except OSError as exc:
        raise GenphysError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if raw[:2] == _GZIP_MAGIC:
        raw = _decompress(path, raw)
    if len(raw) < 4:
        raise _invalid(path, f"header needs at least 4 bytes, file has {len(raw)}")
    if raw[0] != 0 or raw[1] != 0:
        raise _invalid(path, f"bad magic bytes {raw[:2].hex()} (expected 0000)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise _invalid(path, f"unknown dtype code 0x{code:02X} (known: {known})")
    if not 1 <= ndim <= 32:  # numpy's limit is 64; real IDX files have 1 to 4
        raise _invalid(path, f"header declares {ndim} dimensions")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise _invalid(path, f"header declares {ndim} dimensions but the file ends early")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(raw) - offset
    if actual != expected:
        raise _invalid(
            path,
            f"shape {shape} of {dtype.name} needs {expected} data bytes, found {actual}",
        )
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=offset)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: destination file.
        array: array of dtype uint8, int8, int16, int32, float32 or float64 with at least
            one dimension.

    Raises:
        GenphysError: if the dtype or shape cannot be stored in IDX.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise GenphysError(
            f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, "
            "int16, int32, float32, float64"
        )
    if not 1 <= array.ndim <= 255 or any(d >= 2**32 for d in array.shape):
        raise GenphysError(f"IDX cannot store an array of shape {array.shape}")
    header = bytes([0, 0, codes[native], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    try:
        path.write_bytes(payload)
    except OSError as exc:
        raise GenphysError(f"cannot write IDX file {path}: {exc.strerror or exc}") from None
