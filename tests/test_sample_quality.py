"""Packaged classifiers, the real-vs-real floor and ``genphys evaluate --metric`` / classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_errors import code_and_err, one_line_error
from genphys.data import DataConfig, prepare_data
from genphys.errors import GenphysError
from genphys.evaluation import fid, inception_score
from genphys.evaluation.sample_quality import packaged_classifier, quality_report
from genphys.models.classifier import Classifier


def _images(name: str, split: str, n: int | None = None, val: bool = False) -> tuple:
    cfg = DataConfig(name=name, split=split, binarize="none", val_fraction=0.1 if val else 0.0)
    data = prepare_data(cfg, download=False)
    x, y = (data.val, data.labels_val) if val else (data.train, data.labels_train)
    return x[:n], y[:n]


@pytest.mark.parametrize(
    ("name", "split", "val", "floor"),
    [
        ("fashion-mnist", "test", False, 0.88),
        ("mnist", "test", True, 0.96),  # trained on the other 9,000 images of the test file
    ],
)
def test_packaged_classifiers_classify_held_out_images(
    shared_data: Path, monkeypatch, name: str, split: str, val: bool, floor: float
) -> None:
    monkeypatch.setenv("GENPHYS_DATA", str(shared_data))
    clf = packaged_classifier(name)
    x, y = _images(name, split, 2000, val)
    with torch.no_grad():
        accuracy = float((clf.predict_proba(x).argmax(1) == y).float().mean())
    # binomial standard error at n >= 1000 is below 0.01: 0.88 / 0.96 sit 3 SE under our runs
    assert accuracy > floor, accuracy


def test_real_vs_real_is_far_below_noise_vs_real(shared_data: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENPHYS_DATA", str(shared_data))
    clf = packaged_classifier("fashion-mnist")
    test, _ = _images("fashion-mnist", "test", 2000)
    train, _ = _images("fashion-mnist", "train", 2000)
    noise = torch.rand(2000, 784, generator=torch.Generator().manual_seed(0))
    floor, bad = fid(train, test, clf, n_bootstrap=10), fid(noise, test, clf, n_bootstrap=10)
    assert floor.value < 0.02 * bad.value, (floor, bad)
    real_score, noise_score = inception_score(test, clf), inception_score(noise, clf)
    assert real_score.value > 5 and real_score.value > 3 * noise_score.value


def test_packaged_classifier_errors() -> None:
    with pytest.raises(GenphysError, match="no packaged classifier for 'digits'"):
        packaged_classifier("digits")
    clf = packaged_classifier("mnist")
    assert isinstance(clf, Classifier) and not clf.training


def _rendered_digit(d: int, rotation: float, weight: str, style: str) -> torch.Tensor:
    """The digit ``d`` in matplotlib's font, framed as MNIST's are: its box scaled to 20 px,
    its centre of mass at the centre of a 28 x 28 image, ink in [0, 1]."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=60)
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, str(d), ha="center", va="center", fontsize=48, rotation=rotation,
             weight=weight, style=style)  # fmt: skip
    canvas.draw()
    ink = 1 - np.asarray(canvas.buffer_rgba())[..., 0].astype(np.float32) / 255
    ys, xs = np.nonzero(ink > 0.05)
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = 20 / max(ink.shape)
    size = tuple(max(1, round(n * scale)) for n in ink.shape)
    small = torch.nn.functional.interpolate(torch.tensor(ink)[None, None], size, mode="area")[0, 0]
    h, w = small.shape
    cy = float((torch.arange(h)[:, None] * small).sum() / small.sum())
    cx = float((torch.arange(w)[None, :] * small).sum() / small.sum())
    top, left = (min(max(round(14 - c), 0), 28 - n) for c, n in ((cy, h), (cx, w)))
    image = torch.zeros(28, 28)
    image[top : top + h, left : left + w] = small
    return image.clamp(0, 1).reshape(-1)


def test_packaged_mnist_classifier_reads_rendered_digits() -> None:
    """Without MNIST at hand (CI): 120 typeset digits (3 slants x bold x italic) are read
    mostly right (chance is 10%: a corrupt or random network scores about 0.1); 0.6 is 14
    binomial standard errors above chance."""
    import itertools

    cases = list(
        itertools.product(range(10), (-10, 0, 10), ("normal", "bold"), ("normal", "italic"))
    )
    x = torch.stack([_rendered_digit(*c) for c in cases])
    labels = torch.tensor([c[0] for c in cases])
    with torch.no_grad():
        accuracy = (packaged_classifier("mnist")(x).argmax(1) == labels).double().mean().item()
    assert accuracy > 0.6, accuracy


