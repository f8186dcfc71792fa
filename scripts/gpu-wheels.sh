#!/usr/bin/env bash
# Fill .whl/ (gitignored) with what a GPU box without a package index needs for scripts/gpu-check.sh,
# fetched here, where pip reaches PyPI: the wheels the lent machines' image lacks (PyAV, a setuptools
# new enough for srx's pyproject, pycuda's build and run needs) and pycuda's source package (it has
# no wheels; gpu-check builds it there against the CUDA toolkit). With ../shared beside the checkout,
# Set5 and the CCTV clip are copied into ./shared (gitignored), which travels with the checkout, so
# the data tests run there too. Then, on the GPU box:
#   SRX_OFFLINE=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl GPU_CHECK_SUITE=1 bash scripts/gpu-check.sh
# PY_VERSION (default 3.12) is the GPU box's Python.
case "${1:-}" in  # the comment above is the help; the script takes no arguments
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "usage: bash $0 (no arguments; settings come from the environment, see --help)" >&2; exit 2 ;;
esac
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${PY_VERSION:-3.12}
mkdir -p .whl
PLAT=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 any; do PLAT+=(--platform "$p"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp "${PLAT[@]}" \
    -d .whl "av>=14" "setuptools>=77" wheel pytools platformdirs siphash24 mako
# pip cannot fetch pycuda's sdist without building its metadata (which needs CUDA): take it from PyPI's JSON
python3 - <<'PY'
import json, urllib.request
from pathlib import Path
info = json.load(urllib.request.urlopen("https://pypi.org/pypi/pycuda/json", timeout=60))
sdist = next(u for u in info["urls"] if u["packagetype"] == "sdist")
out = Path(".whl") / sdist["filename"]
if not out.exists():
    urllib.request.urlretrieve(sdist["url"], out)
print(f"pycuda {info['info']['version']}: {out}")
PY
if [ -d ../shared/datasets/Set5 ]; then
    mkdir -p shared/datasets shared/media
    cp -r ../shared/datasets/Set5 shared/datasets/
    [ -f ../shared/media/cctv_480x360.avi ] && cp ../shared/media/cctv_480x360.avi shared/media/
fi
du -sh .whl shared 2>/dev/null || true
