"""Figures of (variational) autoencoders: latent grid, label clusters, reconstructions,
interpolations and prior samples, written atomically as PNGs (matplotlib Agg). Each runs under
``torch.no_grad`` in eval mode (every submodule's mode is restored afterwards), expects data
in [0, 1] and clips images to [0, 1]."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from genphys.errors import GenphysError
from genphys.io import atomic_path
from genphys.models.nets import evaluating
from genphys.models.vae import VAE, Autoencoder
from genphys.plotting import image_grid, save_image_grid, to_display

LatentModel = VAE | Autoencoder
Shape = tuple[int, ...]
PlotFn = Callable[..., Path]
_Plot = Callable[
    [LatentModel, Tensor, "Tensor | None", Shape, "str | Path", int, "str | None"], Any
]


@contextlib.contextmanager
def _figure(path: str | Path, size: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """A matplotlib figure and axes, saved atomically to ``path`` and closed on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        yield fig, ax
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


def _shape(model: LatentModel, image_shape: Shape | None) -> Shape:
    """``image_shape`` if given (non-empty), else the model's, else the flat (n_features,)."""
    return tuple(image_shape or model.config.image_shape or (model.config.n_features,))


def _grid_png(
    x: Tensor, shape: Shape, path: str | Path, nrow: int | None = None, scale: str | None = None
) -> np.ndarray:
    """Write ``x`` (data scaled as ``scale``) as a :func:`save_image_grid` PNG of [0, 1]
    pixels; return the grid array of those pixels (before the PNG's 8-bit scaling)."""
    x = to_display(x, scale)
    save_image_grid(x, shape, path, nrow=nrow)
    return image_grid(x, shape, nrow=nrow)


def _to_model(model: LatentModel, x: Tensor, what: str = "data") -> Tensor:
    p = next(model.parameters())
    x = x.to(p.device, p.dtype).reshape(x.shape[0], -1) if x.ndim > 1 else x.to(p.device, p.dtype)
    model.check_data(x, what)
    return x


def latent_mean(model: LatentModel, x: Tensor) -> Tensor:
    """The code of ``x``: mu of q(z|x) for a VAE, z = f(x) for an autoencoder (batched)."""
    codes = [model.encode(b) for b in x.split(1024)]
    return torch.cat([c[0] if isinstance(c, tuple) else c for c in codes])


def plot_latent_space(
    model: LatentModel,
    path: str | Path,
    n: int = 15,
    extent: float = 2.0,
    image_shape: Shape | None = None,
    dims: tuple[int, int] = (0, 1),
    scale: str | None = None,
) -> np.ndarray:
    """Decode a regular n x n grid of codes over [-extent, extent]^2 into one big image.

    As in the Keras VAE example, touching tile (i, j) = ``array[i*H:(i+1)*H, j*W:(j+1)*W]``
    is E[x | z] at z[dims[0]] = linspace(-extent, extent, n)[j] (ascending left to right),
    z[dims[1]] = linspace(extent, -extent, n)[i] (descending top to bottom) and any other
    latent coordinates at 0; the default ``extent`` suits a VAE's N(0, I) prior. Returns the
    tiled image in [0, 1], (n*H, n*W) grey or (n*H, n*W, 3) RGB; ``scale="symmetric"`` data are
    mapped from [-1, 1] first. Raises GenphysError for a latent space of fewer than two
    dimensions or invalid ``dims``.
    """
    d = model.latent_dim
    if d < 2:
        raise GenphysError(f"the latent grid needs a 2-D latent space; this model has {d}")
    a, b = dims
    if a == b or not (0 <= a < d and 0 <= b < d):
        raise GenphysError(f"dims must be two different latent indices in [0, {d}), got {dims}")
    with evaluating(model):
        p = next(model.parameters())
        xs = torch.linspace(-extent, extent, n, dtype=p.dtype, device=p.device)
        z = torch.zeros(n, n, d, dtype=p.dtype, device=p.device)
        z[:, :, a], z[:, :, b] = xs[None, :], xs.flip(0)[:, None]
        x = to_display(model.mean_output(model.decode(z.view(-1, d))), scale)
    grid = image_grid(x, _shape(model, image_shape), nrow=n, pad=0)
    h, w = grid.shape[0] // n, grid.shape[1] // n
    with _figure(path, (8, 8)) as (_, ax):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        idx = np.arange(0, n, max(1, math.ceil(n / 15)))
        ticks = [f"{round(v, 1) + 0.0:.1f}" for v in xs.tolist()]  # + 0.0: no "-0.0"
        ax.set_xticks(idx * w + (w - 1) / 2, [ticks[i] for i in idx])
        ax.set_yticks(idx * h + (h - 1) / 2, [ticks[::-1][i] for i in idx])
        ax.set(xlabel=f"z[{a}]", ylabel=f"z[{b}]")
        if d > 2:
            ax.set_title(f"other {d - 2} latent dimensions held at 0")
    return grid


