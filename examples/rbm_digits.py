"""A Bernoulli RBM on the 8x8 digits: its likelihood exactly and by annealed importance sampling.

Persistent contrastive divergence (PCD-1) trains a 64-16 RBM on scikit-learn's binarized
digits. With 16 hidden units log Z is a sum over 2^16 hidden states, so the AIS estimate
(Salakhutdinov & Murray 2008) and its standard error can be checked against the exact value,
and the held-out log-likelihood read from both. Writes samples from long Gibbs chains::

    python examples/rbm_digits.py [--hidden 16] [--epochs 40] [--out examples/out/rbm-digits]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genphys.data import DataConfig, prepare_data
from genphys.evaluation import ais_log_partition, average_log_likelihood, exact_log_partition
from genphys.models import BernoulliRBM, RBMConfig
from genphys.plotting import save_image_grid
from genphys.samplers import sample_model
from genphys.training import CDConfig, ContrastiveDivergence, Trainer, TrainerConfig


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=16, help="at most 24 for the exact log Z")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--ais-betas", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples/out/rbm-digits")
    args = p.parse_args(argv)

    data = prepare_data(DataConfig(name="digits", binarize="static", seed=args.seed))
    torch.manual_seed(args.seed)
    rbm = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=args.hidden))
    rbm.init_visible_bias(data.train)  # the data's log-odds (Hinton's practical guide)
    trainer = Trainer(
        rbm,
        ContrastiveDivergence(CDConfig(k=1, persistent=True)),
        TrainerConfig(
            epochs=args.epochs, batch_size=32, lr=0.05, momentum=0.5, seed=args.seed, progress=False
        ),
    )
    trainer.fit(data.train, data.val)

    exact = exact_log_partition(rbm)
    ais = ais_log_partition(rbm, n_betas=args.ais_betas, data=data.train, seed=args.seed)
    z = ais.log_z.z_score(exact)
    print(
        f"log Z: exact {exact:.4f}, AIS {ais.log_z} ({z:+.2f} standard errors), ESS "
        f"{ais.ess:.0f} of {len(ais.log_weights)} chains"
    )
    ll_exact = average_log_likelihood(rbm, data.val, exact)
    ll_ais = average_log_likelihood(rbm, data.val, ais)
    print(f"held-out log-likelihood per image: {ll_exact} (exact log Z), {ll_ais} (AIS)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = sample_model(rbm, 64, seed=args.seed, steps=1000)  # 64 chains, 1000 sweeps
    save_image_grid(samples, (8, 8), out / "samples.png")
    print(f"wrote {out / 'samples.png'}")
    return {
        "log_z": exact,
        "ais": ais.log_z.value,
        "ais_stderr": ais.log_z.stderr,
        "log_likelihood": ll_exact.value,
    }


if __name__ == "__main__":
    main()
