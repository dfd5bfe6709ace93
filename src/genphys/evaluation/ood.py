"""Out-of-distribution scores of an energy-based model (the UvA tutorial 8's comparison).

An EBM trained on images should give its held-out data lower energy than inputs that are not
like them: uniform noise, the same images flipped upside down, and the images shrunken to half
size (padded with background). :func:`energy_scores` reports the mean energy of each with its
standard error, and the fraction of pairs in which a real image has lower energy than the
altered one (the AUROC of -E as a detector, 0.5 meaning no separation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genphys.evaluation.stats import Estimate, mean_estimate
from genphys.models.nets import evaluating


def flipped(x: Tensor, image_shape: tuple[int, ...]) -> Tensor:
    """Images turned upside down (flat in, flat out)."""
    return x.reshape(-1, *image_shape).flip(-2).reshape(len(x), -1)


def shrunken(x: Tensor, image_shape: tuple[int, ...], background: float) -> Tensor:
    """Images scaled to half size (area averaging) in the middle of a ``background`` canvas."""
    c, h, w = image_shape
    small = F.interpolate(x.reshape(-1, c, h, w), size=(h // 2, w // 2), mode="area")
    canvas = torch.full((len(x), c, h, w), background, dtype=x.dtype, device=x.device)
    top, left = (h - h // 2) // 2, (w - w // 2) // 2
    canvas[:, :, top : top + h // 2, left : left + w // 2] = small
    return canvas.reshape(len(x), -1)


def batched_energy(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """E(x) per example, in eval mode (the mode is restored), float64 on the CPU."""
    with evaluating(model):
        return torch.cat([model(b).double().cpu() for b in x.split(batch_size)])


def auroc(lower: Tensor, higher: Tensor) -> float:
    """P(a < b) + P(a = b)/2 for a from ``lower``, b from ``higher`` (Mann-Whitney)."""
    both = torch.cat([lower, higher]).double()
    ranks = torch.empty_like(both)
    order = both.argsort()
    ranks[order] = torch.arange(1, len(both) + 1, dtype=both.dtype)
    # ties: average ranks
    _, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=both.dtype).index_add_(0, inverse, ranks)
    ranks = (sums / counts)[inverse]
    n, m = len(lower), len(higher)
    u = ranks[n:].sum() - m * (m + 1) / 2  # pairs where the higher-set value ranks above
    return float(u / (n * m))


def energy_scores(
    model: nn.Module,
    real: Tensor,
    image_shape: tuple[int, ...],
    data_range: tuple[float, float] = (-1.0, 1.0),
    others: dict[str, Tensor] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean energies of ``real`` images, noise, flipped and shrunken images (and ``others``).

    Returns ``{name: {"energy": Estimate dict, "auroc": P(E(real) < E(name))}}``, the real
    images first (without auroc).
    """
    lo, hi = data_range
    g = torch.Generator(device=real.device).manual_seed(seed)
    sets = {"real": real, "noise": torch.rand(real.shape, generator=g, device=real.device)}
    sets["noise"] = sets["noise"] * (hi - lo) + lo
    if len(image_shape) == 3:
        sets["flipped"] = flipped(real, image_shape)
        sets["shrunken"] = shrunken(real, image_shape, lo)
    sets.update(others or {})
    e_real = batched_energy(model, real)
    out: dict[str, Any] = {}
    for name, x in sets.items():
        e = e_real if name == "real" else batched_energy(model, x)
        est: Estimate = mean_estimate(e)
        out[name] = {"energy": est.to_dict()}
        if name != "real":
            out[name]["auroc"] = auroc(e_real, e)
    return out


__all__ = ["auroc", "batched_energy", "energy_scores", "flipped", "shrunken"]
