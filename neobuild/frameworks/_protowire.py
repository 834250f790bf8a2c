"""A minimal protobuf wire-format reader, enough to inspect TensorFlow graphs.

neobuild never imports TensorFlow, and the generated ``GraphDef``/``SavedModel``
message classes live inside it. The few fields the TensorFlow adapter needs are
read here straight from the wire format (https://protobuf.dev/programming-guides/encoding/):
varints and length-delimited fields, with fixed 32/64-bit fields skipped.

Field numbers come from tensorflow/core/framework/{graph,node_def,attr_value,
tensor_shape,types}.proto and tensorflow/core/protobuf/{saved_model,meta_graph}.proto.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Wire types.
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5

#: tensorflow.DataType values, for messages (types.proto).
DTYPE_NAMES = {
    0: "invalid",
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    8: "complex64",
    9: "int64",
    10: "bool",
    14: "bfloat16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    20: "resource",
    21: "variant",
    22: "uint32",
    23: "uint64",
}


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


Field = tuple[int, int, int | bytes]  # (number, wire type, value: int for varints, bytes otherwise)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[Field]:
    """Yield every top-level field of a message as ``(number, wire_type, value)``.

    Raises:
        WireError: on truncated or malformed input.
    """
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == _LEN:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise WireError("length-delimited field runs past the end")
            yield number, wire, data[pos : pos + size]
            pos += size
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:  # groups are long deprecated and absent from TensorFlow's protos
            raise WireError(f"unsupported wire type {wire}")
    if pos != end:
        raise WireError("truncated fixed-width field")


def _signed(value: int) -> int:
    """An int64 sent as a (two's complement) varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes(number: int, data: bytes) -> list[bytes]:
    return [v for n, w, v in fields(data) if n == number and w == _LEN and isinstance(v, bytes)]


def _first_bytes(number: int, data: bytes) -> bytes | None:
    found = _bytes(number, data)
    return found[-1] if found else None  # protobuf: the last occurrence wins


def _first_int(number: int, data: bytes) -> int | None:
    found = [v for n, w, v in fields(data) if n == number and w == _VARINT and isinstance(v, int)]
    return found[-1] if found else None


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _map(number: int, data: bytes) -> dict[str, bytes]:
    """A ``map<string, Message>`` field: entries with key = 1 and value = 2."""
    result: dict[str, bytes] = {}
    for entry in _bytes(number, data):
        result[_text(_first_bytes(1, entry))] = _first_bytes(2, entry) or b""
    return result


@dataclass(frozen=True)
class TensorSig:
    """A tensor's name, dtype and shape; ``shape`` is None when the rank is unknown.

    Unknown dimensions are -1.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] | None


def _shape(data: bytes | None) -> tuple[int, ...] | None:
    """TensorShapeProto: dim = 2 (Dim: size = 1), unknown_rank = 3."""
    if data is None or _first_int(3, data):
        return None
    return tuple(_signed(_first_int(1, dim) or 0) for dim in _bytes(2, data))


def _dtype(value: int | None) -> str:
    value = value or 0
    return DTYPE_NAMES.get(value, f"dtype {value}")


def graph_placeholders(graph_def: bytes) -> list[TensorSig]:
    """The ``Placeholder`` nodes of a serialized ``GraphDef``, in graph order.

    GraphDef: node = 1. NodeDef: name = 1, op = 2, attr = 5 (map<string, AttrValue>).
    AttrValue: type = 6, shape = 7. A placeholder without a ``shape`` attribute has an
    unknown rank (``shape`` None).

    Raises:
        WireError: if the bytes are not a GraphDef.
    """
    found = []
    for node in _bytes(1, graph_def):
        if _text(_first_bytes(2, node)) != "Placeholder":
            continue
        attrs = _map(5, node)
        shape_attr = attrs.get("shape")
        dtype_attr = attrs.get("dtype")
        found.append(
            TensorSig(
                name=_text(_first_bytes(1, node)),
                dtype=_dtype(_first_int(6, dtype_attr) if dtype_attr is not None else None),
                shape=_shape(_first_bytes(7, shape_attr)) if shape_attr is not None else None,
            )
        )
    return found


@dataclass(frozen=True)
class MetaGraph:
    """What the adapter needs from one MetaGraphDef of a SavedModel."""

    tags: tuple[str, ...]
    tensorflow_version: str
    signatures: dict[str, dict[str, TensorSig]]  # signature key -> input key -> tensor


def saved_model_meta_graphs(saved_model: bytes) -> list[MetaGraph]:
    """The meta graphs of a serialized ``SavedModel`` (``saved_model.pb``).

    SavedModel: meta_graphs = 2. MetaGraphDef: meta_info_def = 1 (tags = 4,
    tensorflow_version = 5), signature_def = 5 (map<string, SignatureDef>).
    SignatureDef: inputs = 1 (map<string, TensorInfo>). TensorInfo: name = 1,
    dtype = 2, tensor_shape = 3.

    Raises:
        WireError: if the bytes are not a SavedModel.
    """
    result = []
    for meta in _bytes(2, saved_model):
        info = _first_bytes(1, meta) or b""
        signatures: dict[str, dict[str, TensorSig]] = {}
        for key, signature in _map(5, meta).items():
            signatures[key] = {
                input_key: TensorSig(
                    name=_text(_first_bytes(1, tensor)),
                    dtype=_dtype(_first_int(2, tensor)),
                    shape=_shape(_first_bytes(3, tensor)),
                )
                for input_key, tensor in _map(1, signature).items()
            }
        result.append(
            MetaGraph(
                tags=tuple(_text(t) for t in _bytes(4, info)),
                tensorflow_version=_text(_first_bytes(5, info)),
                signatures=signatures,
            )
        )
    return result
