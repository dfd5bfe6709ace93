"""genphys VAE vs pythae's VAE: seconds per epoch and IWAE test NLL on binarized Fashion-MNIST.

784-512-512 -> 8 ReLU MLP VAEs with a Bernoulli decoder (BCE summed over pixels + KL), the same
starting weights, Adam (lr 1e-3, batch 128), 60,000 training images binarized afresh each batch,
the same thread count. Each run trains in its own subprocess (own peak RSS): genphys's
``Trainer``; pythae's ``BaseTrainer``; a plain loop over pythae's model
(``model({"data": x}).loss`` + torch Adam). All are scored by genphys's IWAE estimator::

    python benchmarks/vae_vs_pythae.py [--epochs 3] [--threads 2] [--n-test 2000] [--profile]
    python benchmarks/vae_vs_pythae.py --burda [--burda-epochs 100]   # genphys only
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--profile", action="store_true", help="torch.profiler on 100 genphys steps")
    p.add_argument("--burda", action="store_true", help="latent 50, 200-200 tanh VAE on MNIST")
    p.add_argument("--burda-epochs", type=int, default=100)
    p.add_argument("--burda-k", type=int, default=5000)
    p.add_argument("--only", choices=RUNS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def pin_threads(n: int) -> str:
    import torch

    torch.set_num_threads(n)  # OMP/MKL/OPENBLAS_NUM_THREADS are set before torch is imported
    return f"torch {torch.get_num_threads()}, OMP {os.environ.get('OMP_NUM_THREADS')}"


def genphys_vae(latent: int = LATENT, hidden: tuple = HIDDEN, activation: str = "relu"):
    from genphys.models import VAE, VAEConfig

    return VAE(VAEConfig(n_features=784, latent_dim=latent, hidden=hidden,
                         activation=activation, likelihood="bernoulli"))


def to_genphys(p: dict) -> dict:
    """pythae encoder/decoder weights -> genphys VAE keys (its 2*latent head is [mu; logvar])."""
    import torch

    g = {k.replace(".net.", "."): v for k, v in p.items() if ".net." in k}
    g |= {f"encoder.4.{t}": torch.cat([p[f"encoder.embedding.{t}"], p[f"encoder.log_var.{t}"]])
          for t in ("weight", "bias")}
    return g


def pythae_vae(init: dict):
    """pythae VAE with custom MLP encoder/decoder holding the genphys weights ``init``."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    h1, h2 = HIDDEN

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
            self.embedding, self.log_var = nn.Linear(h2, LATENT), nn.Linear(h2, LATENT)

        def forward(self, x):
            h = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(LATENT, h2), nn.ReLU(), nn.Linear(h2, h1),
                                     nn.ReLU(), nn.Linear(h1, 784), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(-1, 1, 28, 28))

    enc, dec = Encoder(), Decoder()
    for m, mod in (("encoder", enc), ("decoder", dec)):  # the same Sequential indices
        mod.net.load_state_dict({k.removeprefix(f"{m}."): v for k, v in init.items()
                                 if k.startswith(f"{m}.") and not k.startswith("encoder.4.")})
    for t in ("weight", "bias"):
        mu, logvar = init[f"encoder.4.{t}"].chunk(2)
        getattr(enc.embedding, t).data.copy_(mu)
        getattr(enc.log_var, t).data.copy_(logvar)
    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
    return VAE(cfg, encoder=enc, decoder=dec)


