#!/usr/bin/env bash
# The everyday test suite (slow tests deselected); pass extra pytest arguments through,
# e.g. `bash scripts/test.sh -m slow` for the long ones.
set -euo pipefail
EXTRAS=dev source "$(dirname "$0")/venv.sh"
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest "$@"
