# Sourced by demo.sh and test.sh: create .venv (if needed) with the pinned CPU torch first,
# then genphys itself with the given extras. Re-running is cheap: pip finds everything installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) where pip would otherwise fetch the
# multi-GB CUDA build from PyPI; unset, pip uses its configured sources (here a local CPU wheel)
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
spec="."
if [ -n "${EXTRAS:-}" ]; then spec=".[${EXTRAS}]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
