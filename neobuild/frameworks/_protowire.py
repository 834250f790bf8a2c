"""A minimal protobuf reader, enough to inspect TensorFlow graphs and ONNX models.

neobuild never imports TensorFlow, and the generated ``GraphDef``/``SavedModel``
message classes live inside it. The few fields the TensorFlow adapter needs are
read here, from the binary wire format (https://protobuf.dev/programming-guides/encoding/:
varints and length-delimited fields; fixed-width fields are skipped) or from the
text format of ``.pbtxt`` files. Both are decoded into the same light form, a
:data:`Message` (field name -> list of values), so one set of accessors serves both.

The ONNX adapter reads ``ModelProto`` with :func:`fields` alone (its field numbers
are in ``frameworks/onnx.py``).

Field numbers come from tensorflow/core/framework/{graph,node_def,attr_value,
tensor_shape,types}.proto and tensorflow/core/protobuf/{saved_model,meta_graph}.proto.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: A decoded message: field name -> the values of that field, in file order. Values
#: are ``int``, ``bool``, ``str`` (strings, enum names in text format) or messages.
Message = dict[str, list[Any]]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

#: tensorflow.DataType (types.proto): number, text-format name, short name.
_DTYPES = [
    (0, "DT_INVALID", "invalid"),
    (1, "DT_FLOAT", "float32"),
    (2, "DT_DOUBLE", "float64"),
    (3, "DT_INT32", "int32"),
    (4, "DT_UINT8", "uint8"),
    (5, "DT_INT16", "int16"),
    (6, "DT_INT8", "int8"),
    (7, "DT_STRING", "string"),
    (8, "DT_COMPLEX64", "complex64"),
    (9, "DT_INT64", "int64"),
    (10, "DT_BOOL", "bool"),
    (14, "DT_BFLOAT16", "bfloat16"),
    (17, "DT_UINT16", "uint16"),
    (18, "DT_COMPLEX128", "complex128"),
    (19, "DT_HALF", "float16"),
    (20, "DT_RESOURCE", "resource"),
    (21, "DT_VARIANT", "variant"),
    (22, "DT_UINT32", "uint32"),
    (23, "DT_UINT64", "uint64"),
]
_DTYPE_BY_NUMBER = {number: short for number, _, short in _DTYPES}
_DTYPE_BY_NAME = {name: short for _, name, short in _DTYPES}

# message type -> field number -> (field name, kind); kind is a scalar kind
# ("string", "int64", "varint") or the name of a message type in this table.
_SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "GraphDef": {1: ("node", "NodeDef")},
    "NodeDef": {1: ("name", "string"), 2: ("op", "string"), 5: ("attr", "AttrEntry")},
    "AttrEntry": {1: ("key", "string"), 2: ("value", "AttrValue")},
    "AttrValue": {6: ("type", "varint"), 7: ("shape", "TensorShapeProto")},
    "TensorShapeProto": {2: ("dim", "Dim"), 3: ("unknown_rank", "varint")},
    "Dim": {1: ("size", "int64")},
    "SavedModel": {2: ("meta_graphs", "MetaGraphDef")},
    "MetaGraphDef": {1: ("meta_info_def", "MetaInfoDef"), 5: ("signature_def", "SignatureEntry")},
    "MetaInfoDef": {4: ("tags", "string"), 5: ("tensorflow_version", "string")},
    "SignatureEntry": {1: ("key", "string"), 2: ("value", "SignatureDef")},
    "SignatureDef": {1: ("inputs", "TensorInfoEntry")},
    "TensorInfoEntry": {1: ("key", "string"), 2: ("value", "TensorInfo")},
    "TensorInfo": {
        1: ("name", "string"),
        2: ("dtype", "varint"),
        3: ("tensor_shape", "TensorShapeProto"),
    },
}


class WireError(ValueError):
    """The bytes or text are not a well-formed protobuf message."""


# --- binary wire format -------------------------------------------------------------


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
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


def fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield every top-level field of a message as ``(number, wire_type, value)``.

    Varints are yielded as ``int``, length-delimited fields as a ``memoryview`` of
    ``data`` (no copy: a frozen graph's constants can be hundreds of MB); fixed-width
    fields are skipped.

    Raises:
        WireError: on truncated or malformed input.
    """
    data = memoryview(data)
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


def decode(data: bytes | memoryview, message_type: str) -> Message:
    """Decode the fields of ``message_type`` that this module knows; others are skipped.

    Raises:
        WireError: on malformed input, or a field with the wrong wire type.
    """
    schema = _SCHEMA[message_type]
    message: Message = {}
    for number, _wire, value in fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind in ("varint", "int64"):
            if not isinstance(value, int):
                raise WireError(f"{message_type}.{name}: expected a varint")
            decoded: Any = value - (1 << 64) if kind == "int64" and value >= 1 << 63 else value
        elif not isinstance(value, memoryview):
            raise WireError(f"{message_type}.{name}: expected a length-delimited field")
        elif kind == "string":
            decoded = bytes(value).decode("utf-8", "replace")
        else:
            decoded = decode(value, kind)
        message.setdefault(name, []).append(decoded)
    return message


