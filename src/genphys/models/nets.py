"""Building blocks for latent-variable models: MLPs and the small conv encoder/decoder pair.

The convolutional pair is the Keras VAE example's: Conv 32 and 64 (3x3, stride 2) and a dense
layer of 16 units in the encoder; its mirror image with transposed convolutions in the decoder.
Both take and give flattened images, so every model sees data as (N, C*H*W).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from genphys.errors import GenphysError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (not after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; every submodule's train/eval mode restored on exit.

    (Code that needs input gradients inside, such as Langevin steps, enables them itself.)
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training


def check_batch(
    x: Tensor,
    n_features: int,
    what: str,
    image_shape: Sequence[int] = (),
    model: str = "this model",
    interval: tuple[float, float] | None = None,
    hint: str = "",
) -> None:
    """GenphysError unless ``x`` is a non-empty finite (N, n_features) batch, within
    ``interval`` if given (``hint`` completes that message: why, and what to do)."""
    if x.ndim != 2 or x.shape[1] != n_features:
        shape = f" (images {tuple(image_shape)})" if image_shape else ""
        raise GenphysError(
            f"{what} has shape {tuple(x.shape)}; {model} expects (N, {n_features}){shape}"
        )
    if x.shape[0] == 0:
        raise GenphysError(f"{what} is empty")
    if not all(bool(torch.isfinite(b).all()) for b in x.split(4096)):
        raise GenphysError(f"{what} contains NaN or Inf values")
    if interval is not None:
        lo, hi = interval
        if not all(bool(((b >= lo) & (b <= hi)).all()) for b in x.split(4096)):
            raise GenphysError(f"{what} lies outside [{lo:g}, {hi:g}]{hint}")


def check_image_shape(
    image_shape: Sequence[int], n_features: int, what: str = "the convolutional model"
) -> tuple[int, int, int]:
    """(C, H, W) of a conv net that halves images twice; GenphysError unless H, W are multiples
    of 4 and C*H*W = ``n_features``."""
    if len(image_shape) != 3 or math.prod(image_shape) != n_features:
        raise GenphysError(
            f"{what} needs images (C, H, W) with C*H*W = {n_features}, "
            f"got image shape {tuple(image_shape)}"
        )
    c, h, w = (int(s) for s in image_shape)
    if h % 4 or w % 4:
        raise GenphysError(
            f"{what} halves the image twice: H and W must be multiples of 4, got {h}x{w}"
        )
    return c, h, w


class ConvEncoder(nn.Module):
    """(N, C*H*W) -> (N, out): two stride-2 convolutions, a dense layer, a linear head."""

    def __init__(
        self,
        image_shape: Sequence[int],
        n_features: int,
        out: int,
        channels: Sequence[int] = (32, 64),
        dense: int = 16,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = check_image_shape(image_shape, n_features)
        self.image_shape = (c, h, w)
        act = ACTIVATIONS[activation]
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(c, c1, 3, stride=2, padding=1),
            act(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            act(),
            nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), dense),
            act(),
            nn.Linear(dense, out),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(-1, *self.image_shape))


class ConvDecoder(nn.Module):
    """(N, latent) -> (N, C*H*W): dense to a (C2, H/4, W/4) map, two stride-2 transposed
    convolutions and a stride-1 output convolution (no output nonlinearity)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        n_features: int,
        latent_dim: int,
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = check_image_shape(image_shape, n_features)
        act = ACTIVATIONS[activation]
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, c2 * (h // 4) * (w // 4)),
            act(),
            nn.Unflatten(1, (c2, h // 4, w // 4)),
            nn.ConvTranspose2d(c2, c2, 3, stride=2, padding=1, output_padding=1),
            act(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),
            act(),
            nn.ConvTranspose2d(c1, c, 3, stride=1, padding=1),
            nn.Flatten(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def encoder_decoder(
    architecture: str,
    n_features: int,
    image_shape: Sequence[int],
    latent_dim: int,
    encoder_out: int,
    hidden: Sequence[int],
    channels: Sequence[int],
    dense: int,
    activation: str,
) -> tuple[nn.Module, nn.Module]:
    """The encoder (to ``encoder_out`` numbers) and decoder (to ``n_features``) of a config."""
    if architecture == "conv":
        return (
            ConvEncoder(image_shape, n_features, encoder_out, channels, dense, activation),
            ConvDecoder(image_shape, n_features, latent_dim, channels, activation),
        )
    return (
        mlp([n_features, *hidden, encoder_out], activation),
        mlp([latent_dim, *reversed(hidden), n_features], activation),
    )


__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "check_batch",
    "check_image_shape",
    "encoder_decoder",
    "evaluating",
    "mlp",
]
