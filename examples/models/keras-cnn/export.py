"""A tiny Keras 3 CNN saved as one legacy ``.h5`` file, the format Neo's Keras path loads.

Neo wants the Keras ``DataInputConfig`` in NCHW (``{"input_1": [1, 3, 28, 28]}``) although
the model itself is channels-last, so the declared shape is turned back into NHWC here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_INPUTS = {"input_1": [1, 3, 28, 28]}


def export(output_dir: Path, inputs: Mapping[str, Sequence[int]] | None = None) -> None:
    """Build the model from a fixed seed and write ``output_dir/model.h5``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    (name, shape), *rest = (inputs or DEFAULT_INPUTS).items()
    if rest or len(shape) != 4:
        raise ValueError(f"keras-cnn takes one NCHW image input, got {dict(inputs or {})}")
    _, channels, height, width = shape

    keras.utils.set_random_seed(0)
    image = keras.Input(shape=(height, width, channels), name=name)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(image)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    scores = keras.layers.Dense(10, activation="softmax", name="scores")(x)
    model = keras.Model(image, scores, name="keras_cnn")
    model.save(Path(output_dir) / "model.h5")
