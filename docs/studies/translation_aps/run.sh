#!/usr/bin/env bash
# The reduced-scale translation study with the APS rows (docs/results.md, section 2), from the repository root:
# five CIFAR-10 ResNet-18 runs trained the same way, each scored by `pcw evaluate consistency` in float32
# (top-1, Zhang's consistency, circular consistency, the curve), and the APS runs exported to TFLite float32 and
# int8 and scored the same way. Copies the raw files here; scripts/render_docs.py renders docs/results.md from them.
set -eu
source /work/venv/bin/activate  # TensorFlow + Keras 3 (pcw on the PATH)
DATA=../shared/data/cifar10-jpeg.tar.gz
STUDY=docs/studies/translation_aps
COMMON="--data $DATA --epochs 6 --set model.width=0.125 --set data.limit=10000 --set data.test_limit=2000 --set training.jit_compile=false"
python -c "import json, os; from pcw_keras.machine import cpu_model; print(json.dumps({'cpu': cpu_model(), 'cores': os.cpu_count()}))" > $STUDY/machine.json
for pair in aps:cifar10-resnet18-aps aps-blur:cifar10-resnet18-aps-blur plain:cifar10-resnet18 \
            blurpool:cifar10-resnet18-blurpool augshift:cifar10-resnet18-augshift; do
  v=${pair%%:*}; recipe=${pair#*:}
  flock -x /work/cpu.lock pcw --backend tensorflow train $recipe $COMMON --out runs/translation/$v
  flock -x /work/cpu.lock pcw --backend tensorflow evaluate consistency runs/translation/$v --precision float32 --curve-max-shift 8
  mkdir -p $STUDY/$v
  cp runs/translation/$v/results.json runs/translation/$v/consistency.json runs/translation/$v/metrics.csv runs/translation/$v/recipe.yaml $STUDY/$v/
done
# The committed tflite-*.json name their model as exports/translation/...: they were written there, before
# the exports moved under runs/ (not committed); the same commands otherwise.
for v in aps aps-blur; do
  for q in none int8; do
    # The int8 gate is opened (agreement 0, error 100) so that what int8 keeps is measured even where the gate
    # would refuse the file; its report records the gate's figures and outcome.
    gate=""; if [ $q = int8 ]; then gate="--min-agreement 0 --max-error 100"; fi
    flock -x /work/cpu.lock pcw --backend tensorflow export runs/translation/$v --format tflite --quantize $q $gate --out runs/translation/exports/$v-$q --overwrite
    flock -x /work/cpu.lock pcw --backend tensorflow evaluate consistency runs/translation/exports/$v-$q/model.tflite \
      --data $DATA --limit 2000 --curve-max-shift 8 --out runs/translation/exports/$v-$q
    cp runs/translation/exports/$v-$q/consistency.json $STUDY/$v/tflite-$q-consistency.json
    cp runs/translation/exports/$v-$q/export_report.json $STUDY/$v/tflite-$q-export_report.json
  done
done
# pcw reproduce's translation table over the same runs, from their own results.json (evaluated in bfloat16 at the
# end of training, `precision` in results.json): the cells laid out as pcw reproduce lays them out, then --report-only.
for pair in plain:cifar10-resnet18 blurpool:cifar10-resnet18-blurpool augshift:cifar10-resnet18-augshift \
            aps:cifar10-resnet18-aps aps-blur:cifar10-resnet18-aps-blur; do
  v=${pair%%:*}; cell=${pair#*:}
  mkdir -p runs/reproduce-aps/translation/$cell/seed-0
  cp $STUDY/$v/results.json runs/reproduce-aps/translation/$cell/seed-0/
done
pcw --backend tensorflow reproduce translation --scale reduced --report-only --out runs/reproduce-aps \
  --cells cifar10-resnet18,cifar10-resnet18-blurpool,cifar10-resnet18-augshift,cifar10-resnet18-aps,cifar10-resnet18-aps-blur \
  --set data.limit=10000 --set data.test_limit=2000 --set training.epochs=6 --set training.jit_compile=false
mkdir -p $STUDY/reproduce
cp runs/reproduce-aps/translation/results.md runs/reproduce-aps/translation/results.png $STUDY/reproduce/
