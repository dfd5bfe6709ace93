"""Periodic (circular-padding) conv nets for spins on a torus: the VAE's conv pair and the DCGAN.

On an L x L torus the conv stacks commute with lattice translations by multiples of their
stride product 4: shifting the input by 4 shifts the final (L/4 x L/4) feature map by 1, and
shifting the generator's or decoder's first map by 1 shifts its output by 4. Zero padding
breaks this at the edges, which the non-periodic nets must show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from genphys import io
from genphys.config import Config
from genphys.data import to_symmetric
from genphys.errors import GenphysError
from genphys.models.gan import GAN, GANConfig
from genphys.models.vae import VAE, Autoencoder, AutoencoderConfig, VAEConfig

FAMILIES = ["vae", "gan"]


def image_kw(size: int, periodic: bool) -> dict[str, Any]:
    return {"n_features": size * size, "image_shape": (1, size, size), "periodic": periodic}


def build_vae(periodic: bool, size: int = 8) -> VAE:
    return VAE(
        architecture="conv", latent_dim=2, channels=(4, 8), dense=8, **image_kw(size, periodic)
    )


def build_gan(periodic: bool, size: int = 8, loss: str = "non_saturating") -> GAN:
    return GAN(architecture="dcgan", noise_dim=4, loss=loss, **image_kw(size, periodic))


def build(family: str, periodic: bool, size: int = 8) -> VAE | GAN:
    return build_vae(periodic, size) if family == "vae" else build_gan(periodic, size)


def code_dim(model: VAE | GAN) -> int:
    """Size of the decoder's or generator's input."""
    return model.latent_dim if isinstance(model, VAE) else model.noise_dim


def down_up(model: VAE | GAN) -> tuple[nn.Sequential, nn.Sequential]:
    """(encoder or discriminator, decoder or generator) as Sequentials."""
    if isinstance(model, VAE):
        return model.encoder.net, model.decoder.net  # type: ignore[return-value]
    return model.discriminator, model.generator  # type: ignore[return-value]


def conv_part(seq: nn.Sequential) -> nn.Sequential:
    """The layers between the Unflatten (if any) and the Flatten: image maps to image maps."""
    kinds = [type(m) for m in seq]
    start = kinds.index(nn.Unflatten) + 1 if nn.Unflatten in kinds else 0
    return nn.Sequential(*list(seq)[start : kinds.index(nn.Flatten)])


def first_map_shape(seq: nn.Sequential) -> tuple[int, ...]:
    """(C, H, W) of the map an upsampling stack's Unflatten makes."""
    (unflatten,) = [m for m in seq if isinstance(m, nn.Unflatten)]
    return tuple(unflatten.unflattened_size)


def commutes(f: nn.Module, x: torch.Tensor, shift_in: int, shift_out: int, dim: int) -> bool:
    with torch.no_grad():
        y, y_shifted = f(x), f(x.roll(shift_in, dim))
    assert y.abs().max() > 1e-3  # a non-trivial map
    return torch.allclose(y_shifted, y.roll(shift_out, dim), atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [True, False])
def test_downsampling_convs_commute_with_shifts_by_four(
    family: str, size: int, dim: int, periodic: bool
) -> None:
    torch.manual_seed(0)
    down = conv_part(down_up(build(family, periodic, size))[0]).eval()
    x = torch.randn(3, 1, size, size)
    assert commutes(down, x, 4, 1, dim) == periodic
    if periodic:  # and only by 4: a shift by 2 lands between the stride-4 sampling points
        assert not commutes(down, x, 2, 1, dim)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [True, False])
