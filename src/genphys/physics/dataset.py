"""Ising Monte Carlo datasets: simulate many temperatures, save and load them as ``.npz``.

Burn-in and thinning follow measured integrated autocorrelation times: after an initial
burn-in, a pilot run measures tau of the energy and |m| (extended until it is at least
50 tau long); the burn-in is at least 20 tau and samples are taken every ceil(tau) sweeps, so
stored samples are nearly independent. At h = 0 every stored sample is also flipped globally
with probability 1/2, an exact symmetry move, so both magnetized states appear below T_c.

File layout (``np.load(..., allow_pickle=False)`` reads it; ``kind`` marks it):

* ``spins`` (n_T, n, L, L) int8 of +-1; ``temperatures`` (n_T,);
* ``energy``, ``magnetization`` (n_T, n) per spin of each sample;
* per temperature: ``tau_energy``, ``tau_abs_magnetization``, ``thin``, ``burn_in``,
  ``sweeps``, ``algorithm``;
* scalars ``L``, ``field``, ``seed``, ``n_chains``, ``kind = "genphys-ising"``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys.data.datasets import Dataset
from genphys.errors import GenphysError
from genphys.io import atomic_path
from genphys.physics.ising import IsingState, Metropolis, SwendsenWang, init_state
from genphys.physics.ising_exact import T_CRITICAL
from genphys.physics.observables import energy_per_spin, magnetization_per_spin, measured_tau

KIND = "genphys-ising"
ALGORITHMS = ("auto", "metropolis", "swendsen-wang")
_PER_T = ("tau_energy", "tau_abs_magnetization", "thin", "burn_in", "sweeps", "algorithm")


#: at most this many temperatures in one dataset (a mistyped range could ask for billions)
MAX_TEMPERATURES = 1000


@dataclasses.dataclass
class IsingDataset:
    """Configurations at several temperatures with how they were made (see module doc)."""

    spins: np.ndarray
    temperatures: np.ndarray
    energy: np.ndarray
    magnetization: np.ndarray
    tau_energy: np.ndarray
    tau_abs_magnetization: np.ndarray
    thin: np.ndarray
    burn_in: np.ndarray
    sweeps: np.ndarray
    algorithm: np.ndarray
    L: int
    field: float
    seed: int
    n_chains: int

    def index(self, T: float | None) -> int:
        """Position of temperature ``T`` (None allowed when the file holds just one)."""
        temps = ", ".join(f"{t:g}" for t in self.temperatures)
        if T is None:
            if len(self.temperatures) == 1:
                return 0
            raise GenphysError(
                f"the Ising data holds {len(self.temperatures)} temperatures ({temps}); "
                "pick one with --temperature"
            )
        hits = np.flatnonzero(np.isclose(self.temperatures, T, rtol=0, atol=1e-9))
        if hits.size == 0:
            raise GenphysError(f"temperature {T:g} is not in the Ising data; it holds {temps}")
        if hits.size > 1:  # files written before repeats were refused
            raise GenphysError(f"temperature {T:g} appears {hits.size} times in the Ising data")
        return int(hits[0])

    def as_dataset(self, T: float | None = None) -> Dataset:
        """The configurations at temperature ``T`` as a :class:`~genphys.data.Dataset` of
        0/1 spins (flattened, image shape (1, L, L)), named ``FILE@T``."""
        k = self.index(T)
        x = torch.from_numpy((self.spins[k].reshape(len(self.spins[k]), -1) > 0).astype(np.float32))
        name = f"ising L={self.L} T={self.temperatures[k]:g}"
        return Dataset(x=x, y=None, image_shape=(1, self.L, self.L), name=name)

    def save(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (.npz)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise GenphysError(f"the Ising dataset file must end in .npz, got {path}")
        arrays: dict[str, Any] = {
            f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)
        }
        arrays["kind"] = np.asarray(KIND)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path


def is_ising_file(path: str | Path) -> bool:
    """Whether ``path`` is an .npz written by :meth:`IsingDataset.save`."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False
    if isinstance(loaded, np.ndarray):  # a .npy file
        return False
    with loaded as f:
        try:
            return "kind" in f.files and str(f["kind"]) == KIND
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # e.g. an object array
            return False


