"""Counter-based random numbers and ``torch.compile`` with an eager fallback.

Samplers whose update is compiled into one loop (the Ising Metropolis sweep, the fused PCD
step of binary RBMs) do not draw from a ``torch.Generator``: number ``i`` of a stream is
SplitMix64's output function applied to ``key + i * gamma`` (a counter-based generator that
passes BigCrush). A stream is then a seed and a counter, a run is reproducible bit for bit,
and ``torch.compile`` fuses the hashing into the kernels that use the numbers. The integer
arithmetic is exact in eager and compiled code alike.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def signed(u: int) -> int:
    """``u`` modulo 2^64 as a signed 64-bit integer (what an int64 tensor holds)."""
    u &= M64
    return u - (1 << 64) if u >> 63 else u


def mix_py(z: int) -> int:
    """SplitMix64's output function on a Python integer."""
    z = ((z ^ (z >> 30)) * _MIX1) & M64
    z = ((z ^ (z >> 27)) * _MIX2) & M64
    return z ^ (z >> 31)


def mix(z: Tensor) -> Tensor:
    """SplitMix64's output function on int64 tensors (wrapping products, logical shifts)."""
    z = (z ^ ((z >> 30) & ((1 << 34) - 1))) * signed(_MIX1)
    z = (z ^ ((z >> 27) & ((1 << 37) - 1))) * signed(_MIX2)
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def stream_base(seed: int, counter: int, device: torch.device | str = "cpu") -> Tensor:
    """Position ``counter`` of the stream keyed by ``seed``, as an int64 scalar tensor."""
    key = mix_py((int(seed) * GAMMA + 0x5851F42D4C957F2D) & M64)
    return torch.tensor(signed(key + int(counter) * GAMMA), dtype=torch.int64, device=device)


def random_bits(base: Tensor, index: Tensor) -> Tensor:
    """64 random bits (int64) for each stream position ``base + index``."""
    return mix(base + index * signed(GAMMA))


@functools.lru_cache(maxsize=16)
def stream_index(n: int, device: torch.device | str = "cpu") -> Tensor:
    """Offsets 0, 1, ..., n - 1 (int64) of a step's stream positions, kept between calls."""
    return torch.arange(n, dtype=torch.int64, device=device)


def uniform(base: Tensor, index: Tensor, dtype: torch.dtype) -> Tensor:
    """Uniforms on [0, 1) from the stream positions ``base + index``: 53 random bits as float64
    when ``dtype`` is float64, else 24 bits as float32 (as ``torch.rand``; half precision
    could not hold them), so that ``uniform < p`` is a Bernoulli draw exact to the resolution
    of ``p``."""
    bits, out = (53, torch.float64) if dtype == torch.float64 else (24, torch.float32)
    z = (random_bits(base, index) >> (64 - bits)) & ((1 << bits) - 1)
    return z.to(out) * (2.0**-bits)


def compiler_available() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here (a C++ compiler is on PATH);
    the environment variable ``GENPHYS_COMPILE=0`` says no."""
    if os.environ.get("GENPHYS_COMPILE", "1") == "0":
        return False
    return any(shutil.which(cc) for cc in ("g++", "c++", "clang++", "cl"))


@functools.cache
def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    return torch.compile(fn, dynamic=False)


#: functions whose compilation failed once: they run eagerly from then on
DISABLED: set[Callable[..., Any]] = set()


def call(fn: Callable[..., Any], compile_: bool, *args: Any) -> Any:
    """``fn(*args)``, compiled when ``compile_``; a failed compilation warns once and falls
    back to eager PyTorch (the same integer random numbers, so the same draws)."""
    if compile_ and fn not in DISABLED:
        try:
            return compiled(fn)(*args)
        except Exception as exc:  # no working compiler: same numbers, eager speed
            warnings.warn(f"torch.compile failed ({exc!s:.200}); using eager PyTorch", stacklevel=3)
            DISABLED.add(fn)
    return fn(*args)
