"""A whole training run from one nested configuration: data, model, objective, trainer.

The configuration is what ``config.json`` in the run directory holds, so
``genphys train``, ``--resume`` and Python users share one path::

    {"family": "rbm",
     "model": {"name": "rbm", "config": {"n_hidden": 128}},
     "objective": {"name": "cd", "config": {"k": 1, "persistent": true}},
     "trainer": {"epochs": 30, "lr": 0.05},
     "data": {"name": "digits", "binarize": "static"}}
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch

import genphys
from genphys import io
from genphys.config import check
from genphys.data import DataConfig, PreparedData, prepare_data
from genphys.data.transforms import absolute_data_name
from genphys.errors import GenphysError
from genphys.models.classifier import Classifier
from genphys.models.ebm import EBM
from genphys.models.gan import GAN
from genphys.plotting_gan import (
    plot_game,
    plot_noise_interpolation,
    plot_progress,
    plot_samples,
    save_epoch_samples,
)
from genphys.training.objectives import build_objective
from genphys.training.options import TrainerConfig
from genphys.training.trainer import Callback, Trainer

#: Per-family defaults, deep-merged under the user's configuration.
FAMILIES: dict[str, dict[str, Any]] = {
    "rbm": {
        "model": {"name": "rbm", "config": {"n_hidden": 128}},
        "objective": {"name": "cd", "config": {"k": 1, "persistent": True}},
        "trainer": {"epochs": 100, "batch_size": 32, "lr": 0.05, "momentum": 0.5},
        "data": {"name": "digits", "binarize": "static"},
    },
    "vae": {
        "model": {"name": "vae", "config": {"latent_dim": 8, "hidden": [512, 512]}},
        "objective": {"name": "autoencoder"},
        "trainer": {"epochs": 50, "batch_size": 128, "optimizer": "adam", "lr": 1e-3},
        "data": {"name": "digits", "binarize": "dynamic"},
    },
    "ae": {
        "model": {"name": "ae", "config": {"latent_dim": 2, "hidden": [512, 512]}},
        "objective": {"name": "autoencoder"},
        "trainer": {"epochs": 50, "batch_size": 128, "optimizer": "adam", "lr": 1e-3},
        "data": {"name": "digits", "binarize": "none"},
    },
    "grbm": {
        "model": {"name": "grbm", "config": {"n_hidden": 128, "sigma": 0.5}},
        "objective": {"name": "cd", "config": {"k": 1, "persistent": False}},
        "trainer": {"epochs": 40, "batch_size": 32, "lr": 0.01, "momentum": 0.5},
        "data": {"name": "digits", "binarize": "none"},
    },
    "gan": {  # the DCGAN tutorial's optimizer (Adam 1e-4); --architecture dcgan for its nets
        "model": {"name": "gan", "config": {"architecture": "mlp"}},
        "objective": {"name": "adversarial"},
        "trainer": {"epochs": 100, "batch_size": 64, "optimizer": "adam", "lr": 1e-4},
        "data": {"name": "digits", "binarize": "none", "scale": "symmetric"},
    },
    "ebm": {  # the UvA tutorial 8's recipe
        "model": {"name": "ebm", "config": {"architecture": "cnn"}},
        "objective": {"name": "energy_cd"},
        "trainer": {
            "epochs": 60,
            "batch_size": 128,
            "optimizer": "adam",
            "lr": 1e-4,
            "betas": [0.0, 0.999],
            "schedule": "step",
            "step_size": 1,
            "gamma": 0.97,
            "grad_clip": 0.1,
        },
        "data": {"name": "digits", "binarize": "none", "scale": "symmetric"},
    },
    "classifier": {  # the feature extractor of FID / classifier score
        "model": {"name": "classifier"},
        "objective": {"name": "classification"},
        "trainer": {"epochs": 10, "batch_size": 128, "optimizer": "adam", "lr": 1e-3},
        "data": {"name": "digits", "binarize": "none", "val_fraction": 0.1},
    },
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of nested dicts (``override`` wins)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_sections(user: dict[str, Any]) -> None:
    """The sections of a user configuration: known names, mappings, {name, config} where due
    (checked before command-line flags are merged in, which could hide a malformed one)."""
    unknown = sorted(set(user) - {"model", "objective", "trainer", "data", "family"})
    if unknown:
        raise GenphysError(
            f"unknown configuration section(s) {unknown}; expected model, objective, trainer, data"
        )
    for key in ("model", "objective", "trainer", "data"):
        if key in user and not isinstance(user[key], dict):
            raise GenphysError(f"configuration section {key!r} must be a mapping")
    for key in ("model", "objective"):  # {name, config}; trainer and data check their own keys
        extra = sorted(set(user.get(key, {})) - {"name", "config"})
        if extra:
            raise GenphysError(f"unknown key(s) {extra} in section {key!r}; expected name, config")
        if not isinstance(user.get(key, {}).get("config", {}), dict):
            raise GenphysError(f"{key}.config must be a mapping")


def resolve_config(family: str, user: dict[str, Any]) -> dict[str, Any]:
    """Family defaults + user configuration, with every section checked."""
    if family not in FAMILIES:
        raise GenphysError(f"unknown model family {family!r}; choose from {sorted(FAMILIES)}")
    check_sections(user)
    if user.get("family", family) != family:
        raise GenphysError(f"the configuration is for family {user['family']!r}, not {family!r}")
    cfg = merge(FAMILIES[family], {k: v for k, v in user.items() if k != "family"})
    cfg["family"] = family
    # store every setting explicitly, so a resumed run can be checked against all of them
    cfg["trainer"] = TrainerConfig.from_dict(cfg["trainer"]).to_dict()
    cfg["data"] = DataConfig.from_dict(cfg["data"]).to_dict()
    objective = build_objective(cfg["objective"]["name"], cfg["objective"].get("config"))
    cfg["objective"]["config"] = objective.config.to_dict()
    return cfg


def build_run(cfg: dict[str, Any], data: PreparedData) -> tuple[torch.nn.Module, Any]:
    """Model (sized from the data) and objective for a resolved configuration."""
    from genphys.registry import MODELS, lookup

    spec = cfg["model"]
    cls = lookup(MODELS, spec["name"], "model")
    model_cfg = dict(spec.get("config", {}))
    n_features = int(data.train.shape[1])
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    size_key = "n_visible" if "n_visible" in fields else "n_features"
    if model_cfg.setdefault(size_key, n_features) != n_features:
        raise GenphysError(
            f"model {size_key}={model_cfg[size_key]} but the data have "
            f"{n_features} features per example"
        )
    if "image_shape" in fields and not model_cfg.get("image_shape"):
        model_cfg["image_shape"] = list(data.image_shape)
    if "n_classes" in fields and "n_classes" not in model_cfg and data.labels_train is not None:
        top = int(data.labels_train.max()) if len(data.labels_train) else 0
        if top >= 10_000:  # a 10^7-class output layer would not fit in memory
            raise GenphysError(
                f"labels go up to {top}: set model.config.n_classes for that many classes"
            )
        model_cfg["n_classes"] = max(2, top + 1)
    spec["config"] = cls.Config.from_dict(model_cfg).to_dict()
    model = cls(cls.Config.from_dict(spec["config"]))
    objective = build_objective(cfg["objective"]["name"], cfg["objective"].get("config"))
    return model, objective


def train(
    cfg: dict[str, Any],
    out: str | Path | None = None,
    resume: bool = False,
    data: PreparedData | None = None,
) -> tuple[Trainer, PreparedData]:
    """Train a run described by a resolved configuration; returns the trainer and data.

    With ``out``, the run directory receives config.json, metrics.jsonl, checkpoints, the
    final weights, a sample grid and training curves.
    """
    cfg = copy.deepcopy(cfg)
    check(out is not None or not resume, "resume needs a run directory")
    data = data or prepare_data(DataConfig.from_dict(cfg["data"]))
    cfg["image_shape"] = list(data.image_shape)
    trainer_cfg = TrainerConfig.from_dict(cfg["trainer"])
    torch.manual_seed(trainer_cfg.seed)
    model, objective = build_run(cfg, data)
    cfg["genphys_version"] = genphys.__version__
    cfg["trainer"]["max_steps"] = None  # a limit for this invocation only, not for resumes
    callbacks: list[Callback] = []
    if out is not None and isinstance(model, GAN):  # fixed-noise samples after every epoch
        shape = tuple(cfg["image_shape"])

        def epoch_samples(t: Trainer, metrics: dict[str, Any]) -> None:
            if t.is_main:
                save_epoch_samples(model, Path(out), t.epoch, shape, trainer_cfg.seed)

        callbacks.append(epoch_samples)
    trainer = Trainer(
        model, objective, trainer_cfg, run_dir=out, run_config=cfg, callbacks=callbacks
    )
    dynamic = data.config.binarize == "dynamic"  # otherwise the whole set is checked as is
    labels = None
    if objective.needs_labels:
        if data.labels_train is None:
            raise GenphysError(
                f"{cfg['objective']['name']} needs labelled data; {data.config.name} has none"
            )
        labels = (data.labels_train, data.labels_val)
    trainer.fit(
        data.train,
        data.val,
        resume=resume,
        batch_transform=data.batch_transform if dynamic else None,
        labels=labels,
    )
    if out is not None and trainer.is_main and trainer.epoch >= trainer_cfg.epochs:
        write_figures(Path(out), model, cfg, trainer.history, trainer_cfg.seed, data)
    return trainer, data


def write_figures(
    run_dir: Path,
    model: torch.nn.Module,
    cfg: dict[str, Any],
    history: list[dict[str, Any]],
    seed: int,
    data: PreparedData,
) -> None:
    """Samples (an autoencoder: reconstructions; a GAN: also its progress across epochs and a
    noise interpolation) and training curves, as PNG files; nothing for a classifier."""
    from genphys.models.vae import Autoencoder
    from genphys.plotting import plot_curves, save_image_grid, to_display
    from genphys.plotting_latent import plot_reconstructions
    from genphys.samplers import sample_model

    shape, scale = tuple(cfg["image_shape"]), cfg["data"].get("scale")
    plot_curves(history, run_dir / "curves.png")
    if isinstance(model, GAN):
        plot_samples(model, shape, run_dir / "samples.png", seed=seed)
        plot_progress(run_dir, shape, run_dir / "progress.png")
        plot_game(history, run_dir / "game.png")
        plot_noise_interpolation(model, shape, run_dir / "interpolation.png", seed=seed)
    elif isinstance(model, Classifier):
        return
    elif isinstance(model, Autoencoder):  # no prior to sample from
        held_out = data.val if len(data.val) else data.train
        x = data.batch_transform(held_out[:16], torch.Generator().manual_seed(seed))
        plot_reconstructions(model, x, shape, run_dir / "reconstructions.png", scale=scale)
    elif isinstance(model, EBM):  # 256 Langevin steps from noise, as the tutorial's callback
        x = sample_model(model, 64, seed, 256, langevin=cfg["objective"]["config"])
        save_image_grid(to_display(x, scale), shape, run_dir / "samples.png")
    else:
        x = sample_model(model, n=64, seed=seed)
        save_image_grid(to_display(x, scale), shape, run_dir / "samples.png")


def _dotted(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_dotted(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


#: trainer settings that a resumed run may change; everything else must stay as it was
RESUMABLE = {
    "trainer.epochs",
    "trainer.progress",
    "trainer.tensorboard",
    "trainer.max_steps",
    "trainer.checkpoint_every",
    "trainer.keep_checkpoints",
}


def _absolute_names(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with a data file name made absolute (as :class:`DataConfig` stores it)."""
    name = cfg.get("data", {}).get("name")
    if not isinstance(name, str):
        return cfg
    return merge(cfg, {"data": {"name": absolute_data_name(name)}})


def load_resume_config(
    run_dir: str | Path, overrides: dict[str, Any], family: str | None = None
) -> dict[str, Any]:
    """The stored configuration of a run with ``overrides`` (nested like the config) applied.

    Only :data:`RESUMABLE` settings may differ from the stored ones, and the family must match.
    """
    cfg = _absolute_names(io.read_run_config(run_dir))  # older runs stored them as given
    overrides = _absolute_names(overrides)
    if family is not None and cfg.get("family") != family:
        raise GenphysError(f"{run_dir} is a {cfg.get('family')!r} run, not {family!r}")
    stored = _dotted(cfg)
    for key, value in _dotted(overrides).items():
        if key not in RESUMABLE and stored.get(key, value) != value:
            raise GenphysError(
                f"--resume keeps the run's configuration; {key} cannot change "
                f"(only {sorted(RESUMABLE)})"
            )
    return merge(cfg, overrides)
