"""Figures a run leaves behind: image grids and training curves (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys.io import atomic_path


def to_display(x: torch.Tensor, scale: str | None) -> torch.Tensor:
    """Data as [0, 1] pixels: data scaled to [-1, 1] (``scale="symmetric"``) are mapped back."""
    return (x + 1) / 2 if scale == "symmetric" else x


def image_grid(
    images: torch.Tensor | np.ndarray,
    image_shape: tuple[int, ...],
    nrow: int | None = None,
    pad: int = 1,
) -> np.ndarray:
    """Tile flattened images (N, D) into one 2-D (grey) or 3-D (RGB) array in [0, 1].

    ``image_shape`` is (C, H, W) or (H, W); vectors without an image shape are shown as
    the nearest square. Values are clipped to [0, 1]; pass symmetric data through
    ``(x + 1) / 2`` first.
    """
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n = x.shape[0]
    shape = tuple(image_shape)
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        shape = (1, side, side) if side * side == shape[0] else (1, 1, shape[0])
    if len(shape) == 2:
        shape = (1, *shape)
    c, h, w = shape
    x = np.clip(x.reshape(n, c, h, w), 0.0, 1.0)
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    grid = np.ones((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    image_shape: tuple[int, ...],
    path: str | Path,
    nrow: int | None = None,
    scale: int = 4,
) -> None:
    """Write a PNG grid of ``images`` (each pixel blown up ``scale`` times)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, image_shape, nrow)
    grid = np.kron(grid, np.ones((scale, scale) + (() if grid.ndim == 2 else (1,))))
    with atomic_path(path) as tmp:
        plt.imsave(tmp, grid, cmap="gray", vmin=0, vmax=1)


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> None:
    """Plot every numeric per-epoch metric against the epoch, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(
        {
            k
            for m in history
            for k, v in m.items()
            if isinstance(v, (int, float))
            and k not in ("epoch", "step", "seconds")
            and not k.startswith("lr/")
        }
    )
    if not history or not keys:
        return
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(m["epoch"], m[key]) for m in history if key in m]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("epoch")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
