#!/usr/bin/env bash
# Gathers what benchmarks/gpu_check.sh needs on a GPU machine without internet:
# keras and the dependencies that machine lacks, as Python 3.12 wheels in .whl/,
# and the CIFAR-10 tarball in .gpu/. Both folders stay out of git (.git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
for folder in /.whl/ /.gpu/; do grep -qxF "$folder" .git/info/exclude || echo "$folder" >> .git/info/exclude; done
mkdir -p .whl .gpu
KERAS_VERSION="$(python3 -c 'import keras; print(keras.__version__)' 2>/dev/null || echo 3.15.1)"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "keras==$KERAS_VERSION" namex optree
cp "${CIFAR_TARBALL:-../shared/data/cifar10-jpeg.tar.gz}" .gpu/
du -sh .whl .gpu
