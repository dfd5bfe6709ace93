"""Figures of GANs: fixed-noise samples across epochs, the players' curves, interpolation in
noise space.

During training, :func:`save_epoch_samples` writes the generator's output on one fixed noise
batch after every epoch (``samples/epoch-NNNN.png`` and a row of them as ``.npy``);
:func:`plot_progress` stacks those rows, one per epoch, into one figure. Images are mapped
from the generator's range to [0, 1] for display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genphys.errors import GenphysError
from genphys.io import atomic_path
from genphys.models.gan import GAN
from genphys.models.nets import evaluating
from genphys.plotting import image_grid, save_image_grid
from genphys.rng import derive_seed

SAMPLES_DIR = "samples"
PROGRESS_ROW = 10  # fixed-noise images per epoch in the progress figure
POINT_SAMPLES = 1000  # samples in the scatter plots of 2-D data (a ring of Gaussians)


def is_points(image_shape: tuple[int, ...]) -> bool:
    """Whether examples are points in the plane (e.g. the ring of Gaussians): figures are then
    scatter plots, not image grids."""
    return tuple(image_shape) == (2,)


def save_scatter(
    groups: list[tuple[np.ndarray, str]], path: str | Path, lines: bool = False
) -> None:
    """Points (n, 2) of each (array, label) group in one square panel, or paths with ``lines``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for x, label in groups:
        if lines:
            ax.plot(x[:, 0], x[:, 1], "-o", ms=3, lw=1, label=label)
        else:
            ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.5, label=label)
    ax.set_aspect("equal", adjustable="datalim")
    if len(groups) > 1:
        ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def to_unit(model: GAN, x: Tensor) -> Tensor:
    """Generator output mapped from :attr:`GAN.data_range` to [0, 1] for display."""
    lo, hi = model.data_range
    return x if model.config.output == "identity" else (x - lo) / (hi - lo)


def fixed_noise(model: GAN, n: int, seed: int) -> Tensor:
    """The same noise batch for every epoch of a run with this seed."""
    g = torch.Generator(next(model.parameters()).device).manual_seed(derive_seed(seed, 6))
    return model.noise(n, g)


def _generate_eval(model: GAN, z: Tensor) -> Tensor:
    with evaluating(model):
        return to_unit(model, model.generate(z, average=True)).cpu()


def save_epoch_samples(
    model: GAN,
    run_dir: str | Path,
    epoch: int,
    image_shape: tuple[int, ...],
    seed: int,
    n: int = 64,
) -> Path:
    """Write the epoch's fixed-noise grid (PNG) and its first :data:`PROGRESS_ROW` images (2-D
    points: a scatter plot of :data:`POINT_SAMPLES` points, all kept)."""
    points = is_points(image_shape)
    x = _generate_eval(model, fixed_noise(model, POINT_SAMPLES if points else n, seed))
    folder = Path(run_dir) / SAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"epoch-{epoch:04d}.png"
    if points:
        save_scatter([(x.numpy(), f"epoch {epoch}")], png)
    else:
        save_image_grid(x, image_shape, png)
    with atomic_path(folder / f"epoch-{epoch:04d}.npy") as tmp:
        with open(tmp, "wb") as f:
            kept = x if points else x[:PROGRESS_ROW]
            np.save(f, kept.numpy().astype(np.float32), allow_pickle=False)
    return png


