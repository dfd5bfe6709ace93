"""Mode collapse on the ring of eight Gaussians, and PacGAN's remedy.

The ring (Metz et al. 2017) has eight well separated modes of width 0.02; a GAN that drops
some of them is easy to see and to count. The same MLP GAN is trained with a discriminator
that judges one sample at a time and one that judges packs of four (PacGAN, Lin et al.
2018), and each is scored by the modes it hits and the fraction of its samples within three
standard deviations of a mode::

    python examples/gan_ring.py [--epochs 300] [--out examples/out/gan-ring]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genphys.data.toy import RING_STD, ring_centers
from genphys.evaluation import mode_coverage
from genphys.training.run import resolve_config, train


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--packs", default="1,4", help="discriminator pack sizes to compare")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples/out/gan-ring")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    centers, results, drawn = ring_centers(), {}, {}
    for pack in (int(v) for v in args.packs.split(",")):
        cfg = resolve_config(
            "gan",
            {
                "model": {
                    "config": {
                        "output": "identity",
                        "hidden": [256, 256],
                        "noise_dim": 8,
                        "dropout": 0.0,
                        "pack": pack,
                    }
                },
                "trainer": {
                    "epochs": args.epochs,
                    "batch_size": 256,
                    "lr": 3e-4,
                    "betas": [0.5, 0.999],
                    "seed": args.seed,
                    "progress": False,
                },
                "data": {"name": "ring", "scale": "none", "val_fraction": 0.1},
            },
        )
        trainer, _ = train(cfg)
        gan = trainer.model.eval()
        with torch.no_grad():
            samples = gan.sample(5000, torch.Generator().manual_seed(args.seed))
        cover = mode_coverage(samples, centers, std=RING_STD)
        print(
            f"pack {pack}: {cover.modes_hit} of {cover.n_modes} modes, {cover.high_quality} "
            f"of samples within 3 sd of a mode; per mode {cover.counts}"
        )
        results[pack] = {"modes_hit": cover.modes_hit, "high_quality": cover.high_quality.value}
        drawn[pack] = samples.numpy()

    _plot(drawn, centers.numpy(), out / "samples.png")
    print(f"wrote {out / 'samples.png'}")
    return results


def _plot(drawn: dict, centers, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(drawn), figsize=(4.2 * len(drawn), 4.2), squeeze=False)
    for ax, (pack, x) in zip(axes[0], drawn.items(), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, label="samples")
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="k", label="modes")
        ax.set(title=f"discriminator pack {pack}", aspect="equal")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