def load_ising(path: str | Path) -> IsingDataset:
    """Read an Ising dataset, checking its arrays; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GenphysError(f"Ising data file {path} does not exist")
    if not is_ising_file(path):
        raise GenphysError(
            f"{path} is not an Ising dataset (write one with genphys ising simulate)"
        )
    with np.load(path, allow_pickle=False) as f:
        try:
            fields = {fd.name: f[fd.name] for fd in dataclasses.fields(IsingDataset)}
        except KeyError as exc:
            raise GenphysError(f"Ising dataset {path} lacks the array {exc}") from None
    try:
        for key in ("L", "seed", "n_chains"):
            fields[key] = int(fields[key])
        fields["field"] = float(fields["field"])
        temps = np.asarray(fields["temperatures"], dtype=np.float64)
        if temps.ndim != 1:
            raise ValueError(f"temperatures of shape {temps.shape}")
        _checked_temperatures(temps, f"{temps.tolist()}", distinct=False)
    except (TypeError, ValueError, GenphysError) as exc:
        raise GenphysError(f"Ising dataset {path} is corrupt: {exc}") from None
    data = IsingDataset(**fields)
    n_t, L = len(data.temperatures), data.L
    n = data.spins.shape[1] if data.spins.ndim == 4 else -1
    for key in ("energy", "magnetization"):
        if np.shape(getattr(data, key)) != (n_t, n):
            raise GenphysError(f"Ising dataset {path}: {key} does not fit the spins")
    for key in _PER_T:
        if np.shape(getattr(data, key)) != (n_t,):
            raise GenphysError(f"Ising dataset {path}: {key} needs one entry per temperature")
    if data.spins.ndim != 4 or data.spins.shape[0] != n_t or data.spins.shape[2:] != (L, L):
        raise GenphysError(f"Ising dataset {path}: spins of shape {data.spins.shape} do not fit")
    if not np.isin(data.spins, (-1, 1)).all():
        raise GenphysError(f"Ising dataset {path}: spins must be -1 or +1")
    return data


def ising_header(path: str | Path) -> tuple[int, float, np.ndarray]:
    """(L, field, temperatures) of an Ising dataset file, without reading its spins."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return int(f["L"]), float(f["field"]), np.asarray(f["temperatures"], dtype=float)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise GenphysError(f"cannot read the Ising dataset {path}: {exc}") from None


