"""EBM benchmark: Langevin throughput of the CNN energy, and sample quality after a fixed budget.

1. Langevin steps per second of the UvA tutorial's CNN energy at batch 128 on 28x28 images,
   and the FLOPs of a step (forward plus input gradient, counted by torch's FlopCounterMode)
   over its time, as a fraction of this machine's matmul and convolution throughput measured
   in the same run (target: at least 50%).
2. An EBM trained on Fashion-MNIST (scaled to [-1, 1]) for ``--epochs`` epochs (default 1,
   the tutorial's recipe otherwise), then FID, classifier score and MMD of ``--n-samples``
   samples (default 2,000; ``--sample-steps`` Langevin steps from noise) against the test
   images, beside real training
   images against them (the floor) and beside the DCGAN of ``gan_quality.py`` when its run is
   present::

    .venv/bin/python benchmarks/ebm.py [--epochs 1] [--threads 2] [--skip-training]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from gan_quality import ROOT, check_reuse, peak_throughput, quality, start


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=60, help="timed Langevin steps")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--n-samples", type=int, default=2_000, help="Langevin is costly: 2,000")
    p.add_argument("--sample-steps", type=int, default=256)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-ebm"))
    p.add_argument("--skip-training", action="store_true", help="throughput only")
    return p.parse_args()


def langevin_throughput(torch, batch: int, steps: int) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    from genphys.models import EBM
    from genphys.samplers import LangevinSampler

    model = EBM(image_shape=(1, 28, 28)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    sampler = LangevinSampler(10.0, 0.005, grad_clamp=0.03, clamp=(-1.0, 1.0))
    state = sampler.init_state((batch, 784), seed=0)
    x = state.x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:  # one step: E(x) and grad_x E
        model.energy(x).sum().backward()
    flops = float(counter.get_total_flops())
    sampler.sample(model.energy, state, 5)  # warm-up
    t = time.perf_counter()
    sampler.sample(model.energy, state, steps)
    seconds = (time.perf_counter() - t) / steps
    return {"steps_per_second": 1 / seconds, "gflop_per_step": flops / 1e9,
            "gflops": flops / seconds / 1e9}  # fmt: skip


def main() -> None:
    args = parse_args()
    torch, peak = start(args.threads)
    r = langevin_throughput(torch, args.batch_size, args.steps)
    after = peak_throughput(torch)  # the peaks again, right after the timed steps
    print(f"peak after the timed steps: matmul {after['matmul']:.1f}, conv {after['conv']:.1f} "
          f"GFLOP/s; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    peak = {k: max(v, after[k]) for k, v in peak.items()}
    frac_mm, frac_conv = r["gflops"] / peak["matmul"], r["gflops"] / peak["conv"]
    print(
        f"Langevin, CNN energy, batch {args.batch_size}: {r['steps_per_second']:.1f} steps/s, "
        f"{r['gflop_per_step']:.3f} GFLOP/step -> {r['gflops']:.1f} GFLOP/s = "
        f"{100 * frac_mm:.1f}% of matmul, {100 * frac_conv:.1f}% of conv throughput "
        "(the higher of each peak measured before and after)"
    )
    frac = min(frac_mm, frac_conv)  # against the faster of the two: the stricter reading
    print(f"{'PASS' if frac >= 0.5 else 'FAIL'}: >= 50% of measured throughput ({100 * frac:.1f}%)")
    results: dict = {"langevin": r, "peak": peak}
    if not args.skip_training:
        from genphys import io
        from genphys.training.run import resolve_config, train

        out = Path(args.out) / "ebm"
        cfg = resolve_config(
            "ebm",
            {
                "model": {"config": {"architecture": "cnn"}},
                "trainer": {"epochs": args.epochs, "progress": False},
                "data": {"name": "fashion-mnist", "val_fraction": 0.0},
            },
        )
        t = time.perf_counter()
        if not (out / io.MODEL_FILE).is_file():
            train(cfg, out=out, resume=out.exists())
            print(f"training: {time.perf_counter() - t:.0f} s for {args.epochs} epoch(s)")
        else:
            check_reuse(out, cfg)
        results["ebm"] = quality(out, args)
        for name in ("dcgan-ema0.999", "dcgan"):  # gan_quality.py's run, with the average or not
            gan = ROOT / "runs" / "bench-gan" / name
            if (gan / io.MODEL_FILE).is_file():
                results["dcgan"] = quality(gan, args)
                break
        for name, q in results.items():
            if name in ("langevin", "peak"):
                continue
            fid, score, mmd = q["fid"], q["is"], q["mmd"]
            print(
                f"{name}: FID {fid['value']:.2f} ± {fid['stderr']:.2f} (real vs real "
                f"{fid['real_vs_real']['value']:.2f}); IS {score['value']:.3f} "
                f"({100 * score['fraction_of_real']:.1f}% of real {score['real']['value']:.3f}); "
                f"MMD^2 {mmd['value']:.5f} (floor {mmd['real_vs_real']['value']:.5f})"
            )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