def plot_label_clusters(
    model: LatentModel, data: Tensor, labels: Tensor | None, path: str | Path
) -> np.ndarray:
    """Scatter the codes of ``data`` (VAE: mu of q(z|x); autoencoder: z), coloured by label.

    A 2-D code is shown as is, a larger one on its first two principal components (SVD of the
    centred codes; the axis labels say so), a 1-D one against the label. Up to 10 distinct
    labels get a legend, more a colorbar; one-hot (N, K) labels are reduced by argmax. Returns
    the plotted (N, 2) coordinates.
    """
    x = _to_model(model, data)
    with evaluating(model):
        z = latent_mean(model, x).cpu().double()
    y = None if labels is None else labels.detach().cpu()
    if y is not None:
        y = y.argmax(-1) if y.ndim == 2 else y.reshape(-1)
        if y.shape[0] != z.shape[0]:
            raise GenphysError(f"{y.shape[0]} labels for {z.shape[0]} examples")
    if (d := z.shape[1]) <= 2:
        other = z[:, 1] if d == 2 else torch.zeros(len(z)) if y is None else y.double()
        second = "z[1]" if d == 2 else "" if y is None else "label"
        xy, names = torch.stack([z[:, 0], other], 1), ["z[0]", second]
    else:
        zc = z - z.mean(0)
        _, s, vh = torch.linalg.svd(zc, full_matrices=False)
        var = (s**2 / (s**2).sum().clamp_min(1e-300)).tolist()
        xy = zc @ vh[:2].T
        names = [f"PC{k + 1} of the {d}-D code ({100 * var[k]:.0f}% var.)" for k in range(2)]
    pts = xy.numpy()
    with _figure(path, (7, 6)) as (fig, ax):
        if y is None:
            ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6)
        elif len(classes := torch.unique(y)) <= 10:
            for k, c in enumerate(classes.tolist()):
                m = (y == c).numpy()
                ax.scatter(pts[m, 0], pts[m, 1], s=4, alpha=0.6, color=f"C{k}", label=f"{c:g}")
            ax.legend(title="label", markerscale=3, fontsize="small")
        else:
            sc = ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6, c=y.numpy(), cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label")
        ax.set(xlabel=names[0], ylabel=names[1])
    return pts


def plot_reconstructions(
    model: LatentModel,
    data: Tensor,
    image_shape: Shape | None,
    path: str | Path,
    n: int = 16,
    scale: str | None = None,
) -> np.ndarray:
    """The first ``n`` inputs and their reconstructions (VAE: E[x | z = mu(x)]).

    Rows come in pairs, up to 8 wide: inputs, their reconstructions below (blank white tiles
    fill a short last pair). Returns the grid array (``image_grid`` layout, ``nrow=min(n, 8)``).
    """
    x = _to_model(model, data[:n])
    with evaluating(model):
        rec = model.reconstruct(x)
    per_row = min(8, len(x))
    rows = []
    for k in range(0, len(x), per_row):
        for part in (x[k : k + per_row], rec[k : k + per_row]):
            rows.append(torch.cat([part, part.new_ones(per_row - len(part), part.shape[1])]))
    return _grid_png(torch.cat(rows), _shape(model, image_shape), path, per_row, scale)


