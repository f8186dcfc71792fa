#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
# GStreamer pipeline sources need an OpenCV built with GStreamer, which pip's wheels never are: where
# the system Python has one (Debian's python3-opencv, as JetPack's), their tests and the sources' run a
# second time in .venv-system, a venv over that OpenCV (SRX_SYSTEM_OPENCV=1 bash scripts/setup.sh, a Jetson's way).
# SRX_SYSTEM_PYTHON names that Python (default /usr/bin/python3). Given arguments, only the main
# suite runs, with them.
set -euo pipefail
cd "$(dirname "$0")/.."
SRX_EXTRAS=test,serve bash scripts/setup.sh  # serve: PyTriton and tritonclient, for the Triton tests
. .venv/bin/activate
python -m pytest -q "$@"
[ $# -eq 0 ] || exit 0
SYSTEM_PY=${SRX_SYSTEM_PYTHON:-/usr/bin/python3}
if ! "$SYSTEM_PY" -c "import cv2, sys; sys.exit(not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER))" 2>/dev/null; then
    echo "GStreamer pipeline tests not run: $SYSTEM_PY has no OpenCV built with GStreamer (Debian: apt-get install python3-opencv)"
    [ -z "${SRX_REQUIRE_ALL:-}" ] || [ "${SRX_REQUIRE_ALL}" = 0 ] || exit 1
    exit 0
fi
deactivate || true
SRX_VENV=.venv-system SRX_SYSTEM_OPENCV=1 PYTHON="$SYSTEM_PY" SRX_EXTRAS=test bash scripts/setup.sh
# the pipelines, and the sources' tests on that OpenCV (4.6 on Debian 12 turned a phone's video upside down)
SRX_NEED_GSTREAMER=1 .venv-system/bin/python -m pytest -q tests/camera/test_gstreamer.py tests/camera/test_sources.py