def plot_progress(run_dir: str | Path, image_shape: tuple[int, ...], path: str | Path) -> Path:
    """One row of fixed-noise samples per epoch (at most 12 epochs, evenly spaced), labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted((Path(run_dir) / SAMPLES_DIR).glob("epoch-*.npy"))
    if not files:
        raise GenphysError(f"{run_dir} has no per-epoch samples ({SAMPLES_DIR}/epoch-*.npy)")
    picks = sorted({round(i * (len(files) - 1) / 11) for i in range(12)} if len(files) > 12
                   else range(len(files)))  # fmt: skip
    rows = [np.load(files[i], allow_pickle=False) for i in picks]
    if is_points(image_shape):  # the samples of each picked epoch in one plane
        epochs = [int(files[i].stem.split("-")[1]) for i in picks]
        save_scatter([(r, f"epoch {e}") for r, e in zip(rows, epochs, strict=True)], path)
        return Path(path)
    fig, axes = plt.subplots(len(rows), 1, figsize=(PROGRESS_ROW, 1.1 * len(rows)), squeeze=False)
    for ax, i, row in zip(axes[:, 0], picks, rows, strict=True):
        ax.imshow(image_grid(row, image_shape, nrow=len(row)), cmap="gray", vmin=0, vmax=1)
        ax.set_ylabel(f"epoch {int(files[i].stem.split('-')[1])}", rotation=0, ha="right")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_game(history: list[dict[str, Any]], path: str | Path) -> Path:
    """The two players per epoch: both losses, and mean d(x) on real and generated data with
    the 1/2 line where the discriminator can no longer tell them apart (critic values and the
    Wasserstein estimate for WGAN-GP)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wgan = any("train/wasserstein" in m for m in history)
    panels = [
        ("losses", ["train/d_loss", "train/g_loss"]),
        (
            "critic" if wgan else "d(x)",
            ["train/d_real", "train/d_fake", "val/d_real", "val/d_fake"],
        ),
    ]
    if wgan:
        panels.append(("Wasserstein estimate", ["train/wasserstein"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            pts = [(m["epoch"], m[key]) for m in history if key in m]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=2, label=key)
        if title == "d(x)":
            ax.axhline(0.5, color="grey", ls="--", lw=1)
            ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between noise vectors (rows of t: weights in [0, 1])."""
    cos = (a @ b / (a.norm() * b.norm())).clamp(-1, 1)
    omega = torch.arccos(cos)
    if float(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def plot_noise_interpolation(
    model: GAN,
    image_shape: tuple[int, ...],
    path: str | Path,
    seed: int = 0,
    steps: int = 10,
    rows: int = 4,
    spherical: bool = True,
) -> np.ndarray:
    """``rows`` interpolations of ``steps`` images between pairs of noise vectors.

    Spherical (slerp) by default: points on the straight line between two Gaussian vectors are
    atypically short, points on the great circle are not. Returns the grid array.
    """
    g = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    ends = model.noise(2 * rows, g)
    t = torch.linspace(0, 1, steps, dtype=ends.dtype, device=ends.device)[:, None]
    z = torch.cat(
        [
            slerp(ends[2 * r], ends[2 * r + 1], t)
            if spherical
            else (1 - t) * ends[2 * r] + t * ends[2 * r + 1]
            for r in range(rows)
        ]
    )
    x = _generate_eval(model, z)
    if is_points(image_shape):  # each interpolation as a path in the plane
        paths = x.view(rows, steps, 2).numpy()
        save_scatter([(p, f"pair {r + 1}") for r, p in enumerate(paths)], path, lines=True)
        return x.numpy()
    save_image_grid(x, image_shape, path, nrow=steps)
    return image_grid(x, image_shape, nrow=steps)


def plot_samples(
    model: GAN, image_shape: tuple[int, ...], path: str | Path, n: int = 64, seed: int = 0
) -> np.ndarray:
    """A square-ish grid of ``n`` samples g(z) (eval mode). Returns the grid array (2-D
    points: a scatter plot of at least :data:`POINT_SAMPLES`, and the points)."""
    g = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    if is_points(image_shape):
        x = _generate_eval(model, model.noise(max(n, POINT_SAMPLES), g))
        save_scatter([(x.numpy(), "g(z)")], path)
        return x.numpy()
    x = _generate_eval(model, model.noise(n, g))
    nrow = max(1, math.ceil(math.sqrt(n)))
    save_image_grid(x, image_shape, path, nrow=nrow)
    return image_grid(x, image_shape, nrow=nrow)


__all__ = [
    "is_points",
    "plot_game",
    "plot_noise_interpolation",
    "plot_progress",
    "plot_samples",
    "save_epoch_samples",
    "save_scatter",
    "slerp",
    "to_unit",
]
