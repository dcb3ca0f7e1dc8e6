"""Canvas tasks: placement, labels, normalisation, randomness, on-device parity, evaluation (any backend)."""
import functools
import keras
import numpy as np
import pytest

from pcw_keras.data.canvas import (
    CIFAR_MEAN,
    CIFAR_STD,
    CanvasPlacement,
    canvas_dataset,
    evaluation_passes,
    place_on_canvas,
    place_on_canvas_np,
    placement_dataset,
)
from pcw_keras.data.imageset import ImageSet
from pcw_keras.evaluation.evaluators import evaluate_canvas
from pcw_keras.normalization import Normalization, normalize

pytestmark = pytest.mark.jax  # backend-neutral: runs in the JAX run too

MEAN = np.array(CIFAR_MEAN, np.float32)
STD = np.array(CIFAR_STD, np.float32)


def make_images(count=60, seed=0, num_classes=3):
    images = np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return ImageSet(images, np.arange(count) % num_classes, [f"c{i}" for i in range(num_classes)])


def reference_canvas(patches, cells, grid):
    h, w = patches.shape[1:3]
    out = np.zeros((len(patches), grid * h, grid * w, patches.shape[-1]), patches.dtype)
    for i, (patch, cell) in enumerate(zip(patches, cells)):
        r, c = divmod(int(cell), grid)
        out[i, r * h:(r + 1) * h, c * w:(c + 1) * w] = patch
    return out