def parse_temperatures(text: str) -> list[float]:
    """``"2.5"``, ``"1.0,2.0,3.0"`` or ``"start:stop:step"`` (stop included) to a list."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = math.floor((stop - start) / step + 1e-9) + 1
            if n > MAX_TEMPERATURES:
                raise GenphysError(f"{text!r} makes {n} temperatures; at most {MAX_TEMPERATURES}")
            temps = [round(start + i * step, 10) for i in range(n)]
        else:
            temps = [float(v) for v in text.split(",")]
    except ValueError:
        raise GenphysError(
            f"cannot read temperatures {text!r}: give T, T1,T2,... or start:stop:step"
        ) from None
    return _checked_temperatures(temps, repr(text))


def _checked_temperatures(temps: Any, what: str, distinct: bool = True) -> list[float]:
    """Positive, finite (and ``distinct``: one block per temperature) temperatures, at most
    :data:`MAX_TEMPERATURES`."""
    temps = [float(t) for t in temps]
    if not temps or not all(math.isfinite(t) and t > 0 for t in temps):
        raise GenphysError(f"temperatures must be positive numbers, got {what}")
    if distinct and len(set(np.round(temps, 9))) != len(temps):
        raise GenphysError(f"temperatures must be distinct, got {what}")
    if len(temps) > MAX_TEMPERATURES:
        raise GenphysError(f"{len(temps)} temperatures; at most {MAX_TEMPERATURES}")
    return temps


def choose_algorithm(T: float, algorithm: str = "auto") -> str:
    """``auto``: Swendsen-Wang within 0.5 of T_c (critical slowing down), else Metropolis."""
    if algorithm not in ALGORITHMS:
        raise GenphysError(f"algorithm must be one of {list(ALGORITHMS)}, got {algorithm!r}")
    if algorithm == "auto":
        return "swendsen-wang" if abs(T - T_CRITICAL) < 0.5 else "metropolis"
    return algorithm


def _sampler(T: float, h: float, algorithm: str) -> Metropolis | SwendsenWang:
    return SwendsenWang(T, h) if algorithm == "swendsen-wang" else Metropolis(T, h)


def equilibrate(
    sampler: Metropolis | SwendsenWang,
    state: IsingState,
    burn_in: int | None = None,
    max_sweeps: int = 20_000,
) -> tuple[int, float, float]:
    """Burn in ``state`` and measure tau; returns (sweeps done, tau of e, tau of |m|).

    With ``burn_in`` given, exactly that many sweeps are done before a pilot of 200 sweeps
    (whose tau is still measured); otherwise the burn-in is adapted as in the module doc.
    """
    first = 100 if burn_in is None else burn_in
    sampler.sweep_(state, first)
    done, pilot = first, 200
    while True:
        e, m = sampler.run(state, pilot)
        done += pilot
        # None: under 32 sweeps
        tau_e, tau_m = measured_tau(e) or 1.0, measured_tau(np.abs(m)) or 1.0
        tau = max(tau_e, tau_m)
        settled = pilot >= 50 * tau and done >= 20 * tau
        if burn_in is not None or settled or done >= max_sweeps:
            if not settled and burn_in is None:
                warnings.warn(
                    f"T={sampler.T:g}: {done} sweeps (the cap) are under 20 tau = {20 * tau:.0f} "
                    f"or the pilot under 50 tau: tau may be underestimated and the samples "
                    "correlated; use Swendsen-Wang near T_c, or give --burn-in and --thin",
                    stacklevel=2,
                )
            return done, tau_e, tau_m
        pilot = min(2 * pilot, max_sweeps - done)


def simulate(
    L: int,
    temperatures: list[float],
    n_samples: int,
    n_chains: int | None = None,
    seed: int = 0,
    algorithm: str = "auto",
    field: float = 0.0,
    thin: int | None = None,
    burn_in: int | None = None,
    progress: Any = None,
) -> IsingDataset:
    """Equilibrium configurations at each temperature (see the module doc for the recipe).

    Args:
        L: even lattice size.
        temperatures: temperatures to simulate.
        n_samples: stored configurations per temperature.
        n_chains: independent chains run side by side (default min(n_samples, 512)).
        seed: the seed; temperature ``k`` uses stream ``seed * 1000 + k``.
        algorithm: ``auto``, ``metropolis`` or ``swendsen-wang``.
        field: magnetic field h.
        thin, burn_in: override the measured thinning / burn-in (sweeps).
        progress: optional callable ``progress(T, info_dict)`` after each temperature.
    """
    if not isinstance(n_samples, int) or n_samples < 1:
        raise GenphysError(f"samples must be a positive integer, got {n_samples!r}")
    chains = min(n_samples, 512) if n_chains is None else n_chains
    if not isinstance(chains, int) or chains < 1:
        raise GenphysError(f"chains must be a positive integer, got {chains!r}")
    if not isinstance(seed, int) or seed < 0:
        raise GenphysError(f"seed must be an integer >= 0, got {seed!r}")
    if thin is not None and (not isinstance(thin, int) or thin < 1):
        raise GenphysError(f"thin must be a positive integer, got {thin!r}")
    per_chain = math.ceil(n_samples / chains)
    out: dict[str, list[Any]] = {k: [] for k in ("spins", "energy", "magnetization", *_PER_T)}
    temperatures = _checked_temperatures(temperatures, f"{list(temperatures)}")
    for k, T in enumerate(temperatures):
        algo = choose_algorithm(T, algorithm)
        sampler = _sampler(T, field, algo)
        # below T_c, start ordered along the field (domains from a random start are slow)
        start = ("up" if field >= 0 else "down") if T < T_CRITICAL else "random"
        state = init_state(L, chains, seed=seed * 1000 + k, start=start)
        done, tau_e, tau_m = equilibrate(sampler, state, burn_in)
        step = thin if thin is not None else max(1, math.ceil(max(tau_e, tau_m)))
        configs = []
        for _ in range(per_chain):
            sampler.sweep_(state, step)
            configs.append(state.configurations())
        # (chains, time) order: consecutive samples come from one chain, so a tau measured
        # along the stored series sees any correlation left after thinning
        spins = np.stack(configs, axis=1).reshape(-1, L, L)[:n_samples]
        if field == 0.0:  # exact Z2 symmetry move, so both ordered states appear
            rng = np.random.default_rng([seed, k, 7])
            spins *= rng.choice(np.array([-1, 1], dtype=np.int8), size=(len(spins), 1, 1))
        info = {
            "tau_energy": tau_e,
            "tau_abs_magnetization": tau_m,
            "thin": step,
            "burn_in": done,
            "sweeps": done + per_chain * step,
            "algorithm": algo,
        }
        out["spins"].append(spins)
        out["energy"].append(energy_per_spin(spins, field))
        out["magnetization"].append(magnetization_per_spin(spins))
        for key, value in info.items():
            out[key].append(value)
        if progress is not None:
            progress(T, info)
    return IsingDataset(
        spins=np.stack(out["spins"]),
        temperatures=np.asarray(temperatures, dtype=np.float64),
        energy=np.stack(out["energy"]),
        magnetization=np.stack(out["magnetization"]),
        tau_energy=np.asarray(out["tau_energy"]),
        tau_abs_magnetization=np.asarray(out["tau_abs_magnetization"]),
        thin=np.asarray(out["thin"]),
        burn_in=np.asarray(out["burn_in"]),
        sweeps=np.asarray(out["sweeps"]),
        algorithm=np.asarray(out["algorithm"]),
        L=L,
        field=float(field),
        seed=int(seed),
        n_chains=int(chains),
    )
