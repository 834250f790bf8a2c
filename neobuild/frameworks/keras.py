"""Keras: exactly one ``.h5`` file, inputs checked in NCHW (NEO_REFERENCE §2.3, §2.4).

The ``.h5`` is read with h5py: its ``model_config`` attribute is the model's JSON
config, whose ``InputLayer``s carry the input names and channels-last shapes
(``batch_shape`` in Keras 3, ``batch_input_shape`` in Keras 2). Neo wants Keras
``DataInputConfig`` in NCHW although the file is channels-last, so a file shape
``(None, 28, 28, 3)`` matches a manifest shape ``[1, 3, 28, 28]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neobuild.frameworks import _common
from neobuild.frameworks._common import FoundShape
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model

#: The newest Keras version Neo documents (§2.1); newer files may fail to load there.
NEO_KERAS_VERSION = (2, 2, 4)

_HINT = (
    "save the whole model once as an HDF5 file, e.g. model.save(output_dir / 'model.h5'),"
    " and declare its inputs in NCHW (channels first), e.g. input_1: [1, 3, 224, 224]"
)


class KerasFileError(ValueError):
    """The ``.h5`` file cannot be read as a saved Keras model; the message says why."""


@dataclass(frozen=True)
class KerasFile:
    """What neobuild reads from a Keras ``.h5`` file.

    ``inputs`` maps each InputLayer name to its shape as stored (channels-last unless
    ``channels_first``), with ``None`` for unknown dimensions, in the model's input order.
    """

    keras_version: str | None
    backend: str | None
    inputs: dict[str, tuple[int | None, ...] | None]
    channels_first: bool


def read_h5(path: Path) -> KerasFile:
    """Read the Keras version and the input layers of a ``.h5`` saved by ``model.save``.

    Raises:
        KerasFileError: if the file is not HDF5, has no ``model_config`` (e.g. weights
            only), or its config is not a model config.
    """
    import h5py  # here, not at module level: importing it costs ~0.2 s and `plan` never needs it

    try:
        with h5py.File(path, "r") as h5:
            attrs = {key: _text(h5.attrs[key]) for key in h5.attrs}
    except OSError as exc:
        raise KerasFileError(f"not an HDF5 file h5py can open ({exc})") from exc
    raw = attrs.get("model_config")
    if raw is None:
        raise KerasFileError(
            "an HDF5 file without a 'model_config' attribute (only weights?"
            " save the whole model with model.save(), not save_weights())"
        )
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise KerasFileError(f"a 'model_config' attribute that is not JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise KerasFileError("a 'model_config' attribute that is not a model config")
    return KerasFile(
        keras_version=attrs.get("keras_version"),
        backend=attrs.get("backend"),
        inputs=_input_layers(config),
        channels_first="channels_first" in _data_formats(config),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def _data_formats(value: Any) -> set[str]:
    """Every ``data_format`` a layer config of the model sets."""
    if isinstance(value, dict):
        found = {v for k, v in value.items() if k == "data_format" and isinstance(v, str)}
        return found.union(*(_data_formats(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_data_formats(v) for v in value))
    return set()


def _input_layers(config: dict[str, Any]) -> dict[str, tuple[int | None, ...] | None]:
    """InputLayer name -> batch shape, ordered like the model's ``input_layers``."""
    body = config.get("config")
    layers: list[Any] = []
    declared_order: list[str] = []
    if isinstance(body, dict):
        layers = body.get("layers") or []
        declared_order = _layer_names(body.get("input_layers"))
    elif isinstance(body, list):  # Keras 2 Sequential of old: the config is the layer list
        layers = body
    found: dict[str, tuple[int | None, ...] | None] = {}
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("class_name") != "InputLayer":
            continue
        layer_config = layer.get("config") or {}
        name = layer_config.get("name") or layer.get("name")
        found[str(name)] = _batch_shape(layer_config)
    if not found and layers and isinstance(layers[0], dict):
        # A Keras 2 Sequential built with input_shape= on its first layer has no
        # InputLayer in its config; Keras names the implicit input "<layer>_input".
        first = layers[0].get("config") or {}
        shape = _batch_shape(first)
        if shape is not None:
            found[f"{first.get('name')}_input"] = shape
    order = [n for n in declared_order if n in found]
    return {n: found[n] for n in order + [n for n in found if n not in order]}