def occupied_cells(canvas, grid):
    """Cells with any non-zero pixel, per sample: ``(B, grid*grid)`` bool."""
    b, height, width, _ = canvas.shape
    blocks = canvas.reshape(b, grid, height // grid, grid, width // grid, -1)
    return np.abs(blocks).max(axis=(2, 4, 5)).reshape(b, grid * grid) > 0


@pytest.mark.parametrize("grid", [1, 3, 5, 7])
def test_location_labels_match_patch_position_and_rest_is_zero(grid):
    data = make_images(40)
    ds = canvas_dataset(data, grid=grid, task="location", batch_size=16, training=True, seed=grid)
    for canvas, labels in list(ds)[:2]:
        assert canvas.shape == (16, 32 * grid, 32 * grid, 3) and canvas.dtype == np.float32
        assert labels.dtype == np.int32
        occupied = occupied_cells(canvas, grid)
        assert (occupied.sum(axis=1) == 1).all()
        np.testing.assert_array_equal(occupied.argmax(axis=1), labels)
        mask = np.ones_like(canvas, bool)
        for i, cell in enumerate(labels):
            r, c = divmod(int(cell), grid)
            mask[i, r * 32:(r + 1) * 32, c * 32:(c + 1) * 32] = False
        assert (canvas[mask] == 0).all() and not np.signbit(canvas[mask]).any()


def test_normalisation_before_placement_and_image_labels():
    data = make_images(24)
    ds = canvas_dataset(data, grid=3, task="image", batch_size=24, training=False, seed=0)
    canvas, labels = ds[0]
    np.testing.assert_array_equal(labels, data.labels)  # eval keeps the order
    cells = occupied_cells(canvas, 3).argmax(axis=1)
    expected = reference_canvas((data.images / np.float32(255) - MEAN) / STD, cells, 3)
    np.testing.assert_allclose(canvas, expected, rtol=1e-6, atol=1e-6)


def test_same_seed_same_batches_and_different_seed_differs():
    data = make_images(96)

    def first_epoch(seed):
        ds = canvas_dataset(data, grid=3, task="location", batch_size=32, training=True, seed=seed)
        return list(ds)

    a, b, c = first_epoch(5), first_epoch(5), first_epoch(6)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_training_redraws_every_epoch_and_evaluation_stays_fixed():
    data = make_images(64)
    train = canvas_dataset(data, grid=3, task="location", batch_size=32, training=True, seed=1)
    first, second = list(train), list(train)
    assert not np.array_equal(first[0][1], second[0][1]) and not np.array_equal(first[0][0], second[0][0])
    test = canvas_dataset(data, grid=3, task="location", batch_size=32, training=False, seed=1)
    first, second = list(test), list(test)
    for (xa, ya), (xb, yb) in zip(first, second):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("make", [canvas_dataset, placement_dataset])
def test_a_fresh_dataset_set_to_epoch_k_draws_what_a_long_running_one_draws(make):
    """What exact resume rests on: epoch k's batches depend on (seed, k) only, not on the history."""
    data = make_images(64)
    kwargs = dict(grid=3, task="image", batch_size=16, training=True, seed=4)
    running = make(data, **kwargs)
    epochs = [list(running) for _ in range(3)]
    fresh = make(data, **kwargs)
    fresh[0]  # a partial, unsynced look (Keras samples a batch to trace) must not shift the epochs
    fresh.set_epoch(2)
    resumed = list(fresh)
    flat = lambda batches: [np.asarray(a) for batch in batches for a in keras.tree.flatten(batch)]  # noqa: E731
    for a, b in zip(flat(epochs[2]), flat(resumed)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(flat(epochs[1]), flat(resumed)))


def test_batches_drawn_ahead_are_those_drawn_on_demand_in_any_reading_order():
    """The background draw changes no value: in order, after an epoch change, skipping and going back."""
    from pcw_keras.data.classification import classification_dataset

    data = make_images(80)
    flat = lambda batch: [np.asarray(a) for a in keras.tree.flatten(batch)]  # noqa: E731
    for make in (functools.partial(placement_dataset, grid=3, task="image"), classification_dataset):
        ahead = make(data, batch_size=8, training=True, seed=1)
        on_demand = make(data, batch_size=8, training=True, seed=1, prefetch=0)
        assert ahead.prefetch == 2 and on_demand.prefetch == 0
        reads = [(0, step) for step in range(10)] + [(3, step) for step in (0, 1, 5, 6, 2, 9, 9)]
        for epoch, step in reads:
            for batches in (ahead, on_demand):
                if batches.epoch != epoch:
                    batches.set_epoch(epoch)
                    batches.on_epoch_begin()
            for a, b in zip(flat(ahead[step]), flat(on_demand[step])):
                np.testing.assert_array_equal(a, b)
        assert on_demand._drawer is None and ahead._drawer is not None
        assert len(ahead._ahead) <= 2
    for make in (placement_dataset, canvas_dataset):
        with pytest.raises(ValueError, match="`prefetch` must be an integer >= 0. Received: prefetch=-1"):
            make(data, grid=3, task="image", batch_size=8, training=True, seed=0, prefetch=-1)
    with pytest.raises(ValueError, match="`prefetch` must be an integer >= 0. Received: prefetch=1.5"):
        classification_dataset(data, batch_size=8, training=True, prefetch=1.5)


def test_training_batches_full_and_eval_keeps_remainder():
    data = make_images(50)
    train = canvas_dataset(data, grid=3, task="image", batch_size=16, training=True, seed=0)
    sizes = [len(y) for _, y in train]
    assert sizes == [16, 16, 16] and len(train) == 3  # static batch: one compiled graph
    test = canvas_dataset(data, grid=3, task="image", batch_size=16, training=False, seed=0)
    assert [len(y) for _, y in test] == [16, 16, 16, 2]


def test_flip_only_in_training():
    data = make_images(64)

    def count_mirrored(training):
        ds = placement_dataset(data, grid=3, task="image", batch_size=64, training=training, seed=3)
        (patches, _), _ = ds[0]
        mirrored = 0
        for patch in patches:
            same = (data.images == patch).all(axis=(1, 2, 3)).any()
            mirrored += int(not same)
            assert same or (data.images == patch[:, ::-1]).all(axis=(1, 2, 3)).any()
        return mirrored

    assert count_mirrored(False) == 0
    assert 10 < count_mirrored(True) < 54


@pytest.mark.parametrize("grid", [1, 3, 7])
def test_place_on_canvas_matches_numpy_reference(grid):
    rng = np.random.default_rng(grid)
    patches = rng.normal(size=(5, 4, 6, 3)).astype("float32")
    cells = rng.integers(0, grid * grid, 5)
    expected = reference_canvas(patches, cells, grid)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(place_on_canvas(patches, cells, grid)), expected)
    np.testing.assert_array_equal(place_on_canvas_np(patches, cells, grid), expected)


