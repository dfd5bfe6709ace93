"""Implementations of the ``genphys`` sub-commands (argument parsing lives in main.py)."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys import io
from genphys.cli.ising import ising  # noqa: F401  (genphys ising ...)
from genphys.cli.vmc import vmc  # noqa: F401  (genphys vmc ...)
from genphys.config import load_config_file
from genphys.errors import GenphysError
from genphys.io import json_safe
from genphys.models.classifier import Classifier
from genphys.models.gan import GAN
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
    from genphys.training.run import check_sections, load_resume_config, merge, resolve_config
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
        io.check_output_dir(out)  # before the data are loaded
        user = load_config_file(args.config) if args.config else {}
        check_sections(user)  # before the flags are merged in
        _check_flags_apply(args, user)
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


def _check_flags_apply(args: argparse.Namespace, user: dict[str, Any]) -> None:
    """A model or objective flag that the family's model or objective does not have is an
    error naming the flag (rather than the configuration key it sets)."""
    import dataclasses

    from genphys.cli.main import SWITCHES, TRAIN_FLAGS
    from genphys.registry import MODELS, OBJECTIVES
    from genphys.training.run import FAMILIES

    preset = FAMILIES.get(args.family)
    if preset is None:
        return
    tables = {"model": MODELS, "objective": OBJECTIVES}
    given = [(f, *TRAIN_FLAGS[f][:2]) for f in TRAIN_FLAGS if getattr(args, f) is not None]
    given += [(f, *SWITCHES[f][:2]) for f in SWITCHES if getattr(args, f)]
    for flag, section, key in given:
        mine = user.get(section, {})
        if section not in tables or not isinstance(mine, dict):
            continue  # a malformed section: resolve_config names the mistake
        name = mine.get("name", preset[section]["name"])
        cls = tables[section].get(name) if isinstance(name, str) else None
        config = getattr(cls, "Config", None)
        if config is not None and key not in {f.name for f in dataclasses.fields(config)}:
            raise GenphysError(f"--{flag.replace('_', '-')} does not apply to {args.family}")


def _png_path(out: str) -> Path:
    """``--out`` of sample and plot: a .png file in an existing directory."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise GenphysError(f"--out must name a .png file, got {out!r}")
    if path.is_dir() or not path.parent.is_dir():
        raise GenphysError(f"--out {out!r}: not a file in an existing directory")
    return path


def sample(args: argparse.Namespace) -> int:
    from genphys.models.ebm import EBM
    from genphys.plotting import save_image_grid, to_display
    from genphys.plotting_gan import is_points, save_scatter
    from genphys.samplers import sample_model
    from genphys.samplers.generate import SNAPSHOTS, ebm_generate

    if args.n < 1 or args.steps < 1:
        raise GenphysError("--n and --steps must be >= 1")
    model, cfg = io.load_run(args.run_dir)
    if isinstance(model, Classifier):
        raise GenphysError(f"{args.run_dir} holds a classifier, which has no samples")
    default = "snapshots.png" if args.snapshots else "samples.png"  # keep training's figure
    png = _png_path(args.out) if args.out else Path(args.run_dir) / default
    langevin = cfg.get("objective", {}).get("config")
    scale = cfg.get("data", {}).get("scale")
    if args.snapshots:
        if not isinstance(model, EBM):
            raise GenphysError("--snapshots shows an EBM's Langevin chains from noise")
        marks = [s for s in SNAPSHOTS if s <= args.steps]
        frames = ebm_generate(model, args.n, args.seed, args.steps, langevin, marks)
        strip = frames.transpose(0, 1).reshape(-1, frames.shape[-1])  # a row per chain
        shape = tuple(cfg.get("image_shape") or [frames.shape[-1]])
        save_image_grid(to_display(strip, scale), shape, png, nrow=len(marks))
        x = frames[-1]
        print(f"snapshots at steps {marks} (a column each, a chain per row)")
    else:
        x = sample_model(model, args.n, args.seed, args.steps, not args.binary, langevin)
        shape = tuple(cfg.get("image_shape") or [x.shape[1]])
        if is_points(shape):  # points in the plane (the ring): a scatter plot
            save_scatter([(to_display(x, scale).numpy(), f"{len(x)} samples")], png)
        else:
            save_image_grid(to_display(x, scale), shape, png)
    npz = png.with_suffix(".npz")
    with io.atomic_path(npz) as tmp:
        np.savez_compressed(tmp, samples=x.numpy())
    print(f"wrote {png} and {npz}")
    return 0


