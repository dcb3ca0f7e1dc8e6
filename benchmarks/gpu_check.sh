#!/usr/bin/env bash
# The grid-3 half of the paper's Table 1 (GAPNet and PermuteNet, location and image task) at full scale,
# in one call on a machine with JAX and no TensorFlow or internet: benchmarks/gpu_check.py.
#
# Prepare on a machine with internet (once; the two folders are git-ignored through .git/info/exclude):
#   bash benchmarks/gpu_prepare.sh          # .whl/ (keras and its missing deps), .gpu/cifar10-jpeg.tar.gz
# Run on the GPU machine, with the checkout and its .whl/ and .gpu/ folders copied there:
#   bash benchmarks/gpu_check.sh            # four cells side by side, mixed_bfloat16, within --budget 540 s
# Run again to resume (finished cells are skipped). Report: $OUT (else runs/gpu_check). Extra arguments go to
# benchmarks/gpu_check.py; --dry-run is the CPU check (width 1/16, 120 images, 1 epoch, cifar10-mini).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ! python3 -c "import keras" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