def test_canvas_placement_round_trip_and_parity_with_host(tmp_path):
    patches_in = keras.Input((32, 32, 3), dtype="uint8")
    cells_in = keras.Input((), dtype="int32")
    model = keras.Model([patches_in, cells_in], CanvasPlacement(grid=3)((patches_in, cells_in)))
    path = tmp_path / "placement.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[-1].get_config()["grid"] == 3
    assert loaded.output_shape == (None, 96, 96, 3)

    data = make_images(40)
    kwargs = dict(grid=3, task="location", batch_size=20, training=True, seed=9)
    host = list(canvas_dataset(data, **kwargs))
    device = list(placement_dataset(data, **kwargs))
    for (canvas, labels), ((patches, cells), device_labels) in zip(host, device):
        np.testing.assert_array_equal(labels, device_labels)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded([patches, cells])), canvas)


class OracleLocation(keras.layers.Layer):
    """Scores each cell by its absolute activation: argmax is the true cell."""

    def __init__(self, grid, **kwargs):
        super().__init__(**kwargs)
        self.grid = grid

    def call(self, x):
        b = keras.ops.shape(x)[0]
        h, w = x.shape[1] // self.grid, x.shape[2] // self.grid
        blocks = keras.ops.reshape(keras.ops.abs(x), (b, self.grid, h, self.grid, w, 3))
        return keras.ops.reshape(keras.ops.sum(blocks, axis=(2, 4, 5)), (b, self.grid * self.grid))


