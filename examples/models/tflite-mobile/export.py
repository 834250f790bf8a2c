"""A tiny TFLite model converted by TensorFlow from a frozen concrete function.

The function is frozen with ``convert_variables_to_constants_v2`` before conversion:
converting a function that still reads ``tf.Variable``s leaves resource-variable ops
in the flatbuffer, and such a model returns NaN. The input is named ``input`` and is
NHWC, as Neo's TFLite ``DataInputConfig`` expects (``{"input": [1, 28, 28, 3]}``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_INPUTS = {"input": [1, 28, 28, 3]}


def export(output_dir: Path, inputs: Mapping[str, Sequence[int]] | None = None) -> None:
    """Build, freeze and convert the model, check it runs, write ``output_dir/model.tflite``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    (name, shape), *rest = (inputs or DEFAULT_INPUTS).items()
    if rest or len(shape) != 4:
        raise ValueError(f"tflite-mobile takes one NHWC image input, got {dict(inputs or {})}")
    channels = shape[3]

    init = tf.random.stateless_normal
    kernel = tf.Variable(init([3, 3, channels, 4], seed=[1, 1]) * 0.1, name="kernel")
    dense = tf.Variable(init([4, 10], seed=[1, 2]) * 0.1, name="dense")

    @tf.function(input_signature=[tf.TensorSpec(list(shape), tf.float32, name=name)])
    def predict(image: tf.Tensor) -> tf.Tensor:
        x = tf.nn.relu(tf.nn.conv2d(image, kernel, 1, "VALID"))
        x = tf.reduce_mean(x, axis=[1, 2])
        return tf.nn.softmax(tf.matmul(x, dense), name="scores")

    frozen = convert_variables_to_constants_v2(predict.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    flatbuffer = converter.convert()

    _check_finite(flatbuffer, np.random.default_rng(0).random(shape, dtype=np.float32))
    (Path(output_dir) / "model.tflite").write_bytes(flatbuffer)


def _check_finite(flatbuffer: bytes, sample: object) -> None:
    """Run the converted model once with LiteRT; fail the export on NaN/inf outputs."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
    interpreter.invoke()
    for detail in interpreter.get_output_details():
        output = interpreter.get_tensor(detail["index"])
        if not np.all(np.isfinite(output)):
            raise RuntimeError(f"converted model gives non-finite output {detail['name']}")
