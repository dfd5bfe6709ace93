"""Torlai & Melko (2016) at L = 8: one RBM per temperature, judged by thermodynamics.

1. ``genphys.physics.dataset.simulate``: 100,000 Monte Carlo configurations of the 8 x 8 torus
   at each T in 1.0:3.5:0.25 (Swendsen-Wang near T_c, Metropolis elsewhere, thinned by the
   measured tau); written to ``runs/bench-ising/ising-L8-n100000.npz`` (reused when present).
2. One Bernoulli RBM per temperature (64 visible, ``--hidden`` hidden units: 64 by default, as
   many as spins; CD-10, Adam 3e-3 with a cosine schedule, 360 epochs of batch 100 on the
   90,000 configurations left after a 10% validation split: 324,000 updates), trained
   through the same Trainer as every model (``runs/bench-ising/rbm-T<T>``; reused when
   finished with the same settings, ``--retrain`` to redo).
3. ``genphys.physics.compare``: energy, |m|, specific heat and susceptibility of RBM samples
   (long Gibbs chains, errors from the measured autocorrelation time) against the Monte Carlo
   data, per temperature: the value, the relative error and the z-score.

Targets: energy and |m| within 2% at every T; specific heat and susceptibility within 10%
away from T_c (|T - T_c| > 0.25)::

    .venv/bin/python benchmarks/ising_rbm.py --jobs 2 --threads 1 [--epochs 360] [--hidden 64]

Why 100,000 samples: at low T the specific heat and susceptibility rest on rare flipped spins
(at T = 1.0 about two configurations in a hundred hold one). 10,000 samples leave the Monte
Carlo susceptibility itself with a 7% standard error at T = 1.0, and RBMs trained longer on
them overfit. With 100,000, the susceptibility at T = 1.25 and 1.5 needs the 324,000 updates
(120 epochs left it 17% and 14% low). With 128 hidden units the learned rate of single flips
at T = 1.0 came out 12-15% too high; 64 hidden units (as in Torlai & Melko) meet every target
(see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--L", type=int, default=8)
    p.add_argument("--T", default="1.0:3.5:0.25")
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=360)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--k", type=int, default=10, help="Gibbs sweeps per update (CD-k)")
    p.add_argument("--pcd", action="store_true", help="persistent chains (default: CD)")
    p.add_argument(
        "--no-compile", action="store_true", help="eager CD steps (default: the fused step)"
    )
    p.add_argument("--n-samples", type=int, default=1000, help="Gibbs chains for evaluation")
    p.add_argument("--gibbs-steps", type=int, default=4000, help="sweeps per evaluation chain")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--jobs", type=int, default=1, help="temperatures trained side by side")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-ising"))
    return p.parse_args()


def train_one(job: tuple[dict, str, float, str]) -> tuple[float, float]:
    """Train the RBM of one temperature (run in a worker process with ``--jobs``)."""
    opts, data_path, T, run = job
    import torch

    torch.set_num_threads(opts["threads"])
    from genphys.training.run import resolve_config, train

    cfg = resolve_config(
        "rbm",
        {
            "model": {"name": "rbm", "config": {"n_hidden": opts["hidden"], "init_std": 0.1}},
            "objective": {
                "name": "cd",
                "config": {
                    "k": opts["k"],
                    "persistent": opts["pcd"],
                    "compile": False if opts["no_compile"] else "auto",
                },
            },
            "trainer": {
                "epochs": opts["epochs"],
                "batch_size": opts["batch_size"],
                "lr": opts["lr"],
                "optimizer": "adam",
                "schedule": "cosine",
                "progress": False,
                "checkpoint_every": opts["epochs"],
            },
            "data": {"name": data_path, "temperature": T, "binarize": "none", "val_fraction": 0.1},
        },
    )
    t0 = time.perf_counter()
    train(cfg, out=run)
    return T, time.perf_counter() - t0


def finished(run: Path, opts: dict, data_path: Path, T: float) -> bool:
    """Whether ``run`` holds a finished RBM trained with these settings (then it is reused)."""
    from genphys.io import read_run_config

    if not (run / "model.safetensors").exists():
        return False
    cfg = read_run_config(run)
    objective, trainer = cfg["objective"]["config"], cfg["trainer"]
    have = (
        cfg["data"]["name"],
        cfg["data"]["temperature"],
        cfg["model"]["config"]["n_hidden"],
        cfg["model"]["config"].get("init_std"),
        objective["k"],
        objective["persistent"],
        objective.get("compile", False) is False,  # runs before the fused step were eager
        *(trainer[k] for k in ("epochs", "lr", "batch_size", "optimizer", "schedule")),
    )
    keys = ("hidden", "k", "pcd", "no_compile", "epochs", "lr", "batch_size")
    want = tuple(opts[k] for k in keys)
    return have == (str(data_path), T, *want[:1], 0.1, *want[1:], "adam", "cosine")


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from genphys.physics.compare import compare_runs, format_table, plot_comparison
    from genphys.physics.dataset import parse_temperatures, simulate
    from genphys.physics.ising_exact import T_CRITICAL

    out = Path(args.out)
    data_path = out / f"ising-L{args.L}-n{args.samples}.npz"
    temps = parse_temperatures(args.T)
    if not data_path.exists():
        t0 = time.perf_counter()
        simulate(args.L, temps, args.samples, seed=0).save(data_path)
        print(f"simulated {len(temps)} temperatures in {time.perf_counter() - t0:.1f} s")
    runs = [out / f"rbm-T{T:.2f}" for T in temps]
    todo = [
        (T, r)
        for T, r in zip(temps, runs, strict=True)
        if args.retrain or not finished(r, vars(args), data_path, T)
    ]
    for _, run in todo:  # --retrain: start afresh
        shutil.rmtree(run, ignore_errors=True)
    jobs = [(vars(args), str(data_path), T, str(run)) for T, run in todo]
    if args.jobs > 1:  # one process per temperature, --threads each
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.jobs) as pool:
            for T, seconds in pool.imap_unordered(train_one, jobs):
                print(f"T={T:.2f}: trained in {seconds:.1f} s", flush=True)
    else:
        for job in jobs:
            T, seconds = train_one(job)
            print(f"T={T:.2f}: trained in {seconds:.1f} s", flush=True)

    results = compare_runs(
        [str(r) for r in runs], data_path, n_samples=args.n_samples, gibbs_steps=args.gibbs_steps
    )
    print(format_table(results))
    figure = plot_comparison(results, out / "compare.png")
    print(f"\nwrote {figure}\n")
    print(
        f"{'T':>5} {'|rel| e':>8} {'|rel| |m|':>10} {'|rel| C':>8} {'|rel| chi':>10} "
        f"{'max |z|':>8}  targets"
    )
    all_ok = True
    for r in results:
        obs = r["observables"]
        rel = {k: abs(obs[k]["relative_error_vs_mc"] or 0.0) for k in obs}
        zmax = max(
            abs(obs[k]["z_vs_mc"])
            for k in ("energy", "abs_magnetization", "specific_heat", "susceptibility")
        )
        near = abs(r["T"] - T_CRITICAL) <= 0.25
        ok = (
            rel["energy"] <= 0.02
            and rel["abs_magnetization"] <= 0.02
            and (near or (rel["specific_heat"] <= 0.10 and rel["susceptibility"] <= 0.10))
        )
        all_ok &= ok
        note = " (near T_c: C, chi not judged)" if near else ""
        print(
            f"{r['T']:5.2f} {100 * rel['energy']:7.2f}% {100 * rel['abs_magnetization']:9.2f}% "
            f"{100 * rel['specific_heat']:7.2f}% {100 * rel['susceptibility']:9.2f}% "
            f"{zmax:8.2f}  {'PASS' if ok else 'FAIL'}{note}"
        )
    print(f"overall: {'PASS' if all_ok else 'FAIL'}")
    (out / "compare.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
