"""MXNet: one ``<name>-symbol.json`` + one ``<name>-0000.params`` (NEO_REFERENCE §2.4).

The symbol JSON is the graph: its ``null`` op nodes are variables, either parameters
(stored in the ``.params`` file as ``arg:<name>``/``aux:<name>``) or data inputs.
The data inputs (the variables not in the params file) must be the manifest's inputs,
in order. The params file is an NDArray list (mxnet ``src/ndarray/ndarray.cc``):
read with :mod:`struct`, the tensor data skipped with seeks, only the names kept.
The symbol JSON carries no input shapes, so only the names are compared.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import BinaryIO

from neobuild.frameworks import _common
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model

HINT = (
    "net.hybridize(); net(example); net.export(str(output_dir / '<name>'), epoch=0) "
    "writes <name>-symbol.json and <name>-0000.params; declare the data inputs "
    "(usually 'data') in neo.yaml"
)
_SYMBOL = re.compile(r"(?P<prefix>.+)-symbol\.json$")
_PARAMS = re.compile(r"(?P<prefix>.+)-(?P<epoch>\d{4})\.params$")
_LIST_MAGIC = 0x112
_NDARRAY_MAGICS = (0xF993FAC9, 0xF993FACA)  # V2, V3 (numpy shape semantics)
_DTYPE_SIZES = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1, 12: 2}
#: Parameter name endings, used only when the params file cannot be read.
_PARAM_ENDINGS = (
    "_weight",
    "_bias",
    "_gamma",
    "_beta",
    "_moving_mean",
    "_moving_var",
    "_running_mean",
    "_running_var",
)


class ParamsFormatError(ValueError):
    """The ``.params`` file is not an MXNet NDArray list this reader understands."""


def read_param_names(path: Path) -> list[str]:
    """The names stored in an MXNet ``.params`` file, without their prefixes.

    Raises:
        ParamsFormatError: the file is not a dense MXNet NDArray list.
    """
    with path.open("rb") as stream:
        magic, _reserved, count = _unpack(stream, "<QQQ")
        if magic != _LIST_MAGIC:
            raise ParamsFormatError(f"magic {magic:#x}, expected {_LIST_MAGIC:#x}")
        for _ in range(count):
            _skip_ndarray(stream)
        (names,) = _unpack(stream, "<Q")
        result = []
        for _ in range(names):
            (size,) = _unpack(stream, "<Q")
            raw = stream.read(size)
            if len(raw) != size:
                raise ParamsFormatError("truncated name")
            result.append(raw.decode("utf-8", "replace").split(":", 1)[-1])
        return result


def data_inputs(symbol: dict[str, object], params: set[str] | None) -> list[str]:
    """The variables of a symbol graph that are not parameters, in graph order.

    Args:
        symbol: the parsed ``-symbol.json``.
        params: the parameter names from the ``.params`` file, or None to guess them
            from their names (``*_weight``, ``*_bias`` …) and attributes.
    """
    nodes = symbol.get("nodes")
    found = []
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict) or node.get("op") != "null":
            continue
        name = str(node.get("name", ""))
        if params is not None:
            if name in params:
                continue
        elif name.endswith(_PARAM_ENDINGS) or "__shape__" in (node.get("attrs") or {}):
            continue
        found.append(name)
    return found


class MXNetAdapter(AdapterBase):
    """Neo's MXNet layout: a symbol file and a params file with the same prefix.

    ``export`` writes the same bytes for the same network: nothing to normalise.
    """

    name = "mxnet"
    version = "1"
    layout = "one <name>-symbol.json and one <name>-0000.params with the same <name>"
    hint = HINT

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The symbol and params files, their names, and the graph's data inputs."""
        files, problems, warnings = found.files, found.problems, found.warnings
        symbols = [f for f in files if f.endswith(".json")]
        params = [f for f in files if f.endswith(".params")]
        if len(symbols) != 1 or not _SYMBOL.match(symbols[0]):
            problems.append(
                _common.expected_found(
                    "export",
                    "exactly one <name>-symbol.json",
                    _common.describe_files(symbols),
                )
            )
        if len(params) != 1 or not _PARAMS.match(params[0]):
            problems.append(
                _common.expected_found(
                    "export",
                    "exactly one <name>-0000.params (Neo allows one parameter file)",
                    _common.describe_files(params),
                )
            )
        others = [f for f in files if f not in symbols and f not in params]
        if others:
            warnings.append(f"files besides the model are packed too: {', '.join(others)}")
        problems += _common.top_level(symbols + params)
        if not problems:
            symbol_match = _SYMBOL.match(symbols[0])
            params_match = _PARAMS.match(params[0])
            assert symbol_match is not None and params_match is not None
            if symbol_match["prefix"] != params_match["prefix"]:
                problems.append(
                    _common.expected_found(
                        params[0],
                        f"the prefix of {symbols[0]} ({symbol_match['prefix']}-0000.params)",
                        f"prefix {params_match['prefix']!r}",
                    )
                )
            if params_match["epoch"] != "0000":
                problems.append(
                    _common.expected_found(
                        params[0], "epoch 0000", f"epoch {params_match['epoch']}"
                    )
                )
            problems += _graph_problems(export_dir, symbols[0], params[0], model, warnings)


