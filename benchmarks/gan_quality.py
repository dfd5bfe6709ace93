"""DCGAN and MLP GAN on Fashion-MNIST: speed, and sample quality against the real-vs-real floor.

Both GANs train ``--epochs`` epochs (default 5) on the 60,000 Fashion-MNIST training images
scaled to [-1, 1] (the DCGAN tutorial's networks, noise 100; the MLP GAN: noise 20, hidden 100),
side by side in one run, through genphys's Trainer, with Radford et al.'s DCGAN optimizer
(Adam 2e-4, beta1 0.5, batch 64: five epochs are 4,685 steps; the tutorial's Adam 1e-4 with
batch 256 gives 1,170, too few for recognisable samples). Printed for each:
seconds per epoch (fastest and median), images per second, the FLOPs of one training step
(counted by torch's FlopCounterMode: both players, forward and backward) over the epoch time as
a fraction of this machine's dense matmul and convolution throughput measured in the same run,
then FID and classifier score (IS) of 10,000 samples and MMD of the first 2,000 (its cost
is quadratic) against the 10,000 test images,
each beside real training images against the same test images (the floor), using the
classifier packaged for Fashion-MNIST. Each GAN keeps a moving average of its generator
(``--ema-decay``, 0 for none); the average's samples and the trained generator's are scored::

    .venv/bin/python benchmarks/gan_quality.py [--epochs 5] [--threads 2] [--out runs/bench-gan]

Finished runs in ``--out`` are reused (their recorded epoch times are reported), so the quality
part can be re-run alone. Targets: the DCGAN's classifier score >= 85% of the real test set's,
its FID within 5x of the real-vs-real floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-gan"))
    p.add_argument("--only", choices=["dcgan", "mlp"], help="train and score one GAN")
    p.add_argument("--g-steps", type=int, default=1, help="generator updates per step")
    p.add_argument(
        "--ema-decay",
        type=float,
        default=0.999,
        help="sample from a moving average of the generator (0: none); both are scored",
    )
    return p.parse_args()


def peak_throughput(torch, repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul and of the DCGAN's largest transposed convolution: the
    median of ``repeats`` calls after two warm-ups (as rbm_vs_sklearn.py measures)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    conv = torch.nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False)
    x = torch.randn(256, 256, 7, 7)
    out = {}
    with torch.no_grad():
        for name, fn, flops in [
            ("matmul", lambda: a @ b, 2 * 2048**3),
            ("conv", lambda: conv(x), 2 * 256 * 7 * 7 * 128 * 256 * 25),
        ]:
            times = [_timed(fn) for _ in range(repeats + 2)][2:]
            out[name] = flops / sorted(times)[len(times) // 2] / 1e9
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def step_flops(torch, model, objective_cfg: dict, batch: int) -> float:
    """FLOPs of one training step (discriminator and generator updates) of ``model``."""
    from torch.utils.flop_counter import FlopCounterMode

    from genphys.training import Adversarial, AdversarialConfig, Trainer, TrainerConfig

    data = torch.rand(batch, model.config.n_features) * 2 - 1
    cfg = TrainerConfig(epochs=1, batch_size=batch, optimizer="adam", lr=1e-4, progress=False)
    trainer = Trainer(model, Adversarial(AdversarialConfig(**objective_cfg)), cfg)
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.fit(data)
    return float(counter.get_total_flops())


def train_or_reuse(name: str, args: argparse.Namespace) -> tuple[Path, list[dict]]:
    from genphys import io
    from genphys.training.reporting import MetricsLog
    from genphys.training.run import resolve_config, train

    ema = args.ema_decay or None
    tag = (f"-ema{ema:g}" if ema else "") + (f"-g{args.g_steps}" if args.g_steps != 1 else "")
    out = Path(args.out) / f"{name}{tag}"
    model = {"architecture": name, "ema_decay": ema}
    cfg = resolve_config(
        "gan",
        {
            "model": {"config": model},
            "trainer": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "betas": [args.beta1, 0.999],
                "progress": False,
                "seed": 0,
            },
            "data": {"name": "fashion-mnist", "val_fraction": 0.0},
            "objective": {"config": {"g_steps": args.g_steps}},
        },
    )
    if not (out / io.MODEL_FILE).is_file():
        if out.exists():
            train(cfg, out=out, resume=True)
        else:
            train(cfg, out=out)
    else:
        check_reuse(out, cfg)
    return out, MetricsLog.read(out, 10**9)


def check_reuse(out: Path, cfg: dict) -> None:
    """Stop unless the finished run in ``out`` was trained with ``cfg``'s settings (its epoch
    times and samples are reused)."""
    from genphys.io import read_run_config

    have = read_run_config(out)
    keys = [("model", "config"), ("objective", "config"), ("trainer",), ("data", "name")]
    for path in keys:
        a, b = have, cfg
        for k in path:
            a, b = a.get(k), b.get(k)
        if isinstance(a, dict) and isinstance(b, dict):  # the settings asked for now
            b = {k: v for k, v in b.items() if k not in ("progress", "max_steps")}
            a = {k: a.get(k) for k in b}
        if a != b:
            raise SystemExit(
                f"{out} holds a finished run with other {'.'.join(path)} settings; pass another "
                "--out or delete it to train anew"
            )
    print(f"reusing the finished run in {out} (its epoch times are those of its training)")


def quality(run: Path, args: argparse.Namespace, live: bool = False) -> dict:
    """Sample quality of a run's samples; ``live``: a GAN's generator as trained, not its
    moving average."""
    from genphys import io
    from genphys.data import DataConfig, prepare_data
    from genphys.evaluation.sample_quality import packaged_classifier, quality_report
    from genphys.samplers import sample_model

    model, cfg = io.load_run(run)
    if live:
        model.generator_ema = None
    n = args.n_samples
    real = {"name": "fashion-mnist", "binarize": "none", "val_fraction": 0.0}
    test = prepare_data(DataConfig(**real, split="test")).train
    train = prepare_data(DataConfig(**real, limit=n)).train
    steps, langevin = getattr(args, "sample_steps", 1000), cfg["objective"].get("config")
    samples = (sample_model(model, n, 1, steps, langevin=langevin) + 1) / 2  # -> [0, 1] pixels
    return quality_report(
        samples, test[:n], train[:n], ("fid", "is", "mmd"), packaged_classifier("fashion-mnist")
    )


def start(threads: int):
    """Pin the thread count, point genphys at the shared data, print and return the peaks."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("GENPHYS_DATA", str(DATA.resolve()))
    import torch

    torch.set_num_threads(threads)
    from genphys.denormals import flush_denormals

    flush_denormals()
    print(f"threads {threads}, load average {os.getloadavg()[0]:.2f} at start")
    peak = peak_throughput(torch)
    print(f"measured peak: matmul {peak['matmul']:.1f} GFLOP/s, conv {peak['conv']:.1f} GFLOP/s")
    return torch, peak


