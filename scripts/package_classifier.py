"""Copy a trained classifier run into the package: genphys/evaluation/classifiers/NAME.*

    python scripts/package_classifier.py RUN_DIR NAME

writes NAME.safetensors (the weights) and NAME.json (the model config, the training
configuration and the held-out accuracy of the run's last epoch), which
``genphys.evaluation.sample_quality.packaged_classifier(NAME)`` loads.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from genphys import io
from genphys.models.classifier import Classifier
from genphys.training.reporting import MetricsLog

DEST = Path(__file__).resolve().parents[1] / "src" / "genphys" / "evaluation" / "classifiers"


def main(run_dir: str, name: str) -> None:
    model, cfg = io.load_run(run_dir)
    if not isinstance(model, Classifier):
        raise SystemExit(f"error: {run_dir} is not a classifier run")
    history = MetricsLog.read(Path(run_dir), 10**9)
    last = history[-1] if history else {}
    record = {
        "config": cfg["model"]["config"],
        "trained": {k: cfg[k] for k in ("data", "trainer", "genphys_version") if k in cfg},
        "val_accuracy": last.get("val/accuracy"),
    }
    DEST.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(io.model_weights_path(run_dir), DEST / f"{name}.safetensors")
    io.atomic_write_json(DEST / f"{name}.json", record)
    print(f"wrote {DEST / name}.safetensors and .json (val accuracy {record['val_accuracy']})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
