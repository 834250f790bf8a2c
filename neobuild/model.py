"""The validated manifest as frozen dataclasses.

Paths inside a :class:`Model` are repository-relative posix strings, so that a
model's canonical JSON (its fingerprint input) is the same in every checkout; join
them with :attr:`Manifest.root`. :class:`Manifest` itself holds absolute paths.

``manifest.py`` is the only producer of these objects; everything after it reads
them and never a raw YAML dict. Compiler options are JSON values on their way to
``json.dumps`` and are kept as plain (read-only by convention) dicts/lists/strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Shape = tuple[int, ...]
JSONValue = Any  # a value json.dumps accepts: dict/list/str/int/float/bool/None
InputForm = Literal["dict", "list", "none"]

#: Framework names as written in neo.yaml (lower case); the API enum is upper case.
FRAMEWORKS = ("darknet", "keras", "mxnet", "onnx", "pytorch", "tensorflow", "tflite", "xgboost")


@dataclass(frozen=True)
class Position:
    """Where something was declared: a manifest file and a 1-based line and column."""

    file: Path
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else str(self.file)


@dataclass(frozen=True)
class InputSpec:
    """One model input. ``name`` is None for PyTorch's list form."""

    name: str | None
    shape: Shape


@dataclass(frozen=True)
class Inputs:
    """The declared inputs, in declaration order, and the form they were written in."""

    form: InputForm
    items: tuple[InputSpec, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Input names; list-form inputs are named ``input0``, ``input1``, …"""
        return tuple(
            s.name if s.name is not None else f"input{i}" for i, s in enumerate(self.items)
        )

    @property
    def shapes(self) -> tuple[Shape, ...]:
        return tuple(s.shape for s in self.items)

    def as_json(self) -> JSONValue:
        """The DataInputConfig value: a dict name->shape (in declared order), a list of
        shapes, or None. Never dump it with ``sort_keys``: Neo reads it positionally."""
        if self.form == "none":
            return None
        if self.form == "list":
            return [list(s.shape) for s in self.items]
        return {s.name: list(s.shape) for s in self.items}


@dataclass(frozen=True)
class Platform:
    """An OutputConfig.TargetPlatform, values in the API's upper case."""

    os: str
    arch: str
    accelerator: str | None = None


@dataclass(frozen=True)
class Target:
    """One compilation target: exactly one of ``device`` and ``platform`` is set."""

    device: str | None = None
    platform: Platform | None = None
    compiler_options: JSONValue = None  # merged: model-level options under target-level ones
    position: Position | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """A stable file-name-safe identifier: ``ml_c5`` or ``linux-arm64-nvidia``."""
        if self.device is not None:
            return self.device
        assert self.platform is not None
        parts = [self.platform.os, self.platform.arch]
        if self.platform.accelerator:
            parts.append(self.platform.accelerator)
        return "-".join(parts).lower().replace("_", "")

    @property
    def is_cloud(self) -> bool:
        """True for SageMaker hosting instance targets (``ml_*``)."""
        return self.device is not None and self.device.startswith("ml_")

    @property
    def is_edge(self) -> bool:
        return not self.is_cloud


@dataclass(frozen=True)
class ExportRef:
    """``path/to/file.py:function`` or ``package.module:function``."""

    function: str
    path: str | None = None  # repository-relative posix path of a .py file
    module: str | None = None

    def __str__(self) -> str:
        return f"{self.path or self.module}:{self.function}"


@dataclass(frozen=True)
class VpcConfig:
    security_group_ids: tuple[str, ...]
    subnets: tuple[str, ...]


@dataclass(frozen=True)
class CompileSettings:
    """The ``compile:`` block (after defaults are merged)."""

    role_arn: str | None = None
    s3_prefix: str | None = None
    region: str | None = None
    max_runtime: int = 900
    kms_key_id: str | None = None
    vpc: VpcConfig | None = None
    tags: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs

    @property
    def renders_requests(self) -> bool:
        """Whether ``package`` writes CreateCompilationJob requests (both keys are set).

        Without ``role_arn`` and ``s3_prefix`` a model is packaged without requests;
        one of them without the other is a manifest error (``validate`` reports it).
        """
        return bool(self.role_arn and self.s3_prefix)


# The compile keys that enable requests: both or neither.
REQUEST_KEYS = ("role_arn", "s3_prefix")


@dataclass(frozen=True)
class CacheSettings:
    """The shared build cache (``cache:`` or ``NEOBUILD_CACHE_URL``)."""

    url: str
    read_only: bool = False


@dataclass(frozen=True)
class Model:
    """One model of the manifest, with defaults and includes resolved."""

    name: str
    framework: str  # one of FRAMEWORKS
    export: ExportRef
    inputs: Inputs
    targets: tuple[Target, ...]
    framework_version: str | None = None
    sources: tuple[str, ...] = ()  # repo-relative globs; default: the export file's directory/**
    requirements: tuple[str, ...] = ()  # requirement specifiers given inline
    requirements_file: str | None = None  # repo-relative posix path of a requirements file
    env: tuple[tuple[str, str], ...] = ()  # sorted (name, value) pairs
    timeout: int = 900
    tags: tuple[str, ...] = ()
    compiler_options: JSONValue = None  # model-level options (already merged into targets)
    compile: CompileSettings = field(default_factory=CompileSettings)
    templates_dir: str | None = None  # repo-relative; overrides templates by name
    smoke: bool = False
    compile_check: bool = False  # compile locally with TVM/Treelite (docs/compile-check.md)
    position: Position | None = field(default=None, compare=False)

    @property
    def has_own_env(self) -> bool:
        """True when the export runs in a virtual environment of its own."""
        return bool(self.requirements) or self.requirements_file is not None

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_json(self) -> dict[str, Any]:
        """The resolved entry as JSON-able data, for fingerprints and ``--json``.

        Positions are left out: moving a model inside neo.yaml changes nothing.
        """
        data = asdict(self)
        data.pop("position", None)
        for target in data["targets"]:
            target.pop("position", None)
        return _jsonable(data)  # type: ignore[no-any-return]

    def canonical_json(self) -> str:
        """Sorted keys (field names and options have no order); ``inputs.items`` is a
        list, so the declared input order is part of it and a reorder is a change."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Manifest:
    """The whole resolved manifest."""

    path: Path  # absolute path of the top-level neo.yaml
    root: Path  # repository root: the directory of the top-level neo.yaml
    build_dir: Path  # absolute
    models: Mapping[str, Model]
    files: tuple[Path, ...] = ()  # every manifest file read (top level first, then includes)
    cache: CacheSettings | None = None
    templates_dir: Path | None = None
    warnings: tuple[Any, ...] = ()  # errors.Problem with severity "warning"

    def model(self, name: str) -> Model:
        return self.models[name]


def repo_relative(root: Path, path: Path) -> str:
    """``path`` as a posix path relative to ``root``, or as given when outside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
