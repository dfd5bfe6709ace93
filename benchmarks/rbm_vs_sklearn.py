"""genphys BernoulliRBM vs scikit-learn's BernoulliRBM: one PCD-1 epoch on binarized Fashion-MNIST.

784x256 RBMs, batch 64, learning rate 0.05, plain SGD, one epoch on the 60,000 training images
binarized at 0.5, same thread count. Each library fits in its own subprocess (``--only``), so
each peak RSS is its own; the parent scores both with the same estimators (sklearn's
``score_samples`` pseudo-likelihood, genphys's AIS) and prints a table and PASS/FAIL lines::

    python benchmarks/rbm_vs_sklearn.py [--quick] [--threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NV, NH, BATCH, LR = 784, 256, 64, 0.05
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fashion-mnist"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PARAMS = ("weight", "visible_bias", "hidden_bias")  # = sklearn's components_.T, intercepts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(DEFAULT_ROOT.resolve()))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="10,000 images, short AIS")
    p.add_argument("--n-train", type=int, default=None, help="default 60000 (10000 with --quick)")
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=None, help="default 20000 (2000 --quick)")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="fits per library; the 1st is 'cold', the fastest later one counts",
    )
    p.add_argument("--sk-dtype", choices=["float32", "float64", "both"], default="both")
    p.add_argument("--profile", action="store_true", help="profile an extra genphys epoch")
    p.add_argument(
        "--reuse-hidden",
        action="store_true",
        help="genphys chains start from p(h|v) of the last gradient (sklearn's scheme)",
    )
    p.add_argument(
        "--eager",
        action="store_true",
        help="genphys without its compiled PCD step (CDConfig(compile=False))",
    )
    p.add_argument("--only", choices=["genphys", "sklearn"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.n_train = args.n_train or (10_000 if args.quick else 60_000)
    args.ais_betas = args.ais_betas or (2_000 if args.quick else 20_000)
    return args


def peak_rss_mb() -> dict[str, float]:
    """Peak RSS so far in MB: getrusage (KiB on Linux), the kernel's VmHWM; psutil's RSS now."""
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    status = Path("/proc/self/status")
    for x in status.read_text().splitlines() if status.exists() else []:
        if x.startswith("VmHWM:"):
            out["vmhwm"] = int(x.split()[1]) / 1024
    with contextlib.suppress(ImportError):  # psutil has no peak on Linux; VmHWM is the peak
        import psutil

        out["psutil_rss_now"] = psutil.Process().memory_info().rss / 2**20
    return out


def load_binarized(root: str, split: str, n: int | None = None):
    from genphys.data import binarize, load_mnist

    x = binarize(load_mnist("fashion-mnist", split, root=root, download=False).x, 0.5)
    return x[:n].contiguous() if n is not None else x


def timed(fn, *args) -> float:
    """Wall-clock seconds of ``fn(*args)``."""
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def matmul_gflops(mm, a, b, reps: int = 10) -> float:
    """Median GFLOP/s of ``mm(a, b)`` over ``reps`` calls after 2 warm-ups."""
    times = [timed(mm, a, b) for _ in range(reps + 2)][2:]
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / sorted(times)[len(times) // 2] / 1e9


def run_child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    pools = ["no threadpoolctl: env vars only"]
    with contextlib.suppress(ImportError):  # numpy's and torch's BLAS/OpenMP pools
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(limits=args.threads)
        pools = [f"{d['internal_api']}:{d['num_threads']}" for d in threadpool_info()]
    train = load_binarized(args.data_root, "train", args.n_train)
    res: dict = {
        "n_train": len(train),
        "rss_after_load_mb": peak_rss_mb(),
        "threadpools": [*pools, f"torch:{torch.get_num_threads()}"],
    }
    if args.only == "genphys":
        from genphys.models import BernoulliRBM, RBMConfig
        from genphys.training import CDConfig, ContrastiveDivergence, Trainer, TrainerConfig

        def make_trainer() -> Trainer:
            torch.manual_seed(0)
            model = BernoulliRBM(RBMConfig(n_visible=NV, n_hidden=NH, init_std=0.01))
            obj = ContrastiveDivergence(
                CDConfig(
                    k=1,
                    persistent=True,
                    init_visible_bias=False,
                    reuse_hidden=args.reuse_hidden,
                    compile=False if args.eager else "auto",
                )
            )
            return Trainer(
                model,
                obj,
                TrainerConfig(
                    epochs=1,
                    batch_size=BATCH,
                    lr=LR,
                    optimizer="sgd",
                    momentum=0.0,
                    progress=False,
                    seed=0,
                ),
            )

        def fit() -> tuple:
            tr = make_trainer()
            t = timed(tr.fit, train)
            fused = type(tr.objective.chains).__name__ == "CounterChains"
            res.update(epoch_loop_s=tr.history[-1]["seconds"], steps=tr.global_step, fused=fused)
            return t, *(getattr(tr.model, k).detach().numpy() for k in PARAMS)
    else:
        from sklearn.neural_network import BernoulliRBM as SkRBM

        x = train.numpy().astype(args.sk_dtype)  # sklearn keeps float32 or float64 as given
        res["steps"] = math.ceil(len(x) / BATCH)

        def fit() -> tuple:
            sk = SkRBM(
                n_components=NH, learning_rate=LR, batch_size=BATCH, n_iter=1, random_state=0
            )
            return timed(sk.fit, x), sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_

    runs = [fit() for _ in range(args.repeats)]
    res["rss_after_fit_mb"] = peak_rss_mb()
    times = [r[0] for r in runs]
    w, bv, bh = runs[-1][1:]
    res.update(fit_s_all=times, fit_s=min(times[1:] or times), cold_s=times[0], dtype=str(w.dtype))
    if args.only == "genphys":
        res["mm_gflops"] = matmul_gflops(torch.mm, *torch.randn(2, 2048, 2048))
        res["small_mm_gflops"] = matmul_gflops(
            torch.mm, torch.randn(BATCH, NV), torch.randn(NV, NH), reps=2000
        )  # one PCD GEMM
        if args.profile:  # one more epoch under torch.profiler
            from torch.profiler import ProfilerActivity, profile

            trainer = make_trainer()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer.fit(train)
            print("\n== torch.profiler: one genphys epoch, sorted by self CPU time ==")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
    else:
        a = np.random.default_rng(0).standard_normal((2, 2048, 2048), dtype=args.sk_dtype)
        res["mm_gflops"] = matmul_gflops(np.dot, *a)
    np.savez(args.out + ".npz", w=w, bv=bv, bh=bh)
    Path(args.out + ".json").write_text(json.dumps(res))


def spawn(args: argparse.Namespace, which: str, tmp: str, dtype: str = "float32") -> dict:
    import numpy as np

    out = str(Path(tmp) / f"{which}-{dtype}")
    env = dict(os.environ, **{k: str(args.threads) for k in THREAD_VARS})
    cmd = [
        sys.executable,
        __file__,
        "--only",
        which,
        "--out",
        out,
        "--sk-dtype",
        dtype,
        "--threads",
        str(args.threads),
        "--n-train",
        str(args.n_train),
        "--data-root",
        args.data_root,
        "--repeats",
        str(args.repeats),
    ]
    extra = [
        f"--{flag.replace('_', '-')}"
        for flag in ("profile", "reuse_hidden", "eager")
        if getattr(args, flag)
    ]
    load = os.getloadavg()[0]  # the child's own threads raise it while it runs
    subprocess.run(cmd + extra, env=env, check=True)
    params = {k: v.astype(np.float64) for k, v in np.load(out + ".npz").items()}
    return {**json.loads(Path(out + ".json").read_text()), **params, "load_before": load}


def genphys_rbm(w, bv, bh):
    """A float64 genphys BernoulliRBM holding the given (nv x nh) weights and biases."""
    import torch

    from genphys.models import BernoulliRBM, RBMConfig

    rbm = BernoulliRBM(RBMConfig(n_visible=w.shape[0], n_hidden=w.shape[1])).double()
    with torch.no_grad():
        for name, x in zip(PARAMS, (w, bv, bh), strict=True):
            getattr(rbm, name).copy_(torch.as_tensor(x))
    return rbm


def gradient_check() -> float:
    """Max |sklearn update - genphys SGD step| from the same parameters and chains."""
    import copy

    import numpy as np
    import torch
    from sklearn.neural_network import BernoulliRBM as SkRBM

    rng = np.random.default_rng(1)
    v_pos = (rng.random((BATCH, 20)) < 0.4).astype(np.float64)
    sk = SkRBM(n_components=7, learning_rate=LR, batch_size=BATCH)
    sk.components_, sk.intercept_visible_ = rng.normal(0, 0.3, (7, 20)), rng.normal(size=20)
    sk.intercept_hidden_, sk.h_samples_ = rng.normal(size=7), rng.random((BATCH, 7)) < 0.5
    state = np.random.RandomState(0)
    v_neg = sk._sample_visibles(sk.h_samples_, copy.deepcopy(state))  # sklearn's negatives

    def params() -> list:
        return [sk.components_.T.copy(), sk.intercept_visible_.copy(), sk.intercept_hidden_.copy()]

    before, g = params(), genphys_rbm(*params())
    f = g(torch.from_numpy(np.concatenate([v_pos, v_neg.astype(np.float64)])))
    (f[:BATCH].mean() - f[BATCH:].mean()).backward()  # ContrastiveDivergence's loss
    sk._fit(v_pos, state)
    after, sgd = params(), [-LR * getattr(g, k).grad.numpy() for k in PARAMS]
    return max(float(np.abs(x - y - z).max()) for x, y, z in zip(after, before, sgd, strict=True))


def evaluate(args: argparse.Namespace, fits: dict[str, dict]) -> dict[str, dict]:
    import torch
    from sklearn.neural_network import BernoulliRBM as SkRBM

    from genphys.evaluation import ais_log_partition, average_log_likelihood

    torch.set_num_threads(args.threads)
    test = load_binarized(args.data_root, "test")
    train = load_binarized(args.data_root, "train", args.n_train)
    x64 = test.double().numpy()
    out, pll = {}, {}
    for name, r in fits.items():
        sk = SkRBM(n_components=NH, random_state=0)  # the scorer: fixed random units
        sk.components_, sk.intercept_visible_, sk.intercept_hidden_ = r["w"].T, r["bv"], r["bh"]
        sk.n_features_in_ = NV
        pll[name] = sk.score_samples(x64)
        rbm = genphys_rbm(r["w"], r["bv"], r["bh"])
        t = time.perf_counter()
        ais = ais_log_partition(
            rbm, n_chains=args.ais_chains, n_betas=args.ais_betas, data=train, seed=0
        )
        ll = average_log_likelihood(rbm, test, ais)
        out[name] = {
            "pll": (pll[name].mean(), pll[name].std(ddof=1) / math.sqrt(len(x64))),
            "ll": (ll.value, ll.stderr),
            "log_z": (ais.log_z.value, ais.log_z.stderr),
            "ess": ais.ess,
            "ais_s": time.perf_counter() - t,
        }
    d = pll["genphys"] - pll["sklearn"]  # paired: the same random unit per test image
    out["pll_diff"] = (d.mean(), d.std(ddof=1) / math.sqrt(len(d)))
    return out


def main() -> None:
    args = parse_args()
    for k in THREAD_VARS:  # before numpy/torch are imported (here and in the children)
        os.environ[k] = str(args.threads)
    if args.only:
        run_child(args)
        return
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        fits = {"genphys": spawn(args, "genphys", tmp)}
        dtypes = ["float32", "float64"] if args.sk_dtype == "both" else [args.sk_dtype]
        sk_runs = {dt: spawn(args, "sklearn", tmp, dt) for dt in dtypes}
    best = min(sk_runs, key=lambda dt: sk_runs[dt]["fit_s"])
    fits["sklearn"] = sk_runs[best]
    ev = evaluate(args, fits)
    g, s = fits["genphys"], fits["sklearn"]
    # per PCD-1 step, in units of 2*B*nv*nh: p(h|v) of the chains (1; none with
    # --reuse-hidden, which takes it from the last gradient), p(v|h) of the chains (1),
    # p(h|v) of [data; chains] (2), the weight gradient (2). The free-energy gap logged on
    # every 10th step reuses that c + vW (no matrix product of its own), so it counts nothing
    units = 5 if args.reuse_hidden else 6
    flops = units * 2 * BATCH * NV * NH * g["steps"]
    frac = flops / g["fit_s"] / 1e9 / g["mm_gflops"]
    speedup = s["fit_s"] / g["fit_s"]
    rss = {k: max(r["rss_after_fit_mb"].values()) for k, r in fits.items()}
    load = {k: max(r["rss_after_load_mb"].values()) for k, r in fits.items()}
    ge, se = ev["genphys"], ev["sklearn"]
    row = "{:34s} {:>22s} {:>22s}".format
    lines = [
        f"\n=== RBM {NV}x{NH}, PCD-1, batch {BATCH}, lr {LR}, 1 epoch on {g['n_train']} "
        f"binarized Fashion-MNIST images, {args.threads} threads ===",
        f"thread pools (genphys child): {g['threadpools']}; load average before/after "
        f"{load0[0]:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; before each "
        "child: "
        + ", ".join(
            f"{n} {r['load_before']:.2f}"
            for n, r in [("genphys", g), *((f"sklearn {dt}", r) for dt, r in sk_runs.items())]
        )
        + " (the 1-minute average still holds the previous child's two threads)",
        *(
            f"sklearn {dt}: fits {', '.join(f'{t:.2f}' for t in r['fit_s_all'])} s"
            + ("  <- faster, used below" if dt == best else "")
            for dt, r in sk_runs.items()
        ),
        f"genphys: fits {', '.join(f'{t:.2f}' for t in g['fit_s_all'])} s "
        f"(epoch loop of the last {g['epoch_loop_s']:.2f} s; "
        f"{'compiled fused PCD step' if g['fused'] else 'eager PCD step'})",
        row("", "genphys", "sklearn"),
        row("dtype (training), PCD updates", *(f"{r['dtype']}, {r['steps']}" for r in (g, s))),
        row(
            "s / epoch: best later fit (cold)",
            *(f"{r['fit_s']:.2f} ({r['cold_s']:.2f})" for r in (g, s)),
        ),
        *(
            row(label, f"{ge[k][0]:.2f} ± {ge[k][1]:.2f}", f"{se[k][0]:.2f} ± {se[k][1]:.2f}")
            for k, label in (
                ("pll", "held-out PLL (sklearn scorer)"),
                ("ll", "held-out AIS log-likelihood"),
                ("log_z", "AIS log Z"),
            )
        ),
        row("AIS ESS / chains", *(f"{e['ess']:.1f} / {args.ais_chains}" for e in (ge, se))),
        row(
            "2048^3 matmul GFLOP/s (median)",
            f"{g['mm_gflops']:.0f} (torch f32)",
            f"{s['mm_gflops']:.0f} (numpy {s['dtype']})",
        ),
        row("peak RSS MB: after load / fits", *(f"{load[k]:.0f} / {rss[k]:.0f}" for k in fits)),
        f"\nspeed ratio sklearn/genphys (best later fits): {speedup:.2f}x "
        f"(cold: {s['cold_s'] / g['cold_s']:.2f}x)",
        f"genphys FLOPs/epoch: {units} x 2*B*nv*nh x {g['steps']} steps = {flops / 1e9:.1f} GFLOP "
        f"-> {flops / g['fit_s'] / 1e9:.1f} GFLOP/s = {100 * frac:.1f}% of the 2048^3 matmul; "
        f"a lone {BATCH}x{NV} @ {NV}x{NH} matmul runs at {g['small_mm_gflops']:.0f} GFLOP/s",
        f"paired PLL difference genphys - sklearn (same random unit per image): "
        f"{ev['pll_diff'][0]:.2f} ± {ev['pll_diff'][1]:.2f}",
        f"AIS: {args.ais_chains} chains x {args.ais_betas} linear betas, base rates from "
        f"{g['n_train']} training images ({ge['ais_s']:.0f} s per model)",
        f"gradient scaling: one sklearn update and one genphys SGD step from the same state "
        f"differ by {gradient_check():.1e} (both lr/B x batch sums)",
        "",
    ]
    checks = [
        (speedup >= 3, f"genphys >= 3x faster per epoch ({speedup:.2f}x)"),
        *(
            (
                ge[k][0] >= se[k][0],
                f"held-out {what} >= sklearn's ({ge[k][0]:.2f} vs {se[k][0]:.2f})",
            )
            for k, what in (("pll", "PLL"), ("ll", "AIS log-likelihood"))
        ),
        (frac >= 0.6, f">= 60% of measured matmul throughput ({100 * frac:.1f}%)"),
        (rss["genphys"] < 1536, f"genphys peak RSS < 1.5 GB ({rss['genphys']:.0f} MB)"),
    ]
    lines += [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
