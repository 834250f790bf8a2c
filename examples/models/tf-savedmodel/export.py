"""A tiny TensorFlow 2 SavedModel (``saved_model.pb`` + ``variables/``).

The ``serving_default`` signature takes one NHWC float32 image named ``input``, the
name and layout Neo's TensorFlow ``DataInputConfig`` uses (``{"input": [1, 28, 28, 3]}``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_INPUTS = {"input": [1, 28, 28, 3]}


def export(output_dir: Path, inputs: Mapping[str, Sequence[int]] | None = None) -> None:
    """Build the model from a fixed seed and save it as a SavedModel in ``output_dir``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    (name, shape), *rest = (inputs or DEFAULT_INPUTS).items()
    if rest or len(shape) != 4:
        raise ValueError(f"tf-savedmodel takes one NHWC image input, got {dict(inputs or {})}")
    channels = shape[3]

    class TinyCnn(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="tiny_cnn")
            init = tf.random.stateless_normal
            self.kernel = tf.Variable(init([3, 3, channels, 4], seed=[0, 1]) * 0.1, name="kernel")
            self.bias = tf.Variable(tf.zeros([4]), name="bias")
            self.dense = tf.Variable(init([4, 10], seed=[0, 2]) * 0.1, name="dense")

        def __call__(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            x = tf.nn.relu(tf.nn.conv2d(image, self.kernel, 1, "VALID") + self.bias)
            x = tf.reduce_mean(x, axis=[1, 2])
            return {"scores": tf.nn.softmax(tf.matmul(x, self.dense))}

    module = TinyCnn()
    serve = tf.function(
        module.__call__, input_signature=[tf.TensorSpec(list(shape), tf.float32, name=name)]
    )
    tf.saved_model.save(
        module, str(output_dir), signatures={"serving_default": serve.get_concrete_function()}
    )
