"""DeepLabV3 on the package's ResNet: synthetic shapes, mIoU, and the channel ranking and attack on it."""
import keras
import numpy as np
import pytest

from pcw_keras.evaluation.attacks import attack, evaluate_attacks
from pcw_keras.evaluation.position_channels import rank_position_channels
from pcw_keras.evaluation.task_metrics import segmentation_metric
from pcw_keras.models import create_model
from pcw_keras.models.segmentation import deeplabv3

SIDE, CLASSES = 64, 3  # background, square, disc


def shapes(count, seed):
    """A square (class 1, reddish) and a disc (class 2, bluish) of random size, shade and place on a zero canvas,
    with per-pixel labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, SIDE, SIDE, 3), "float32")
    masks = np.zeros((count, SIDE, SIDE), "int32")
    rows, cols = np.mgrid[:SIDE, :SIDE]
    for i in range(count):
        for kind in (1, 2):
            radius = rng.integers(6, 14)
            r, c = rng.integers(radius, SIDE - radius, size=2)
            if kind == 1:
                inside = (np.abs(rows - r) <= radius) & (np.abs(cols - c) <= radius)
            else:
                inside = (rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2
            colour = rng.uniform(-0.5, 0.5, 3)
            colour[0 if kind == 1 else 2] = rng.uniform(1.0, 2.0)
            images[i][inside] = colour
            masks[i][inside] = kind
    return images, masks


def small_model():
    return deeplabv3(CLASSES, (SIDE, SIDE, 3), width=0.125, atrous_rates=(1, 2), aspp_filters=16, dropout=0.1)


def test_deeplabv3_shapes_names_registry_and_errors():
    model = small_model()
    assert model.output.shape == (None, SIDE, SIDE, CLASSES)
    for name in ("stem", "stage1", "stage4", "aspp", "head", "upsample"):
        model.get_layer(name)
    assert model.get_layer("stage4").output.shape == (None, 4, 4, 64)  # output stride 16
    assert create_model("deeplabv3_resnet18", num_classes=5, input_shape=(32, 32, 3), width=0.0625,
                        aspp_filters=8).output.shape == (None, 32, 32, 5)
    with pytest.raises(ValueError, match="input_shape=\\(8, 8, 3\\)"):
        deeplabv3(2, (8, 8, 3))
    with pytest.raises(ValueError, match="atrous_rates=\\(0,\\)"):
        deeplabv3(2, (32, 32, 3), atrous_rates=(0,))


def test_segmentation_metric_counts_miou_and_regions():
    images = np.zeros((2, 16, 16, 1), "float32")
    masks = np.zeros((2, 16, 16), "int32")
    masks[:, :, 8:] = 1
    inputs = keras.Input((16, 16, 1))
    ones = keras.layers.Lambda(lambda x: keras.ops.concatenate([keras.ops.ones_like(x), keras.ops.zeros_like(x)], -1))(inputs)
    always_background = keras.Model(inputs, ones)  # predicts class 0 everywhere
    region = np.zeros((16, 16), bool)
    region[:, :8] = True
    scores = segmentation_metric(images, masks, 2, region=region)(always_background)
    assert scores["miou"] == pytest.approx(0.25)  # background IoU 1/2, class 1 IoU 0
    assert scores["pixel_accuracy"] == pytest.approx(0.5)
    assert scores["miou_in_region"] == pytest.approx(1.0)  # left half: all background, all right
    assert scores["miou_elsewhere"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="num_classes=1"):
        segmentation_metric(images, masks, 1)


def test_ranking_and_attack_run_on_a_trained_segmentation_network(tmp_path):
    keras.utils.set_random_seed(0)
    train_x, train_y = shapes(96, seed=0)
    test_x, test_y = shapes(32, seed=1)
    model = small_model()
    metric = segmentation_metric(test_x, test_y, CLASSES)
    untrained = metric(model)["miou"]
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train_x, train_y, batch_size=16, epochs=5, verbose=0)
    trained = metric(model)
    background = np.mean(test_y == 0) / CLASSES  # mIoU of predicting background everywhere
    assert trained["miou"] > max(background, untrained) + 0.1, (background, untrained, trained)

    ranking = rank_position_channels(model, test_x, method="mirror", batch_size=16, verbose=False)
    assert ranking.layer == "stage4" and ranking.num_channels == 64
    report = evaluate_attacks(model, metric, ranking, [32], random_draws=1, verbose=False)
    assert report.metric == "miou" and report.baseline["miou"] == pytest.approx(trained["miou"])
    assert report.rows[0]["top"]["miou"] < trained["miou"]  # half the body's channels off costs mIoU

    attacked = attack(model, ranking.top(32))
    attacked.save(tmp_path / "attacked.keras")
    loaded = keras.models.load_model(tmp_path / "attacked.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(test_x[:2])),
                               keras.ops.convert_to_numpy(attacked(test_x[:2])), rtol=1e-4, atol=1e-4)
    assert metric(loaded)["miou"] == pytest.approx(report.rows[0]["top"]["miou"])
