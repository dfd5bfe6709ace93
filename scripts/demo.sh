#!/usr/bin/env bash
# The main job: train an RBM on the embedded digits data, then sample and evaluate it.
# Everything lands in runs/demo (config, metrics, checkpoints, samples.png, curves.png,
# evaluation.json). About two minutes on two CPU cores.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
rm -rf runs/demo
.venv/bin/genphys train rbm --out runs/demo "$@"
.venv/bin/genphys sample runs/demo --n 64
.venv/bin/genphys evaluate runs/demo
