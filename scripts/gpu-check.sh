#!/usr/bin/env bash
# One command for a GPU host (or a lent GPU machine): exercise every GPU path of srx that can run
# here and print one summary. Each step ends PASSED, FAILED or SKIPPED with its reason; a step that
# cannot run (no driver, no nvcc, no TensorRT, no network to install from) never stops the others.
#
#   bash scripts/gpu-check.sh            # logs and artefacts in out/gpu-check/
#
# On a box without a package index (an air-gapped host, a lent machine): carry the wheels and the
# pycuda source package in a folder and run
#   SRX_OFFLINE=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl bash scripts/gpu-check.sh
# (scripts/setup.sh then builds the .venv over the system's PyTorch; pycuda builds from the sdist).
#
# Steps: the GPU and driver; the .venv (scripts/setup.sh); pycuda (built from source when missing:
# needs nvcc and the Python headers); ONNX Runtime's CUDA provider (swapped in from onnxruntime-gpu
# when missing and installable) under the parity gates; the CUDA colour kernels through pycuda vs the
# CPU path; the shipped models on PyTorch CUDA against the CPU; a short training run on CUDA; the TensorRT tests when tensorrt
# imports; `srx bench` on the GPU backends; `srx doctor`; with GPU_CHECK_SUITE=1 the whole suite.
# Exit status 1 when any step FAILED, else 0.
case "${1:-}" in  # the comment above is the help; the script takes no arguments
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "usage: bash $0 (no arguments; settings come from the environment, see --help)" >&2; exit 2 ;;
esac
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_CHECK_OUT:-out/gpu-check}
mkdir -p "$OUT"
RESULTS=()

record() {  # step status detail
    RESULTS+=("$1"$'\t'"$2"$'\t'"$3")
    printf '== %s: %s%s\n' "$1" "$2" "${3:+ ($3)}"
}

tail_of() { tail -n "${2:-3}" "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-300; }

run_pytest() {  # step log pytest-args...: PASSED if any test passed, SKIPPED (first reason) if none ran
    # $PYTEST_LIMIT_S (if set): pytest gets SIGINT then, and still prints which tests failed so far
    local step=$1 log=$2
    shift 2
    local limit=()
    [ -n "${PYTEST_LIMIT_S:-}" ] && limit=(timeout --signal=INT --kill-after=60 "$PYTEST_LIMIT_S")
    "${limit[@]}" python -m pytest -q -rfEs -p no:cacheprovider "$@" >"$log" 2>&1
    local rc=$? last passed reason cut=""
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && cut="stopped at its ${PYTEST_LIMIT_S} s limit; "
    last=$(grep -E '(passed|failed|skipped|error|no tests ran)' "$log" | tail -n 1)
    passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p; s/^([0-9]+) passed.*/\1/p' <<<"$last" | head -n 1)
    if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then
        record "$step" FAILED "$cut$(grep -E '^(FAILED|ERROR) ' "$log" | head -n 3 | tr '\n' ' ' | cut -c1-300)$last; see $log"
    elif [ -n "$passed" ] && [ "$passed" -gt 0 ]; then
        record "$step" PASSED "$last"
    else
        reason=$(grep -m 1 -E '^SKIPPED ' "$log" | sed -E 's/^SKIPPED \[[0-9]+\] [^ ]+: //' | cut -c1-240)
        record "$step" SKIPPED "${reason:-no test ran}"
    fi
}

# --- the GPU and its driver -----------------------------------------------------------------------
GPU_OK=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    GPU_OK=1
    record "GPU" PASSED "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
elif [ -e /dev/nvhost-ctrl ] || [ -e /dev/nvgpu ]; then  # a Jetson has no nvidia-smi
    GPU_OK=1
    record "GPU" PASSED "Jetson ($(tr -d '\0' </proc/device-tree/model 2>/dev/null || echo 'model unknown'))"
else
    record "GPU" SKIPPED "no NVIDIA driver or GPU found (nvidia-smi, /dev/nvhost-ctrl): the GPU steps below skip too"
fi
NVCC=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; } || true)
cuda_root() {  # the toolkit folder holding include/cuda.h (nvcc may be a wrapper script elsewhere)
    local c
    for c in "${CUDA_ROOT:-}" "${CUDA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$NVCC")")")" /usr/local/cuda /usr/local/cuda-*; do
        [ -n "$c" ] && [ -f "$c/include/cuda.h" ] && { echo "$c"; return; }
    done
}

