"""Sample quality of a trained model against real data, with the real-vs-real floor beside it.

A metric alone says little: a Fréchet distance of 3 is good on one dataset and poor on
another. :func:`quality_report` therefore scores the model's samples against a real reference
set (held-out or test data) and, with the same code and sample size, real training data against
that reference: the floor no model can beat by more than chance. Features and class
probabilities come from a small CNN trained by genphys; weights for MNIST and Fashion-MNIST
ship with the package (``genphys/evaluation/classifiers/``) and are remade by::

    genphys train classifier --data fashion-mnist --epochs 8 --out runs/clf-fashion-mnist
    genphys train classifier --data mnist --split test --epochs 15 --out runs/clf-mnist
    python scripts/package_classifier.py runs/clf-fashion-mnist fashion-mnist
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genphys import io
from genphys.errors import GenphysError
from genphys.evaluation.quality import (
    fid,
    inception_score,
    median_bandwidth,
    mmd,
    mode_coverage,
)
from genphys.models.classifier import Classifier, ClassifierConfig

#: datasets with a packaged classifier
PACKAGED_CLASSIFIERS = ("mnist", "fashion-mnist")
METRICS = ("fid", "is", "mmd", "modes")
CLASSIFIER_DIR = "classifiers"


def packaged_classifier(name: str) -> Classifier:
    """The classifier shipped for dataset ``name`` (mnist or fashion-mnist), in eval mode."""
    if name not in PACKAGED_CLASSIFIERS:
        raise GenphysError(
            f"no packaged classifier for {name!r} (there are {list(PACKAGED_CLASSIFIERS)}); "
            "train one with 'genphys train classifier --data ...' and pass its run directory"
        )
    folder = resources.files("genphys.evaluation") / CLASSIFIER_DIR
    with resources.as_file(folder) as path:
        record = json.loads((Path(path) / f"{name}.json").read_text())
        model = Classifier(ClassifierConfig.from_dict(record["config"]))
        io.load_model_weights(model, Path(path) / f"{name}.safetensors")
    return model.eval()


def load_classifier(spec: str | None, data_name: str) -> Classifier:
    """A packaged classifier by dataset name, or a trained ``classifier`` run directory;
    ``None`` picks the one packaged for ``data_name``."""
    if spec is None or spec in PACKAGED_CLASSIFIERS:
        return packaged_classifier(spec or data_name)
    model, _ = io.load_run(spec)
    if not isinstance(model, Classifier):
        raise GenphysError(f"{spec} holds a {type(model).__name__}, not a classifier")
    return model.eval()


def _both(metric: Any, samples: Tensor, real: Tensor, reference: Tensor) -> dict[str, Any]:
    """The metric of the samples and of the real floor, as dicts."""
    model, floor = metric(samples, reference), metric(real, reference)
    return {**model.to_dict(), "real_vs_real": floor.to_dict()}


def quality_report(
    samples: Tensor,
    reference: Tensor,
    real: Tensor,
    metrics: tuple[str, ...] = ("fid", "is", "mmd"),
    classifier: Classifier | None = None,
    centers: Tensor | None = None,
    mode_std: float | None = None,
    seed: int = 0,
    mmd_n: int = 2000,
    n_permutations: int = 100,
    n_bootstrap: int = 50,
) -> dict[str, Any]:
    """FID, classifier score (``is``), MMD and mode coverage of ``samples`` against
    ``reference``, each beside the same metric of ``real`` (real training data).

    All three sets must live in one space: [0, 1] pixels for the classifier metrics. FID uses
    all rows (use equal sizes: it is biased in N); MMD the first ``mmd_n`` of each, with the
    median-heuristic bandwidth of the reference so both comparisons share one kernel. The
    classifier score of the reference itself is the real figure; ``fraction_of_real`` is the
    model's share of it. FID errors are bootstrap SEs from ``n_bootstrap`` resamples.

    Returns:
        ``{metric: {value, stderr, ..., real_vs_real: {...}}}``; ``fid`` adds
        ``ratio_to_floor``, ``is`` adds ``real`` and ``fraction_of_real``, ``mmd`` its
        permutation ``p_value`` (no ratio: the unbiased real-vs-real MMD^2 is near 0 and
        often negative).
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise GenphysError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    out: dict[str, Any] = {"n_samples": len(samples), "n_reference": len(reference)}
    if ("fid" in metrics or "is" in metrics) and classifier is None:
        raise GenphysError("fid and is need a classifier")
    if "fid" in metrics:
        assert classifier is not None

        def _fid(x: Tensor, ref: Tensor) -> Any:
            g = torch.Generator().manual_seed(seed)
            return fid(x, ref, classifier, n_bootstrap=n_bootstrap, generator=g)

        out["fid"] = _both(_fid, samples, real, reference)
        value, floor = out["fid"]["value"], out["fid"]["real_vs_real"]["value"]
        # a floor at rounding level (the same images on both sides) has no meaningful ratio
        out["fid"]["ratio_to_floor"] = value / floor if floor > 1e-9 * max(value, 1.0) else None
    if "is" in metrics:
        assert classifier is not None
        splits = max(1, min(10, len(samples) // 2, len(reference) // 2))  # 10 when n >= 20
        score = inception_score(samples, classifier, splits=splits)
        floor = inception_score(reference, classifier, splits=splits)
        out["is"] = {**score.to_dict(), "real": floor.to_dict()}
        out["is"]["fraction_of_real"] = score.value / floor.value
    if "mmd" in metrics:
        n = min(mmd_n, len(samples), len(reference), len(real))
        ref = reference[:n]
        width = median_bandwidth(ref, torch.Generator().manual_seed(seed))

        def _mmd(x: Tensor, r: Tensor) -> Any:
            g = torch.Generator().manual_seed(seed)
            return mmd(x[:n], r, bandwidth=width, n_permutations=n_permutations, generator=g)

        # no ratio to the floor: the unbiased MMD^2 of real vs real scatters around 0, often
        # below it; the permutation p-value says whether the samples are told apart
        out["mmd"] = _both(_mmd, samples, real, ref)
    if "modes" in metrics:
        if centers is None or mode_std is None:
            raise GenphysError("mode coverage needs mixture centres (the ring data)")
        cover = mode_coverage(samples, centers, mode_std)
        out["modes"] = {
            **cover.to_dict(),
            "real_vs_real": mode_coverage(real, centers, mode_std).to_dict(),
        }
    return out


__all__ = [
    "METRICS",
    "PACKAGED_CLASSIFIERS",
    "load_classifier",
    "packaged_classifier",
    "quality_report",
]
