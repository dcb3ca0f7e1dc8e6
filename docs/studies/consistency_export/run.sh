#!/usr/bin/env bash
# Shift consistency of Keras vs TFLite float32 vs TFLite int8, one plain and one AugShift CIFAR-10 model.
set -u
DATA=/work/shared/data/cifar10-jpeg.tar.gz
PCW=/work/venv/bin/pcw
for name in cifar10-resnet18 cifar10-resnet18-augshift; do
  $PCW train $name --data $DATA --epochs 4 --set model.width=0.125 --out runs/$name > train_$name.log 2>&1
  $PCW export runs/$name --format tflite --out exports/$name-f32 > export_$name-f32.log 2>&1
  $PCW export runs/$name --format tflite --quantize int8 --out exports/$name-int8 > export_$name-int8.log 2>&1
  for model in runs/$name exports/$name-f32/model.tflite exports/$name-int8/model.tflite; do
    tag=$(echo $model | tr '/' '_')
    $PCW evaluate consistency $model --data $DATA --limit 2000 --passes 5 --out consistency/$tag > cons_$tag.log 2>&1
  done
done
