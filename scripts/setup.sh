#!/usr/bin/env bash
# Create .venv and install srx into it. Installs the CPU build of PyTorch first: a bare `torch`
# requirement would pull a multi-GB CUDA build on a machine that has no GPU.
# SRX_EXTRAS picks the extras (default: test; scripts/test.sh adds serve for the Triton tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[${SRX_EXTRAS:-test}]"
