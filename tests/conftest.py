"""Shared pytest setup: quiet TensorFlow logs, fixed seeds."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


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
