"""Figures of (variational) autoencoders: every plot kind writes a valid PNG, and the arrays
behind the latent grid, reconstructions and interpolation hold the decoder's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch import nn

from genphys.errors import GenphysError
from genphys.models.vae import VAE, Autoencoder
from genphys.plotting_latent import (
    PLOT_KINDS,
    latent_mean,
    plot_interpolation,
    plot_label_clusters,
    plot_latent_space,
    plot_reconstructions,
    plot_samples,
)

H = W = 8
SHAPE = (1, H, W)


def mlp_vae(latent_dim: int = 2) -> VAE:
    torch.manual_seed(0)
    return VAE(n_features=64, image_shape=SHAPE, latent_dim=latent_dim, hidden=(32,))


def conv_vae() -> VAE:
    torch.manual_seed(1)
    return VAE(
        n_features=64,
        image_shape=SHAPE,
        architecture="conv",
        latent_dim=2,
        channels=(4, 8),
        dense=8,
    )


def autoencoder() -> Autoencoder:
    torch.manual_seed(2)
    return Autoencoder(n_features=64, image_shape=SHAPE, latent_dim=2, hidden=(32,), loss="bce")


MODELS = {"mlp_vae": mlp_vae, "conv_vae": conv_vae, "ae": autoencoder}


@pytest.fixture
def data() -> torch.Tensor:
    return torch.rand(40, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.arange(40) % 4


def assert_png(path: Path) -> np.ndarray:
    """A readable, non-constant PNG with nothing left over from the atomic write."""
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] >= 20 and img.shape[1] >= 20
    assert float(img[..., :3].std()) > 0
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    return img


def tile(grid: np.ndarray, row: int, col: int, pad: int = 1) -> np.ndarray:
    """Tile (row, col) of an :func:`genphys.plotting.image_grid` array of 8x8 images."""
    top, left = pad + row * (H + pad), pad + col * (W + pad)
    return grid[top : top + H, left : left + W]


def decoded(model: VAE | Autoencoder, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.mean_output(model.decode(z)).reshape(-1, H, W).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_latent_grid_tiles_are_decoded_grid_points(name: str, tmp_path: Path) -> None:
    model, n, extent = MODELS[name](), 5, 2.0
    grid = plot_latent_space(model, tmp_path / "latent.png", n=n, extent=extent)
    assert grid.shape == (n * H, n * W)
    assert_png(tmp_path / "latent.png")
    xs = torch.linspace(-extent, extent, n)
    for i, j in [(0, 0), (0, n - 1), (1, 3), (n - 1, 2)]:
        z = torch.tensor([[xs[j], xs.flip(0)[i]]])  # columns z1 ascending, rows z2 descending
        got = grid[i * H : (i + 1) * H, j * W : (j + 1) * W]
        np.testing.assert_allclose(got, decoded(model, z)[0], atol=1e-6)


def test_latent_grid_of_a_3d_latent_space_holds_the_other_dims_at_zero(tmp_path: Path) -> None:
    model = mlp_vae(latent_dim=3)
    default = plot_latent_space(model, tmp_path / "a.png", n=4)
    grid = plot_latent_space(model, tmp_path / "b.png", n=4, dims=(0, 2))
    assert_png(tmp_path / "b.png")
    xs = torch.linspace(-2, 2, 4)
    np.testing.assert_allclose(
        default[:H, :W], decoded(model, torch.tensor([[-2.0, 2, 0]]))[0], atol=1e-6
    )
    z = torch.tensor([[xs[1], 0.0, xs.flip(0)[2]]])
    np.testing.assert_allclose(grid[2 * H : 3 * H, W : 2 * W], decoded(model, z)[0], atol=1e-6)


def test_latent_grid_rejects_a_1d_latent_space_and_bad_dims(tmp_path: Path) -> None:
    with pytest.raises(GenphysError, match="needs a 2-D latent space; this model has 1"):
        plot_latent_space(mlp_vae(latent_dim=1), tmp_path / "x.png")
    with pytest.raises(GenphysError, match="dims"):
        plot_latent_space(mlp_vae(latent_dim=3), tmp_path / "x.png", dims=(1, 1))
    with pytest.raises(GenphysError, match="dims"):
        plot_latent_space(mlp_vae(latent_dim=3), tmp_path / "x.png", dims=(0, 3))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_label_clusters_scatter_the_latent_means(
    name: str, data: torch.Tensor, labels: torch.Tensor, tmp_path: Path
) -> None:
    model = MODELS[name]()
    pts = plot_label_clusters(model, data, labels, tmp_path / "clusters.png")
    assert_png(tmp_path / "clusters.png")
    with torch.no_grad():
        np.testing.assert_allclose(pts, latent_mean(model, data).numpy(), atol=1e-6)


def test_label_clusters_project_larger_codes_and_take_any_labels(
    data: torch.Tensor, tmp_path: Path
) -> None:
    model = mlp_vae(latent_dim=5)
    temperature = torch.linspace(1.0, 3.5, 40)  # continuous labels: a colorbar
    pts = plot_label_clusters(model, data, temperature, tmp_path / "pca.png")
    assert pts.shape == (40, 2)
    np.testing.assert_allclose(pts.mean(0), 0.0, atol=1e-9)
    assert pts[:, 0].var() >= pts[:, 1].var()  # first principal component first
    assert_png(tmp_path / "pca.png")
    one_hot = torch.eye(3)[torch.arange(40) % 3]
    plot_label_clusters(mlp_vae(latent_dim=1), data, one_hot, tmp_path / "1d.png")
    plot_label_clusters(model, data, None, tmp_path / "none.png")
    assert_png(tmp_path / "1d.png")
    with pytest.raises(GenphysError, match="39 labels for 40 examples"):
        plot_label_clusters(model, data, temperature[:39], tmp_path / "bad.png")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reconstructions_pair_inputs_with_reconstructions(
    name: str, data: torch.Tensor, tmp_path: Path
) -> None:
    model = MODELS[name]()
    grid = plot_reconstructions(model, data, SHAPE, tmp_path / "rec.png", n=12)
    assert_png(tmp_path / "rec.png")
    with torch.no_grad():
        rec = model.reconstruct(data[:12]).reshape(-1, H, W).numpy()
    x = data[:12].reshape(-1, H, W).numpy()
    assert grid.shape == (4 * (H + 1) + 1, 8 * (W + 1) + 1)  # two pairs of rows, 8 wide
    np.testing.assert_allclose(tile(grid, 0, 3), x[3], atol=1e-6)
    np.testing.assert_allclose(tile(grid, 1, 3), rec[3], atol=1e-6)
    np.testing.assert_allclose(tile(grid, 2, 1), x[9], atol=1e-6)
    np.testing.assert_allclose(tile(grid, 3, 1), rec[9], atol=1e-6)
    assert (tile(grid, 3, 7) == 1).all()  # blank fill of the short last pair


def test_symmetric_data_are_drawn_as_unit_pixels(tmp_path: Path) -> None:
    torch.manual_seed(0)  # a Gaussian VAE of data in [-1, 1] (scale "symmetric")
    model = VAE(n_features=64, image_shape=SHAPE, hidden=(32,), likelihood="gaussian")
    x = torch.linspace(-1, 1, 128).reshape(2, 64)
    path = tmp_path / "r.png"
    assert PLOT_KINDS["reconstructions"](model, x, None, SHAPE, path, 0, "symmetric") == path
    with torch.no_grad():
        rec = model.reconstruct(x).reshape(-1, H, W).numpy()
    drawn = plot_reconstructions(model, x, SHAPE, tmp_path / "s.png", scale="symmetric")
    np.testing.assert_allclose(tile(drawn, 0, 1), (x[1].reshape(H, W).numpy() + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(tile(drawn, 1, 0), np.clip((rec[0] + 1) / 2, 0, 1), atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_interpolation_middle_panel_decodes_the_midpoint(
    name: str, data: torch.Tensor, tmp_path: Path
) -> None:
    model = MODELS[name]()
    grid = plot_interpolation(model, data[0], data[1], SHAPE, tmp_path / "interp.png", steps=5)
    assert_png(tmp_path / "interp.png")
    assert grid.shape == (H + 2, 7 * (W + 1) + 1)  # x_a, 5 decoded steps, x_b
    with torch.no_grad():
        mu = latent_mean(model, data[:2])
    np.testing.assert_allclose(tile(grid, 0, 0), data[0].reshape(H, W).numpy(), atol=1e-6)
    np.testing.assert_allclose(tile(grid, 0, 6), data[1].reshape(H, W).numpy(), atol=1e-6)
    midpoint = decoded(model, (mu[0] + mu[1])[None] / 2)[0]
    np.testing.assert_allclose(tile(grid, 0, 3), midpoint, atol=1e-5)
    np.testing.assert_allclose(tile(grid, 0, 1), decoded(model, mu[:1])[0], atol=1e-6)


def test_samples_are_seeded_prior_decodes(tmp_path: Path) -> None:
    model = conv_vae()
    a = plot_samples(model, SHAPE, tmp_path / "a.png", n=16, seed=7)
    b = plot_samples(model, None, tmp_path / "b.png", n=16, seed=7)
    c = plot_samples(model, SHAPE, tmp_path / "c.png", n=16, seed=8)
    assert a.shape == (4 * (H + 1) + 1, 4 * (W + 1) + 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert_png(tmp_path / "a.png")
    with torch.no_grad():
        expected = model.sample(16, torch.Generator().manual_seed(7)).reshape(-1, H, W).numpy()
    np.testing.assert_allclose(tile(a, 1, 2), expected[6], atol=1e-6)


def test_autoencoder_samples_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GenphysError, match=r"no prior.*--kind reconstructions"):
        plot_samples(autoencoder(), SHAPE, tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("train", [True, False])
def test_plots_restore_the_models_mode(
    train: bool, data: torch.Tensor, labels: torch.Tensor, tmp_path: Path
) -> None:
    model = conv_vae().train(train)
    seen: list[tuple[bool, bool]] = []  # (training, grad enabled) whenever a net runs
    for net in (model.encoder, model.decoder):
        net.register_forward_hook(
            lambda m, i, o: seen.append((m.training, torch.is_grad_enabled()))
        )
    for kind, fn in PLOT_KINDS.items():
        fn(model, data, labels, SHAPE, tmp_path / f"{kind}.png", 0)
        assert all(m.training is train for m in model.modules())
    assert len(seen) == 7 and not any(t or g for t, g in seen)


@pytest.mark.parametrize("name", ["mlp_vae", "ae"])  # the conv VAE: in the test above
def test_plot_kinds_share_one_signature(
    name: str, data: torch.Tensor, labels: torch.Tensor, tmp_path: Path
) -> None:
    assert set(PLOT_KINDS) == {"latent", "clusters", "reconstructions", "interpolation", "samples"}
    model = MODELS[name]()
    for kind, fn in PLOT_KINDS.items():
        path = tmp_path / f"{kind}.png"
        if kind == "samples" and name == "ae":
            with pytest.raises(GenphysError, match="reconstructions"):
                fn(model, data, None, (), path, 0)
            continue
        assert fn(model, data, None if kind == "clusters" else labels, (), str(path), 0) == path
        assert_png(path)


def test_plot_kinds_reject_other_models_and_too_little_data(
    data: torch.Tensor, tmp_path: Path
) -> None:
    with pytest.raises(GenphysError, match="VAE or autoencoder, not Linear"):
        PLOT_KINDS["latent"](nn.Linear(2, 2), data, None, SHAPE, tmp_path / "x.png", 0)
    with pytest.raises(GenphysError, match="needs 2 examples, the data has 1"):
        PLOT_KINDS["interpolation"](mlp_vae(), data[:1], None, SHAPE, tmp_path / "x.png", 0)
    with pytest.raises(GenphysError, match="outside"):  # data checks of the model
        plot_reconstructions(mlp_vae(), data * 3, SHAPE, tmp_path / "x.png")