def _evaluation_data(
    args: argparse.Namespace, cfg: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """The run's held-out split (or ``--data``), binarized like training data; its labels and
    its name."""
    from genphys.data import DataConfig, prepare_data

    data_cfg = dict(cfg.get("data", {}))
    if args.data:
        data_cfg.update(name=args.data, val_fraction=0.0, limit=None)
        if args.split:
            data_cfg["split"] = args.split
    data = prepare_data(DataConfig.from_dict(data_cfg))
    if args.data:
        x, y = data.train, data.labels_train
        split = f"{args.data} ({data_cfg.get('split', 'train')})"
    elif len(data.val):
        x, y, split = data.val, data.labels_val, "validation"
    else:
        x, y, split = data.train, data.labels_train, "training"
    return data.batch_transform(x, torch.Generator().manual_seed(args.seed)), y, split


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
        with warnings.catch_warnings():  # trapped chains are an error here
            warnings.simplefilter("ignore", RuntimeWarning)
            result = ais_log_partition(
                model, n_chains=args.ais_chains, n_betas=args.ais_betas, data=x, seed=args.seed
            )
        if result.trapped:
            exact = "--method exact" if n_small <= 24 else "a model small enough for --method exact"
            raise GenphysError(
                f"AIS log Z = {result.log_z.value:.4g} ± {result.log_z.stderr:.2g} lies below "
                f"a sure lower bound, {result.certain_lower:.4g}: its chains missed the hidden "
                f"states that hold the mass; use {exact} or more --ais-betas"
            )
        log_z = result.log_z
        metrics["log_z"] = {**log_z.to_dict(), "certain_lower": result.certain_lower}
    metrics["log_likelihood"] = average_log_likelihood(model, x, log_z).to_dict()
    if model.binary_visible:
        g = torch.Generator().manual_seed(args.seed)
        metrics["pseudo_log_likelihood"] = pseudo_log_likelihood(model, x, generator=g).to_dict()
    metrics["reconstruction_error"] = reconstruction_error(model, x).to_dict()
    return metrics


def _latent_metrics(model: Any, x: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """VAE: IWAE NLL (k samples), ELBO terms, active units with each unit's activity and KL;
    both: reconstruction error."""
    from genphys.evaluation import (
        active_units,
        elbo_estimate,
        iwae_nll,
        kl_per_dimension,
        latent_reconstruction_error,
    )

    metrics: dict[str, Any] = {}
    if hasattr(model, "elbo_terms"):
        g = torch.Generator().manual_seed(args.seed)
        metrics["iwae_k"] = args.k
        metrics["nll"] = iwae_nll(model, x, k=args.k, generator=g).to_dict()
        for name, est in elbo_estimate(model, x, generator=g).items():
            metrics[name] = est.to_dict()
        count, activity = active_units(model, x)
        metrics["active_units"] = count
        metrics["unit_activity"] = [round(a, 6) for a in activity.tolist()]
        metrics["kl_per_dimension"] = [round(v, 6) for v in kl_per_dimension(model, x).tolist()]
    metrics["reconstruction_error"] = latent_reconstruction_error(model, x).to_dict()
    return metrics


def _quality_metrics(
    model: Any, x: torch.Tensor, cfg: dict[str, Any], args: argparse.Namespace, split: str
) -> dict[str, Any]:
    """--metric: samples against the evaluation data, beside real data against it: the
    training data against the validation split, else (the evaluation data may be training
    data) one half of the evaluation data against the other."""
    from genphys.data import DataConfig, prepare_data
    from genphys.data.toy import RING_STD, ring_centers
    from genphys.evaluation.sample_quality import load_classifier, quality_report
    from genphys.models.ebm import EBM
    from genphys.plotting import to_display
    from genphys.samplers import sample_model

    metrics = tuple(dict.fromkeys(args.metric))
    steps = args.steps if args.steps is not None else 256 if isinstance(model, EBM) else 1000
    if args.n_samples < 3 or steps < 1:
        raise GenphysError("--n-samples must be >= 3 and --steps >= 1")
    if split == "validation":
        data = prepare_data(DataConfig.from_dict(cfg["data"]))
        n = min(args.n_samples, len(x), len(data.train))
        real = data.batch_transform(data.train[:n], torch.Generator().manual_seed(args.seed + 1))
    else:  # never the reference against itself
        n = min(args.n_samples, len(x) // 2)
        real = x[n : 2 * n]
    if n < 3:
        raise GenphysError(f"too few evaluation examples ({len(x)}) for sample-quality metrics")
    langevin = cfg.get("objective", {}).get("config")
    samples = sample_model(model, n, args.seed, steps, False, langevin)
    reference = x[:n]
    scale = cfg["data"].get("scale")  # the classifier sees [0, 1] pixels
    samples, reference, real = (to_display(t, scale) for t in (samples, reference, real))
    classifier = None
    if "fid" in metrics or "is" in metrics:
        classifier = load_classifier(args.classifier, cfg["data"]["name"])
        classifier.check_data(samples, "samples")
    ring = cfg["data"]["name"] == "ring"
    return quality_report(
        samples.float(),
        reference.float(),
        real.float(),
        metrics,
        classifier,
        centers=ring_centers() if ring else None,
        mode_std=RING_STD if ring else None,
        seed=args.seed,
    )


@torch.no_grad()
def _classifier_metrics(model: Any, x: torch.Tensor, y: torch.Tensor | None) -> dict[str, Any]:
    from genphys.evaluation import mean_estimate

    if y is None:
        raise GenphysError("evaluating a classifier needs labelled data")
    model.check_labels(y, "evaluation labels")
    model.eval()
    logits = torch.cat([model(b) for b in x.split(2048)])
    loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    correct = (logits.argmax(1) == y).double()
    return {
        "accuracy": mean_estimate(correct).to_dict(),
        "cross_entropy": mean_estimate(loss.double()).to_dict(),
    }


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "modes_hit" in value:
        quality = _shown(value["high_quality"])
        return f"{value['modes_hit']}/{value['n_modes']} modes, high-quality fraction {quality}"
    if isinstance(value, dict):
        v, err = value.get("value"), value.get("stderr")
        return "n/a" if v is None else f"{v:.4f}" + (f" ± {err:.4f}" if err else "")
    return str(value)


def evaluate(args: argparse.Namespace) -> int:
    from genphys.models.ebm import EBM

    if args.k < 1:
        raise GenphysError("--k must be >= 1")
    if args.split and not args.data:
        raise GenphysError("--split picks the file split of --data; without --data the run's "
                           "own held-out split is evaluated")  # fmt: skip
    model, cfg = io.load_run(args.run_dir)
    x, y, split = _evaluation_data(args, cfg)
    model.check_data(x, "evaluation data")  # type: ignore[operator]
    metrics: dict[str, Any] = {"run_dir": str(args.run_dir), "data": split, "n_examples": len(x)}
    if isinstance(model, Classifier):
        if args.metric:
            raise GenphysError("--metric scores a generative model's samples, not a classifier")
        metrics.update(_classifier_metrics(model, x, y))
    elif args.metric or isinstance(model, (GAN, EBM)):
        if not args.metric:  # no likelihood (GAN, EBM): every quality metric its data allows
            name = cfg["data"]["name"]
            args.metric = ["modes", "mmd"] if name == "ring" else ["mmd"]
            if name in ("mnist", "fashion-mnist") or args.classifier:
                args.metric += ["fid", "is"]
        metrics.update(_quality_metrics(model, x, cfg, args, split))
    elif isinstance(model, RBMBase):
        metrics.update(_rbm_metrics(model, x, args))
    else:
        metrics.update(_latent_metrics(model, x, args))
    metrics = json_safe(metrics)
    io.atomic_write_json(Path(args.run_dir) / "evaluation.json", metrics)
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            shown = _shown(value)
            floor = (
                value.get("real_vs_real", value.get("real")) if isinstance(value, dict) else None
            )
            if floor is not None:
                shown += f"   (real vs real: {_shown(floor)})"
            print(f"{key:>24}: {shown}")
    return 0


def plot(args: argparse.Namespace) -> int:
    from genphys.data import DataConfig, prepare_data
    from genphys.plotting_latent import PLOT_KINDS

    model, cfg = io.load_run(args.run_dir)
    if "data" not in cfg or "image_shape" not in cfg:
        raise GenphysError(f"{args.run_dir}/config.json lacks its data section or image shape")
    name = "game" if isinstance(model, GAN) and args.kind == "curves" else args.kind
    out = _png_path(args.out) if args.out else Path(args.run_dir) / f"{name}.png"
    if isinstance(model, GAN):
        return _plot_gan(model, cfg, args, out)
    if not hasattr(model, "encode"):
        hint = "" if isinstance(model, Classifier) else "; genphys sample RUN_DIR draws its samples"
        raise GenphysError(
            f"genphys plot draws VAEs, autoencoders and GANs; this run holds a "
            f"{type(model).__name__}{hint}"
        )
    if args.kind in ("progress", "curves"):
        raise GenphysError(
            f"--kind {args.kind} is a GAN's figure (fixed-noise samples across "
            "epochs, the players' curves); every run has curves.png"
        )
    data = prepare_data(DataConfig.from_dict(cfg["data"]))
    x, labels = (data.val, data.labels_val) if len(data.val) else (data.train, data.labels_train)
    x = data.batch_transform(x, torch.Generator().manual_seed(args.seed))
    shape, scale = tuple(cfg["image_shape"]), cfg["data"].get("scale")
    path = PLOT_KINDS[args.kind](model, x, labels, shape, out, args.seed, scale)
    print(f"wrote {path}")
    return 0


def _plot_gan(model: Any, cfg: dict[str, Any], args: argparse.Namespace, out: Path) -> int:
    from genphys.plotting_gan import (
        plot_game,
        plot_noise_interpolation,
        plot_progress,
        plot_samples,
    )
    from genphys.training.reporting import MetricsLog

    shape = tuple(cfg["image_shape"])
    if args.kind == "curves":
        plot_game(MetricsLog.read(Path(args.run_dir), 10**9), out)
    elif args.kind == "progress":
        plot_progress(args.run_dir, shape, out)
    elif args.kind == "interpolation":
        plot_noise_interpolation(model, shape, out, seed=args.seed)
    elif args.kind == "samples":
        plot_samples(model, shape, out, seed=args.seed)
    else:
        raise GenphysError(
            f"--kind {args.kind} needs an encoder; a GAN has samples, interpolation, progress, "
            "curves"
        )
    print(f"wrote {out}")
    return 0


def ebm(args: argparse.Namespace) -> int:
    """``genphys ebm score``: out-of-distribution energies."""
    from genphys.data import DataConfig, prepare_data
    from genphys.evaluation.ood import energy_scores
    from genphys.models.ebm import EBM

    model, cfg = io.load_run(args.run_dir)
    if not isinstance(model, EBM):
        raise GenphysError(f"{args.run_dir} holds a {type(model).__name__}, not an EBM")
    args.data, args.split = None, None
    real, _, split = _evaluation_data(args, cfg)
    others = {}
    if args.file:
        if Path(args.file).suffix.lower() not in (".npy", ".npz"):
            raise GenphysError(f"the images to score must be a .npy or .npz file, got {args.file}")
        file_cfg = {**cfg["data"], "name": args.file, "split": "train", "val_fraction": 0.0}
        other = prepare_data(DataConfig.from_dict({**file_cfg, "limit": None})).train
        model.check_data(other, str(args.file))
        others[Path(args.file).name] = other
    shape = tuple(cfg.get("image_shape", ()))
    low_high = model.config.data_range or (-1.0, 1.0)
    scores = energy_scores(model, real, shape, low_high, others, args.seed)
    out = {"run_dir": str(args.run_dir), "real": split, "scores": scores}
    if args.json:
        print(json.dumps(json_safe(out)))
        return 0
    print(f"{'set':>16}  {'mean energy':>20}  AUROC P(E(real) < E(set))")
    for name, row in scores.items():
        auroc = f"{row['auroc']:.3f}" if "auroc" in row else "-"
        print(f"{name:>16}  {_shown(row['energy']):>20}  {auroc}")
    return 0
