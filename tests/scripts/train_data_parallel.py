"""One run of the two-device test: ``python train_data_parallel.py STRATEGY`` prints per-step losses as JSON.

A tiny CIFAR ResNet trained for one epoch (8 steps of a global batch of 16)
under :func:`pcw_keras.training.strategy.choose_strategy`, from the
package's own classification pipeline. Run it with
``XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax``.
"""
import json
import sys

import keras
import numpy as np

import pcw_keras
from pcw_keras.data import ImageSet
from pcw_keras.data.classification import classification_dataset
from pcw_keras.training.strategy import choose_strategy, describe_strategy

distribution = choose_strategy(sys.argv[1])
print(describe_strategy(distribution), file=sys.stderr)
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
images = ImageSet(rng.integers(0, 256, (128, 32, 32, 3), dtype=np.uint8), np.arange(128) % 4)
train = classification_dataset(images, batch_size=16, training=True, seed=0)
with distribution.scope():
    model = pcw_keras.models.resnet(18, num_classes=4, input_shape=(32, 32, 3), stem="cifar", width=0.0625)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
losses = []
record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
model.fit(train, epochs=1, verbose=0, callbacks=[record])
print(json.dumps({"replicas": distribution.num_replicas_in_sync, "losses": losses}))
