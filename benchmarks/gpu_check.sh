#!/usr/bin/env bash
# The GPU check, in one call on a machine with JAX and no TensorFlow or internet.
#
# Prepare on a machine with internet (once; the two folders are git-ignored through .git/info/exclude):
#   bash benchmarks/gpu_prepare.sh          # .whl/ (keras and its missing deps), .gpu/cifar10-jpeg.tar.gz
# Run on the GPU machine, with the checkout and its .whl/ and .gpu/ folders copied there:
#   bash benchmarks/gpu_check.sh            # full width, mixed_bfloat16, 1 epoch of 45,000 images per network
# Extra arguments go to benchmarks/gpu_check.py (e.g. --width 0.125 --limit 2000 for a dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ! python3 -c "import keras" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
DATA="${GPU_CHECK_DATA:-.gpu/cifar10-jpeg.tar.gz}"
OUT_DIR="${OUT:-runs}/gpu_check"
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 benchmarks/gpu_check.py --data "$DATA" --out "$OUT_DIR" "$@" | tee "$OUT_DIR/gpu_check.json"
