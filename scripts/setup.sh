#!/usr/bin/env bash
# Create .venv and install srx into it. Installs the CPU build of PyTorch first: a bare `torch`
# requirement would pull a multi-GB CUDA build on a machine that has no GPU.
# SRX_EXTRAS picks the extras (default: test; scripts/test.sh adds serve for the Triton tests).
# SRX_VENV names the environment's folder (default: .venv).
#
# SRX_SYSTEM_OPENCV=1 keeps the OpenCV of the Python that makes the venv ($PYTHON, default python3):
# a Jetson's JetPack OpenCV or Debian's python3-opencv, built with GStreamer, which pip's wheels never
# are (needed for GStreamer pipeline sources: CSI cameras). The venv sees the system's packages, pip's
# opencv-python is left out of it, and numpy stays 1.x where that OpenCV was built against numpy 1.x.
# On aarch64 this is the default wherever $PYTHON has a cv2.
#
# SRX_OFFLINE=1 is for a box that reaches no package index but already holds PyTorch and the rest
# (a JetPack image, an air-gapped GPU host): the venv sees the system's packages, srx installs
# without fetching anything, the wheels in $PIP_FIND_LINKS (if set) fill the gaps (a numpy of another
# major version than the one the system's OpenCV was built against is left out), what is still
# missing is named, and srx must then start, or setup fails naming why.
case "${1:-}" in  # the comment above is the help; the script takes no arguments
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "usage: bash $0 (no arguments; settings come from the environment, see --help)" >&2; exit 2 ;;
esac
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SRX_VENV:-.venv}
SYSTEM_CV=${SRX_SYSTEM_OPENCV:-}
if [ -z "$SYSTEM_CV" ] && [ "$(uname -m)" = aarch64 ] && "$PY" -c "import cv2" 2>/dev/null; then
    SYSTEM_CV=1  # JetPack's OpenCV (GStreamer): pip's would shadow it, and srx does not ask for it there
fi
[ "$SYSTEM_CV" != 0 ] || SYSTEM_CV=
check_starts() {  # srx and what it imports must load in the venv; else say why and fail (what: the step; hint: a cause)
    local why unfit
    why=$(python -c "import cv2, numpy, torch, onnx, onnxruntime, skimage, matplotlib, av; import srx.cli" 2>&1) || {
        # pip check's own words on what does not fit (pip's OpenCV, left out for the system's, is not missed)
        unfit=$(python -m pip check 2>/dev/null | grep -v "requires opencv-python, which is not installed" | head -4 \
                | sed 's/[.]$//' | paste -sd ';' - | sed 's/;/; /g' || true)
        echo "setup: srx was $1 but does not start: $(echo "$why" | grep -v '^ ' | tail -1) ($2${unfit:+: $unfit})" >&2
        exit 1
    }
}
if [ -n "${SRX_OFFLINE:-}" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv --system-site-packages "$VENV"
        # a venv of Python <= 3.11 brings its own old setuptools, which would hide the host's (srx's
        # pyproject needs setuptools >= 77; carry a newer wheel in $PIP_FIND_LINKS where the host
        # lacks it). Removed now, while pip sees only the venv's own copy, not the host's below.
        if "$PY" -c "import setuptools" 2>/dev/null; then
            "$VENV/bin/python" -m pip uninstall -y -q setuptools >/dev/null 2>&1 || true
        fi
    fi
    # a venv made from a venv (or a conda env) sees the base interpreter's packages, not those of
    # the environment $PY runs in: point at them too, and at every package folder $PY itself reaches
    # through such a file (a venv over a venv over the image's: the lent GPU's .venv made again), in
    # the order $PY finds them, so its packages win over older copies in the base interpreter
    "$PY" -c "import site, sys; dirs = [p for p in sys.path if p.rstrip('/').endswith(('site-packages', 'dist-packages'))]; print('\n'.join(dict.fromkeys(dirs + site.getsitepackages())))" \
        >"$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/srx-host-site.pth"
    . "$VENV/bin/activate"
    shopt -s nullglob
    carried=("${PIP_FIND_LINKS:-/nonexistent}"/*.whl)
    host_numpy=$(python -c "import cv2, numpy; print(numpy.__version__)" 2>/dev/null || true)
    if [ -n "$host_numpy" ]; then  # the system's OpenCV imports: keep the numpy major it was built against
        keep=()
        for wheel in "${carried[@]}"; do
            case "$(basename "$wheel")" in
                "numpy-${host_numpy%%.*}."*) keep+=("$wheel") ;;
                numpy-*) echo "setup: leaving out $(basename "$wheel"): this Python's OpenCV works with its numpy" \
                              "$host_numpy, and numpy of another major version would stop cv2 importing" >&2 ;;
                *) keep+=("$wheel") ;;
            esac
        done
        carried=("${keep[@]}")
    fi
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
    check_starts "installed offline" "a package's own dependency is missing from \$PIP_FIND_LINKS, or two do not fit each other"
    echo "srx installed offline over the system's packages"
    exit 0
fi
if [ -n "$SYSTEM_CV" ]; then
    found=$("$PY" -c "import cv2, numpy; print(numpy.__version__)" 2>&1) || {
        echo "setup: SRX_SYSTEM_OPENCV=1 keeps the OpenCV of $PY, but it has none that imports ($(echo "$found" | tail -1));" \
             "Debian or Ubuntu: apt-get install python3-opencv; a Jetson: JetPack's" >&2
        exit 1
    }
    [ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
    if [ "${found%%.*}" = 1 ]; then  # that cv2 was built against numpy 1.x, which numpy 2 cannot load
        PIP_CONSTRAINT=$(mktemp)
        trap 'rm -f "$PIP_CONSTRAINT"' EXIT
        echo "numpy<2" >"$PIP_CONSTRAINT"
        export PIP_CONSTRAINT
    fi
else
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
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
if [ -n "$SYSTEM_CV" ]; then
    # on x86_64 srx asks for pip's OpenCV, which would shadow the system's: the system's is the one kept
    python -m pip uninstall -y -q opencv-python opencv-python-headless 2>/dev/null || true
    check_starts "set up over the system's OpenCV" "a package pip installed does not fit the system's"
    python -c 'import cv2; from srx.camera.sources import has_gstreamer as g; print("srx uses the system OpenCV",
               cv2.__version__, "(" + cv2.__file__ + "), GStreamer:", "yes" if g() else "no")'
fi
