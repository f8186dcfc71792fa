#!/usr/bin/env bash
# Set up (idempotent), then run the main job on its embedded default: the shipped x3 `fast` weights
# stream a clip that srx renders itself through ONNX Runtime on the CPU, record the result and
# print fps and latency. No camera, GPU or downloaded data needed. Extra arguments go to
# `srx stream` (for example --serve 127.0.0.1:8080 to watch it in a browser, or -w srcnn for the
# SRCNN 9-1-5 reference, which a small CPU runs at about a third of the speed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p out
srx stream --demo -w fast --backend onnxruntime --no-window --output out/demo.mp4 "$@"
