"""Training wrappers that are their inner model at inference: AugShift's two-view trainer and the canvas placement front.

:class:`AugShiftModel` trains a classifier with AugShift (Islam et al.,
ICCV 2021, Figure 2): two differently shifted views of each training image
go through the shared classifier; the loss is the cross-entropy (the compiled
loss) on both views' logits plus ``weight`` times the mean squared
difference of their pooled latents. At inference it is its classifier, and
it saves and exports the classifier alone.

:class:`PlacementModel` puts :class:`~pcw_keras.layers.CanvasPlacement` in
front of a model that takes canvases, so the host sends 32x32 uint8 patches
and cell indices (``grid**2`` times fewer pixels than a canvas, a quarter of
the bytes per pixel) and the accelerator builds each canvas. It saves and
exports as the canvas model alone: a run directory's ``best.keras`` and
``last.keras`` take canvases whichever way they were trained.

Both are registered under their class names (``pcw_keras>AugShiftModel``,
``pcw_keras>PlacementModel``), so ``.keras`` files saved before they moved
here load as they did. :func:`unwrap` gives the inference model of either.
"""
from __future__ import annotations

import keras
from keras import ops

from pcw_keras.layers import AugShift, CanvasPlacement
from pcw_keras.layers._checks import check_choice, check_int_range
from pcw_keras.layers.shift import FILLS

# Chosen by scripts/augshift_study.py (docs/results.md, section 2): ResNet-18 width 0.125, CIFAR-10 subset.
DEFAULT_MAX_SHIFT = 4
DEFAULT_FILL = "reflect"
DEFAULT_WEIGHT = 1.0


