"""Implementations of the ``genphys`` sub-commands (argument parsing lives in main.py)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys import io
from genphys.config import load_config_file
from genphys.errors import GenphysError
from genphys.models.rbm import RBMBase


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from genphys.cli.main import SWITCHES, TRAIN_FLAGS

    out: dict[str, dict[str, Any]] = {}
    for flag, (section, key, *_rest) in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            out.setdefault(section, {})[key] = value
    for flag, (section, key, value, _) in SWITCHES.items():
        if getattr(args, flag):
            out.setdefault(section, {})[key] = value
    if "model" in out:
        out["model"] = {"config": out["model"]}
    if "objective" in out:
        out["objective"] = {"config": out["objective"]}
    return out


def train(args: argparse.Namespace) -> int:
    from genphys.training.run import load_resume_config, merge, resolve_config
    from genphys.training.run import train as train_run

    out = Path(args.out or f"runs/{args.family}")
    flags = _overrides(args)
    if args.resume:
        if args.config:
            raise GenphysError("--resume reads the run's own config.json; drop --config")
        if not out.is_dir():
            raise GenphysError(f"cannot resume: run directory {out} does not exist")
        cfg = load_resume_config(out, flags, args.family)
    else:
        user = load_config_file(args.config) if args.config else {}
        cfg = resolve_config(args.family, merge(user, flags))
    trainer, _ = train_run(cfg, out=out, resume=args.resume)
    finished = trainer.epoch >= trainer.config.epochs
    interrupted = trainer.stop_reason == "interrupted"  # Ctrl-C
    if trainer.is_main:
        last = trainer.history[-1] if trainer.history else {}
        shown = ", ".join(
            f"{k}={v:.4g}"
            for k, v in last.items()
            if isinstance(v, float) and "/" in k and not k.startswith("lr/")
        )
        status = "finished" if finished else "stopped with a checkpoint (continue: --resume)"
        print(f"{status} at epoch {trainer.epoch}, step {trainer.global_step}; {shown}")
        print(f"run directory: {out}")
    return 130 if interrupted else 0


def sample(args: argparse.Namespace) -> int:
    from genphys.plotting import save_image_grid
    from genphys.samplers import sample_model

    if args.n < 1 or args.steps < 1:
        raise GenphysError("--n and --steps must be >= 1")
    model, cfg = io.load_run(args.run_dir)
    x = sample_model(model, n=args.n, seed=args.seed, steps=args.steps, mean=not args.binary)
    png = Path(args.out) if args.out else Path(args.run_dir) / "samples.png"
    save_image_grid(x, tuple(cfg.get("image_shape", [x.shape[1]])), png)
    npz = png.with_suffix(".npz")
    with io.atomic_path(npz) as tmp:
        np.savez_compressed(tmp, samples=x.numpy())
    print(f"wrote {png} and {npz}")
    return 0


def _evaluation_data(args: argparse.Namespace, cfg: dict[str, Any]) -> tuple[torch.Tensor, str]:
    """The run's held-out split (or ``--data``), binarized like training data; and its name."""
    from genphys.data import DataConfig, prepare_data

    data_cfg = dict(cfg.get("data", {}))
    if args.data:
        data_cfg.update(name=args.data, val_fraction=0.0, limit=None)
        if args.split:
            data_cfg["split"] = args.split
    data = prepare_data(DataConfig.from_dict(data_cfg))
    if args.data:
        x, split = data.train, f"{args.data} ({data_cfg.get('split', 'train')})"
    else:
        x, split = (data.val, "validation") if len(data.val) else (data.train, "training")
    return data.batch_transform(x, torch.Generator().manual_seed(args.seed)), split