# --- the environment ------------------------------------------------------------------------------
if bash scripts/setup.sh >"$OUT/setup.log" 2>&1; then
    record "setup (.venv)" PASSED "scripts/setup.sh"
else
    record "setup (.venv)" FAILED "scripts/setup.sh: $(tail_of "$OUT/setup.log")"
fi
if [ ! -x .venv/bin/python ]; then
    record "everything else" SKIPPED "no .venv to run in"
else
. .venv/bin/activate

# --- pycuda (built from source: it has no wheels) --------------------------------------------------
if python -c "import pycuda.driver" >/dev/null 2>&1; then
    record "pycuda" PASSED "installed: $(python -c 'import pycuda; print(pycuda.VERSION_TEXT)')"
elif [ $GPU_OK -eq 0 ]; then
    record "pycuda" SKIPPED "not installed, and not built here: it links against the NVIDIA driver's libcuda, which a box without a GPU lacks"
elif [ -z "$NVCC" ] || [ -z "$(cuda_root)" ]; then
    record "pycuda" SKIPPED "not installed, and no CUDA toolkit (nvcc, include/cuda.h) to build it with"
elif [ ! -f "$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
    record "pycuda" SKIPPED "not installed, and no Python.h to build it with (apt-get install python3-dev)"
else
    CUDA_ROOT=$(cuda_root)
    export CUDA_ROOT PATH="$CUDA_ROOT/bin:$(dirname "$NVCC"):$PATH"
    # offline, the build needs the venv's own setuptools/numpy: no isolated build env can be fetched
    PYCUDA_PIP=(python -m pip install "pycuda>=2025.1.2")
    [ -n "${PIP_NO_INDEX:-}" ] && PYCUDA_PIP+=(--no-build-isolation)
    if "${PYCUDA_PIP[@]}" >"$OUT/pycuda-build.log" 2>&1 && python -c "import pycuda.driver" 2>/dev/null; then
        record "pycuda" PASSED "built from source with $NVCC: $(python -c 'import pycuda; print(pycuda.VERSION_TEXT)')"
    else
        record "pycuda" FAILED "pip install 'pycuda>=2025.1.2' (CUDA_ROOT=$CUDA_ROOT): $(tail_of "$OUT/pycuda-build.log"); see $OUT/pycuda-build.log"
    fi
fi

# --- ONNX Runtime's CUDA provider -----------------------------------------------------------------
has_cuda_ep() { python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; }
if [ $GPU_OK -eq 1 ] && ! has_cuda_ep; then
    # the README's swap, done only once the GPU build is downloaded, so a box without a network
    # keeps its working CPU onnxruntime
    rm -rf "$OUT/wheels"
    if python -m pip download -q --no-deps -d "$OUT/wheels" onnxruntime-gpu >"$OUT/ort-gpu.log" 2>&1; then
        python -m pip uninstall -y -q onnxruntime >>"$OUT/ort-gpu.log" 2>&1
        python -m pip install -q --force-reinstall --no-deps "$OUT"/wheels/onnxruntime_gpu-*.whl >>"$OUT/ort-gpu.log" 2>&1 \
            || python -m pip install -q --force-reinstall --no-deps onnxruntime >>"$OUT/ort-gpu.log" 2>&1
    fi
fi
run_pytest "ORT CUDA provider parity" "$OUT/ort-cuda.log" tests/runtime/test_runners.py -k cuda_provider

# --- PyTorch on the GPU: the shipped models against the CPU, and the torch-cuda bench row ------------
TORCH_CUDA=0
python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null && TORCH_CUDA=1
run_pytest "PyTorch CUDA parity" "$OUT/torch-cuda.log" tests/runtime/test_runners.py tests/runtime/test_bench.py \
    -k "torch_on_cuda or torch_cuda_bench or auto_on_a_gpu"
run_pytest "training on CUDA" "$OUT/train-cuda.log" tests/train/test_loop.py -k "training_on_cuda"

# --- the CUDA colour kernels: compiled by nvcc, then run through pycuda against the CPU path -------
run_pytest "CUDA kernels compile (nvcc)" "$OUT/nvcc.log" tests/runtime/test_tensorrt.py -k compile_with_nvcc
run_pytest "CUDA kernels on GPU (pycuda)" "$OUT/kernels.log" tests/runtime/test_tensorrt.py -k kernels_on_the_gpu

# --- TensorRT --------------------------------------------------------------------------------------
if python -c "import tensorrt" >"$OUT/tensorrt-import.log" 2>&1; then
    run_pytest "TensorRT tests" "$OUT/tensorrt.log" -m "tensorrt or gpu" tests/export/test_tensorrt.py tests/runtime/test_tensorrt.py
else
    record "TensorRT tests" SKIPPED "tensorrt does not import: $(tail_of "$OUT/tensorrt-import.log" 1)"
fi

# --- srx bench on the GPU backends -----------------------------------------------------------------
BENCH_ARGS=()
[ $TORCH_CUDA -eq 1 ] && BENCH_ARGS+=(--backend torch-cuda)
has_cuda_ep && [ $GPU_OK -eq 1 ] && BENCH_ARGS+=(--backend onnxruntime-cuda)
if python -c "import tensorrt, pycuda.driver" >/dev/null 2>&1 && [ $GPU_OK -eq 1 ]; then
    if srx export --scale 3 -w srcnn --out "$OUT/exports" --engine >"$OUT/export.log" 2>&1; then
        BENCH_ARGS+=(--backend tensorrt --engine "$OUT/exports/srcnn-x3-fp16.engine")
    else
        record "TensorRT engine (srx export)" FAILED "$(tail_of "$OUT/export.log"); see $OUT/export.log"
    fi
fi
if [ ${#BENCH_ARGS[@]} -eq 0 ]; then
    record "srx bench (GPU)" SKIPPED "no GPU backend runs here (torch sees no GPU, no CUDA provider, no TensorRT engine)"
elif srx bench --backend onnxruntime "${BENCH_ARGS[@]}" -w srcnn -w fast >"$OUT/bench.txt" 2>&1; then
    record "srx bench (GPU)" PASSED "${BENCH_ARGS[*]}; table in $OUT/bench.txt"
else
    record "srx bench (GPU)" FAILED "$(tail_of "$OUT/bench.txt"); see $OUT/bench.txt"
fi

# --- the whole suite under this host's stack (opt in: GPU_CHECK_SUITE=1) ----------------------------
if [ -n "${GPU_CHECK_SUITE:-}" ]; then
    SUITE_ARGS=()
    python -c "import xdist" 2>/dev/null && SUITE_ARGS+=(-n "$(( $(nproc) > 8 ? 8 : $(nproc) ))")
    python -c "import pytest_timeout" 2>/dev/null && SUITE_ARGS+=(--timeout 300)
    # GPU_CHECK_SUITE_S: a time limit for the suite (a lent machine's minutes are counted); at it
    # pytest is interrupted and the summary still names the failures so far
    PYTEST_LIMIT_S=${GPU_CHECK_SUITE_S:-} run_pytest "whole test suite" "$OUT/suite.log" "${SUITE_ARGS[@]}" tests
fi

# --- what srx itself sees --------------------------------------------------------------------------
if srx doctor >"$OUT/doctor.txt" 2>&1; then
    record "srx doctor" PASSED "$OUT/doctor.txt"
else
    record "srx doctor" FAILED "$(tail_of "$OUT/doctor.txt")"
fi
fi

# --- one summary -----------------------------------------------------------------------------------
echo
echo "srx gpu-check on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ) (logs in $OUT/)"
failed=0
for row in "${RESULTS[@]}"; do
    IFS=$'\t' read -r step status detail <<<"$row"
    printf '  %-30s %-8s %s\n' "$step" "$status" "$detail"
    [ "$status" = FAILED ] && failed=1
done
[ -f "$OUT/bench.txt" ] && { echo; cat "$OUT/bench.txt"; }
exit $failed
