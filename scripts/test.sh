#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SRX_EXTRAS=test,serve bash scripts/setup.sh  # serve: PyTriton and tritonclient, for the Triton tests
. .venv/bin/activate
python -m pytest -q "$@"
