"""Train a canvas model on uint8 patches and cells: the canvases are made on the device.

:class:`PlacementModel` puts :class:`~pcw_keras.layers.CanvasPlacement` in
front of a model that takes canvases, so the host sends 32x32 uint8 patches
and cell indices (``grid**2`` times fewer pixels than a canvas, a quarter of
the bytes per pixel) and the accelerator builds each canvas. It saves and
exports as the canvas model alone: a run directory's ``best.keras`` and
``last.keras`` take canvases whichever way they were trained.
"""
from __future__ import annotations

import keras

from pcw_keras.layers import CanvasPlacement


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
