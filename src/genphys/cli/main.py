"""``genphys``: train, sample and evaluate generative models from the shell.

Every command takes ``--help``. Bad input prints one ``error:`` line and exits with code 2;
a diverged run exits with 1; Ctrl-C checkpoints and exits with 130.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from genphys.errors import GenphysError, TrainingDiverged


class _Formatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless its text already speaks of one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            return action.help
        if "default" in text or not text:
            return action.help
        return f"{text} (default {default})"


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes on one line (exit code 2) and shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


@functools.cache
def _family_config(family: str) -> dict[str, Any]:
    """A family's resolved default configuration (once per process: --help reads it for
    every train flag)."""
    from genphys.training.run import resolve_config

    return resolve_config(family, {})


def _family_defaults(section: str, key: str) -> str:
    """The default of a ``train`` setting in each model family it applies to, for --help:
    "default 100" when they agree, else "default: rbm 100, vae 50"."""
    import dataclasses

    from genphys.registry import MODELS
    from genphys.training.run import FAMILIES

    found: dict[str, Any] = {}
    for family in FAMILIES:
        cfg = _family_config(family)
        if section in ("trainer", "data"):
            found[family] = cfg[section].get(key)
            continue
        settings = cfg[section].get("config") or {}
        if key in settings:
            found[family] = settings[key]
        elif section == "model" and cfg["model"]["name"] in MODELS:
            config: Any = getattr(MODELS[cfg["model"]["name"]], "Config", None)
            fields = {f.name: f for f in dataclasses.fields(config)} if config else {}
            if key in fields and fields[key].default is not dataclasses.MISSING:
                found[family] = fields[key].default
    if all(v is None for v in found.values()):
        return ""
    groups: dict[str, list[str]] = {}  # shown value -> families
    for family, value in found.items():
        groups.setdefault("none" if value is None else _show(value), []).append(family)
    common = max(groups, key=lambda v: len(groups[v]))
    if len(groups[common]) == 1 and len(groups) > 1:  # no majority: each family's
        return " (default: " + "; ".join(f"{', '.join(f)} {v}" for v, f in groups.items()) + ")"
    others = "".join(f"; {', '.join(f)} {v}" for v, f in groups.items() if v != common)
    return f" (default {common}{others})"


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _float_pair(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers, got {text!r}")
    return values


# flag -> (section, key): flags override the --config file, which overrides the defaults
TRAIN_FLAGS: dict[str, tuple[str, str, Any, str]] = {
    "hidden": ("model", "n_hidden", int, "number of hidden units (rbm, grbm)"),
    "latent_dim": ("model", "latent_dim", int, "latent size (vae, ae)"),
    "widths": (
        "model",
        "hidden",
        _int_list,
        "MLP widths, e.g. 512,512 (vae, ae, gan); base width (ebm)",
    ),
    "architecture": (
        "model",
        "architecture",
        str,
        "mlp or conv (vae, ae); mlp or dcgan (gan); cnn or mlp (ebm)",
    ),
    "likelihood": ("model", "likelihood", str, "bernoulli or gaussian (vae)"),
    "beta": ("model", "beta", float, "weight of the KL term (vae)"),
    "loss": (
        "model",
        "loss",
        str,
        "mse or bce reconstruction (ae); non_saturating, minimax or wgan_gp (gan)",
    ),
    "noise_dim": ("model", "noise_dim", int, "noise size (gan; default 20 mlp, 100 dcgan)"),
    "output": (
        "model",
        "output",
        str,
        "generator output: tanh ([-1, 1]), sigmoid ([0, 1]) or identity (gan)",
    ),
    "label_smoothing": ("model", "label_smoothing", float, "one-sided label smoothing (gan)"),
    "gp_weight": ("model", "gp_weight", float, "gradient-penalty weight (gan, wgan_gp)"),
    "ema_decay": (
        "model",
        "ema_decay",
        float,
        "sample from a moving average of g, e.g. 0.999 (gan; default none)",
    ),
    "init_std": ("model", "init_std", float, "initial weight standard deviation"),
    "sigma": ("model", "sigma", float, "Gaussian standard deviation (grbm; vae gaussian)"),
    "min_sigma": ("model", "min_sigma", float, "floor of a learned Gaussian std (vae, grbm)"),
    "k": ("objective", "k", int, "Gibbs sweeps per update (CD-k / PCD-k)"),
    "chains": ("objective", "n_chains", int, "persistent chains (default: batch size)"),
    "sampler": ("objective", "sampler", str, "negative phase: gibbs or tempering (with --pcd)"),
    "temperatures": ("objective", "temperatures", int, "parallel-tempering replicas"),
    "d_steps": ("objective", "d_steps", int, "discriminator updates per generator update (gan)"),
    "g_steps": ("objective", "g_steps", int, "generator updates per turn (gan)"),
    "g_lr": ("objective", "generator_lr", float, "generator learning rate (gan; default --lr)"),
    "d_lr": (
        "objective",
        "discriminator_lr",
        float,
        "discriminator learning rate (gan; default --lr)",
    ),
    "langevin_steps": ("objective", "langevin_steps", int, "Langevin steps per update (ebm)"),
    "langevin_step": ("objective", "step_size", float, "Langevin step size (ebm)"),
    "noise": ("objective", "noise", float, "Langevin noise scale (ebm)"),
    "buffer_size": ("objective", "buffer_size", int, "replay-buffer size (ebm)"),
    "alpha": ("model", "alpha", float, "energy regularizer weight (ebm)"),
    "epochs": ("trainer", "epochs", int, "training epochs"),
    "batch_size": ("trainer", "batch_size", int, "examples per step (per process)"),
    "lr": ("trainer", "lr", float, "learning rate"),
    "optimizer": ("trainer", "optimizer", str, "sgd or adam"),
    "momentum": ("trainer", "momentum", float, "SGD momentum"),
    "betas": ("trainer", "betas", _float_pair, "Adam betas, e.g. 0.5,0.999"),
    "weight_decay": ("trainer", "weight_decay", float, "L2 weight decay"),
    "schedule": ("trainer", "schedule", str, "constant, step, exponential or cosine"),
    "gamma": ("trainer", "gamma", float, "decay factor of step/exponential schedules"),
    "step_size": ("trainer", "step_size", int, "epochs between step-schedule decays"),
    "grad_clip": ("trainer", "grad_clip", float, "clip gradient norm"),
    "seed": ("trainer", "seed", int, "random seed"),
    "device": ("trainer", "device", str, "cpu, cuda or auto"),
    "checkpoint_every": ("trainer", "checkpoint_every", int, "epochs between checkpoints"),
    "max_steps": ("trainer", "max_steps", int, "stop (with a checkpoint) after N steps"),
    "data": (
        "data",
        "name",
        str,
        "digits, mnist, fashion-mnist, ring, an Ising dataset .npz (with "
        "--temperature) or a .npy/.npz file",
    ),
    "split": ("data", "split", str, "which file split to read: train or test"),
    "binarize": ("data", "binarize", str, "none, static or dynamic"),
    "scale": ("data", "scale", str, "unit ([0, 1]), symmetric ([-1, 1]) or none (as stored)"),
    "val_fraction": ("data", "val_fraction", float, "held-out fraction"),
    "limit": ("data", "limit", int, "use at most N examples"),
    "temperature": ("data", "temperature", float, "temperature to read from an Ising dataset"),
}
SWITCHES = {
    "pcd": ("objective", "persistent", True, "persistent chains (PCD)"),
    "cd": ("objective", "persistent", False, "chains restart at the data (CD)"),
    "no_compile": ("objective", "compile", False, "eager CD steps, no torch.compile (rbm)"),
    "learn_sigma": ("model", "learn_sigma", True, "learn the visible / output std (grbm, vae)"),
    "periodic": ("model", "periodic", True, "circular padding for spins on a torus (conv, dcgan)"),
    "no_progress": ("trainer", "progress", False, "no progress bar"),
    "tensorboard": ("trainer", "tensorboard", True, "log to TensorBoard too"),
}


def build_parser() -> argparse.ArgumentParser:
    from genphys import __version__

    parser = _Parser(prog="genphys", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"genphys {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser(
        "train",
        help="train a model; writes a run directory",
        description="Train a model family; every setting has a default.",
    )
    train.add_argument(
        "family",
        choices=["rbm", "grbm", "vae", "ae", "gan", "ebm", "classifier"],
        help="model family",
    )
    train.add_argument("--config", help="YAML or JSON file with model/objective/trainer/data")
    train.add_argument("--out", default=None, help="run directory (default runs/<family>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    for flag, (section, key, typ, text) in TRAIN_FLAGS.items():
        if "default" not in text:
            text += _family_defaults(section, key)
        train.add_argument("--" + flag.replace("_", "-"), dest=flag, type=typ, help=text)
    for flag, (_, _, _, text) in SWITCHES.items():
        train.add_argument("--" + flag.replace("_", "-"), dest=flag, action="store_true", help=text)

    sample = sub.add_parser(
        "sample",
        help="draw samples from a trained run",
        description="Samples from RUN_DIR's model as a PNG grid and .npz.",
    )
    sample.add_argument("run_dir")
    sample.add_argument("--n", type=int, default=64, help="number of samples")
    sample.add_argument(
        "--steps", type=int, default=1000, help="Gibbs sweeps (RBMs) or Langevin steps (EBMs)"
    )
    sample.add_argument(
        "--snapshots",
        action="store_true",
        help="EBM: a strip of each chain at steps 0, 1, 3, 5, 10, 30, 50, 100, 300, 999",
    )
    sample.add_argument("--seed", type=int, default=0, help="random seed")
    sample.add_argument("--binary", action="store_true", help="save sampled units, not means")
    sample.add_argument(
        "--out", help="output PNG (default RUN_DIR/samples.png; snapshots.png with --snapshots)"
    )

    ev = sub.add_parser(
        "evaluate",
        help="likelihood, sample-quality or accuracy metrics of a run",
        description="Log-likelihood (exact or AIS), pseudo-likelihood and reconstruction "
        "error (RBMs); IWAE NLL and ELBO (VAEs); FID, classifier score, MMD or mode coverage "
        "of samples (--metric, any generative model; GANs by default); accuracy (classifiers).",
    )
    ev.add_argument("run_dir")
    ev.add_argument(
        "--method",
        choices=["auto", "exact", "ais"],
        default="auto",
        help="log Z by enumeration or annealed importance sampling",
    )
    ev.add_argument("--ais-chains", type=int, default=100, help="AIS chains (runs)")
    ev.add_argument("--ais-betas", type=int, default=10000, help="AIS inverse temperatures")
    ev.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE bound")
    ev.add_argument("--data", help="evaluate on this data instead of the run's held-out split")
    ev.add_argument("--split", choices=["train", "test"], help="file split of --data")
    ev.add_argument(
        "--metric",
        action="append",
        choices=["fid", "is", "mmd", "modes"],
        help="sample-quality metric of the model's samples against held-out data, beside "
        "real-vs-real (repeatable); default for RBMs and VAEs: likelihoods",
    )
    ev.add_argument("--n-samples", type=int, default=10000, help="samples for --metric")
    ev.add_argument(
        "--steps",
        type=int,
        help="Gibbs sweeps per sample (RBMs; default 1000) or Langevin steps from noise (EBMs; "
        "default 256, as the run's figures)",
    )
    ev.add_argument(
        "--classifier",
        help="features for fid/is: mnist, fashion-mnist (packaged) or a classifier run "
        "directory (default: the one packaged for the run's data)",
    )
    ev.add_argument("--seed", type=int, default=0, help="random seed")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    ebm = sub.add_parser(
        "ebm",
        help="energy-based model tools",
        description="Tools for energy-based models.",
    )
    ebm_sub = ebm.add_subparsers(
        dest="ebm_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    score = ebm_sub.add_parser(
        "score",
        help="energies of images in FILE beside held-out data, noise, flipped and shrunken",
        description="Mean energy (± SE) of the images in FILE (.npy/.npz, scaled like the "
        "run's data) beside the run's held-out images, uniform noise, and the held-out images "
        "flipped and shrunken; AUROC = P(E(held-out) < E(set)).",
    )
    score.add_argument("run_dir")
    score.add_argument("file", nargs="?", help="images to score (.npy/.npz); optional")
    score.add_argument("--seed", type=int, default=0, help="random seed")
    score.add_argument("--json", action="store_true", help="print one JSON object")

    from genphys.cli.ising import add_parser as add_ising_parser

    add_ising_parser(sub, _Parser)
    from genphys.cli.vmc import add_parser as add_vmc_parser

    add_vmc_parser(sub, _Parser)

    plot = sub.add_parser(
        "plot",
        help="figures of a trained latent-variable model or GAN",
        description="Latent grid, label clusters, reconstructions, interpolation or prior "
        "samples of a VAE / autoencoder; samples, noise interpolation or fixed-noise progress "
        "across epochs of a GAN.",
    )
    plot.add_argument("run_dir")
    plot.add_argument(
        "--kind",
        required=True,
        choices=[
            "latent",
            "clusters",
            "reconstructions",
            "interpolation",
            "samples",
            "progress",
            "curves",
        ],
    )
    plot.add_argument("--seed", type=int, default=0, help="random seed")
    plot.add_argument(
        "--out", help="output PNG (default RUN_DIR/<kind>.png; a GAN's curves: RUN_DIR/game.png)"
    )
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
    kind = "" if category is UserWarning else f" ({category.__name__})"
    print(f"genphys: warning{kind}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from genphys.denormals import flush_denormals

    flush_denormals()  # denormal Adam moments slow CPU arithmetic by up to 60%
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command that was given, with the help that lists its options
        words = [args.command, getattr(args, f"{args.command}_command", None)]
        prog = " ".join(["genphys", *(w for w in words if w)])
        parser.exit(2, f"error: {prog}: unrecognized arguments: {' '.join(extra)} "
                       f"(see {prog} --help)\n")  # fmt: skip
    from genphys.cli import commands

    try:
        with warnings.catch_warnings():  # one line each, like the errors
            warnings.showwarning = _show_warning
            return int(getattr(commands, args.command)(args) or 0)
    except GenphysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a full disk: the user's environment
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
