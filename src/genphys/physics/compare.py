"""Judge generative models of Ising spins by the thermodynamics of their samples.

For every run directory: sample the model, measure the observables of its samples with
errors, and set them beside the Monte Carlo data the model learned from and the exact values
(Kaufman's energy and specific heat for any L; everything by enumeration for L <= 4), with
z-scores and relative errors. RBMs are sampled by long block-Gibbs chains whose measured
autocorrelation time enters the errors (Torlai and Melko 2016); other families draw
independent samples (VAE: Bernoulli draws from the decoder; GAN and EBM: outputs
thresholded at the middle of their range).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys import io
from genphys.errors import GenphysError
from genphys.evaluation.stats import Estimate
from genphys.physics import ising_exact as ex
from genphys.physics.dataset import IsingDataset, is_ising_file, ising_header, load_ising
from genphys.physics.observables import (
    OBSERVABLES,
    as_spins,
    energy_per_spin,
    magnetization_per_spin,
    spin_thermodynamics,
    thermodynamics,
)
from genphys.rng import derive_seed

LABELS = {
    "energy": "energy per spin",
    "abs_magnetization": "|m|",
    "specific_heat": "specific heat",
    "susceptibility": "susceptibility",
    "binder": "Binder cumulant",
}


def exact_values(L: int, T: float, h: float = 0.0) -> dict[str, float | None]:
    """Exact observables of the L x L torus at T and field h (None where no exact result is
    known: Kaufman's solution is for h = 0, enumeration for small L takes any h)."""
    out: dict[str, float | None] = dict.fromkeys(OBSERVABLES)
    if L <= ex.MAX_ENUMERATION_L:
        enum = ex.exact_observables(L, T, h)
        out.update({k: float(enum[k]) for k in OBSERVABLES})
    elif h == 0:
        out["energy"] = float(ex.kaufman_energy(L, T))
        out["specific_heat"] = float(ex.kaufman_specific_heat(L, T))
    return out


def rbm_chain_observables(
    model: Any, L: int, T: float, n_chains: int, steps: int, seed: int, h: float = 0.0
) -> dict[str, Estimate]:
    """Run ``n_chains`` Gibbs chains for ``steps`` sweeps from random starts; measure energy
    (at field ``h``) and magnetization every sweep of the second half, errors from the
    measured tau."""
    from genphys.models.rbm import as_rbm
    from genphys.samplers.gibbs import GibbsSampler

    rbm = as_rbm(model)
    sampler = GibbsSampler()
    state = sampler.init_state(rbm, n_chains, derive_seed(seed, 7))
    burn = steps // 2
    _, state = sampler.sample(rbm, state, burn)
    es, ms = [], []
    with torch.no_grad():
        for _ in range(steps - burn):
            v, state = sampler.sample(rbm, state, 1)
            spins = as_spins(v.cpu().numpy().round().astype(np.int8), L)
            es.append(energy_per_spin(spins, h))
            ms.append(magnetization_per_spin(spins))
    return thermodynamics(np.stack(es), np.stack(ms), L, T)


def model_spins(model: Any, cfg: dict[str, Any], n: int, seed: int) -> np.ndarray:
    """``n`` independent spin configurations from a VAE, GAN or EBM (see module doc)."""
    from genphys.samplers import sample_model

    langevin = cfg.get("objective", {}).get("config")
    x = sample_model(model, n, seed, 256, mean=False, langevin=langevin).detach().cpu()
    if hasattr(model, "encode") and not hasattr(model, "sample"):
        raise GenphysError("an autoencoder has no prior to sample spins from")
    values = x.unique()
    if bool(((values == 0) | (values == 1)).all()) or bool(((values == -1) | (values == 1)).all()):
        binary = x
    else:
        middle = 0.0 if cfg.get("data", {}).get("scale") == "symmetric" else 0.5
        binary = (x > middle).float()
    return as_spins(binary.numpy().astype(np.int8))


def compare_run(
    run_dir: str | Path,
    data: IsingDataset,
    n_samples: int = 2000,
    gibbs_steps: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Observables of one run's samples beside Monte Carlo and exact values."""
    model, cfg = io.load_run(run_dir)
    family = cfg.get("family", "?")
    if family == "grbm":
        raise GenphysError(f"run {run_dir} is a Gaussian RBM of continuous values, not of spins")
    T = cfg.get("data", {}).get("temperature")
    if T is None and len(data.temperatures) > 1:
        raise GenphysError(
            f"run {run_dir} records no temperature and the Ising data holds several; compare "
            "it with the single-temperature data it was trained on"
        )
    T = _check_trained_on(run_dir, cfg, data, T)
    k = data.index(T)
    T = float(data.temperatures[k])
    L, h = data.L, float(data.field)
    n_features = int(np.prod(cfg.get("image_shape") or [0]))
    if n_features != L * L:
        raise GenphysError(f"run {run_dir} models {n_features} values, the data has {L}x{L} spins")
    torch.manual_seed(derive_seed(seed, 1))
    if family == "rbm":
        model_est = rbm_chain_observables(model, L, T, n_samples, gibbs_steps, seed, h)
    else:
        model_est = spin_thermodynamics(model_spins(model, cfg, n_samples, seed), T, h)
    mc_est = thermodynamics(data.energy[k], data.magnetization[k], L, T)
    exact = exact_values(L, T, h)
    rows = {}
    for name in OBSERVABLES:
        m, mc, x = model_est[name], mc_est[name], exact[name]
        rows[name] = {
            "model": m.to_dict(),
            "monte_carlo": mc.to_dict(),
            "exact": x,
            "z_vs_mc": Estimate(m.value - mc.value, math.hypot(m.stderr, mc.stderr)).z_score(0),
            "relative_error_vs_mc": (m.value - mc.value) / abs(mc.value) if mc.value else None,
            "z_vs_exact": m.z_score(x) if x is not None else None,
        }
    return {"run": str(run_dir), "family": family, "T": T, "L": L, "h": h, "observables": rows}


def _check_trained_on(
    run_dir: str | Path, cfg: dict[str, Any], data: IsingDataset, T: float | None
) -> float | None:
    """The run's temperature, checked against the Ising file it was trained on when that file
    is at hand: the same L and field, and a temperature that ``data`` holds."""
    name = cfg.get("data", {}).get("name")
    if not name or not Path(name).is_absolute() or not Path(name).is_file():
        return T  # moved, relative to another directory, or no file: nothing to check
    if not is_ising_file(name):
        return T
    L, field, temps = ising_header(name)
    if T is None and len(temps) == 1:
        T = float(temps[0])
    same_T = T is None or bool(np.isclose(data.temperatures, T, rtol=0, atol=1e-9).any())
    if L != data.L or field != float(data.field) or not same_T:
        raise GenphysError(
            f"run {run_dir} learned L={L}, h={field:g}"
            + (f", T={T:g}" if T is not None else "")
            + f" from {name}; the comparison data hold L={data.L}, h={float(data.field):g}, "
            + "T="
            + ",".join(f"{t:g}" for t in data.temperatures)
        )
    return T


def compare_runs(
    run_dirs: list[str] | list[Path],
    data_path: str | Path,
    n_samples: int = 2000,
    gibbs_steps: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """:func:`compare_run` for every run, sorted by family then temperature."""
    if n_samples < 2 or gibbs_steps < 4:
        raise GenphysError("--n-samples must be >= 2 and --gibbs-steps >= 4")
    data = load_ising(data_path)
    results = [compare_run(r, data, n_samples, gibbs_steps, seed) for r in run_dirs]
    return sorted(results, key=lambda r: (r["family"], r["T"]))


def format_table(results: list[dict[str, Any]]) -> str:
    """A plain-text table: model vs Monte Carlo vs exact, with z-scores."""
    lines = []
    head = f"{'observable':<17}{'model':>22}{'Monte Carlo':>22}{'exact':>12}{'z':>8}{'rel.err':>10}"
    for r in results:
        lines.append(f"\n{r['run']}  ({r['family']}, L={r['L']}, T={r['T']:g}, h={r['h']:g})")
        lines.append(head)
        for name, row in r["observables"].items():
            m, mc = Estimate(**row["model"]), Estimate(**row["monte_carlo"])
            exact = f"{row['exact']:.5f}" if row["exact"] is not None else "-"
            rel = row["relative_error_vs_mc"]
            rel_text = f"{100 * rel:9.2f}%" if rel is not None else "         -"
            lines.append(
                f"{LABELS[name]:<17}{m!s:>22}{mc!s:>22}{exact:>12} {row['z_vs_mc']:7.2f}{rel_text}"
            )
    return "\n".join(lines)


def plot_comparison(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Each observable against T: models and Monte Carlo with error bars, exact curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genphys.io import atomic_path

    path = Path(path)
    fig, axes = plt.subplots(1, len(OBSERVABLES), figsize=(4 * len(OBSERVABLES), 3.6))
    temps = sorted({r["T"] for r in results})
    L = results[0]["L"] if results else 0
    fields = sorted({r["h"] for r in results})
    if fields and fields != [0.0]:  # the exact curves below are for h = 0
        fig.suptitle(f"field h = {', '.join(f'{h:g}' for h in fields)}")
    if temps and fields == [0.0]:
        grid = np.linspace(min(temps) - 0.1, max(temps) + 0.1, 200)
        grid = grid[grid > 0]
        axes[0].plot(
            grid, [ex.kaufman_energy(L, t) for t in grid], "k-", lw=1, label=f"exact L={L}"
        )
        axes[2].plot(grid, [ex.kaufman_specific_heat(L, t) for t in grid], "k-", lw=1)
        axes[0].plot(grid, ex.onsager_energy(grid), "k:", lw=1, label="Onsager L=inf")
        axes[1].plot(grid, ex.onsager_magnetization(grid), "k:", lw=1)
    families = sorted({r["family"] for r in results})
    for name, ax in zip(OBSERVABLES, axes, strict=True):
        mc = {r["T"]: r["observables"][name]["monte_carlo"] for r in results}
        ts = sorted(mc)
        ax.errorbar(
            ts,
            [mc[t]["value"] for t in ts],
            [mc[t]["stderr"] for t in ts],
            fmt="s",
            mfc="none",
            color="gray",
            label="Monte Carlo",
        )
        for fam in families:
            rs = [r for r in results if r["family"] == fam]
            ax.errorbar(
                [r["T"] for r in rs],
                [r["observables"][name]["model"]["value"] for r in rs],
                [r["observables"][name]["model"]["stderr"] for r in rs],
                fmt="o",
                ms=4,
                label=fam,
            )
        ax.axvline(ex.T_CRITICAL, color="k", lw=0.5, alpha=0.3)
        ax.set_xlabel("T")
        ax.set_title(LABELS[name])
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
