"""Shared pytest setup: quiet TensorFlow logs, fixed seeds, and the JAX run without TensorFlow.

Under ``KERAS_BACKEND=jax`` TensorFlow is made unimportable (as on the GPU
machines, which have none), and only the test modules marked ``jax`` are
collected: the others exercise TensorFlow-only parts (export, tf.distribute).
"""
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
JAX_RUN = os.environ.get("KERAS_BACKEND") == "jax"


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """``import tensorflow`` raises ModuleNotFoundError, as where it is not installed.

    Not ``sys.modules["tensorflow"] = None``: Keras takes a ``"tensorflow"`` key in
    ``sys.modules`` for TensorFlow being loaded (``in_tf_graph``), and its
    preprocessing layers (``Resizing``) would then ask TensorFlow whether they run
    eagerly, which fails where it is missing.
    """

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (the JAX test run has no TensorFlow)", name=name)
        return None


if JAX_RUN:
    sys.meta_path.insert(0, _NoTensorFlow())


def pytest_ignore_collect(collection_path: Path, config):
    """In the JAX run, skip (without importing) the modules that are not marked ``jax``."""
    if JAX_RUN and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return "pytest.mark.jax" not in collection_path.read_text(encoding="utf-8")
    return None

import keras  # noqa: E402
import pytest  # noqa: E402

HAS_JAX = importlib.util.find_spec("jax") is not None


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory):
    """A small 4-class image dataset (.npz with train and test splits) for end-to-end runs."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (160, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(160) % 4,
        x_test=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(40) % 4,
    )
    return str(path)
