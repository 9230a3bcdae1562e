"""Exporting a model as a SavedModel, servable without rawtf (TF Serving, plain
TensorFlow), or as a TensorFlow Lite flatbuffer (:func:`export_tflite`). SavedModel
signatures: signature ``serving_default`` takes float32 images in [0, 1], ``serving_uint8``
takes uint8 pixels, ``serving_image`` takes encoded pictures (PNG, JPEG, BMP, GIF) and reads
them as ``rawtf.images`` does (:mod:`rawtf.picture_ops`, in the graph); all answer
``probabilities`` and ``classes``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from rawtf import picture_ops
from rawtf._io import atomic_folder, atomic_path, first_line
from rawtf._tf import import_tensorflow
from rawtf.errors import CheckpointError
from rawtf.models import Model, compute_dtype
from rawtf.pipeline import scale_pixels

tf = import_tensorflow()


class _Serving(tf.Module):
    """The exported object: the model and its two serving functions."""

    def __init__(self, model: Model, precision: str | None = None):
        super().__init__(name="rawtf_serving")
        compute_dtype(precision)  # an unknown precision fails here, before any tracing
        self.model = model
        self.precision = precision
        h, w, c = model.input_shape

        @tf.function(
            input_signature=[tf.TensorSpec([None, h, w, c], tf.float32, name="images")],
            autograph=False,
        )
        def serve_float(images):
            return self._outputs(images)

        @tf.function(
            input_signature=[tf.TensorSpec([None, h, w], tf.uint8, name="images")], autograph=False
        )
        def serve_uint8(images):
            return self._outputs(scale_pixels(images)[..., tf.newaxis])

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False
        )
        def serve_image(images):
            return self._outputs(picture_ops.pictures_to_inputs(images))

        self.serve_float, self.serve_uint8, self.serve_image = serve_float, serve_uint8, serve_image

    def _outputs(self, images):
        logits = self.model(images, training=False, dropout=False, precision=self.precision)
        probabilities = tf.nn.softmax(logits)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=1)}


def export_saved_model(
    model: Model, directory: str | os.PathLike, precision: str | None = None
) -> Path:
    """Export ``model`` as a SavedModel for serving without rawtf: signature
    ``serving_default`` takes float32 images ``[None, 28, 28, 1]`` in [0, 1], and
    ``serving_uint8`` takes uint8 pixels ``[None, 28, 28]``, and ``serving_image`` encoded
    pictures ``tf.string [None]`` of any size (made MNIST-style in the graph; one declaring
    over 50 megapixels is refused); all return ``probabilities`` ``[None, 10]`` (float32)
    and ``classes`` (int64). ``precision="bf16"`` computes the
    forward pass in bfloat16 (inputs and outputs keep their types). Written to a temporary
    folder, then renamed."""
    directory = Path(directory)
    serving = _Serving(model, precision)
    with atomic_folder(directory, "saved_model.pb", "SavedModel", CheckpointError) as tmp:
        tf.saved_model.save(
            serving,
            str(tmp),
            signatures={
                "serving_default": serving.serve_float,
                "serving_uint8": serving.serve_uint8,
                "serving_image": serving.serve_image,
            },
        )
    return directory


def export_tflite(
    model: Model, path: str | os.PathLike, quantize: bool = False, precision: str | None = None
) -> Path:
    """Export ``model`` as a TensorFlow Lite flatbuffer at ``path`` with the signatures
    ``serving_default`` (float32 ``[N, 28, 28, 1]``) and ``serving_uint8`` (uint8
    ``[N, 28, 28]``), each answering ``probabilities`` and ``classes``. Pictures are not
    decoded there (TFLite has no built-in ops for it). ``quantize`` stores the weights as
    int8 (dynamic-range quantisation: a quarter of the size, activations stay float)."""
    serving = _Serving(model, precision)
    signatures = {"serving_default": serving.serve_float, "serving_uint8": serving.serve_uint8}
    with tempfile.TemporaryDirectory(prefix="rawtf-tflite-") as folder:
        tf.saved_model.save(serving, folder, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            folder, signature_keys=list(signatures)
        )
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # noqa: BLE001  (the converter raises its own zoo of types)
            raise CheckpointError(f"{path}: TFLite conversion failed ({first_line(e)})") from None
    with atomic_path(path, CheckpointError) as tmp:
        tmp.write_bytes(flatbuffer)
    return Path(path)


def is_saved_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a SavedModel folder (rather than, say, a run folder)."""
    return (Path(path) / "saved_model.pb").is_file()


class ExportedModel:
    """A SavedModel rawtf exported, loaded for prediction (an ensemble member, say): its
    ``serving_default`` signature, with the ``input_shape`` and ``num_classes`` it declares."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        try:
            self.signature = tf.saved_model.load(str(directory)).signatures["serving_default"]
        except (OSError, ValueError, KeyError, tf.errors.OpError) as e:
            raise CheckpointError(
                f"{directory}: not a SavedModel with serving_default ({first_line(e)})"
            ) from None
        _, inputs = self.signature.structured_input_signature
        self.input_shape = tuple(inputs["images"].shape.as_list()[1:])
        self.num_classes = int(self.signature.structured_outputs["probabilities"].shape[-1])
        self.model_name = self.directory.name

    def probabilities(self, images) -> np.ndarray:
        """Softmax probabilities of float32 images ``[N, H, W, C]`` in [0, 1]."""
        return self.signature(images=tf.cast(images, tf.float32))["probabilities"].numpy()