def test_evaluate_canvas_with_hand_built_models():
    data = make_images(30, num_classes=3)
    inputs = keras.Input((96, 96, 3))
    oracle = keras.Model(inputs, OracleLocation(3)(inputs))
    result = evaluate_canvas(oracle, data, grid=3, task="location", batch_size=16, passes=3)
    assert result["accuracy"] == 1.0 and result["accuracy_per_pass"] == [1.0, 1.0, 1.0]
    assert result["per_cell_accuracy"] == [1.0] * 9

    # Always class 0 on the image task: accuracy is the share of class 0 (10 of 30).
    constant = keras.Model(inputs, keras.layers.Dense(3, kernel_initializer="zeros",
                                                       bias_initializer=keras.initializers.Constant([1.0, 0, 0]))(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    result = evaluate_canvas(constant, data, grid=3, task="image", batch_size=16)
    assert len(result["accuracy_per_pass"]) == 9
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert len(result["per_cell_accuracy"]) == 9


def test_evaluate_canvas_on_device_feed_matches_host_feed():
    data = make_images(20)
    patches_in = keras.Input((32, 32, 3), dtype="uint8")
    cells_in = keras.Input((), dtype="int32")
    canvas = CanvasPlacement(grid=3)((patches_in, cells_in))
    on_device = keras.Model([patches_in, cells_in], OracleLocation(3)(canvas))
    result = evaluate_canvas(on_device, data, grid=3, task="location", batch_size=8, passes=2, feed="patches")
    assert result["accuracy"] == 1.0


def test_evaluation_passes_default_count_and_fresh_placements():
    data = make_images(30)
    passes = evaluation_passes(data, grid=3, task="location", batch_size=30)
    assert len(passes) == 9
    labels = [p[0][1] for p in passes[:2]]
    assert not np.array_equal(*labels)


def test_bad_arguments_are_named():
    data = make_images(10)
    with pytest.raises(ValueError, match="task="):
        canvas_dataset(data, grid=3, task="where", batch_size=4, training=True, seed=0)
    with pytest.raises(ValueError, match="grid="):
        CanvasPlacement(grid=0)
    with pytest.raises(ValueError, match="full batch"):
        canvas_dataset(data, grid=3, task="image", batch_size=32, training=True, seed=0, drop_remainder=True)


def test_a_training_set_smaller_than_one_batch_trains_on_a_partial_batch(capsys):
    data = make_images(46)
    train = placement_dataset(data, grid=3, task="location", batch_size=48, training=True, seed=0)
    assert "only 46 training images for a batch of 48" in capsys.readouterr().out
    assert len(train) == 1 and len(train[0][1]) == 46
    patches_in, cells_in = keras.Input((32, 32, 3), dtype="uint8"), keras.Input((), dtype="int32")
    canvases = CanvasPlacement(grid=3)((patches_in, cells_in))
    model = keras.Model([patches_in, cells_in], keras.layers.Dense(9)(keras.layers.GlobalAveragePooling2D()(canvases)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(train, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_normalize_is_the_cifar_standardisation_bit_identical_in_every_path():
    pixels = np.stack([np.arange(256, dtype=np.uint8)] * 3, axis=-1).reshape(1, 16, 16, 3)
    expected = (pixels / 255.0 - np.asarray(CIFAR_MEAN)) / np.asarray(CIFAR_STD)
    numpy_values = normalize(pixels)  # the data pipelines, evaluators and export checks
    np.testing.assert_allclose(numpy_values, expected, rtol=0, atol=1e-6)
    keras_values = keras.ops.convert_to_numpy(normalize(keras.ops.cast(pixels, "float32")))  # CanvasPlacement
    np.testing.assert_array_equal(numpy_values, keras_values)
    jitted = keras.ops.convert_to_numpy(CanvasPlacement(grid=1)((pixels, np.zeros(1, "int32"))))
    np.testing.assert_array_equal(numpy_values, jitted)
    if keras.backend.backend() == "tensorflow":  # the exported serving graph, with and without XLA
        import tensorflow as tf

        serving = lambda x: normalize(tf.cast(x, tf.float32))  # noqa: E731
        np.testing.assert_array_equal(serving(pixels).numpy(), numpy_values)
        np.testing.assert_array_equal(tf.function(serving, jit_compile=True)(pixels).numpy(), numpy_values)
    # And back: the normalised pixels round to the same uint8 pixels.
    np.testing.assert_array_equal(Normalization.named("cifar").pixels(numpy_values), pixels)


def test_each_process_feeds_its_contiguous_slice_of_the_global_batch(monkeypatch):
    """With P processes, process i keeps samples [i*B/P, (i+1)*B/P) of every batch, drawn as one process draws it."""
    from pcw_keras.data import batching

    images = ImageSet(np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 4)
    batches = functools.partial(placement_dataset, images, grid=3, task="location", batch_size=8, seed=0)
    whole = keras.tree.flatten(batches(training=True)[1])
    parts = []
    for index in (0, 1):
        monkeypatch.setattr(batching, "process_shard", lambda index=index: (index, 2))
        parts.append(keras.tree.flatten(batches(training=True)[1]))
    for first, second, want in zip(*parts, whole):
        assert len(first) == len(second) == 4
        np.testing.assert_array_equal(np.concatenate([first, second]), want)

    monkeypatch.setattr(batching, "process_shard", lambda: (1, 3))
    with pytest.raises(ValueError, match="A global batch of 8 does not split over 3 processes"):
        batches(training=True)[0]
    evaluation = batches(training=False)
    assert [len(evaluation[step][1]) for step in range(3)] == [2, 2, 1]  # batches of 8, 8, 4 over 3 processes


def test_the_command_lines_preprocess_names_are_the_normalisations():
    from pcw_keras.choices import PREPROCESS
    from pcw_keras.normalization import NORMALIZATIONS

    assert PREPROCESS == tuple(NORMALIZATIONS)
