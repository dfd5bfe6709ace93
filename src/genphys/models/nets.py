"""Building blocks for latent-variable models: MLPs and the small conv encoder/decoder pair.

The convolutional pair is the Keras VAE example's: Conv 32 and 64 (3x3, stride 2) and a dense
layer of 16 units in the encoder; its mirror image with transposed convolutions in the decoder.
Both take and give flattened images, so every model sees data as (N, C*H*W).

With ``periodic=True`` the images live on a torus (L x L Ising spins with periodic boundaries):
convolutions pad circularly, and each transposed convolution, which PyTorch cannot pad
circularly, becomes a nearest-neighbour upsampling and a circular convolution of the same
kernel (:func:`up_conv`). Output shapes are unchanged, and a shift of the input by the stride
product shifts every feature map accordingly: the nets respect the lattice's translations.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Literal

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


def conv(
    cin: int, cout: int, kernel: int, stride: int = 1, periodic: bool = False, bias: bool = True
) -> nn.Conv2d:
    """Conv2d with padding ``kernel // 2`` (size kept, or divided by ``stride``): zeros, or
    circular when ``periodic``."""
    mode: Literal["zeros", "circular"] = "circular" if periodic else "zeros"
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias, padding_mode=mode)


def up_conv(
    cin: int, cout: int, kernel: int, stride: int = 1, periodic: bool = False, bias: bool = True
) -> nn.Module:
    """A layer that multiplies H and W by ``stride`` (odd ``kernel``): a transposed convolution
    (padding ``kernel // 2``, output padding ``stride - 1``) or, when ``periodic``, nearest
    upsampling by ``stride`` (none for 1) then a circular :func:`conv`."""
    if not periodic:
        return nn.ConvTranspose2d(
            cin, cout, kernel, stride, kernel // 2, output_padding=stride - 1, bias=bias
        )
    layer = conv(cin, cout, kernel, 1, periodic=True, bias=bias)
    return layer if stride == 1 else nn.Sequential(nn.Upsample(scale_factor=stride), layer)


class ConvEncoder(nn.Module):
    """(N, C*H*W) -> (N, out): two stride-2 convolutions, a dense layer, a linear head
    (circular padding when ``periodic``)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        n_features: int,
        out: int,
        channels: Sequence[int] = (32, 64),
        dense: int = 16,
        activation: str = "relu",
        periodic: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = check_image_shape(image_shape, n_features)
        self.image_shape = (c, h, w)
        act = ACTIVATIONS[activation]
        c1, c2 = channels
        self.net = nn.Sequential(
            conv(c, c1, 3, 2, periodic),
            act(),
            conv(c1, c2, 3, 2, periodic),
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
    convolutions and a stride-1 output convolution (no output nonlinearity); when ``periodic``,
    upsampling and circular convolutions instead (:func:`up_conv`)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        n_features: int,
        latent_dim: int,
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
        periodic: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = check_image_shape(image_shape, n_features)
        act = ACTIVATIONS[activation]
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, c2 * (h // 4) * (w // 4)),
            act(),
            nn.Unflatten(1, (c2, h // 4, w // 4)),
            up_conv(c2, c2, 3, 2, periodic),
            act(),
            up_conv(c2, c1, 3, 2, periodic),
            act(),
            up_conv(c1, c, 3, 1, periodic),
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
    periodic: bool = False,
) -> tuple[nn.Module, nn.Module]:
    """The encoder (to ``encoder_out`` numbers) and decoder (to ``n_features``) of a config
    (``periodic``: circular padding, conv only)."""
    if architecture == "conv":
        return (
            ConvEncoder(
                image_shape, n_features, encoder_out, channels, dense, activation, periodic
            ),
            ConvDecoder(image_shape, n_features, latent_dim, channels, activation, periodic),
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
    "conv",
    "encoder_decoder",
    "evaluating",
    "mlp",
    "up_conv",
]
