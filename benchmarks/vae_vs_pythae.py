"""genphys VAE vs pythae's VAE: seconds per epoch and IWAE test NLL on binarized Fashion-MNIST.

784-512-512 -> 8 ReLU MLP VAEs, Bernoulli decoder (BCE summed over pixels + KL), the same
starting weights, Adam (lr 1e-3, batch 128), 60,000 training images binarized afresh each batch,
the same thread count. Each run trains in its own subprocess: genphys's ``Trainer``, pythae's
``BaseTrainer``, and a plain loop over pythae's model (``model({"data": x}).loss`` + Adam).
All three are scored by genphys's IWAE estimator on the same binarized test images::

    python benchmarks/vae_vs_pythae.py [--epochs 3] [--threads 2] [--n-test 2000] [--k 1000]
    python benchmarks/vae_vs_pythae.py --burda [--burda-epochs 500]   # genphys only, MNIST
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
LATENT, HIDDEN, BATCH, LR = 8, (512, 512), 128, 1e-3
RUNS = ("genphys", "pythae-trainer", "pythae-loop")
BURDA_VAE_K1 = 86.76  # Burda et al. 2015, Table 1: VAE, one stochastic layer, k=1, test NLL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(DATA / "fashion-mnist"))
    p.add_argument("--mnist-root", default=str(DATA / "mnist"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-test", type=int, default=2000, help="test images scored (of 10,000)")
    p.add_argument("--k", type=int, default=1000, help="IWAE samples per test image")
    p.add_argument("--burda", action="store_true", help="latent 50, 200-200 tanh VAE on MNIST")
    p.add_argument("--burda-epochs", type=int, default=500)
    p.add_argument("--burda-k", type=int, default=5000)
    p.add_argument("--only", choices=RUNS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def pin_threads(n: int) -> str:
    import torch

    torch.set_num_threads(n)  # OMP/MKL/OPENBLAS_NUM_THREADS are set before torch is imported
    return f"torch {torch.get_num_threads()}, OMP_NUM_THREADS {os.environ['OMP_NUM_THREADS']}"


def peak_rss_mb() -> float:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next((int(s.split()[1]) / 1024 for s in lines if s.startswith("VmHWM:")), math.nan)


def genphys_vae(latent: int = LATENT, hidden: tuple = HIDDEN, activation: str = "relu"):
    from genphys.models import VAE, VAEConfig

    return VAE(VAEConfig(n_features=784, latent_dim=latent, hidden=hidden,
                         activation=activation, likelihood="bernoulli"))


def pythae_vae(init):
    """pythae VAE; its encoder/decoder hold copies of genphys VAE ``init``'s Linear/ReLU nets
    (+ Sigmoid: pythae's BCE takes probabilities), so weights map by name. The encoder's last
    layer gives [mu; log variance], as genphys's ``encode``; pythae's log_covariance = log var."""
    import copy

    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = copy.deepcopy(init.encoder)

        def forward(self, x):
            mu, log_var = self.net(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(*copy.deepcopy(init.decoder), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(-1, 1, 28, 28))

    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
    return VAE(cfg, encoder=Encoder(), decoder=Decoder())


def run_child(args: argparse.Namespace) -> None:
    """Train one run; write its weights (genphys layout) and timings for the parent."""
    import torch

    from genphys.data import DataConfig, prepare_data

    threads = pin_threads(args.threads)
    torch.manual_seed(0)
    init = genphys_vae()  # the same starting weights for every run
    torch.optim.Adam(init.parameters())  # torch's one-off import of torch._dynamo (~1 s), untimed
    data = prepare_data(DataConfig(name="fashion-mnist", binarize="dynamic", val_fraction=0),
                        root=args.data_root, download=False)
    marks: list[float] = []  # perf_counter after every optimizer step
    if args.only == "genphys":
        from genphys.training import Trainer, TrainerConfig, build_objective

        model, obj = init, build_objective("autoencoder")
        obj.step = lambda ctx, b, f=obj.step: (f(ctx, b), marks.append(time.perf_counter()))[0]
        cfg = TrainerConfig(epochs=args.epochs, batch_size=BATCH, optimizer="adam", lr=LR,
                            progress=False, seed=0)
        t0 = time.perf_counter()
        Trainer(model, obj, cfg).fit(data.train, batch_transform=data.batch_transform)
    else:
        logging.disable(logging.INFO)  # pythae logs its settings and progress at INFO
        x, model = data.train.view(-1, 1, 28, 28), pythae_vae(init)
        if args.only == "pythae-trainer":
            from pythae.data.datasets import BaseDataset, DatasetOutput
            from pythae.trainers import BaseTrainer, BaseTrainerConfig
            from pythae.trainers.training_callbacks import TrainingCallback

            class DynamicBinarized(BaseDataset):  # a fresh Bernoulli draw per image and epoch
                def __getitem__(self, i):
                    return DatasetOutput(data=torch.bernoulli(self.data[i]), labels=self.labels[i])

            class Timer(TrainingCallback):
                def on_train_step_end(self, training_config, **kw):
                    marks.append(time.perf_counter())

            with tempfile.TemporaryDirectory() as tmp:
                cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=args.epochs, no_cuda=True,
                                        per_device_train_batch_size=BATCH, learning_rate=LR,
                                        optimizer_cls="Adam", seed=0)
                tr = BaseTrainer(model, DynamicBinarized(x, torch.zeros(len(x))),
                                 training_config=cfg, callbacks=[Timer()])
                t0 = time.perf_counter()
                tr.train()
            model = tr._best_model  # what pythae saves as final_model (lowest train loss)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=LR)
            g = torch.Generator().manual_seed(0)
            nb = len(x) // BATCH  # full batches only, as genphys's Trainer
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                for idx in torch.randperm(len(x), generator=g)[: nb * BATCH].view(nb, BATCH):
                    loss = model({"data": torch.bernoulli(x[idx], generator=g)}).loss
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    marks.append(time.perf_counter())
    state = {k.replace(".net.", "."): v for k, v in model.state_dict().items()}  # -> genphys
    per = len(marks) // args.epochs  # epoch i: from its first step's start (t0) to its last step
    ends = [t0, *marks[per - 1 :: per]]
    res = {"threads": threads, "steps": len(marks), "rss_mb": peak_rss_mb(),
           "epoch_s": [b - a for a, b in itertools.pairwise(ends)],
           "median_step_s": statistics.median(b - a for a, b in itertools.pairwise(marks))}
    torch.save({k: v.detach().cpu() for k, v in state.items()}, args.out + ".pt")
    Path(args.out + ".json").write_text(json.dumps(res))


def spawn(args: argparse.Namespace, which: str, tmp: str) -> dict:
    import torch

    out = str(Path(tmp) / which)
    env = dict(os.environ, TQDM_DISABLE="1", **{k: str(args.threads) for k in THREAD_VARS})
    cmd = [sys.executable, __file__, "--only", which, "--out", out, "--threads",
           str(args.threads), "--epochs", str(args.epochs), "--data-root", args.data_root]
    subprocess.run(cmd, env=env, check=True)
    model = genphys_vae()
    model.load_state_dict({**model.state_dict(), **torch.load(out + ".pt")})
    return {**json.loads(Path(out + ".json").read_text()), "model": model}


def main_compare(args: argparse.Namespace) -> None:
    import torch

    from genphys.data import load_mnist
    from genphys.evaluation import iwae_log_likelihood, mean_estimate

    pythae_error = None
    try:
        import pythae.models  # noqa: F401
    except Exception as exc:  # any failure to import it: genphys alone
        pythae_error = f"{type(exc).__name__}: {exc}"
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        fits = {w: spawn(args, w, tmp) for w in RUNS if pythae_error is None or w == "genphys"}
    load1 = os.getloadavg()
    pin_threads(args.threads)
    test = load_mnist("fashion-mnist", "test", root=args.data_root, download=False).x
    sub = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.n_test]
    x = torch.bernoulli(test[sub], generator=torch.Generator().manual_seed(0))
    for r in fits.values():  # iwae_nll(...) is mean_estimate of minus these per-image values
        t, gen = time.perf_counter(), torch.Generator().manual_seed(1)  # same draws for all
        r["nll_n"] = -iwae_log_likelihood(r["model"], x, k=args.k, generator=gen)
        r["nll"], r["eval_s"] = mean_estimate(r["nll_n"]), time.perf_counter() - t
    g, row = fits["genphys"], ("{:34s}" + " {:>20s}" * len(fits)).format
    fast = {w: min(r["epoch_s"]) for w, r in fits.items()}  # the least disturbed epoch
    med = {w: r["median_step_s"] * r["steps"] / args.epochs for w, r in fits.items()}
    lines = [
        f"\n=== VAE 784-512-512-{LATENT} ReLU, Bernoulli, Adam {LR:g}, batch {BATCH}, "
        f"{args.epochs} epochs, dynamically binarized Fashion-MNIST (60,000), "
        f"{args.threads} threads ===",
        f"threads: {g['threads']}; load average (1 min) before/after training {load0[0]:.2f}/"
        f"{load1[0]:.2f}, after scoring {os.getloadavg()[0]:.2f}, on {os.cpu_count()} CPUs",
        row("", *fits),
        row("s / epoch: fastest (mean)", *(f"{fast[w]:.2f} ({statistics.mean(r['epoch_s']):.2f})"
                                          for w, r in fits.items())),
        row("s per epoch, each", *(" ".join(f"{s:.1f}" for s in r["epoch_s"])
                                   for r in fits.values())),
        row("median step ms x steps = s/epoch", *(f"{1e3 * r['median_step_s']:.1f}x"
                                                  f"{r['steps'] // args.epochs}={med[w]:.2f}"
                                                  for w, r in fits.items())),
        row(f"test NLL, IWAE k={args.k} (time)", *(f"{r['nll'].value:.2f} ± {r['nll'].stderr:.2f}"
                                                  f" ({r['eval_s']:.0f}s)" for r in fits.values())),
        row("peak RSS MB (child)", *(f"{r['rss_mb']:.0f}" for r in fits.values())),
        "s/epoch: wall time from the fit call (set-up in epoch 1) to each epoch's last step",
        f"test NLL in nats on {len(x)} of the 10,000 test images (seeded subset, binarized "
        "once, seed 0), scored by genphys's iwae_log_likelihood with the same draws; 'no worse' = "
        "within 2 SE (both printed SEs combined): the paired SE omits seed noise (~2 nats here)",
        "pythae-trainer: its DataLoader over a Dataset drawing Bernoulli(x) per image (dynamic), "
        "tqdm off; scored: its best-train-loss copy (final_model)" if pythae_error is None
        else f"pythae unavailable ({pythae_error}): genphys alone",
    ]
    checks = []
    for w in RUNS[1:] if pythae_error is None else ():
        d = mean_estimate(g["nll_n"] - fits[w]["nll_n"])
        se = math.hypot(g["nll"].stderr, fits[w]["nll"].stderr)
        lines.append(f"NLL genphys - {w}: {d.value:+.2f} ± {se:.2f} (paired over the same "
                     f"images: ± {d.stderr:.2f})")
        for label, s in (("fastest epoch", fast), ("median step", med)):
            checks.append((s[w] / s["genphys"] >= 1.5, f"genphys >= 1.5x faster per epoch than "
                           f"{w}, {label} ({s[w] / s['genphys']:.2f}x)"))
        checks.append((d.value <= 2 * se, f"genphys test NLL no worse than {w}'s "
                       f"(difference {d.value:+.2f} <= 2 SE = {2 * se:.2f})"))
    print("\n".join([*lines, "", *(f"{'PASS' if ok else 'FAIL'}: {t}" for ok, t in checks)]))


def main_burda(args: argparse.Namespace) -> None:
    import torch

    from genphys.data import DataConfig, prepare_data
    from genphys.evaluation import elbo_estimate, iwae_nll
    from genphys.training import Trainer, TrainerConfig, build_objective

    threads, load0 = pin_threads(args.threads), os.getloadavg()
    data = prepare_data(DataConfig(name="mnist", split="test", binarize="dynamic",
                                   val_fraction=0.1, seed=0), root=args.mnist_root, download=False)
    held = torch.bernoulli(data.val, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = genphys_vae(latent=50, hidden=(200, 200), activation="tanh")
    cfg = TrainerConfig(epochs=args.burda_epochs, batch_size=100, optimizer="adam", lr=LR,
                        progress=False, seed=0)
    tr, t = Trainer(model, build_objective("autoencoder"), cfg), time.perf_counter()
    tr.fit(data.train, batch_transform=data.batch_transform)
    fit_s, t = time.perf_counter() - t, time.perf_counter()
    elbo = elbo_estimate(model, held)["elbo"]
    nll = iwae_nll(model, held, k=args.burda_k, generator=torch.Generator().manual_seed(1))
    print("\n".join([
        f"\n=== Burda et al. setting: VAE 784-200-200-50 tanh, Bernoulli, Adam {LR:g}, batch "
        f"100, {cfg.epochs} epochs, dynamically binarized MNIST, {args.threads} threads ===",
        f"threads: {threads}; load average before/after {load0[0]:.2f}/{os.getloadavg()[0]:.2f}",
        f"data: only the 10,000 MNIST test-file images exist here: seeded split "
        f"{len(data.train)} train / {len(data.val)} held out (held out binarized once, seed 0)",
        f"training {fit_s:.0f} s ({fit_s / cfg.epochs:.2f} s / epoch), last-epoch train loss "
        f"{tr.history[-1]['train/loss']:.2f}; scoring {time.perf_counter() - t:.0f} s",
        f"held-out -ELBO (1 sample): {-elbo.value:.2f} ± {elbo.stderr:.2f} nats",
        f"held-out NLL, IWAE k={args.burda_k}: {nll.value:.2f} ± {nll.stderr:.2f} nats",
        f"published, Burda et al. 2015 Table 1 (VAE, 1 stochastic layer, k=1, full MNIST): "
        f"{BURDA_VAE_K1} nats",
        "NOT comparable: they train on the 60,000 training images (here 9,000), 3,280 epochs, lr "
        "decaying from 1e-3, and test on the 10,000 test images (here 1,000 of the same file).",
    ]))


def main() -> None:
    args = parse_args()
    for k in THREAD_VARS:  # before torch is imported (here and in the children)
        os.environ[k] = str(args.threads)
    if args.only:
        run_child(args)
    elif args.burda:
        main_burda(args)
    else:
        main_compare(args)


if __name__ == "__main__":
    main()
