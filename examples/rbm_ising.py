"""An RBM learns the Ising model (Torlai & Melko 2016) on a lattice small enough to enumerate.

Monte Carlo configurations of a 4 x 4 torus at one temperature train a Bernoulli RBM with as
many hidden units as spins (CD-10, Adam with a cosine schedule, the recipe of
``benchmarks/ising_rbm.py``). The thermodynamics of the RBM's own samples (long Gibbs chains,
errors from their autocorrelation times) are then set beside those of the training data and
the exact values from all 2^16 configurations::

    python examples/rbm_ising.py [--T 2.5] [--epochs 200] [--out examples/out/rbm-ising]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genphys.data import DataConfig, prepare_data
from genphys.models import BernoulliRBM, RBMConfig
from genphys.physics.compare import rbm_chain_observables
from genphys.physics.dataset import simulate
from genphys.physics.ising_exact import exact_observables
from genphys.physics.observables import thermodynamics
from genphys.training import CDConfig, ContrastiveDivergence, Trainer, TrainerConfig

L = 4
NAMES = ("energy", "abs_magnetization", "specific_heat", "susceptibility")


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=float, default=2.5)
    p.add_argument("--samples", type=int, default=20_000, help="Monte Carlo configurations")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--hidden", type=int, default=L * L)
    p.add_argument("--gibbs-steps", type=int, default=2000, help="sweeps of each model chain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="examples/out/rbm-ising")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    mc = simulate(L, [args.T], args.samples, seed=args.seed)
    mc.save(out / "ising.npz")  # the file format every --data reads
    data = prepare_data(
        DataConfig(
            name=str(out / "ising.npz"), temperature=args.T, binarize="none", val_fraction=0.0
        )
    )
    torch.manual_seed(args.seed)
    rbm = BernoulliRBM(RBMConfig(n_visible=L * L, n_hidden=args.hidden, init_std=0.1))
    Trainer(
        rbm,
        ContrastiveDivergence(CDConfig(k=10, persistent=False)),
        TrainerConfig(
            epochs=args.epochs,
            batch_size=100,
            optimizer="adam",
            lr=3e-3,
            schedule="cosine",
            seed=args.seed,
            progress=False,
        ),
    ).fit(data.train)

    model = rbm_chain_observables(rbm, L, args.T, 500, args.gibbs_steps, args.seed)
    data_obs = thermodynamics(mc.energy[0], mc.magnetization[0], L, args.T, independent=True)
    exact = exact_observables(L, args.T)
    print(f"L = {L}, T = {args.T}: RBM samples and training data beside the exact values")
    result = {}
    for name in NAMES:
        x = float(exact[name])
        rel = (model[name].value - x) / x
        print(
            f"{name:>18}: RBM {model[name]!s:>20} ({100 * rel:+.2f}%)  data "
            f"{data_obs[name]!s:>20}  exact {x:.6f}"
        )
        result[name] = {
            "value": model[name].value,
            "stderr": model[name].stderr,
            "exact": x,
            "data_z": data_obs[name].z_score(x),
        }
    return result


if __name__ == "__main__":
    main()