def run_child(args: argparse.Namespace) -> None:
    import torch

    from genphys.data import DataConfig, prepare_data

    res: dict = {"threadpools": pin_threads(args.threads)}
    torch.manual_seed(0)
    init = genphys_vae().state_dict()  # the same starting weights for every run
    data = prepare_data(DataConfig(name="fashion-mnist", binarize="dynamic", val_fraction=0),
                        root=args.data_root, download=False)
    marks: list[float] = []  # perf_counter after every optimizer step
    epoch_s: list[float] = []
    if args.only == "genphys":
        from genphys.training import Trainer, TrainerConfig, build_objective

        model, obj = genphys_vae(), build_objective("autoencoder")
        model.load_state_dict(init)
        step = obj.step
        obj.step = lambda ctx, b: (_out := step(ctx, b), marks.append(time.perf_counter()))[0]
        cfg = TrainerConfig(epochs=args.epochs, batch_size=BATCH, optimizer="adam", lr=LR,
                            progress=False, seed=0)
        tr = Trainer(model, obj, cfg)
        t0 = time.perf_counter()
        tr.fit(data.train, batch_transform=data.batch_transform)
        epoch_s = [h["seconds"] for h in tr.history]  # the trainer's own epoch-loop timer
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            cfg.epochs, cfg.max_steps = 1, 100
            tr = Trainer(genphys_vae(), build_objective("autoencoder"), cfg)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                tr.fit(data.train, batch_transform=data.batch_transform)
            print("\n== torch.profiler: 100 genphys steps, sorted by self CPU time ==")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
    else:
        logging.getLogger("pythae").setLevel(logging.WARNING)
        x, model = data.train.view(-1, 1, 28, 28), pythae_vae(init)
        if args.only == "pythae-trainer":
            from pythae.data.datasets import BaseDataset, DatasetOutput
            from pythae.trainers import BaseTrainer, BaseTrainerConfig
            from pythae.trainers.training_callbacks import TrainingCallback

            class DynamicBinarized(BaseDataset):  # a fresh Bernoulli draw per image and epoch
                def __getitem__(self, i):
                    return DatasetOutput(data=torch.bernoulli(self.data[i]), labels=self.labels[i])

            class Timer(TrainingCallback):
                def on_epoch_begin(self, training_config, **kw):
                    self.t = time.perf_counter()

                def on_train_step_end(self, training_config, **kw):
                    marks.append(time.perf_counter())

                def on_epoch_end(self, training_config, **kw):
                    epoch_s.append(time.perf_counter() - self.t)

            with tempfile.TemporaryDirectory() as tmp:
                cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=args.epochs, no_cuda=True,
                                        per_device_train_batch_size=BATCH, learning_rate=LR,
                                        optimizer_cls="Adam", seed=0)
                ds = DynamicBinarized(x, torch.zeros(len(x)))
                tr = BaseTrainer(model, ds, training_config=cfg, callbacks=[Timer()])
                t0 = time.perf_counter()
                tr.train()
            model = tr._best_model  # what pythae saves as final_model (lowest train loss)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=LR)
            g = torch.Generator().manual_seed(0)
            nb = len(x) // BATCH  # full batches only, as genphys's Trainer
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                t = time.perf_counter()
                for idx in torch.randperm(len(x), generator=g)[: nb * BATCH].view(nb, BATCH):
                    loss = model({"data": torch.bernoulli(x[idx], generator=g)}).loss
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    marks.append(time.perf_counter())
                epoch_s.append(time.perf_counter() - t)
        model = {f"{m}.{k}": v for m in ("encoder", "decoder")
                 for k, v in getattr(model, m).state_dict().items()}
    steps = [b - a for a, b in zip([t0, *marks], marks, strict=False)]
    res.update(fit_s=marks[-1] - t0, epoch_s=epoch_s, steps=len(marks),
               median_step_s=statistics.median(steps), rss_mb=peak_rss_mb())
    state = model.state_dict() if args.only == "genphys" else to_genphys(model)
    torch.save({k: v.detach().cpu() for k, v in state.items()}, args.out + ".pt")
    Path(args.out + ".json").write_text(json.dumps(res))


def peak_rss_mb() -> float:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next((int(s.split()[1]) / 1024 for s in lines if s.startswith("VmHWM:")), math.nan)


