"""ONNX: exactly one self-contained ``.onnx`` file (NEO_REFERENCE §2.3, §2.4).

The ``ModelProto`` is read straight from the protobuf wire format (field numbers from
onnx/onnx.proto), so no ONNX package is needed: the graph inputs that are not
initializers, with their shapes, the opset, and whether any tensor keeps its data in
an external file (Neo receives only the archive, and TVM loads one file). When the
``onnx`` package is importable, ``onnx.checker`` runs on the file as well.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neobuild.frameworks import _common
from neobuild.frameworks._protowire import WireError, fields
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model

SUFFIXES = (".onnx",)
HINT = (
    "write one self-contained file, e.g. torch.onnx.export(model, example, "
    "output_dir / 'model.onnx', input_names=[...], dynamo=False, external_data=False), "
    "with the input names and static shapes declared in neo.yaml"
)

#: Newest default-domain opset each ONNX release knows (onnx/docs/Versioning.md).
MAX_OPSET = {(1, 5): 10, (1, 6): 11, (1, 7): 12, (1, 8): 13, (1, 9): 14, (1, 10): 15}


@dataclass(frozen=True)
class OnnxInfo:
    """What a light read of a ``.onnx`` file tells."""

    ir_version: int | None
    opset: int | None  # the default ("" / "ai.onnx") domain's version
    inputs: dict[str, tuple[int | None, ...] | None]  # graph inputs minus initializers
    external: tuple[str, ...]  # tensors whose data lives in another file: "name -> location"


def read_onnx(path: Path) -> OnnxInfo:
    """Read the parts of a ``ModelProto`` the checks need.

    ModelProto: ir_version = 1, opset_import = 8 (domain = 1, version = 2), graph = 7.
    GraphProto: node = 1, initializer = 5, input = 11. ValueInfoProto: name = 1,
    type = 2; TypeProto: tensor_type = 1; Tensor: shape = 2; TensorShapeProto: dim = 1;
    Dimension: dim_value = 1, dim_param = 2. TensorProto: name = 8, external_data = 13
    (key = 1, value = 2), data_location = 14 (1 = EXTERNAL). NodeProto: attribute = 5;
    AttributeProto: t = 5, tensors = 9.

    The wire format is decoded by :func:`neobuild.frameworks._protowire.fields`;
    length-delimited values are ``memoryview`` slices of the file's bytes (no copies).

    Raises:
        WireError: if the file is not a protobuf message.
    """
    data = path.read_bytes()
    ir_version: int | None = None
    opset: int | None = None
    graph: memoryview | None = None
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, int):
            ir_version = value
        elif number == 8 and isinstance(value, memoryview):
            domain = _text(_last(value, 1))
            if domain in ("", "ai.onnx"):
                opset = _int(value, 2)
        elif number == 7 and isinstance(value, memoryview):
            graph = value
    if not graph:
        raise WireError("no graph (not an ONNX model)")
    initializers: set[str] = set()
    external: list[str] = []
    declared: list[tuple[str, tuple[int | None, ...] | None]] = []
    for number, _, value in fields(graph):
        if not isinstance(value, memoryview):
            continue
        if number == 5:
            initializers.add(_text(_last(value, 8)))
            external += _external(value)
        elif number == 11:
            declared.append((_text(_last(value, 1)), _shape(_last(value, 2))))
        elif number == 1:
            for attr in _all(value, 5):
                for tensor in _all(attr, 5) + _all(attr, 9):
                    external += _external(tensor)
    inputs = {name: shape for name, shape in declared if name not in initializers}
    return OnnxInfo(ir_version, opset, inputs, tuple(external))


class OnnxAdapter(AdapterBase):
    """Neo's ONNX layout: one ``.onnx`` file holding its weights.

    The ONNX exporters write the same bytes for the same model: nothing to normalise.
    """

    name = "onnx"
    version = "1"
    layout = "exactly one self-contained .onnx file (no external-data side files)"
    hint = HINT

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The one ``.onnx`` file: its inputs, opset and weights, then ``onnx.checker``."""
        chosen = found.pick_one(SUFFIXES, "ONNX file")
        if chosen is None:
            return
        problems = found.problems
        info = found.read(export_dir, chosen, read_onnx, (WireError, OSError), "an ONNX ModelProto")
        if info is not None:
            problems += _model_problems(chosen, info, model)
            found.warnings += _opset_warnings(chosen, info, model)
            found.inputs = _common.static_inputs(info.inputs)
            if not problems:
                reported = found.export_checks.get("onnx.checker", {}).get(chosen)
                problems += _checker(export_dir / chosen, chosen, reported)
        others = [f for f in found.files if f != chosen]
        if others:
            problems.append(
                _common.expected_found(
                    "export",
                    f"only {chosen} (Neo receives one self-contained .onnx)",
                    f"also {_common.describe_files(others)}",
                )
            )

    def hint_for(self, model: Model, problems: Sequence[str]) -> str:
        """Input-name or input-order problems get the ONNX-specific renaming hint."""
        if any(": input names" in p or ": input order" in p for p in problems):
            return _names_hint(model)
        return self.hint


