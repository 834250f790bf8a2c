"""PyTorch: exactly one TorchScript file (``.pt``/``.pth``), read as a zip archive.

A TorchScript archive (``torch.jit.save``) is a zip whose records all live under one
root directory: ``<root>/data.pkl``, ``<root>/constants.pkl``, ``<root>/code/…`` (the
TorchScript source), ``<root>/data/<n>`` (tensor storages), ``<root>/version`` and, in
recent releases, ``<root>/traced_inputs.pkl`` (the example inputs of
``torch.jit.trace``) and ``<root>/.data/serialization_id``. ``torch.save`` also writes a
zip, but without ``code/``: Neo cannot load it (NEO_REFERENCE §2.4).

Nothing here imports torch. Pickles are only walked with :mod:`pickletools`, or
loaded with an unpickler that refuses every global except the few tensor-rebuild
functions, which it replaces by harmless stand-ins.

:func:`normalize_torchscript` makes the archive byte-reproducible (see
docs/frameworks.md): it drops the ``*.debug_pkl`` records (they hold absolute paths of
the traced call stack, and ``torch.jit.load`` does not need them), replaces the random
``.data/serialization_id`` by a digest of the remaining records, and writes the records
stored, sorted, with fixed timestamps and each record's data 64-byte aligned, as
torch's own writer does.
"""

from __future__ import annotations

import ast
import hashlib
import pickle
import pickletools
import re
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neobuild import neo
from neobuild.atomic import atomic_writer
from neobuild.errors import ArtifactError
from neobuild.frameworks import _common
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model, Target

SUFFIXES = (".pt", ".pth")
#: torch's PyTorchStreamWriter aligns every record's data to this many bytes.
ALIGNMENT = 64
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_SERIALIZATION_ID = ".data/serialization_id"
_CHUNK = 1 << 20

HINT = (
    "save TorchScript: `traced = torch.jit.trace(model.eval(), example_inputs)` then "
    "`torch.jit.save(traced, output_dir / 'model.pth')` (not torch.save)"
)

# Records that only some torch releases write: the lowest release that writes each.
# traced_inputs: pytorch/pytorch#90744 (2.0); serialization_id: #100994 (2.1).
_RECORD_SINCE = (("traced_inputs.pkl", (2, 0)), (_SERIALIZATION_ID, (2, 1)))

_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


@dataclass(frozen=True)
class TracedInput:
    """One example input recorded by ``torch.jit.trace`` (``None`` fields: not a tensor)."""

    shape: tuple[int, ...] | None
    dtype: str | None


@dataclass(frozen=True)
class TorchScriptInfo:
    """What a light read of a TorchScript archive tells."""

    root: str  # the archive's top directory, e.g. "model"
    records: tuple[str, ...]  # record names without the root prefix
    root_class: str | None  # e.g. "__torch__.Net"
    forward_args: int | None  # forward's parameters besides self; None when unknown
    traced_inputs: tuple[TracedInput, ...] | None  # None when the file has none
    format_version: int | None  # the "version" record (file format, not the torch release)

    @property
    def min_torch(self) -> tuple[tuple[int, int], str] | None:
        """The lowest torch release that writes every record present, and why."""
        found = [(since, rec) for rec, since in _RECORD_SINCE if rec in self.records]
        return max(found) if found else None