def test_upsampling_convs_commute_with_shifts(
    family: str, size: int, dim: int, periodic: bool
) -> None:
    torch.manual_seed(0)
    up = down_up(build(family, periodic, size))[1]
    h = torch.randn(3, *first_map_shape(up))
    assert h.shape[2:] == (size // 4, size // 4)
    assert commutes(conv_part(up).eval(), h, 1, 4, dim) == periodic


def layer_shapes(seq: nn.Sequential, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The output shape of every layer of ``seq`` on ``x``."""
    shapes = []
    with torch.no_grad():
        for layer in seq.eval():
            x = layer(x)
            shapes.append(tuple(x.shape))
    return shapes


@pytest.mark.parametrize("size", [8, 16])
def test_periodic_shapes_match_and_models_run(size: int) -> None:
    torch.manual_seed(0)
    d = size * size
    for family in FAMILIES:
        plain, periodic = build(family, False, size), build(family, True, size)
        (down0, up0), (down1, up1) = down_up(plain), down_up(periodic)
        x = torch.randn(2, 1, size, size) if family == "vae" else torch.randn(2, d)
        z = torch.randn(2, code_dim(plain))
        assert layer_shapes(down0, x) == layer_shapes(down1, x)
        assert layer_shapes(up0, z) == layer_shapes(up1, z)
        assert layer_shapes(up1, z)[-1] == (2, d)

    spins = torch.randint(0, 2, (6, d)).float()  # 0/1 spins; scale symmetric: -1/+1
    ae = Autoencoder(architecture="conv", n_features=d, image_shape=(1, size, size), loss="bce",
                     latent_dim=2, periodic=True)  # fmt: skip
    models: tuple[VAE | Autoencoder, ...] = (build_vae(True, size), ae)
    for model in models:
        model.check_data(spins)
        out = model(spins)
        assert out["loss"].shape == (6,) and torch.isfinite(out["loss"]).all()
        out["loss"].mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert model.reconstruct(spins).shape == (6, d)
    assert build_vae(True, size).sample(4).shape == (4, d)

    real = to_symmetric(spins)
    for loss in ("non_saturating", "wgan_gp"):  # wgan_gp: a double backward through the pads
        gan = build_gan(True, size, loss=loss)
        gan.check_data(real)
        fake = gan.sample(6)
        assert fake.shape == (6, d) and gan(fake).shape == (6,)
        d_loss = gan.discriminator_loss(real, fake.detach())["loss"]
        g_loss = gan.generator_loss(fake)["loss"]
        (d_loss + g_loss).backward()
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)


@pytest.mark.parametrize("cls", [VAEConfig, AutoencoderConfig, GANConfig])
def test_periodic_needs_a_conv_architecture(cls: type[Config]) -> None:
    with pytest.raises(GenphysError, match=r"periodic .*needs architecture '(conv|dcgan)'") as err:
        cls(periodic=True)  # type: ignore[call-arg]
    assert "\n" not in str(err.value) and "got 'mlp'" in str(err.value)
    with pytest.raises(GenphysError, match="periodic"):
        cls.from_dict({"periodic": True, "architecture": "mlp"})
    assert cls.from_dict(cls().to_dict()).periodic is False  # type: ignore[attr-defined]


def test_periodic_dcgan_needs_a_start_map_of_two() -> None:
    with pytest.raises(GenphysError, match="H and W >= 8, got 4x8"):
        GAN(architecture="dcgan", n_features=32, image_shape=(1, 4, 8), periodic=True)
    GAN(architecture="dcgan", n_features=32, image_shape=(1, 4, 8), noise_dim=2)  # zeros: fine


def outputs(model: VAE | GAN, x: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        if isinstance(model, VAE):
            return [*model.encode(x), model.decode(z)]
        return [model(x), model.generate(z)]


@pytest.mark.parametrize("family", FAMILIES)
def test_periodic_weights_round_trip(family: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build(family, True).eval()
    path = tmp_path / "model.safetensors"
    io.save_model(path, model)
    spec: dict[str, Any] = {"name": family, "config": model.config.to_dict()}
    assert spec["config"]["periodic"] is True
    torch.manual_seed(1)
    rebuilt = io.build_model(spec).eval()
    assert isinstance(rebuilt, VAE | GAN) and rebuilt.config == model.config
    x = torch.randint(0, 2, (5, 64)).float()
    z = torch.randn(5, code_dim(model))
    assert not torch.equal(outputs(model, x, z)[-1], outputs(rebuilt, x, z)[-1])
    io.load_model_weights(rebuilt, path)
    for a, b in zip(outputs(model, x, z), outputs(rebuilt, x, z), strict=True):
        assert torch.equal(a, b)