# --- text format --------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<punct>[{}<>:\[\],;])
    |(?P<word>[^\s{}<>:\[\],;"'\#]+)""",
    re.VERBOSE,
)
_CLOSE = {"{": "}", "<": ">"}
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {
    b"n": b"\n",
    b"t": b"\t",
    b"r": b"\r",
    b"a": b"\a",
    b"b": b"\b",
    b"f": b"\f",
    b"v": b"\v",
}


def _unescape(quoted: str) -> bytes:
    """The bytes of a C-escaped text-format string literal (without its quotes)."""

    def one(match: re.Match[bytes]) -> bytes:
        octal, hexa, char = match.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        if hexa is not None:
            return bytes([int(hexa, 16)])
        return _SIMPLE_ESCAPES.get(char, char)

    return _ESCAPE.sub(one, quoted.encode("utf-8"))


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise WireError(f"line {line}: unexpected character {text[pos]!r}")
        pos = match.end()
        if match.lastgroup is not None:
            tokens.append((match.lastgroup, match.group()))
    return tokens


class _TextParser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise WireError("unexpected end of text")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def message(self, close: str | None) -> Message:
        message: Message = {}
        while (token := self.peek()) != close:
            if token is None:
                raise WireError(f"expected {close!r}, found the end of the text")
            kind, name = self.take()
            if name == "[":  # an extension or Any type URL: [type.googleapis.com/x.Y]
                while (part := self.take()[1]) != "]":
                    name += part
                name += "]"
            elif kind != "word":
                raise WireError(f"expected a field name, found {name!r}")
            if self.peek() == ":":
                self.take()
            if self.peek() == "[":
                self.take()
                while self.peek() != "]":
                    message.setdefault(name, []).append(self.value())
                    if self.peek() == ",":
                        self.take()
                self.take()
            else:
                message.setdefault(name, []).append(self.value())
            if self.peek() in (",", ";"):
                self.take()
        if close is not None:
            self.take()
        return message

    def value(self) -> Any:
        kind, token = self.take()
        if token in _CLOSE:
            return self.message(_CLOSE[token])
        if kind == "str":
            raw = _unescape(token[1:-1])
            while self.peek() is not None and self.tokens[self.pos][0] == "str":
                raw += _unescape(self.take()[1][1:-1])  # "a" "b" concatenates
            return raw.decode("utf-8", "replace")
        if kind != "word":
            raise WireError(f"expected a value, found {token!r}")
        if token in ("true", "True", "t"):
            return True
        if token in ("false", "False", "f"):
            return False
        try:
            return int(token, 0)
        except ValueError:
            return token  # an enum name or a float; neither is read as a number here


def parse_text(text: str) -> Message:
    """Parse protobuf text format (a ``.pbtxt``) into a :data:`Message`, keeping every field.

    Raises:
        WireError: on malformed text.
    """
    return _TextParser(text).message(None)


# --- TensorFlow accessors -----------------------------------------------------------


@dataclass(frozen=True)
class TensorSig:
    """A tensor's name, dtype and shape; ``shape`` is None when the rank is unknown.

    Unknown dimensions are ``None``.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class MetaGraph:
    """What the TensorFlow adapter needs from one MetaGraphDef of a SavedModel."""

    tags: tuple[str, ...]
    tensorflow_version: str
    signatures: dict[str, dict[str, TensorSig]]  # signature key -> input key -> tensor


def _one(message: Message, name: str, default: Any = None) -> Any:
    values = message.get(name)
    return values[-1] if values else default  # protobuf: the last occurrence wins


def _entries(message: Message, name: str) -> dict[str, Message]:
    """A ``map<string, Message>`` field, written as entries with ``key`` and ``value``."""
    return {str(_one(e, "key", "")): _one(e, "value", {}) for e in message.get(name, [])}


def _dtype(value: Any) -> str:
    if isinstance(value, str):
        return _DTYPE_BY_NAME.get(value, value.lower())
    number = value or 0
    return _DTYPE_BY_NUMBER.get(number, f"dtype {number}")


def _shape(shape: Message | None) -> tuple[int | None, ...] | None:
    if shape is None or _one(shape, "unknown_rank", False):
        return None
    sizes = (_one(dim, "size", 0) for dim in shape.get("dim", []))
    return tuple(s if isinstance(s, int) and s >= 0 else None for s in sizes)


def load(data: bytes, message_type: str, *, text: bool) -> Message:
    """Decode a ``GraphDef`` or ``SavedModel`` from binary (``.pb``) or text (``.pbtxt``).

    Raises:
        WireError: if the content is not such a message.
    """
    if not text:
        return decode(data, message_type)
    try:
        return parse_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WireError(f"not UTF-8 text ({exc})") from exc


def graph_placeholders(graph_def: Message) -> list[TensorSig]:
    """The ``Placeholder`` nodes of a ``GraphDef``, in graph order.

    A placeholder without a ``shape`` attribute has an unknown rank (``shape`` None).
    """
    found = []
    for node in graph_def.get("node", []):
        if _one(node, "op") != "Placeholder":
            continue
        attrs = _entries(node, "attr")
        shape = attrs.get("shape")
        found.append(
            TensorSig(
                name=str(_one(node, "name", "")),
                dtype=_dtype(_one(attrs.get("dtype", {}), "type")),
                shape=_shape(_one(shape, "shape")) if shape is not None else None,
            )
        )
    return found


def saved_model_meta_graphs(saved_model: Message) -> list[MetaGraph]:
    """The meta graphs of a ``SavedModel``: tags, writer version, signature inputs."""
    result = []
    for meta in saved_model.get("meta_graphs", []):
        info = _one(meta, "meta_info_def", {})
        signatures = {
            key: {
                input_key: TensorSig(
                    name=str(_one(tensor, "name", "")),
                    dtype=_dtype(_one(tensor, "dtype")),
                    shape=_shape(_one(tensor, "tensor_shape")),
                )
                for input_key, tensor in _entries(signature, "inputs").items()
            }
            for key, signature in _entries(meta, "signature_def").items()
        }
        result.append(
            MetaGraph(
                tags=tuple(str(t) for t in info.get("tags", [])),
                tensorflow_version=str(_one(info, "tensorflow_version", "")),
                signatures=signatures,
            )
        )
    return result