def classify(path: Path) -> tuple[TorchScriptInfo | None, str | None]:
    """Read ``path`` as TorchScript.

    Returns:
        The archive's info, or None and a sentence saying what the file is instead
        (a state_dict, a pickled module, not a zip …).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            roots = {n.split("/", 1)[0] for n in names}
            if len(roots) != 1 or not all("/" in n for n in names):
                return None, "a zip archive that is not a torch archive (no single root directory)"
            root = roots.pop()
            records = tuple(n[len(root) + 1 :] for n in names)
            if "data.pkl" not in records:
                return None, "a zip archive without data.pkl (not written by torch)"
            data_pkl = zf.read(f"{root}/data.pkl")
            root_class = _first_global(data_pkl)
            if not any(r.startswith("code/") for r in records):
                return None, _what_torch_save(root_class)
            forward_args = _forward_args(zf, root, root_class)
            traced = (
                _traced_inputs(zf.read(f"{root}/traced_inputs.pkl"))
                if "traced_inputs.pkl" in records
                else None
            )
            version = _int_record(zf, root, records)
    except zipfile.BadZipFile as exc:
        with path.open("rb") as stream:
            head = stream.read(2)
        if head == b"PK":
            return None, f"a damaged or truncated zip archive ({exc})"
        if head[:1] == b"\x80":
            return None, "a legacy (non-zip) torch.save pickle, not TorchScript"
        return None, "not a zip archive, so not TorchScript"
    except (zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        return None, f"a damaged zip archive ({exc})"
    return TorchScriptInfo(root, records, root_class, forward_args, traced, version), None


def normalize_torchscript(path: Path) -> bool:
    """Rewrite a TorchScript archive so equal models give equal bytes.

    Drops ``*.debug_pkl`` records, sets ``.data/serialization_id`` (when present) to a
    digest of the other records, stores every record uncompressed in sorted order
    (the serialization id last, where torch writes it) with a fixed timestamp and its
    data 64-byte aligned. Idempotent. Files that are not TorchScript are left alone.

    Returns:
        True when ``path`` was a TorchScript archive and has been rewritten.

    Raises:
        ArtifactError: a record of the archive cannot be read (the file is unchanged).
    """
    info, _ = classify(path)
    if info is None:
        return False
    try:
        _rewrite(path, info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        problem = (
            f"{path.name}: expected a readable TorchScript archive, found a damaged one ({exc})"
        )
        raise ArtifactError(problem, problems=[problem], hint=HINT) from exc
    return True


def _rewrite(path: Path, info: TorchScriptInfo) -> None:
    prefix = f"{info.root}/"
    with zipfile.ZipFile(path) as src:
        members = [
            i for i in src.infolist() if not i.filename.endswith(".debug_pkl") and not i.is_dir()
        ]
        has_id = any(i.filename == prefix + _SERIALIZATION_ID for i in members)
        members = sorted(
            (i for i in members if i.filename != prefix + _SERIALIZATION_ID),
            key=lambda i: i.filename,
        )
        digest = hashlib.sha256()
        with atomic_writer(path) as raw, zipfile.ZipFile(raw, "w") as dst:
            for info_in in members:
                size = info_in.file_size
                digest.update(f"{info_in.filename}\0{size}\0".encode())
                with src.open(info_in) as stream:
                    _write_aligned(dst, raw, info_in.filename, size, stream, digest.update)
            if has_id:
                # torch writes a 40-digit decimal id; keep that form.
                value = str(int(digest.hexdigest(), 16) % 10**40).zfill(40).encode()
                _write_aligned(dst, raw, prefix + _SERIALIZATION_ID, len(value), _Bytes(value))


def data_offsets(path: Path) -> dict[str, int]:
    """Each record's data offset in the file (read from the local headers)."""
    offsets: dict[str, int] = {}
    with zipfile.ZipFile(path) as zf, path.open("rb") as raw:
        for info in zf.infolist():
            raw.seek(info.header_offset + 26)
            header = raw.read(4)
            name_len = int.from_bytes(header[:2], "little")
            extra_len = int.from_bytes(header[2:], "little")
            offsets[info.filename] = info.header_offset + 30 + name_len + extra_len
    return offsets