ADAPTER = OnnxAdapter()


def _names_hint(model: Model) -> str:
    """The hint for input names that differ: an ONNX graph's names are in the file."""
    return (
        "the keys under `inputs:` in neo.yaml must be the ONNX graph's input names: "
        f"rename them in model {model.name!r}'s `inputs:` to the names found above, or "
        "set the names when exporting (torch.onnx.export(..., input_names=[...]), "
        "tf2onnx --inputs, or onnx.helper.make_tensor_value_info(NAME, ...))"
    )


def _model_problems(name: str, info: OnnxInfo, model: Model) -> list[str]:
    problems = [
        _common.expected_found(
            f"{name}: initializer {ref}", "weights stored inside the .onnx", "external data"
        )
        for ref in info.external
    ]
    # A symbolic dimension accepts any declared size: Neo compiles with the static shape.
    problems += _common.compare_inputs(name, model.inputs, info.inputs)
    return problems


def _opset_warnings(name: str, info: OnnxInfo, model: Model) -> list[str]:
    version = model.framework_version or ""
    key = _common.major_minor(version)
    limit = MAX_OPSET.get(key) if key else None
    if limit is None or info.opset is None or info.opset <= limit:
        return []
    return [
        f"{name}: opset {info.opset} is newer than ONNX {version} supports (opset {limit});"
        f" export with opset_version={limit} so Neo can convert it"
    ]


def _checker(path: Path, name: str, reported: Mapping[str, Any] | None = None) -> list[str]:
    """``onnx.checker.check_model`` on the file.

    ``reported`` is the export process's own run of the checker on this file (it runs it
    when onnx is already imported there, e.g. by the fork server): used when the file
    still has the size, mtime and inode it reports, so neobuild's process does not pay
    for ``import onnx`` (over a second). Otherwise the checker runs here, when the onnx
    package is installed.
    """
    error = _reported_error(path, reported)
    if error is None:
        try:
            checker = importlib.import_module("onnx.checker")
        except ImportError:
            return []
        try:
            checker.check_model(str(path))
            error = ""
        except Exception as exc:  # onnx raises ValidationError and friends; report any
            text = str(exc).strip()
            error = text.splitlines()[0] if text else type(exc).__name__
    if error:
        return [_common.expected_found(f"{name}: onnx.checker", "no error", error)]
    return []


def _reported_error(path: Path, reported: Mapping[str, Any] | None) -> str | None:
    """The export process's checker result for ``path`` if it is still that file, else None."""
    if not isinstance(reported, Mapping):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if (st.st_size, st.st_mtime_ns, st.st_ino) != (
        reported.get("size"),
        reported.get("mtime_ns"),
        reported.get("ino"),
    ):
        return None
    error = reported.get("error")
    return error if isinstance(error, str) else None


def _external(tensor: memoryview) -> list[str]:
    if _int(tensor, 14) != 1 and not _all(tensor, 13):
        return []
    location = ""
    for entry in _all(tensor, 13):
        if _text(_last(entry, 1)) == "location":
            location = _text(_last(entry, 2))
    label = repr(_text(_last(tensor, 8)))
    return [f"{label} -> {location!r}" if location else label]


def _shape(type_proto: memoryview | None) -> tuple[int | None, ...] | None:
    tensor = _last(type_proto, 1) if type_proto is not None else None
    shape = _last(tensor, 2) if tensor is not None else None
    if shape is None:
        return None
    dims: list[int | None] = []
    for dim in _all(shape, 1):
        value = _int(dim, 1)
        dims.append(value if value is not None and value > 0 else None)
    return tuple(dims)


def _all(message: memoryview, number: int) -> list[memoryview]:
    return [v for n, _, v in fields(message) if n == number and isinstance(v, memoryview)]


def _last(message: memoryview, number: int) -> memoryview | None:
    found = _all(message, number)
    return found[-1] if found else None


def _int(message: memoryview, number: int) -> int | None:
    found = [v for n, _, v in fields(message) if n == number and isinstance(v, int)]
    return found[-1] if found else None


def _text(raw: memoryview | None) -> str:
    return bytes(raw).decode("utf-8", "replace") if raw is not None else ""