@keras.saving.register_keras_serializable(package="pcw_keras")
class AugShiftModel(keras.Model):
    """Trains any functional classifier with AugShift; is the classifier itself at inference.

    In training (``model.fit``) each batch ``x`` of ``B`` images is shifted
    twice by :class:`pcw_keras.layers.AugShift` (per sample, independent whole-pixel
    shifts in ``[-max_shift, max_shift]`` on each axis, ``fill`` entering at the
    border), and the ``2B`` views go through the classifier in one batch
    (BatchNorm sees both views). With ``z1``, ``z2`` the two views' outputs of
    ``feature_layer`` and ``CE`` the compiled loss::

        loss = CE(y, logits(view1 ++ view2)) + weight * mean((z1 - z2) ** 2)

    The compiled loss is averaged over the ``2B`` views, that is the mean of
    the two views' cross-entropies (the paper gives no weighting: the mean
    keeps the loss on the plain classifier's scale, so the same learning rate
    fits both); the MSE is averaged over samples and features. Training
    metrics are computed on both views. With ``training=False`` (evaluation,
    ``predict``) the wrapper returns ``classifier(x)`` unchanged.

    The paper gives neither the shift range, nor the fill, nor the weight; the
    defaults (4 pixels, reflect fill, weight 1.0) were chosen by the experiment
    in ``docs/results.md, section 2`` (weights 0, 1, 10, 100; zero or reflect
    fill; 4 or 8 pixels). The two shifts are drawn independently,
    so for ``max_shift=4`` one pair in 81 is equal.

    Parameters
    ----------
    classifier : keras.Model
        A functional model from images to logits, with a layer ``feature_layer``
        called once (the pooled latent).
    feature_layer : str
        Name of the layer whose output is the latent ``z`` (``"pool"`` in
        :func:`pcw_keras.models.resnet`).
    max_shift : int
        Largest shift in pixels per axis, ``>= 0``.
    fill : {"zero", "reflect", "replicate"}
        What enters at the border: the mirrored image (default), or zeros (on
        the model's input, so the mean colour for normalised images), or the
        edge pixels.
    weight : float
        ``lambda``, the weight of the latent MSE, ``>= 0``.
    seed : int, optional
        Seed of the shifts.

    Example
    -------
    >>> from pcw_keras.models import create_model
    >>> net = create_model("resnet18_cifar", num_classes=10, input_shape=(32, 32, 3), width=0.125)
    >>> model = AugShiftModel(net, max_shift=4, weight=1.0, seed=0)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> model.fit(images, labels, epochs=1)  # doctest: +SKIP
    >>> model.export("saved")  # the plain classifier  # doctest: +SKIP
    """

    def __init__(
        self,
        classifier: keras.Model,
        feature_layer: str = "pool",
        max_shift: int = DEFAULT_MAX_SHIFT,
        fill: str = DEFAULT_FILL,
        weight: float = DEFAULT_WEIGHT,
        seed: int | None = None,
        **kwargs,
    ):
        if not isinstance(classifier, keras.Model) or not getattr(classifier, "inputs", None):
            raise ValueError(
                "AugShiftModel wraps a functional keras.Model (built with keras.Input). "
                f"Received: classifier={classifier!r}"
            )
        names = [layer.name for layer in classifier.layers]
        if feature_layer not in names:
            raise ValueError(
                f"`feature_layer` must name a layer of the classifier {classifier.name!r}. "
                f"Received: feature_layer={feature_layer!r}; its last layers are {names[-4:]}"
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"`weight` must be a number >= 0. Received: weight={weight!r}")
        kwargs.setdefault("name", f"augshift_{classifier.name}")
        super().__init__(**kwargs)
        self.classifier = classifier
        self.feature_layer = feature_layer
        self.max_shift = check_int_range("max_shift", max_shift, 0)
        self.fill = check_choice("fill", fill, FILLS)
        self.weight = float(weight)
        self.seed = seed
        self.shift = AugShift(self.max_shift, self.fill, seed=seed, name="augshift")
        self.latent_loss = keras.losses.MeanSquaredError(name="latent_mse")
        # Logits and latent in one pass; the same layers (and weights) as the classifier.
        self.views = keras.Model(
            classifier.inputs,
            [classifier.outputs[0], classifier.get_layer(feature_layer).output],
            name=f"{self.name}_views",
        )
        self.build(classifier.input_shape)

    def build(self, input_shape):
        self.shift.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return self.classifier(inputs, training=False)
        twice = ops.concatenate([inputs, inputs], axis=0)
        logits, features = self.views(self.shift(twice, training=True), training=True)
        return {"logits": logits, "features": features}

    def compute_output_shape(self, input_shape):
        return self.classifier.compute_output_shape(input_shape)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict):  # evaluation: the plain classifier's loss
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        z1, z2 = ops.split(y_pred["features"], 2, axis=0)
        cross_entropy = super().compute_loss(x, _twice(y), y_pred["logits"], _twice(sample_weight), training=training)
        return cross_entropy + self.weight * self.latent_loss(z1, z2, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            return super().compute_metrics(x, _twice(y), y_pred["logits"], _twice(sample_weight))
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def export(self, filepath, format="tf_saved_model", **kwargs):  # noqa: A002 - Keras' signature
        """Exports the plain classifier (the wrapper leaves no trace); see ``keras.Model.export``."""
        return self.classifier.export(filepath, format=format, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "feature_layer": self.feature_layer,
            "max_shift": self.max_shift,
            "fill": self.fill,
            "weight": self.weight,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"], custom_objects=custom_objects)
        return cls(**config)


def _twice(value):
    return None if value is None else ops.concatenate([value, value], axis=0)


@keras.saving.register_keras_serializable(package="pcw_keras")
class PlacementModel(keras.Model):
    """``canvas_model(CanvasPlacement(grid)((patches, cells)))``; canvases pass straight through.

    Parameters
    ----------
    canvas_model : keras.Model
        Takes ``(B, 32 * grid, 32 * grid, 3)`` normalised canvases.
    grid : int
        Cells per side.

    Call arguments:
        inputs: ``(patches, cells)`` (uint8 ``(B, 32, 32, 3)`` and integer
            ``(B,)``), placed on the canvas first; or canvases, given to
            ``canvas_model`` as they are.

    Example
    -------
    >>> net = create_model("gapnet_resnet18", num_classes=9, input_shape=(96, 96, 3), width=0.125)  # doctest: +SKIP
    >>> model = PlacementModel(net, grid=3)  # doctest: +SKIP
    >>> model.fit(placement_dataset(images, grid=3, task="location", batch_size=48,
    ...                             training=True, seed=0))  # doctest: +SKIP
    >>> model.save("net.keras")  # the canvas model  # doctest: +SKIP
    """

    def __init__(self, canvas_model: keras.Model, grid: int, **kwargs):
        if not isinstance(canvas_model, keras.Model):
            raise ValueError(f"`canvas_model` must be a keras.Model. Received: canvas_model={canvas_model!r}")
        kwargs.setdefault("name", f"placed_{canvas_model.name}")
        super().__init__(**kwargs)
        self.canvas_model = canvas_model
        self.grid = grid
        self.placement = CanvasPlacement(grid, dtype="float32", name="placement")
        self.build()

    def build(self, input_shape=None):
        """Built at construction: the canvas model is, and the placement has no weights (a run resumes before any batch)."""
        self.built = True

    def call(self, inputs, training=None):
        if isinstance(inputs, (tuple, list)):
            inputs = self.placement(tuple(inputs))
        return self.canvas_model(inputs, training=training)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (tuple, list)) and isinstance(input_shape[0], (tuple, list)):
            input_shape = self.placement.compute_output_shape(input_shape)
        return self.canvas_model.compute_output_shape(input_shape)

    def save(self, filepath, overwrite=True, **kwargs):
        """Saves the canvas model (see ``keras.Model.save``)."""
        return self.canvas_model.save(filepath, overwrite=overwrite, **kwargs)

    def export(self, filepath, format="tf_saved_model", **kwargs):  # noqa: A002 - Keras' signature
        """Exports the canvas model (see ``keras.Model.export``)."""
        return self.canvas_model.export(filepath, format=format, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "canvas_model": keras.saving.serialize_keras_object(self.canvas_model),
            "grid": self.grid,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["canvas_model"] = keras.saving.deserialize_keras_object(config["canvas_model"], custom_objects=custom_objects)
        return cls(**config)


def unwrap(model: keras.Model) -> keras.Model:
    """The inference model: an :class:`AugShiftModel`'s classifier, a ``PlacementModel``'s canvas model, any other model itself."""
    if isinstance(model, AugShiftModel):
        return model.classifier
    return model.canvas_model if isinstance(model, PlacementModel) else model
