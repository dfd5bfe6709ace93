"""Run directories and checkpoints: safetensors weights + JSON, written atomically.

A run directory holds::

    config.json                  model, objective, trainer and data configs (+ version)
    metrics.jsonl                one JSON object per epoch
    model.safetensors            final weights (written when training ends)
    checkpoints/step-000000938/  model.safetensors, trainer_state.safetensors, trainer_state.json

Each checkpoint is first written to a hidden temporary folder and then renamed into place, so
a crash never leaves a half-written checkpoint; the newest complete one is the one resumed.
Nothing is ever unpickled: tensors live in safetensors files, everything else in JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genphys.errors import GenphysError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


# ----------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) that replaces it when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(path.parent, f".{path.stem}.", path.suffix, directory=False)
    try:
        yield tmp
        with contextlib.suppress(OSError):  # writers that make the file anew (safetensors:
            os.chmod(tmp, 0o666 & ~_UMASK)  # 0600); a file system without modes keeps its own
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    """The process umask: from /proc on Linux (no window in which it is changed), else by
    setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fresh(folder: Path, prefix: str, suffix: str = "", directory: bool = False) -> Path:
    """A new, uniquely named empty file or directory in ``folder`` with the modes plain
    ``open``/``mkdir`` give (the umask applies; ``tempfile``'s are owner-only)."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            if directory:
                path.mkdir(0o777)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def check_output_dir(path: str | Path) -> None:
    """A :class:`GenphysError` now, before any work, unless ``path`` is or can become a
    directory that files can be written into (nothing is left behind by the check)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GenphysError(f"{path} exists and is not a directory")
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # a dangling link on the way: mkdir would fail later
            raise GenphysError(
                f"{existing} is a symbolic link to {os.readlink(existing)}, which is missing"
            )
        existing = existing.parent
    try:
        shutil.rmtree(tempfile.mkdtemp(prefix=".genphys-check.", dir=existing))
    except OSError as exc:
        raise GenphysError(f"cannot write into {existing}: {exc.strerror}") from None


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats (an error bar from one sample, an infinite specific
    heat at T_c) as None, in nested dicts and lists: strict JSON for scripts."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Save a flat dict of tensors as safetensors, atomically."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)
        with open(tmp, "rb") as fh:  # on disk before the rename, as atomic_write_text does
            os.fsync(fh.fileno())


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing or corrupt file is a :class:`GenphysError`."""
    path = Path(path)
    if not path.is_file():
        raise GenphysError(f"missing file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GenphysError(f"{path} is not a valid safetensors file ({exc})") from None


def load_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file's header ({} when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GenphysError(f"{path} is not a valid safetensors file ({exc})") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GenphysError(f"missing file {path}") from None
    except (OSError, ValueError) as exc:
        raise GenphysError(f"{path} is not valid JSON ({exc})") from None


# ------------------------------------------------------- nested state <-> flat
def flatten_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure into JSON (tensors replaced by references) and a tensor dict.

    Dicts with non-string keys (such as optimizer state) are stored as lists of pairs, so
    :func:`unflatten_state` restores the original structure exactly.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, key: str) -> Any:
        if isinstance(x, torch.Tensor):
            if key in tensors:  # e.g. {"a.b": t, "a": {"b": u}}
                raise ValueError(f"two tensors of the state would be stored as {key!r}")
            tensors[key] = x
            return {"__tensor__": key}
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x):
                return {k: walk(v, f"{key}.{k}" if key else k) for k, v in x.items()}
            return {"__items__": [[k, walk(v, f"{key}.{k}")] for k, v in x.items()]}
        if isinstance(x, (list, tuple)):
            out = [walk(v, f"{key}.{i}") for i, v in enumerate(x)]
            return {"__tuple__": out} if isinstance(x, tuple) else out
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store {type(x).__name__} at {key!r} in a checkpoint")

    return walk(obj, prefix), tensors


def unflatten_state(meta: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(meta, dict):
        if "__tensor__" in meta:
            key = meta["__tensor__"]
            if not isinstance(key, str) or key not in tensors:
                raise GenphysError(f"checkpoint is missing tensor {key!r}")
            return tensors[key]
        if "__items__" in meta:
            return {k: unflatten_state(v, tensors) for k, v in meta["__items__"]}
        if "__tuple__" in meta:
            return tuple(unflatten_state(v, tensors) for v in meta["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in meta.items()}
    if isinstance(meta, list):
        return [unflatten_state(v, tensors) for v in meta]
    return meta


# ----------------------------------------------------------------- model I/O
def save_model(path: str | Path, model: torch.nn.Module) -> None:
    save_tensors(path, dict(model.state_dict()), metadata={"format": "genphys"})


def load_model_weights(model: torch.nn.Module, path: str | Path, adopt_dtype: bool = False) -> None:
    """Load weights into ``model``, refusing missing, unexpected, mis-shaped or (unless
    ``adopt_dtype``: the model takes the file's one floating dtype first) other-dtype tensors."""
    tensors = load_tensors(path)
    floats = {v.dtype for v in tensors.values() if v.is_floating_point()}
    if adopt_dtype and len(floats) == 1:  # e.g. a run trained in float64 from Python
        model.to(floats.pop())
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [
        f"{k} {tuple(tensors[k].shape)} {tensors[k].dtype} vs {tuple(v.shape)} {v.dtype}"
        for k, v in own.items()
        if k in tensors and (tensors[k].shape != v.shape or tensors[k].dtype != v.dtype)
    ]
    if missing or unexpected or shapes:
        parts = [
            f"missing {missing}" if missing else "",
            f"unexpected {unexpected}" if unexpected else "",
            f"shape or dtype mismatch {shapes}" if shapes else "",
        ]
        raise GenphysError(f"{path} does not match the model: " + "; ".join(p for p in parts if p))
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise GenphysError(f"{path} holds non-finite values in {bad}")
    model.load_state_dict(tensors)


# ----------------------------------------------------------------- checkpoints
def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    steps = [p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"step-\d+", p.name)]
    return sorted(steps, key=lambda p: int(p.name[5:]))  # step 10^9 after 999,999,999


