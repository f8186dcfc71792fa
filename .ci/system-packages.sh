#!/usr/bin/env bash
# System packages the camera tests drive for real (Debian 12, run as root by .ci/run):
#   - an RTSP server: GStreamer's gst-rtsp-server through the system python3-gi
#     (tests/camera/rtsp_server.py; x264enc from plugins-ugly, avidemux/jpegdec/rtph264pay from good)
#   - a headless browser for the --serve page: chromium
#   - a C++ compiler: the CUDA colour kernels' arithmetic is compiled for the CPU and checked there
#   - Prometheus and promtool: /metrics scraped by a real server, deploy/srx-alerts.yml checked and unit-tested
#   - bubblewrap: deploy/srx-serve.service's command run inside what the unit leaves writable
#   - an OpenCV built with GStreamer (python3-opencv, as JetPack's is) and GStreamer's H.264 decoder
#     (gstreamer1.0-libav): GStreamer pipeline sources, run by scripts/test.sh in .venv-system
# Idempotent and quiet: installs only what is missing, runs `apt-get update` only when needed.
set -euo pipefail

PACKAGES=(
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  chromium fonts-dejavu-core
  g++
  prometheus
  bubblewrap
  python3-opencv gstreamer1.0-libav
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing system packages for the camera tests: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/srx-apt.log 2>&1; }
if ! install; then
  $SUDO apt-get update -q >/tmp/srx-apt-update.log 2>&1
  install || { tail -20 /tmp/srx-apt.log; exit 1; }
fi
