"""TFLite: exactly one ``.tflite`` flatbuffer, inputs checked in NHWC (NEO_REFERENCE §2.3, §2.4).

The file must carry the ``TFL3`` file identifier (bytes 4..8 of a TFLite
flatbuffer). Its first subgraph's input tensors (names, shapes) are read with the
``tflite`` package (generated flatbuffers accessors, no TensorFlow) and compared
with the manifest. Neo's TFLite frontend keys ``DataInputConfig`` by tensor name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from neobuild.frameworks import _common
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.frameworks.tensorflow import with_layout_notes
from neobuild.model import Model

FILE_IDENTIFIER = b"TFL3"

#: Resource-variable ops: a model converted from a function that still reads
#: tf.Variables keeps them, and the interpreter then computes with uninitialised
#: variables (NaN outputs).
#: (Names only: the ``tflite`` package, and numpy with it, is imported when a file is read.)
_VARIABLE_OP_NAMES = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def _variable_ops() -> dict[int, str]:
    """Builtin operator code -> name of the resource-variable ops."""
    import tflite

    return {getattr(tflite.BuiltinOperator, name): name for name in _VARIABLE_OP_NAMES}


_HINT = (
    "convert one model with tf.lite.TFLiteConverter and write the bytes to"
    " output_dir / 'model.tflite'; declare its inputs in NHWC under the input tensor names"
)


class TFLiteFileError(ValueError):
    """The file is not a TFLite flatbuffer; the message says why."""


@dataclass(frozen=True)
class TFLiteFile:
    """What neobuild reads from a ``.tflite`` file.

    ``inputs`` maps each input tensor name of the first subgraph to its shape (the
    shape signature when present, where unknown dimensions are ``None``);
    ``signature_inputs`` maps signature input keys to tensor names.
    """

    inputs: dict[str, tuple[int | None, ...]]
    signature_inputs: dict[str, str]
    variable_ops: tuple[str, ...]
    subgraphs: int = 1


def read_tflite(path: Path) -> TFLiteFile:
    """Read the inputs and the resource-variable ops of a ``.tflite`` flatbuffer.

    Raises:
        TFLiteFileError: if the identifier is not ``TFL3`` or the flatbuffer is unreadable.
    """
    data = path.read_bytes()
    if data[4:8] != FILE_IDENTIFIER:
        raise TFLiteFileError(
            f"not a TFLite flatbuffer (bytes 4..8 are {data[4:8]!r}, expected {FILE_IDENTIFIER!r})"
        )
    import tflite  # here, not at module level: it imports numpy (~0.2 s), `plan` never needs it

    try:
        model = tflite.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            return TFLiteFile(inputs={}, signature_inputs={}, variable_ops=(), subgraphs=0)
        graph = model.Subgraphs(0)
        names: dict[int, str] = {}
        inputs: dict[str, tuple[int | None, ...]] = {}
        for i in range(graph.InputsLength()):
            index = graph.Inputs(i)
            tensor = graph.Tensors(index)
            name = (tensor.Name() or b"").decode("utf-8", "replace")
            if tensor.ShapeSignatureLength():
                dims = [tensor.ShapeSignature(j) for j in range(tensor.ShapeSignatureLength())]
            else:
                dims = [tensor.Shape(j) for j in range(tensor.ShapeLength())]
            names[index] = name
            inputs[name] = tuple(d if d >= 0 else None for d in dims)
        signature_inputs: dict[str, str] = {}
        for s in range(model.SignatureDefsLength()):
            signature = model.SignatureDefs(s)
            for i in range(signature.InputsLength()):
                item = signature.Inputs(i)
                key = (item.Name() or b"").decode("utf-8", "replace")
                signature_inputs[key] = names.get(item.TensorIndex(), key)
        codes = set()
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            codes.add(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
    except (struct.error, IndexError, ValueError, TypeError) as exc:
        raise TFLiteFileError(f"an unreadable TFLite flatbuffer ({exc})") from exc
    variable_ops = _variable_ops()
    return TFLiteFile(
        inputs=inputs,
        signature_inputs=signature_inputs,
        variable_ops=tuple(sorted(variable_ops[c] for c in codes if c in variable_ops)),
        subgraphs=model.SubgraphsLength(),
    )


class TFLiteAdapter(AdapterBase):
    """Neo's TFLite rules: one ``.tflite`` flatbuffer, inputs in NHWC by tensor name.

    The converter's output is deterministic: nothing to normalise.
    """

    name = "tflite"
    version = "1"
    layout = "exactly one .tflite flatbuffer at the top of the export directory"
    hint = _HINT

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The one ``.tflite``: its input tensors and its resource-variable ops."""
        candidates = [f for f in found.files if f.lower().endswith(".tflite")]
        if len(candidates) != 1:
            found.problems.append(
                _common.expected_found(
                    "export", "exactly one .tflite file", _common.describe_files(candidates)
                )
            )
            return
        path = candidates[0]
        found.problems += _common.top_level([path], "the .tflite file")
        info = found.read(export_dir, path, read_tflite, TFLiteFileError, "a TFLite model")
        if info is not None:
            found.problems += _model_problems(path, info, model)
            found.inputs = _common.static_inputs(info.inputs)
            if info.variable_ops:
                found.warnings.append(
                    f"{path} contains resource-variable ops ({', '.join(info.variable_ops)}):"
                    " the interpreter runs them on uninitialised variables and returns NaN;"
                    " freeze the function with convert_variables_to_constants_v2 before"
                    " converting it"
                )
        found.note_unused([path], "TFLite model")


def _model_problems(path: str, info: TFLiteFile, model: Model) -> list[str]:
    """The file's subgraph and input tensors against the manifest's inputs."""
    problems = []
    if not info.subgraphs:
        problems.append(_common.expected_found(path, "a model subgraph", "none"))
    mismatches = _common.compare_inputs(path, model.inputs, info.inputs, ordered=False)
    problems += with_layout_notes(mismatches, path, model, info.inputs, "TFLite")
    by_key = [n for n in model.inputs.names if n in info.signature_inputs and n not in info.inputs]
    if by_key:
        tensors = [info.signature_inputs[n] for n in by_key]
        problems.append(
            _common.expected_found(
                f"{path}: input names",
                f"the input tensor names {tensors} that Neo reads",
                f"the signature keys {by_key} in the manifest",
            )
        )
    return problems


ADAPTER = TFLiteAdapter()