def _strict_json(obj: Any) -> Any:
    """Non-finite floats (an error bar from one sample) become null: strict JSON for scripts."""
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _rbm_metrics(model: RBMBase, x: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """log Z (enumerated when a layer is small, else AIS), log-likelihood, PLL, reconstruction."""
    from genphys.evaluation import (
        ais_log_partition,
        average_log_likelihood,
        exact_log_partition,
        pseudo_log_likelihood,
        reconstruction_error,
    )

    n_small = min(model.n_visible, model.n_hidden) if model.binary_visible else model.n_hidden
    method = args.method
    if method == "auto":
        method = "exact" if n_small <= 20 else "ais"
    metrics: dict[str, Any] = {"log_z_method": method}
    if method == "exact":
        log_z: Any = exact_log_partition(model)
        metrics["log_z"] = {"value": log_z, "stderr": 0.0}
    else:
        result = ais_log_partition(
            model, n_chains=args.ais_chains, n_betas=args.ais_betas, data=x, seed=args.seed
        )
        log_z = result.log_z
        metrics["log_z"] = log_z.to_dict()
    metrics["log_likelihood"] = average_log_likelihood(model, x, log_z).to_dict()
    if model.binary_visible:
        g = torch.Generator().manual_seed(args.seed)
        metrics["pseudo_log_likelihood"] = pseudo_log_likelihood(model, x, generator=g).to_dict()
    metrics["reconstruction_error"] = reconstruction_error(model, x).to_dict()
    return metrics


def _latent_metrics(model: Any, x: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """VAE: IWAE NLL (k samples), ELBO terms, active units; both: reconstruction error."""
    from genphys.evaluation import (
        active_units,
        elbo_estimate,
        iwae_nll,
        latent_reconstruction_error,
    )

    metrics: dict[str, Any] = {}
    if hasattr(model, "elbo_terms"):
        g = torch.Generator().manual_seed(args.seed)
        metrics["iwae_k"] = args.k
        metrics["nll"] = iwae_nll(model, x, k=args.k, generator=g).to_dict()
        for name, est in elbo_estimate(model, x, generator=g).items():
            metrics[name] = est.to_dict()
        metrics["active_units"] = active_units(model, x)[0]
    metrics["reconstruction_error"] = latent_reconstruction_error(model, x).to_dict()
    return metrics


def evaluate(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise GenphysError("--k must be >= 1")
    model, cfg = io.load_run(args.run_dir)
    x, split = _evaluation_data(args, cfg)
    model.check_data(x, "evaluation data")  # type: ignore[operator]
    metrics: dict[str, Any] = {"run_dir": str(args.run_dir), "data": split, "n_examples": len(x)}
    if isinstance(model, RBMBase):
        metrics.update(_rbm_metrics(model, x, args))
    else:
        metrics.update(_latent_metrics(model, x, args))
    metrics = _strict_json(metrics)
    io.atomic_write_json(Path(args.run_dir) / "evaluation.json", metrics)
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            if isinstance(value, dict):
                v, err = value.get("value"), value.get("stderr")
                shown = "n/a" if v is None else f"{v:.4f}" + (f" ± {err:.4f}" if err else "")
            else:
                shown = str(value)
            print(f"{key:>24}: {shown}")
    return 0


def plot(args: argparse.Namespace) -> int:
    from genphys.data import DataConfig, prepare_data
    from genphys.plotting_latent import PLOT_KINDS

    model, cfg = io.load_run(args.run_dir)
    if isinstance(model, RBMBase):
        raise GenphysError(
            "genphys plot draws latent-variable models (vae, ae); for an RBM use genphys sample"
        )
    if "data" not in cfg or "image_shape" not in cfg:
        raise GenphysError(f"{args.run_dir}/config.json lacks its data section or image shape")
    data = prepare_data(DataConfig.from_dict(cfg["data"]))
    x, labels = (data.val, data.labels_val) if len(data.val) else (data.train, data.labels_train)
    x = data.batch_transform(x, torch.Generator().manual_seed(args.seed))
    out = Path(args.out) if args.out else Path(args.run_dir) / f"{args.kind}.png"
    path = PLOT_KINDS[args.kind](model, x, labels, tuple(cfg["image_shape"]), out, args.seed)
    print(f"wrote {path}")
    return 0
