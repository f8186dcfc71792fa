#!/usr/bin/env bash
# Create .venv and install srx into it. Installs the CPU build of PyTorch first: a bare `torch`
# requirement would pull a multi-GB CUDA build on a machine that has no GPU.
# SRX_EXTRAS picks the extras (default: test; scripts/test.sh adds serve for the Triton tests).
#
# SRX_OFFLINE=1 is for a box that reaches no package index but already holds PyTorch and the rest
# (a JetPack image, an air-gapped GPU host): the venv sees the system's packages, srx installs
# without fetching anything, the wheels in $PIP_FIND_LINKS (if set) fill the gaps, and what is
# still missing is named.
case "${1:-}" in  # the comment above is the help; the script takes no arguments
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "usage: bash $0 (no arguments; settings come from the environment, see --help)" >&2; exit 2 ;;
esac
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -n "${SRX_OFFLINE:-}" ]; then
    if [ ! -x .venv/bin/python ]; then
        "$PY" -m venv --system-site-packages .venv
        # a venv of Python <= 3.11 brings its own old setuptools, which would hide the host's (srx's
        # pyproject needs setuptools >= 77; carry a newer wheel in $PIP_FIND_LINKS where the host
        # lacks it). Removed now, while pip sees only the venv's own copy, not the host's below.
        if "$PY" -c "import setuptools" 2>/dev/null; then
            .venv/bin/python -m pip uninstall -y -q setuptools >/dev/null 2>&1 || true
        fi
    fi
    # a venv made from a venv (or a conda env) sees the base interpreter's packages, not those of
    # the environment $PY runs in: point at them too, and at every package folder $PY itself reaches
    # through such a file (a venv over a venv over the image's: the lent GPU's .venv made again), in
    # the order $PY finds them, so its packages win over older copies in the base interpreter
    "$PY" -c "import site, sys; dirs = [p for p in sys.path if p.rstrip('/').endswith(('site-packages', 'dist-packages'))]; print('\n'.join(dict.fromkeys(dirs + site.getsitepackages())))" \
        >"$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/srx-host-site.pth"
    . .venv/bin/activate
    shopt -s nullglob
    carried=("${PIP_FIND_LINKS:-/nonexistent}"/*.whl)
    [ ${#carried[@]} -eq 0 ] || python -m pip install -q --no-index --no-deps "${carried[@]}"
    python - <<'PY'
import importlib.util, sys
need = {"torch": "torch", "numpy": "numpy", "onnx": "onnx", "onnxruntime": "onnxruntime", "cv2": "opencv-python",
        "typer": "typer", "rich": "rich", "skimage": "scikit-image", "matplotlib": "matplotlib", "av": "av"}
missing = [pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None]
try:
    import setuptools
    if int(setuptools.__version__.split(".")[0]) < 77:
        missing.append(f"setuptools>=77 (found {setuptools.__version__})")
except ImportError:
    missing.append("setuptools>=77")
if missing:
    sys.exit(f"srx cannot be installed offline: these are missing here: {', '.join(missing)} "
             "(put their wheels in a folder and set PIP_FIND_LINKS to it)")
PY
    PYTHONWARNINGS="ignore:Editable installation" python -m pip install -q --no-index --no-deps --no-build-isolation -e .
    echo "srx installed offline over the system's packages"
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
    if python -m pip install -q --dry-run --no-index --no-deps "torch==2.13.0" >/dev/null 2>&1; then
        python -m pip install -q "torch==2.13.0"  # a wheel this machine already holds (find-links)
    elif [ "$(uname -sm)" = "Linux x86_64" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
        # PyPI's Linux x86_64 torch is the CUDA build (several GB of nvidia-* wheels); PyTorch's own
        # CPU index has the CPU one. A GPU host (nvidia-smi), aarch64 and macOS take PyPI's.
        python -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu || {
            echo "setup: could not install torch==2.13.0 from PyTorch's CPU index (https://download.pytorch.org/whl/cpu)" \
                 "for $(python -c 'import sys; print("Python %d.%d" % sys.version_info[:2])'): this machine may not" \
                 "reach it, or it has no such wheel. Put a torch wheel in a folder and set PIP_FIND_LINKS to it, or set" \
                 "up over a Python that has torch with SRX_OFFLINE=1 (README, Install)" >&2
            exit 1
        }
    else
        python -m pip install -q "torch==2.13.0"
    fi
fi
# setuptools' notice about editable installs (a box of asterisks at every run) is not srx's concern
PYTHONWARNINGS="ignore:Editable installation" python -m pip install -q -e ".[${SRX_EXTRAS:-test}]"