def plot_interpolation(
    model: LatentModel,
    x_a: Tensor,
    x_b: Tensor,
    image_shape: Shape | None,
    path: str | Path,
    steps: int = 10,
    scale: str | None = None,
) -> np.ndarray:
    """Decode the straight line between the latent means of ``x_a`` and ``x_b``.

    One row of ``steps + 2`` panels: ``x_a``; E[x | z] at z = (1 - t) mu_a + t mu_b for t in
    linspace(0, 1, steps); ``x_b``. With an odd ``steps`` the middle panel is t = 1/2.
    Returns the one-row grid array (``image_grid`` layout).
    """
    x = _to_model(model, torch.stack([x_a.reshape(-1), x_b.reshape(-1)]), "x_a, x_b")
    with evaluating(model):
        mu = latent_mean(model, x)
        t = torch.linspace(0, 1, steps, dtype=mu.dtype, device=mu.device)[:, None]
        z = (1 - t) * mu[0] + t * mu[1]
        panels = torch.cat([x[:1], model.mean_output(model.decode(z)), x[1:]])
    return _grid_png(panels, _shape(model, image_shape), path, len(panels), scale)


def plot_samples(
    model: LatentModel,
    image_shape: Shape | None,
    path: str | Path,
    n: int = 64,
    seed: int = 0,
    scale: str | None = None,
) -> np.ndarray:
    """Decode ``n`` prior samples z ~ N(0, I) of a VAE (E[x | z]) into a square-ish grid.

    Returns the grid array (``image_grid`` layout). Raises GenphysError for an autoencoder,
    which has no prior.
    """
    if not isinstance(model, VAE):
        raise GenphysError("an autoencoder has no prior to sample from; try --kind reconstructions")
    gen = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    with evaluating(model):
        x = model.sample(n, gen)
    return _grid_png(x, _shape(model, image_shape), path, scale=scale)


def _kind(plot: _Plot, need: int = 0) -> PlotFn:
    """``plot`` with the uniform :data:`PLOT_KINDS` signature; checks the model and data size."""

    def fn(
        m: nn.Module,
        x: Tensor,
        y: Tensor | None,
        s: Shape,
        p: str | Path,
        r: int,
        scale: str | None = None,
    ) -> Path:
        if not isinstance(m, (VAE, Autoencoder)):
            raise GenphysError(f"these plots need a VAE or autoencoder, not {type(m).__name__}")
        if len(x) < need:
            raise GenphysError(f"this plot needs {need} examples, the data has {len(x)}")
        plot(m, x, y, tuple(s), p, r, scale)
        return Path(p)

    return fn


PLOT_KINDS: dict[str, PlotFn] = {
    "latent": _kind(lambda m, x, y, s, p, r, c: plot_latent_space(m, p, image_shape=s, scale=c)),
    "clusters": _kind(lambda m, x, y, s, p, r, c: plot_label_clusters(m, x, y, p), 1),
    "reconstructions": _kind(
        lambda m, x, y, s, p, r, c: plot_reconstructions(m, x, s, p, scale=c), 1
    ),
    "interpolation": _kind(
        lambda m, x, y, s, p, r, c: plot_interpolation(m, x[0], x[1], s, p, scale=c), 2
    ),
    "samples": _kind(lambda m, x, y, s, p, r, c: plot_samples(m, s, p, seed=r, scale=c)),
}
"""``genphys plot --kind``: ``fn(model, data, labels, image_shape, path, seed, scale=None) ->
Path(path)`` for a VAE or autoencoder (else GenphysError); an empty ``image_shape`` means the
model's, ``scale`` is the data's (``"symmetric"`` data are drawn mapped to [0, 1]). "latent"
ignores the data, "interpolation" uses data[0] and data[1], "samples" the seed."""
