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

from neobuild.frameworks._common import (
    compare_inputs,
    describe_files,
    expected_found,
    raise_problems,
    scan_export_dir,
)
from neobuild.frameworks.base import Artifacts
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


class TFLiteAdapter:
    """Neo's TFLite rules: one ``.tflite`` flatbuffer, inputs in NHWC by tensor name."""

    name = "tflite"
    version = "1"

    def describe_layout(self) -> str:
        """One sentence naming the files Neo expects."""
        return "exactly one .tflite flatbuffer at the top of the export directory"

    def normalize(self, export_dir: Path) -> None:
        """Nothing to do: the converter's output is deterministic."""

    def check(self, export_dir: Path, model: Model) -> Artifacts:
        """Check the export holds one TFLite flatbuffer whose inputs match the manifest.

        Raises:
            ArtifactError: with every problem found.
        """
        files, problems = scan_export_dir(export_dir)
        candidates = [f for f in files if f.lower().endswith(".tflite")]
        warnings: list[str] = []
        found: dict[str, tuple[int | None, ...]] = {}
        if len(candidates) != 1:
            problems.append(
                expected_found("export", "exactly one .tflite file", describe_files(candidates))
            )
        else:
            path = candidates[0]
            if "/" in path:
                problems.append(
                    expected_found(
                        path, "the .tflite file at the top of the export directory", path
                    )
                )
            try:
                info = read_tflite(export_dir / path)
            except TFLiteFileError as exc:
                problems.append(expected_found(path, "a TFLite model", exc))
            else:
                if not info.subgraphs:
                    problems.append(expected_found(path, "a model subgraph", "none"))
                found = info.inputs
                mismatches = compare_inputs(path, model.inputs, found, ordered=False)
                problems += with_layout_notes(mismatches, path, model, found, "TFLite")
                by_key = [
                    n for n in model.inputs.names if n in info.signature_inputs and n not in found
                ]
                if by_key:
                    tensors = [info.signature_inputs[n] for n in by_key]
                    problems.append(
                        expected_found(
                            f"{path}: input names",
                            f"the input tensor names {tensors} that Neo reads",
                            f"the signature keys {by_key} in the manifest",
                        )
                    )
                if info.variable_ops:
                    warnings.append(
                        f"{path} contains resource-variable ops ({', '.join(info.variable_ops)}):"
                        " the interpreter runs them on uninitialised variables and returns NaN;"
                        " freeze the function with convert_variables_to_constants_v2 before"
                        " converting it"
                    )
            warnings += [
                f"{f}: not part of the TFLite model; archived as is" for f in files if f != path
            ]
        raise_problems(model, export_dir, problems, hint=_HINT)
        return Artifacts(
            files=files,
            inputs={k: tuple(-1 if d is None else d for d in v) for k, v in found.items()},
            warnings=tuple(warnings),
        )


ADAPTER = TFLiteAdapter()
