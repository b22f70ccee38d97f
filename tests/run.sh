#!/usr/bin/env bash
# The test command (README): offline, CPU only.
set -euo pipefail
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python -m pytest -q -p no:cacheprovider "$@"
