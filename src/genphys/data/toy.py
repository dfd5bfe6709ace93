r"""Toy data with known structure: the ring of Gaussians used to count a GAN's modes.

The ring (Metz et al. 2017, unrolled GANs) is an equal-weight mixture of ``n_modes`` isotropic
2-D Gaussians :math:`N(c_k, \sigma^2 I)` with centres :math:`c_k = r(\cos\theta_k, \sin\theta_k)`,
:math:`\theta_k = 2\pi k / K`. Adjacent centres are :math:`2r\sin(\pi/K)` apart (1.53 for the
default ``K = 8``, ``r = 2``), far beyond :math:`3\sigma = 0.06`, so every sample belongs to one
mode: :func:`genphys.evaluation.mode_coverage` counts them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genphys.config import check

#: within-mode standard deviation of the standard ring (Metz et al. 2017)
RING_STD = 0.02


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> Tensor:
    """The ``n_modes`` centres :math:`r(\\cos 2\\pi k/K, \\sin 2\\pi k/K)`, float32 (K, 2).

    >>> ring_centers(4, 1.0).round().abs().tolist()
    [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    """
    check(isinstance(n_modes, int) and n_modes >= 1, f"n_modes must be >= 1, got {n_modes!r}")
    check(math.isfinite(radius) and radius > 0, f"radius must be > 0, got {radius!r}")
    theta = 2.0 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return (radius * torch.stack([theta.cos(), theta.sin()], dim=1)).to(torch.float32)


def ring_of_gaussians(
    n: int,
    n_modes: int = 8,
    radius: float = 2.0,
    std: float = RING_STD,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` samples of the ring mixture and its centres.

    Each sample picks a mode uniformly at random, then adds :math:`N(0, \\sigma^2 I)` noise.

    Args:
        n: number of samples.
        n_modes: number of mixture components K.
        radius: radius r of the ring.
        std: standard deviation :math:`\\sigma` of each coordinate within a mode.
        generator: CPU random generator (``None``: torch's global one).

    Returns:
        ``(samples, centers)``: float32 tensors of shape (n, 2) and (n_modes, 2).
    """
    check(isinstance(n, int) and n >= 1, f"n must be an int >= 1, got {n!r}")
    check(math.isfinite(std) and std >= 0, f"std must be >= 0, got {std!r}")
    centers = ring_centers(n_modes, radius)
    mode = torch.randint(n_modes, (n,), generator=generator)
    noise = torch.randn((n, 2), generator=generator, dtype=torch.float64)
    samples = (centers[mode].to(torch.float64) + std * noise).to(torch.float32)
    return samples, centers


__all__ = ["RING_STD", "ring_centers", "ring_of_gaussians"]