class PyTorchAdapter(AdapterBase):
    """Neo's PyTorch layout: one TorchScript ``.pt``/``.pth``."""

    name = "pytorch"
    version = "1"
    layout = "exactly one TorchScript file (.pt or .pth) written by torch.jit.save"
    hint = HINT

    def normalize(self, export_dir: Path) -> None:
        """Make every TorchScript file in ``export_dir`` byte-reproducible."""
        files, _ = _common.scan_export_dir(export_dir)
        for rel in files:
            if rel.lower().endswith(SUFFIXES):
                normalize_torchscript(export_dir / rel)

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The one TorchScript archive: its traced inputs and the torch that wrote it."""
        chosen = found.pick_one(SUFFIXES, "TorchScript file")
        if chosen is None:
            return
        info, reason = classify(export_dir / chosen)
        if info is None:
            found.problems.append(_common.expected_found(chosen, "a TorchScript archive", reason))
        else:
            found.warnings += _input_warnings(chosen, info, model, found.inputs)
            found.warnings += _version_warnings(chosen, info, model)
        others = [f for f in found.files if f != chosen]
        if others:
            found.warnings.append(
                f"files besides {chosen} are packed too: {_common.describe_files(others)}"
            )


ADAPTER = PyTorchAdapter()


def _option_dtype(target: Target) -> str:
    """The input dtype Neo assumes for ``target``: its ``dtype`` compiler option, else float32."""
    options = target.compiler_options
    value: object = None
    if isinstance(options, dict):
        value = options.get("dtype")
    elif isinstance(options, str):  # ml_inf1: Neuron compiler flags, e.g. "--dtype int64"
        flag = re.search(r"--dtype[\s=]+([A-Za-z0-9]+)", options)
        value = flag.group(1) if flag else None
    if isinstance(value, str):
        return neo.OPTION_DTYPES.get(value.lower(), value.lower())
    return "float32"


def _dtype_warnings(what: str, dtype: str, model: Model) -> list[str]:
    """A traced input's dtype against what each target's ``dtype`` option tells Neo."""
    wrong: dict[str, list[str]] = {}
    for target in model.targets:
        expected = _option_dtype(target)
        if expected != dtype:
            wrong.setdefault(expected, []).append(target.key)
    fix = (
        f'set compiler_options "dtype" to "{dtype}"'
        if dtype in neo.OPTION_DTYPES.values()
        else 'Neo takes float32 or int64 (compiler_options "dtype"): cast the example inputs'
    )
    return [
        f"{what} is {dtype}, but Neo takes it as {expected} on {', '.join(keys)}; {fix}"
        for expected, keys in wrong.items()
    ]


def _input_warnings(
    name: str, info: TorchScriptInfo, model: Model, inputs: dict[str, tuple[int, ...]]
) -> list[str]:
    warnings: list[str] = []
    declared = model.inputs
    count = len(declared.items)
    if info.forward_args is not None and declared.form != "none" and info.forward_args != count:
        warnings.append(
            _common.expected_found(
                f"{name}: forward() inputs",
                f"{count} (from the manifest)",
                info.forward_args,
            )
        )
    traced = info.traced_inputs
    if traced is None:
        if declared.form == "none":
            warnings.append(
                f"{name}: the manifest declares no inputs and the file records no traced "
                "inputs, so Neo cannot derive the input shapes; declare them in neo.yaml"
            )
        return warnings
    names = declared.names if len(declared.items) == len(traced) else ()
    for i, item in enumerate(traced):
        label = names[i] if names else f"input{i}"
        if item.shape is not None:
            inputs[label] = item.shape
        if item.dtype is not None:
            warnings += _dtype_warnings(f"{name}: traced input {label!r}", item.dtype, model)
    if names:
        for label, (want, got) in zip(
            names, zip(declared.shapes, traced, strict=True), strict=True
        ):
            if got.shape is not None and got.shape != want:
                warnings.append(
                    _common.expected_found(
                        f"{name}: traced input {label!r} shape",
                        f"{_common.format_shape(want)} (from the manifest)",
                        _common.format_shape(got.shape),
                    )
                )
    elif declared.form != "none":
        warnings.append(
            _common.expected_found(
                f"{name}: traced inputs", f"{count} (from the manifest)", len(traced)
            )
        )
    return warnings


def _version_warnings(name: str, info: TorchScriptInfo, model: Model) -> list[str]:
    since = info.min_torch
    wanted = _common.major_minor(model.framework_version)
    if since is None or wanted is None or since[0] <= wanted:
        return []
    (major, minor), record = since
    return [
        f"{name}: written by torch {major}.{minor} or newer (it has a {record} record), "
        f"newer than framework_version {model.framework_version}; Neo's PyTorch "
        f"{model.framework_version} may fail to load it (\"No module named '__torch__'\"): "
        "export with that torch release"
    ]


def _what_torch_save(root_class: str | None) -> str:
    if root_class == "collections.OrderedDict" or root_class == "builtins.dict":
        return "a state_dict saved with torch.save (weights only, no TorchScript code/)"
    if root_class and not root_class.startswith("torch._utils"):
        return f"a pickled {root_class} saved with torch.save (no TorchScript code/)"
    return "a torch.save archive (no TorchScript code/)"


def _first_global(pkl: bytes) -> str | None:
    """The first class a pickle names (``module.name``), without unpickling it."""
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(pkl):
            if opcode.name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                return f"{module}.{attr}"
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if isinstance(arg, str):
                strings.append(arg)
    except (ValueError, EOFError):
        return None
    return None


def _forward_args(zf: zipfile.ZipFile, root: str, root_class: str | None) -> int | None:
    """The number of parameters of the root module's forward (besides self)."""
    if not root_class or not root_class.startswith("__torch__"):
        return None
    module, _, cls = root_class.rpartition(".")
    try:
        source = zf.read(f"{root}/code/{module.replace('.', '/')}.py").decode()
        tree = ast.parse(source)
    except (KeyError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "forward":
                    args = item.args
                    if args.vararg is not None:
                        return None
                    return len(args.posonlyargs) + len(args.args) - 1
    return None


def _int_record(zf: zipfile.ZipFile, root: str, records: tuple[str, ...]) -> int | None:
    for rec in (".data/version", "version"):
        if rec in records:
            text = zf.read(f"{root}/{rec}").decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
    return None


class _Storage:
    def __init__(self, dtype: str | None) -> None:
        self.dtype = dtype


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES.get(name)


def _rebuild_tensor(storage: Any, _offset: Any, size: Any, *_rest: Any) -> TracedInput:
    dtype = storage.dtype if isinstance(storage, _Storage) else None
    return TracedInput(tuple(int(d) for d in size), dtype)


def _restore_type_tag(value: Any, _tag: Any) -> Any:
    return value


class _SafeUnpickler(pickle.Unpickler):
    """Loads only tensor metadata: every other global is refused."""

    _ALLOWED: dict[str, Callable[..., Any]] = {  # noqa: RUF012
        "torch.jit._pickle.restore_type_tag": _restore_type_tag,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "collections.OrderedDict": OrderedDict,
    }

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key in self._ALLOWED:
            return self._ALLOWED[key]
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {key}")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', <storage type>, key, location, numel)
        kind = pid[1] if isinstance(pid, tuple) and len(pid) > 1 else None
        return _Storage(kind.dtype if isinstance(kind, _StorageType) else None)


def _traced_inputs(pkl: bytes) -> tuple[TracedInput, ...] | None:
    import io

    try:
        value = _SafeUnpickler(io.BytesIO(pkl)).load()
    except Exception:  # any malformed or unexpected pickle: the inputs are unknown
        return None
    items = value.get("forward") if isinstance(value, dict) else None
    if not isinstance(items, list | tuple):
        return None
    return tuple(i if isinstance(i, TracedInput) else TracedInput(None, None) for i in items)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int = -1) -> bytes:
        chunk, self._data = (self._data, b"") if n < 0 else (self._data[:n], self._data[n:])
        return chunk


def _write_aligned(
    dst: zipfile.ZipFile,
    raw: Any,
    name: str,
    size: int,
    stream: Any,
    on_chunk: Callable[[bytes], object] | None = None,
) -> None:
    """Write one stored record whose data starts at a multiple of :data:`ALIGNMENT`.

    Like torch's writer, the padding is an extra field ``FB`` + length + ``Z`` bytes in
    the local header. zipfile adds a 20-byte zip64 field after it for big records.
    """
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 0
    info.external_attr = 0
    info.file_size = size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    fixed = 30 + len(name.encode()) + 4 + (20 if zip64 else 0)
    pad = -(raw.tell() + fixed) % ALIGNMENT
    info.extra = b"FB" + pad.to_bytes(2, "little") + b"Z" * pad
    with dst.open(info, "w", force_zip64=zip64) as out:
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
