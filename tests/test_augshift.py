"""The AugShift training wrapper: its loss, inference behaviour, saving and export."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from pcw_keras.training import AugShiftModel, unwrap


def small_classifier(classes=3, seed=0):
    """Conv -> ReLU -> GAP (named ``pool``) -> dense: no BatchNorm, so training and inference agree."""
    inputs = keras.Input((8, 8, 2), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed), name="conv")(inputs)
    x = keras.layers.ReLU()(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=keras.initializers.RandomNormal(seed=seed + 1), name="head")(pooled)
    return keras.Model(inputs, outputs, name="small")


def shift_by_hand(images, offsets, max_shift):
    """Zero-pad by ``max_shift`` and crop each image at its (row, column) offset, in NumPy."""
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    h, w = images.shape[1:3]
    return np.stack([p[r : r + h, c : c + w] for p, (r, c) in zip(padded, offsets)])


def cross_entropy(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), labels].mean()


@pytest.fixture()
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 8, 8, 2)).astype("float32"), np.array([0, 1, 2, 1])


def compiled(model, learning_rate=0.0):
    model.compile(keras.optimizers.SGD(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def test_loss_is_cross_entropy_on_both_views_plus_weight_times_latent_mse(batch):
    x, y = batch
    max_shift, weight = 2, 3.0
    classifier = small_classifier()
    model = compiled(AugShiftModel(classifier, max_shift=max_shift, fill="zero", weight=weight, seed=0))
    # Fixed shifts for the 2B views: first the B view-1 crops, then the B view-2 crops (all different).
    offsets = np.array([[0, 0], [4, 4], [1, 3], [2, 2], [4, 0], [0, 4], [3, 1], [2, 0]], "int32")
    model.shift.draw_offsets = lambda batch_size: tf.constant(offsets)

    views = shift_by_hand(np.concatenate([x, x]), offsets, max_shift)
    logits = keras.ops.convert_to_numpy(classifier(views))
    latents = keras.ops.convert_to_numpy(keras.Model(classifier.inputs, classifier.get_layer("pool").output)(views))
    z1, z2 = latents[:4], latents[4:]
    ce = 0.5 * (cross_entropy(logits[:4], y) + cross_entropy(logits[4:], y))
    mse = np.mean((z1 - z2) ** 2)
    assert mse > 1e-3  # the two views really differ, so the MSE term is tested

    y_pred = model(x, training=True)
    direct = float(model.compute_loss(x, y, y_pred, training=True))
    assert direct == pytest.approx(ce + weight * mse, rel=1e-5)
    # The loss `fit` minimises (reported before the update; the learning rate is 0).
    reported = model.train_on_batch(x, y, return_dict=True)["loss"]
    assert reported == pytest.approx(ce + weight * mse, rel=1e-5)


def test_weight_zero_leaves_the_cross_entropy_of_both_views(batch):
    x, y = batch
    classifier = small_classifier()
    model = compiled(AugShiftModel(classifier, max_shift=0, weight=0.0))
    y_pred = model(x, training=True)
    ce = cross_entropy(keras.ops.convert_to_numpy(classifier(x)), y)
    assert float(model.compute_loss(x, y, y_pred, training=True)) == pytest.approx(ce, rel=1e-5)


def test_inference_is_the_classifier_and_evaluate_uses_it(batch):
    x, y = batch
    classifier = small_classifier()
    model = compiled(AugShiftModel(classifier, max_shift=3, seed=1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(classifier(x)), atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), keras.ops.convert_to_numpy(classifier(x)), atol=1e-6)
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(cross_entropy(keras.ops.convert_to_numpy(classifier(x)), y), rel=1e-5)


def test_trained_model_saves_loads_and_exports_as_the_plain_classifier(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 32)
    model = compiled(AugShiftModel(small_classifier(), max_shift=2, weight=1.0, seed=0), learning_rate=0.1)
    before = [w.copy() for w in model.classifier.get_weights()]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.classifier.get_weights()))  # it trained
    assert len(model.trainable_weights) == len(model.classifier.trainable_weights)  # shared, not copied

    path = str(tmp_path / "augshift.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, AugShiftModel)
    assert (loaded.max_shift, loaded.weight, loaded.fill, loaded.feature_layer) == (2, 1.0, "reflect", "pool")
    expected = model.classifier.predict(x, verbose=0)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)  # the optimizer and the wrapper's loss come back too

    plain = unwrap(model)
    assert plain is model.classifier and unwrap(plain) is plain
    assert not any("augshift" in layer.name or "AugShift" in type(layer).__name__ for layer in plain.layers)

    exported = str(tmp_path / "exported")
    model.export(exported, verbose=False)
    served = tf.saved_model.load(exported)
    np.testing.assert_allclose(served.serve(x).numpy(), expected, atol=1e-5)
    # No trace of the wrapper: exactly the classifier's variables (no shift seed state).
    assert len(served.variables) == len(model.classifier.weights)


def test_fit_under_a_distribution_strategy(batch):
    x, y = batch
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = compiled(AugShiftModel(small_classifier(), seed=0), learning_rate=0.1)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"feature_layer": "pooled"}, "feature_layer='pooled'"),
        ({"weight": -1.0}, "weight=-1.0"),
        ({"max_shift": -1}, "max_shift=-1"),
        ({"fill": "wrap"}, "fill='wrap'"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugShiftModel(small_classifier(), **kwargs)


def test_a_non_functional_classifier_is_refused():
    with pytest.raises(ValueError, match="functional"):
        AugShiftModel(keras.layers.Dense(3))