def write_checkpoint(
    run_dir: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write model + trainer state as ``checkpoints/step-N`` atomically; keep ``keep`` newest."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    tmp = _fresh(root, ".tmp-", directory=True)
    try:
        meta, tensors = flatten_state(state)
        save_model(tmp / MODEL_FILE, model)
        save_tensors(tmp / STATE_TENSORS, tensors)
        atomic_write_json(tmp / STATE_JSON, meta)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run_dir)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint_state(ckpt: str | Path) -> dict[str, Any]:
    """The trainer state of a checkpoint; a malformed one is a :class:`GenphysError`."""
    ckpt = Path(ckpt)
    meta, tensors = read_json(ckpt / STATE_JSON), load_tensors(ckpt / STATE_TENSORS)
    try:
        state = unflatten_state(meta, tensors)
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. "__items__": 5
        raise GenphysError(f"{ckpt / STATE_JSON} is malformed ({exc})") from None
    if not isinstance(state, dict):
        raise GenphysError(f"{ckpt / STATE_JSON} is malformed (not a mapping)")
    return state


# ----------------------------------------------------------------- run loading
def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GenphysError(f"run directory {run_dir} does not exist")
    cfg = read_json(run_dir / CONFIG_FILE)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise GenphysError(f"{run_dir / CONFIG_FILE} is not a genphys run configuration")
    for key in ("objective", "trainer", "data"):  # absent in older or hand-made runs
        if not isinstance(cfg.get(key, {}), dict):
            raise GenphysError(f"{run_dir / CONFIG_FILE}: section {key!r} is not a mapping")
    shape = cfg.get("image_shape", [])
    if not (isinstance(shape, list) and all(type(d) is int and d > 0 for d in shape)):
        raise GenphysError(f"{run_dir / CONFIG_FILE}: image_shape {shape!r} is not a shape")
    return cfg


def build_model(spec: dict[str, Any]) -> torch.nn.Module:
    """Rebuild a model from ``{"name": ..., "config": {...}}`` through the registry."""
    from genphys.registry import MODELS, lookup

    try:
        cls = lookup(MODELS, spec["name"], "model")
        return cls(cls.Config.from_dict(spec.get("config", {})))
    except (KeyError, TypeError) as exc:
        raise GenphysError(f"malformed model entry in run configuration: {exc}") from None


def model_weights_path(run_dir: str | Path) -> Path:
    """Final weights if training finished, else the newest checkpoint's."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_FILE).is_file():
        return run_dir / MODEL_FILE
    ckpts = checkpoint_dirs(run_dir)
    if not ckpts:
        raise GenphysError(f"{run_dir} holds no weights ({MODEL_FILE} or checkpoints/)")
    return ckpts[-1] / MODEL_FILE


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of a run directory (in eval mode) and its configuration."""
    cfg = read_run_config(run_dir)
    model = build_model(cfg["model"])
    settings = cfg["model"].get("config") or {}
    features = settings.get("n_visible", settings.get("n_features"))
    shape = cfg.get("image_shape")
    if shape and isinstance(features, int) and math.prod(shape) != features:
        raise GenphysError(f"{run_dir}: image_shape {shape} does not hold {features} features")
    load_model_weights(model, model_weights_path(run_dir), adopt_dtype=True)
    return model.eval(), cfg