def print_quality(q: dict) -> None:
    fid, score, mmd = q["fid"], q["is"], q["mmd"]
    print(
        f"FID {fid['value']:.2f} ± {fid['stderr']:.2f}  (real vs real "
        f"{fid['real_vs_real']['value']:.2f}; ratio {fid['ratio_to_floor']:.2f})"
    )
    print(
        f"IS  {score['value']:.3f} ± {score['stderr']:.3f}  (real test "
        f"{score['real']['value']:.3f}; {100 * score['fraction_of_real']:.1f}% of real)"
    )
    print(
        f"MMD^2 {mmd['value']:.5f} ± {mmd['stderr']:.5f}, p = {mmd['p_value']}  (real vs real "
        f"{mmd['real_vs_real']['value']:.5f} ± {mmd['real_vs_real']['stderr']:.5f})"
    )


def main() -> None:
    args = parse_args()
    torch, peak = start(args.threads)
    from genphys.models import GAN

    results = {}
    names = [args.only] if args.only else ["dcgan", "mlp"]
    for name in names:
        run, history = train_or_reuse(name, args)
        seconds = [m["seconds"] for m in history]
        steps = history[0]["step"]
        model = GAN(
            architecture=name, image_shape=(1, 28, 28), n_features=784
        )  # a throw-away copy to count FLOPs
        flops = step_flops(torch, model, {"g_steps": args.g_steps}, args.batch_size)
        best, median = min(seconds), statistics.median(seconds)
        rate = flops * steps / best / 1e9
        results[name] = {
            "seconds_per_epoch_best": best,
            "seconds_per_epoch_median": median,
            "images_per_second": steps * args.batch_size / best,
            "gflop_per_step": flops / 1e9,
            "gflops": rate,
            "fraction_of_matmul": rate / peak["matmul"],
            "fraction_of_conv": rate / peak["conv"],
            "quality": quality(run, args),
        }
        if args.ema_decay:
            results[name]["quality_live_generator"] = quality(run, args, live=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    for name, r in results.items():
        q = r["quality"]
        print(f"\n== {name} GAN ({args.epochs} epochs, batch {args.batch_size}) ==")
        print(
            f"seconds/epoch: best {r['seconds_per_epoch_best']:.1f}, median "
            f"{r['seconds_per_epoch_median']:.1f}; {r['images_per_second']:.0f} images/s"
        )
        print(
            f"{r['gflop_per_step']:.2f} GFLOP/step -> {r['gflops']:.1f} GFLOP/s = "
            f"{100 * r['fraction_of_matmul']:.1f}% of matmul, {100 * r['fraction_of_conv']:.1f}% "
            "of conv throughput"
        )
        if "quality_live_generator" in r:
            print(f"-- samples of the generator's moving average (decay {args.ema_decay:g}):")
        print_quality(q)
        if "quality_live_generator" in r:
            print("-- samples of the generator as trained:")
            print_quality(r["quality_live_generator"])
    if "dcgan" in results:
        q = results["dcgan"]["quality"]
        ok_is = q["is"]["fraction_of_real"] >= 0.85
        ok_fid = q["fid"]["ratio_to_floor"] <= 5
        print(f"\n{'PASS' if ok_is else 'FAIL'}: DCGAN classifier score >= 85% of real test's")
        print(f"{'PASS' if ok_fid else 'FAIL'}: DCGAN FID within 5x of the real-vs-real floor")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
