"""Sources: folders, tarballs, arrays, npz, the embedded mini set, subsets and errors."""
import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from pcw_keras.data.imageset import ImageSet, split_validation, stratified_indices
from pcw_keras.data.sources import load_split

SHARED_TARBALL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10-jpeg.tar.gz")
CLASSES = ["zebra", "ant", "mole"]  # deliberately unsorted


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Extract tarballs under ``tmp_path/cache`` (the shared tarball keeps the user cache)."""
    monkeypatch.setenv("PCW_KERAS_CACHE", str(tmp_path / "cache"))


def write_folder(root, fmt="png", per_class=4, size=(8, 8)):
    """``root/{train,test}/<class>/<i>.<fmt>``; pixel value encodes class and index."""
    pixels = {}
    for split in ("train", "test"):
        for name in CLASSES:
            os.makedirs(root / split / name)
            for i in range(per_class):
                value = CLASSES.index(name) * 50 + i * 10
                image = np.full(size + (3,), value, np.uint8)
                Image.fromarray(image).save(root / split / name / f"{i}.{fmt}")
                pixels[(split, name, i)] = image
    return pixels


def test_png_folder_loads_exact_pixels_and_sorted_classes(tmp_path):
    pixels = write_folder(tmp_path / "set")
    data = load_split(tmp_path / "set", "train")
    assert data.class_names == sorted(CLASSES)
    assert data.images.shape == (12, 8, 8, 3) and data.labels.dtype == np.int64
    for image, label in zip(data.images, data.labels):
        name = data.class_names[label]
        assert any(np.array_equal(image, pixels[("train", name, i)]) for i in range(4))
    np.testing.assert_array_equal(data.labels, np.repeat([0, 1, 2], 4))


def test_jpeg_tarball_with_top_folder(tmp_path, private_cache):
    write_folder(tmp_path / "src" / "top", fmt="jpg", size=(16, 8))
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "top", arcname="top")
    data = load_split(str(archive), "test")
    assert data.images.shape == (12, 16, 8, 3)
    assert data.class_names == sorted(CLASSES)
    # JPEG is lossy: the flat colour comes back within a few levels.
    expected = np.array([CLASSES.index(n) * 50 for n in data.class_names])[data.labels]
    np.testing.assert_allclose(data.images.mean(axis=(1, 2, 3)), expected + np.tile(np.arange(4) * 10, 3), atol=3)
    extracted = os.listdir(tmp_path / "cache" / "extracted")
    assert len(extracted) == 1 and not extracted[0].startswith(".")


def test_tarball_member_escaping_target_is_refused(tmp_path, private_cache):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in [("set/train/a/0.png", b"x"), ("../escaped.txt", b"owned")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ValueError, match="safely"):
        load_split(str(archive), "train")
    assert not (tmp_path / "cache" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert os.listdir(tmp_path / "cache" / "extracted") == []  # no half-written cache


def test_corrupt_image_is_named(tmp_path):
    write_folder(tmp_path / "set")
    bad = tmp_path / "set" / "train" / "mole" / "2.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="2.png"):
        load_split(tmp_path / "set", "train")


def test_mixed_sizes_name_an_offender(tmp_path):
    write_folder(tmp_path / "set")
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "set" / "train" / "ant" / "odd.png")
    with pytest.raises(ValueError, match="odd.png"):
        load_split(tmp_path / "set", "train")


def test_empty_class_folder_is_named(tmp_path):
    write_folder(tmp_path / "set")
    os.makedirs(tmp_path / "set" / "train" / "hollow")
    with pytest.raises(ValueError, match="hollow"):
        load_split(tmp_path / "set", "train")


def test_missing_split_lists_found_splits(tmp_path):
    write_folder(tmp_path / "set")
    with pytest.raises(FileNotFoundError, match=r"'validation'.*\['test', 'train'\]"):
        load_split(tmp_path / "set", "validation")


def test_unknown_source_lists_accepted():
    with pytest.raises(ValueError, match="cifar10-mini.*Received: source='imagenet-tiny'"):
        load_split("imagenet-tiny")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_split("/nowhere/missing.npz")


def test_arrays_and_their_errors(tmp_path):
    images = np.zeros((6, 4, 4, 3), np.uint8)
    data = load_split((images, np.array([0, 1, 2, 0, 1, 2])))
    assert len(data) == 6 and data.class_names == ["0", "1", "2"]
    with pytest.raises(ValueError, match="6 images and 5 labels"):
        load_split((images, np.arange(5)))
    with pytest.raises(ValueError, match="dtype=float32"):
        load_split((images.astype("float32"), np.arange(6)))
    with pytest.raises(ValueError, match=r"shape=\(6, 4, 4\)"):
        load_split((images[..., 0], np.arange(6)))
    np.savez(tmp_path / "a.npz", x_test=images, y_test=np.arange(6) % 2)
    assert len(load_split(str(tmp_path / "a.npz"), "test")) == 6
    with pytest.raises(ValueError, match="x_train"):
        load_split(str(tmp_path / "a.npz"), "train")


def test_tfds_without_data_or_network_fails_fast(monkeypatch, tmp_path):
    import pcw_keras.data.sources as sources

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(sources, "_can_reach", lambda host, port: False)
    with pytest.raises(ValueError, match="cifar10-mini"):
        load_split("tfds:mnist", "train")


def test_limit_is_stratified_and_seeded():
    labels = np.repeat(np.arange(4), [10, 10, 10, 3])
    picked = stratified_indices(labels, 14, seed=1)
    assert np.bincount(labels[picked]).tolist() == [4, 4, 3, 3]
    np.testing.assert_array_equal(picked, stratified_indices(labels, 14, seed=1))
    assert not np.array_equal(picked, stratified_indices(labels, 14, seed=2))
    data = load_split("cifar10-mini", "test", limit=50, seed=3)
    assert np.bincount(data.labels).tolist() == [5] * 10


def test_split_validation_deterministic_and_disjoint():
    images = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    data = ImageSet(images, np.arange(40) % 4)
    train, val = split_validation(data, 0.3, seed=0)
    again_train, again_val = split_validation(data, 0.3, seed=0)
    np.testing.assert_array_equal(val.images, again_val.images)
    ids = lambda s: set(s.images[:, 0, 0, 0].tolist())  # noqa: E731
    assert ids(train).isdisjoint(ids(val)) and len(ids(train) | ids(val)) == 40
    assert np.bincount(val.labels).tolist() == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="fraction=1.5"):
        split_validation(data, 1.5)


def test_cifar10_mini_counts_and_repeat_is_cached():
    train = load_split("cifar10-mini", "train")
    test = load_split("cifar10-mini", "test")
    assert train.images.shape == (5000, 32, 32, 3) and len(test) == 1000
    assert np.bincount(train.labels).tolist() == [500] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert test.class_names[:2] == ["airplane", "automobile"]
    assert load_split("cifar10-mini", "test") is test


@pytest.mark.skipif(not os.path.exists(SHARED_TARBALL), reason=f"{SHARED_TARBALL} is absent")
def test_shared_tarball_test_split():
    data = load_split(SHARED_TARBALL, "test")
    assert data.images.shape == (10000, 32, 32, 3) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [1000] * 10
