"""One worker of the two-worker test: a tiny ResNet trained with ``model.fit``.

Usage: ``TF_CONFIG=... python train_multi_worker.py OUT_NPZ RUN_DIR [--unpatched]``.

Trains with :func:`pcw_keras.training.callbacks.resume_callbacks` into
``RUN_DIR`` (shared by the workers; only the chief writes there) and writes the
per-epoch losses and every weight (``trainable/i``, ``non_trainable/i``) to
``OUT_NPZ``. ``--unpatched`` creates the
``MultiWorkerMirroredStrategy`` directly, without the project's Keras fixes, to
show that ``model.fit`` fails without them.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

out_path, run_dir = sys.argv[1:3]
unpatched = "--unpatched" in sys.argv[3:]

# The strategy comes first: TensorFlow needs it before any other op.
if unpatched:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    from pcw_keras.training.strategy import choose_strategy, describe_strategy

    strategy = choose_strategy("auto")
    print(describe_strategy(strategy), flush=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pcw_keras  # noqa: E402
from pcw_keras.training.callbacks import resume_callbacks  # noqa: E402

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
images = rng.random((64, 32, 32, 3), dtype=np.float32)
labels = rng.integers(0, 4, size=64).astype(np.int32)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
# Global batch 16: each of the two workers gets 8 per step.
dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16, drop_remainder=True).with_options(options)

with strategy.scope():
    model = pcw_keras.models.resnet(18, num_classes=4, input_shape=(32, 32, 3), stem="cifar", width=0.0625)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(dataset, epochs=2, verbose=0, callbacks=resume_callbacks(run_dir, monitor=None))

trainable = {f"trainable/{i}": np.asarray(w) for i, w in enumerate(model.trainable_weights)}
non_trainable = {f"non_trainable/{i}": np.asarray(w) for i, w in enumerate(model.non_trainable_weights)}
np.savez(out_path, loss=np.asarray(history.history["loss"]), **trainable, **non_trainable)
print("losses", history.history["loss"], flush=True)