def test_quality_report_pairs_every_metric_with_its_floor() -> None:
    g = torch.Generator().manual_seed(0)
    reference, real = torch.rand(300, 64, generator=g), torch.rand(300, 64, generator=g)
    samples = torch.rand(300, 64, generator=g) ** 3  # darker: a different distribution
    clf = Classifier(image_shape=(1, 8, 8))
    torch.manual_seed(0)
    metrics = ("fid", "is", "mmd")
    report = quality_report(
        samples, reference, real, metrics, clf, n_permutations=50, n_bootstrap=5
    )
    assert report["fid"]["value"] > report["fid"]["real_vs_real"]["value"]
    assert report["mmd"]["p_value"] < 0.05 and report["mmd"]["real_vs_real"]["p_value"] > 0.01
    assert report["is"]["fraction_of_real"] == pytest.approx(
        report["is"]["value"] / report["is"]["real"]["value"]
    )
    with pytest.raises(GenphysError, match="unknown metric"):
        quality_report(samples, reference, real, ("kid",))
    with pytest.raises(GenphysError, match="need a classifier"):
        quality_report(samples, reference, real, ("fid",))


def test_classifier_and_metrics_through_the_cli(tmp_path: Path, cli) -> None:
    clf_run, vae_run = tmp_path / "clf", tmp_path / "vae"
    code, out, err = cli("train", "classifier", "--epochs", "3", "--no-progress", "--out", clf_run)
    assert code == 0, err
    code, out, err = cli("evaluate", clf_run, "--json")
    assert code == 0, err
    accuracy = json.loads(out)["accuracy"]
    assert accuracy["value"] > 0.5 and accuracy["stderr"] > 0  # 10 classes: chance is 0.1
    args = ("--epochs", "2", "--latent-dim", "2", "--widths", "32", "--no-progress")
    code, out, err = cli("train", "vae", *args, "--out", vae_run)
    assert code == 0, err
    code, out, err = cli(
        "evaluate", vae_run, "--metric", "fid", "--metric", "is", "--classifier", clf_run, "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["fid"]["value"] > report["fid"]["real_vs_real"]["value"]
    assert 1 <= report["is"]["value"] <= 10
    # digits have no packaged classifier; mode coverage needs the ring; a classifier has no samples
    line = one_line_error(*code_and_err(cli("evaluate", vae_run, "--metric", "fid")))
    assert "no packaged classifier" in line
    one_line_error(*code_and_err(cli("evaluate", vae_run, "--metric", "modes")))
    one_line_error(*code_and_err(cli("evaluate", clf_run, "--metric", "mmd")))


def test_real_vs_real_floor_never_compares_the_reference_with_itself(tmp_path: Path, cli) -> None:
    """Evaluated on its training data (no validation split), the floor pairs two disjoint
    halves: the reference against itself gave MMD^2 = 0 exactly, with no error."""
    run = tmp_path / "gan"
    args = ("--epochs", "1", "--val-fraction", "0", "--limit", "400", "--no-progress")
    code, _, err = cli("train", "gan", *args, "--out", run)
    assert code == 0, err
    code, out, err = cli("evaluate", run, "--metric", "mmd", "--n-samples", "1000", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["data"] == "training" and report["n_samples"] == 200  # half of 400
    floor = report["mmd"]["real_vs_real"]
    assert floor["value"] != 0 and floor["stderr"] > 0
    assert abs(floor["value"]) < 4 * floor["stderr"]  # two halves of one distribution


def test_a_floor_of_zero_has_no_ratio_and_few_samples_are_scored() -> None:
    g = torch.Generator().manual_seed(0)
    reference, samples = torch.rand(8, 64, generator=g), torch.rand(8, 64, generator=g) ** 3
    clf = Classifier(image_shape=(1, 8, 8))
    report = quality_report(samples, reference, reference, ("fid", "is"), clf, n_bootstrap=3)
    assert report["fid"]["ratio_to_floor"] is None  # real vs real is the same set: FID ~ 0
    assert report["fid"]["real_vs_real"]["value"] == pytest.approx(0.0, abs=1e-6)
    four = inception_score(samples, clf, splits=4)  # 8 samples: 4 splits, not an error
    assert report["is"]["value"] == pytest.approx(four.value, rel=1e-12)