def _layer_names(value: Any) -> list[str]:
    """``input_layers``: ``[name, 0, 0]`` (Keras 3, one input) or a list of those."""
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], str):
        return [value[0]]
    return [str(item[0]) for item in value if isinstance(item, list) and item]


def _batch_shape(layer_config: dict[str, Any]) -> tuple[int | None, ...] | None:
    shape = layer_config.get("batch_shape", layer_config.get("batch_input_shape"))
    if not isinstance(shape, list):
        return None
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def to_nchw(shape: FoundShape) -> tuple[int | None, ...]:
    """Move the trailing channel axis to axis 1 (rank 3 and more); rank ≤ 2 is unchanged."""
    dims = tuple(shape)
    if len(dims) < 3:
        return dims
    return (dims[0], dims[-1], *dims[1:-1])


def _agrees(found: FoundShape, declared: FoundShape) -> bool:
    return len(found) == len(declared) and all(
        f is None or f == d for f, d in zip(found, declared, strict=True)
    )


def _shape_problems(h5: str, info: KerasFile, model: Model) -> list[str]:
    problems = []
    declared = dict(zip(model.inputs.names, model.inputs.shapes, strict=True))
    for name, stored in info.inputs.items():
        if name not in declared or stored is None:
            continue
        want = declared[name]
        nchw = stored if info.channels_first else to_nchw(stored)
        if _agrees(nchw, want):
            continue
        layout = (
            "channels-first"
            if info.channels_first
            else f"NCHW; the file stores channels-last {_common.format_shape(stored)}"
        )
        problem = _common.expected_found(
            f"{h5}: input {name!r} shape",
            f"{_common.format_shape(want)} (from the manifest)",
            f"{_common.format_shape(nchw)} ({layout})",
        )
        if not info.channels_first and _agrees(stored, want):
            problem += (
                "; the manifest gives the shape in NHWC, but Neo wants Keras inputs in"
                f" NCHW: write {_common.format_shape(to_nchw(want))}"
            )
        problems.append(problem)
    return problems


class KerasAdapter(AdapterBase):
    """Neo's Keras rules: one ``.h5`` at the top of the export, inputs in NCHW.

    Keras writes HDF5 files without timestamps: nothing to normalise.
    """

    name = "keras"
    version = "1"
    layout = (
        "exactly one Keras .h5 file (model.save('model.h5')) at the top of the export directory"
    )
    hint = _HINT

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The one readable ``.h5``: its inputs (in NCHW) and the Keras that saved it."""
        h5 = _the_h5(found)
        if h5 is None:
            return
        found.problems += _common.top_level([h5], "the .h5 file")
        info = found.read(
            export_dir, h5, read_h5, KerasFileError, "a Keras model saved by model.save()"
        )
        if info is not None:
            found.problems += _common.compare_inputs(h5, model.inputs, dict.fromkeys(info.inputs))
            found.problems += _shape_problems(h5, info, model)
            found.inputs = _common.static_inputs(
                {
                    name: shape if info.channels_first or shape is None else to_nchw(shape)
                    for name, shape in info.inputs.items()
                }
            )
            if info.keras_version and (
                _common.version_tuple(info.keras_version, 3) > NEO_KERAS_VERSION
            ):
                found.warnings.append(
                    f"{h5} was saved by Keras {info.keras_version}; Neo documents Keras"
                    ' 2.2.4 or earlier and may fail to load it ("Unable to load provided'
                    ' Keras model"); if it does, export a TensorFlow SavedModel instead'
                )
        found.note_unused([h5], "Keras model")


def _the_h5(found: Findings) -> str | None:
    """The export's one ``.h5`` file, or None after saying why there is not one."""
    files = found.files
    h5_files = [f for f in files if f.lower().endswith(".h5")]
    if len(h5_files) == 1:
        return h5_files[0]
    describe = _common.describe_files
    if h5_files:
        found.problems.append(
            f"Multiple h5 files provided ({describe(h5_files)}), when only one is allowed"
        )
        return None
    others = [f for f in files if f.lower().endswith((".keras", ".hdf5"))]
    extra = (
        f"; {describe(others)} is not an .h5 file: Neo's Keras loader needs .h5" if others else ""
    )
    found.problems.append(
        "No h5 file provided: "
        + _common.expected_found("export", "exactly one .h5 file", describe(files))
        + extra
    )
    return None


ADAPTER = KerasAdapter()