def spawn(args: argparse.Namespace, which: str, tmp: str) -> dict:
    import torch

    out = str(Path(tmp) / which)
    env = dict(os.environ, TQDM_DISABLE="1", **{k: str(args.threads) for k in THREAD_VARS})
    cmd = [sys.executable, __file__, "--only", which, "--out", out, "--threads",
           str(args.threads), "--epochs", str(args.epochs), "--data-root", args.data_root]
    subprocess.run(cmd + (["--profile"] if args.profile else []), env=env, check=True)
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
        t = time.perf_counter()
        gen = torch.Generator().manual_seed(1)  # the same draws for every model
        r["nll_n"] = -iwae_log_likelihood(r["model"], x, k=args.k, generator=gen)
        r["nll"], r["eval_s"] = mean_estimate(r["nll_n"]), time.perf_counter() - t
    g = fits["genphys"]
    wall = {w: sum(r["epoch_s"]) / len(r["epoch_s"]) for w, r in fits.items()}
    med = {w: r["median_step_s"] * r["steps"] / args.epochs for w, r in fits.items()}
    row = ("{:34s}" + " {:>20s}" * len(fits)).format
    lines = [
        f"\n=== VAE 784-512-512-{LATENT} ReLU, Bernoulli, Adam {LR:g}, batch {BATCH}, "
        f"{args.epochs} epochs, dynamically binarized Fashion-MNIST (60,000), "
        f"{args.threads} threads ===",
        f"threads: {g['threadpools']}; load average (1 min) before/after training "
        f"{load0[0]:.2f}/{load1[0]:.2f}, after scoring {os.getloadavg()[0]:.2f}, "
        f"on {os.cpu_count()} CPUs",
        row("", *fits),
        row("optimizer steps", *(str(r["steps"]) for r in fits.values())),
        row("s / epoch, wall (mean)", *(f"{wall[w]:.2f}" for w in fits)),
        row("s per epoch, each", *(" ".join(f"{s:.1f}" for s in r["epoch_s"])
                                   for r in fits.values())),
        row("median step ms (x steps = s/epoch)", *(f"{1e3 * r['median_step_s']:.1f} "
                                                    f"({med[w]:.2f})" for w, r in fits.items())),
        row("whole fit s (from fit() call)", *(f"{r['fit_s']:.1f}" for r in fits.values())),
        row(f"test NLL, IWAE k={args.k}", *(f"{r['nll'].value:.2f} ± {r['nll'].stderr:.2f}"
                                           for r in fits.values())),
        row("scoring s", *(f"{r['eval_s']:.0f}" for r in fits.values())),
        row("peak RSS MB (child)", *(f"{r['rss_mb']:.0f}" for r in fits.values())),
        f"test NLL in nats on {len(x)} of the 10,000 test images (seeded subset, binarized "
        "once with seed 0), all scored by genphys.evaluation.iwae_log_likelihood, same draws",
    ]
    checks = []
    if pythae_error is not None:
        lines.append(f"pythae unavailable ({pythae_error}): genphys alone, no comparison")
    else:
        lines.append("pythae-trainer: its DataLoader over a Dataset drawing Bernoulli(x) per "
                     "image (dynamic), tqdm off; scored: its best-train-loss copy (final_model)")
    for w, what in (("pythae-trainer", "pythae's BaseTrainer"),
                    ("pythae-loop", "a plain loop over pythae's model")):
        if w not in fits:
            continue
        d = mean_estimate(g["nll_n"] - fits[w]["nll_n"])
        se = math.hypot(g["nll"].stderr, fits[w]["nll"].stderr)
        lines.append(f"NLL genphys - {w}: {d.value:+.2f} ± {d.stderr:.2f} (paired over the "
                     f"same images; unpaired SE {se:.2f})")
        for label, s in (("wall", wall), ("median-step", med)):
            checks.append((s[w] / s["genphys"] >= 1.5, f"genphys >= 1.5x faster per epoch than "
                           f"{what}, {label} ({s[w] / s['genphys']:.2f}x)"))
        checks.append((d.value <= 2 * d.stderr, f"genphys test NLL no worse than {w}'s "
                       f"(difference {d.value:+.2f} <= 2 paired SE = {2 * d.stderr:.2f})"))
    print("\n".join([*lines, "", *(f"{'PASS' if ok else 'FAIL'}: {t}" for ok, t in checks)]))


def main_burda(args: argparse.Namespace) -> None:
    import torch

    from genphys.data import DataConfig, prepare_data
    from genphys.evaluation import elbo_estimate, iwae_nll
    from genphys.training import Trainer, TrainerConfig, build_objective

    pools, load0 = pin_threads(args.threads), os.getloadavg()
    data = prepare_data(DataConfig(name="mnist", split="test", binarize="dynamic",
                                   val_fraction=0.1, seed=0), root=args.mnist_root, download=False)
    held = torch.bernoulli(data.val, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = genphys_vae(latent=50, hidden=(200, 200), activation="tanh")
    cfg = TrainerConfig(epochs=args.burda_epochs, batch_size=100, optimizer="adam", lr=LR,
                        progress=False, seed=0)
    tr = Trainer(model, build_objective("autoencoder"), cfg)
    t = time.perf_counter()
    tr.fit(data.train, batch_transform=data.batch_transform)
    fit_s, t = time.perf_counter() - t, time.perf_counter()
    elbo = elbo_estimate(model, held)["elbo"]
    nll = iwae_nll(model, held, k=args.burda_k, generator=torch.Generator().manual_seed(1))
    print("\n".join([
        f"\n=== Burda et al. setting: VAE 784-200-200-50 tanh, Bernoulli, Adam {LR:g}, batch "
        f"100, {cfg.epochs} epochs, dynamically binarized MNIST, {args.threads} threads ===",
        f"threads: {pools}; load average before/after {load0[0]:.2f}/{os.getloadavg()[0]:.2f}",
        f"data: only the 10,000 MNIST test-file images exist here: seeded split "
        f"{len(data.train)} train / {len(data.val)} held out (held out binarized once, seed 0)",
        f"training {fit_s:.0f} s ({fit_s / cfg.epochs:.2f} s / epoch), last-epoch train loss "
        f"{tr.history[-1]['train/loss']:.2f}; scoring {time.perf_counter() - t:.0f} s",
        f"held-out -ELBO (1 sample): {-elbo.value:.2f} ± {elbo.stderr:.2f} nats",
        f"held-out NLL, IWAE k={args.burda_k}: {nll.value:.2f} ± {nll.stderr:.2f} nats",
        f"published, Burda et al. 2015 Table 1 (VAE, 1 stochastic layer, k=1, full MNIST): "
        f"{BURDA_VAE_K1} nats",
        "NOT comparable: they train on the 60,000 MNIST training images (here 9,000) for 3,280 "
        "epochs and test on the 10,000 test images (here 1,000 held out from the same file).",
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
