"""A variational autoencoder with a two-dimensional latent space, as in the course's plots.

A VAE (MLP encoder and decoder, Bernoulli likelihood, dynamically binarized images) with a
2-D latent space, so that the decoded grid of codes and the codes of held-out images,
coloured by their labels, can be drawn as they are (the Keras VAE example). Its held-out
negative log-likelihood is bounded by the ELBO and, tighter, by the importance-weighted bound
(Burda et al. 2015)::

    python examples/vae_latent.py [--data digits|mnist|fashion-mnist] [--epochs 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genphys.data import DataConfig, prepare_data
from genphys.evaluation import elbo_estimate, iwae_nll
from genphys.models import VAE, VAEConfig
from genphys.plotting_latent import plot_label_clusters, plot_latent_space
from genphys.training import Trainer, TrainerConfig, build_objective


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits", help="digits (no download), mnist, fashion-mnist")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE bound")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples/out/vae-latent")
    args = p.parse_args(argv)

    data = prepare_data(DataConfig(name=args.data, binarize="dynamic", seed=args.seed))
    torch.manual_seed(args.seed)
    n = data.train.shape[1]
    model = VAE(VAEConfig(n_features=n, latent_dim=2, hidden=(256, 128)))
    Trainer(
        model,
        build_objective("autoencoder"),
        TrainerConfig(
            epochs=args.epochs,
            batch_size=128,
            optimizer="adam",
            lr=1e-3,
            seed=args.seed,
            progress=False,
        ),
    ).fit(data.train, data.val, batch_transform=data.batch_transform)

    held_out = data.batch_transform(data.val, torch.Generator().manual_seed(args.seed))
    elbo = elbo_estimate(model, held_out)["elbo"]
    nll = iwae_nll(model, held_out, k=args.k, generator=torch.Generator().manual_seed(1))
    print(
        f"held-out nats per image: -ELBO {-elbo.value:.2f} ± {elbo.stderr:.2f}, "
        f"IWAE (k = {args.k}) {nll}"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_latent_space(model, out / "latent.png", image_shape=data.image_shape)
    plot_label_clusters(model, held_out, data.labels_val, out / "clusters.png")
    print(f"wrote {out / 'latent.png'} and {out / 'clusters.png'}")
    return {
        "neg_elbo": -elbo.value,
        "neg_elbo_stderr": elbo.stderr,
        "iwae_nll": nll.value,
        "iwae_stderr": nll.stderr,
    }


if __name__ == "__main__":
    main()