ADAPTER = MXNetAdapter()


def _graph_problems(
    export_dir: Path, symbol_file: str, params_file: str, model: Model, warnings: list[str]
) -> list[str]:
    try:
        symbol = json.loads((export_dir / symbol_file).read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return [_common.expected_found(symbol_file, "valid JSON", f"a parse error: {exc}")]
    if not isinstance(symbol, dict) or not isinstance(symbol.get("nodes"), list):
        return [_common.expected_found(symbol_file, "an MXNet symbol graph", "no 'nodes' list")]
    try:
        params: set[str] | None = set(read_param_names(export_dir / params_file))
    except (ParamsFormatError, OSError) as exc:
        warnings.append(
            f"{params_file}: could not read the parameter names ({exc}); "
            "data inputs were guessed from the node names"
        )
        params = None
    warnings += _version_warnings(symbol_file, symbol, model)
    found = data_inputs(symbol, params)
    return _common.compare_inputs(symbol_file, model.inputs, dict.fromkeys(found))


def _version_warnings(symbol_file: str, symbol: dict[str, object], model: Model) -> list[str]:
    """Warn when the symbol was written by an MXNet newer than ``framework_version``.

    ``attrs.mxnet_version`` is ``["int", 10901]`` for MXNet 1.9.1.
    """
    attrs = symbol.get("attrs")
    value = attrs.get("mxnet_version") if isinstance(attrs, dict) else None
    wanted = _common.major_minor(model.framework_version)
    if (
        not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int))
        or not wanted
    ):
        return []
    number = value[1]
    written = (number // 10000, number // 100 % 100)
    if written <= wanted:
        return []
    return [
        f"{symbol_file}: written by MXNet {written[0]}.{written[1]}.{number % 100}, newer than"
        f" framework_version {model.framework_version}; Neo's MXNet may not load it"
    ]


def _unpack(stream: BinaryIO, fmt: str) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    raw = stream.read(size)
    if len(raw) != size:
        raise ParamsFormatError("truncated file")
    return struct.unpack(fmt, raw)


def _skip_ndarray(stream: BinaryIO) -> None:
    magic, stype = _unpack(stream, "<Ii")
    if magic not in _NDARRAY_MAGICS:
        raise ParamsFormatError(f"NDArray magic {magic:#x}")
    if stype != 0:
        raise ParamsFormatError("sparse NDArrays are not read")
    (ndim,) = _unpack(stream, "<i")
    if ndim < 0 or (ndim == 0 and magic == _NDARRAY_MAGICS[0]):
        return  # a "none" array has no data (V3 keeps 0-d scalars)
    dims = _unpack(stream, f"<{ndim}q")
    _dev_type, _dev_id, dtype = _unpack(stream, "<iii")
    if dtype not in _DTYPE_SIZES:
        raise ParamsFormatError(f"unknown dtype {dtype}")
    count = 1
    for dim in dims:
        count *= dim
    stream.seek(count * _DTYPE_SIZES[dtype], 1)
