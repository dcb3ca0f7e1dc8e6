"""A tiny training run with the resumable callbacks, which can SIGKILL itself at a chosen point.

Usage: ``python train_resumable.py RUN_DIR [--epochs N] [--upstream-backup]``.

``PCW_TEST_KILL_AT`` picks where the process kills itself: ``"E:B"`` at the
start of batch B of epoch E, ``"E:end"`` at the end of epoch E after the metrics
and models are written but before the backup is committed. Unset: no kill.
Re-running the same command resumes. Prints ``START_EPOCH k`` at the first epoch
this process trains, and writes the final weights to ``RUN_DIR/final_weights.npz``.

``--upstream-backup`` uses ``keras.callbacks.BackupAndRestore(save_freq=3)`` and
``keras.callbacks.CSVLogger(append=True)`` instead, to show their defects.
"""
import argparse
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pcw_keras.training.callbacks import resume_callbacks  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("run_dir")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--upstream-backup", action="store_true")
args = parser.parse_args()


class KillAt(keras.callbacks.Callback):
    """SIGKILLs this process at ``"E:B"`` (batch B of epoch E begins) or ``"E:end"``."""

    def __init__(self, spec: str):
        super().__init__()
        epoch, _, where = spec.partition(":")
        self.epoch, self.where = int(epoch), where
        self.current = None

    def _kill(self):
        print(f"KILLED {self.epoch}:{self.where}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_begin(self, epoch, logs=None):
        if self.current is None:
            print(f"START_EPOCH {epoch}", flush=True)
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.where != "end" and self.current == self.epoch and batch == int(self.where):
            self._kill()

    def on_epoch_end(self, epoch, logs=None):
        if self.where == "end" and epoch == self.epoch:
            self._kill()


keras.utils.set_random_seed(7)
tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(7)
x = rng.normal(size=(80, 8, 8, 3)).astype("float32")
y = rng.integers(0, 4, size=80).astype("int32")
train = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(8)
val = tf.data.Dataset.from_tensor_slices((x[64:], y[64:])).batch(8)

model = keras.Sequential(
    [
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(4, activation="softmax"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

killer = KillAt(os.environ.get("PCW_TEST_KILL_AT") or "-1:-1")
if args.upstream_backup:
    callbacks = [
        keras.callbacks.CSVLogger(os.path.join(args.run_dir, "metrics.csv"), append=True),
        killer,
        keras.callbacks.BackupAndRestore(os.path.join(args.run_dir, "backup"), save_freq=3),
    ]
else:
    callbacks = resume_callbacks(args.run_dir, monitor="val_accuracy", mode="max")
    callbacks.insert(len(callbacks) - 1, killer)  # before the backup commit
os.makedirs(args.run_dir, exist_ok=True)
model.fit(train, validation_data=val, epochs=args.epochs, callbacks=callbacks, verbose=0)
np.savez(os.path.join(args.run_dir, "final_weights.npz"), *[np.asarray(w) for w in model.get_weights()])
print("DONE", flush=True)
