"""``neobuild add``: declare a model in neo.yaml without disturbing the rest of the file.

The manifest is edited with ruamel's round-trip loader (comments, key order, quotes and
the file's indentation survive), the new model is appended to ``models:``, and the
result is validated like any manifest before a byte is written: a candidate that fails
validation writes nothing and its problems are reported at their positions in neo.yaml.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from neobuild.errors import ManifestError, Problem, UsageError


@dataclass(frozen=True)
class NewModel:
    """What `neobuild add` writes for a model, as given on the command line."""

    framework: str
    export: str
    inputs: Sequence[str] = ()
    targets: Sequence[str] = ()
    framework_version: str | None = None
    tags: Sequence[str] = ()
    requirements: str | None = None


@dataclass(frozen=True)
class AddResult:
    """The model written, where, and the manifest's warnings after the edit."""

    manifest_path: Path
    name: str
    warnings: tuple[Problem, ...] = ()


def parse_input(text: str) -> tuple[str | None, list[int]]:
    """``name=1,3,224,224`` -> (name, shape); ``1,3,224,224`` -> (None, shape).

    Raises:
        UsageError: the shape is not a comma-separated list of positive integers.
    """
    name, sep, dims = text.rpartition("=")
    shape_text = dims if sep else text
    try:
        shape = [int(d) for d in shape_text.split(",")]
    except ValueError:
        shape = []
    if not shape or any(d < 1 for d in shape) or (sep and not name):
        raise UsageError(
            f"--input {text!r} is not NAME=D1,D2,... (or D1,D2,... for PyTorch's list form)",
            hint="for example --input input0=1,3,224,224",
        )
    return (name if sep else None), shape


def _inputs(texts: Sequence[str]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    parsed = [parse_input(t) for t in texts]
    if not parsed:
        return None
    named = {name is not None for name, _ in parsed}
    if len(named) > 1:
        raise UsageError(
            "--input mixes named (NAME=...) and unnamed shapes",
            hint="name every input, or none (PyTorch's list form)",
        )

    def flow(shape: list[int]) -> CommentedSeq:
        seq = CommentedSeq(shape)
        seq.fa.set_flow_style()
        return seq

    if named == {False}:
        return CommentedSeq([flow(shape) for _, shape in parsed])
    mapping = CommentedMap()
    for name, shape in parsed:
        if name in mapping:
            raise UsageError(f"--input {name} is given twice", hint="give each input once")
        mapping[name] = flow(shape)
    return mapping


def model_entry(new: NewModel) -> Any:
    """The new model's mapping, in the order a person would write it."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    entry = CommentedMap()
    entry["framework"] = new.framework
    if new.framework_version is not None:
        entry["framework_version"] = DoubleQuotedScalarString(new.framework_version)
    entry["export"] = new.export
    shapes = _inputs(new.inputs)
    if shapes is not None:
        entry["inputs"] = shapes
    if new.requirements is not None:
        entry["requirements"] = new.requirements
    for key, values in (("targets", new.targets), ("tags", new.tags)):
        if values:
            seq = CommentedSeq(list(values))
            seq.fa.set_flow_style()
            entry[key] = seq
    return entry


def _mapping_indent(text: str) -> int:
    """The indent of the first key nested under a top-level key (2 when there is none)."""
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    for parent, child in itertools.pairwise(lines):
        if not parent[0].isspace() and parent.rstrip().endswith(":"):
            width = len(child) - len(child.lstrip(" "))
            if width and not child.lstrip().startswith("- "):
                return width
    return 2


def _round_trip(path: Path) -> tuple[Any, Any]:
    """The manifest as a round-trip document, and a YAML dumper set to its indentation."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    text = path.read_text(encoding="utf-8")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    try:
        # ruamel guesses the block-sequence style (content indent, dash offset); the
        # mapping indent is the first nested key's.
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
        yaml.indent(
            mapping=_mapping_indent(text), sequence=indent or 2, offset=block_seq_indent or 0
        )
        data = yaml.load(text)
    except Exception as exc:  # ruamel's parse errors share no base class worth naming
        raise UsageError(
            f"{path} does not parse, so no model was added: {exc}",
            hint="run `neobuild validate` and fix the file first",
        ) from exc
    return data, yaml


def add_model(manifest_path: Path, name: str, new: NewModel) -> AddResult:
    """Append model ``name`` to ``models:`` of the manifest, validated, atomically.

    Raises:
        UsageError: bad options, the model already exists, or the file is not a mapping.
        ManifestError: the manifest with the new model does not validate (nothing written).
    """
    from ruamel.yaml.comments import CommentedMap

    from neobuild import manifest as manifest_mod
    from neobuild.atomic import atomic_write_text

    loaded, _ = manifest_mod.check(manifest_path)
    if loaded is not None and name in loaded.models:
        where = loaded.models[name].position
        raise UsageError(
            f"model {name!r} is already declared{f' at {where}' if where else ''}",
            hint="pick another name, or edit that entry",
        )
    data, yaml = _round_trip(manifest_path)
    if not isinstance(data, CommentedMap):
        raise UsageError(
            f"{manifest_path} is not a mapping, so no model was added",
            hint="run `neobuild init` for a starter neo.yaml",
        )
    models = data.get("models")
    if models is None:
        models = data["models"] = CommentedMap()
    if not isinstance(models, CommentedMap):
        raise UsageError(
            f"{manifest_path}: `models` is not a mapping, so no model was added",
            hint="make it `models:` followed by indented model entries",
        )
    models.fa.set_block_style()  # the starter's `models: {}` becomes a block mapping
    models[name] = model_entry(new)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    candidate, problems = _check_candidate(manifest_path, text)
    errors = [p for p in problems if p.severity == "error"]
    if candidate is None or errors:
        raise ManifestError(
            f"neo.yaml with model {name!r} would have {len(errors)} error(s); "
            f"nothing was written to {manifest_path}",
            problems=problems,
            hint="fix the options above (or the file), then run `neobuild add` again",
        )
    atomic_write_text(manifest_path, text)
    return AddResult(
        manifest_path=manifest_path,
        name=name,
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )


def _check_candidate(manifest_path: Path, text: str) -> tuple[Any, list[Problem]]:
    """Validate ``text`` as if it were ``manifest_path`` (a temp file beside it)."""
    from neobuild import manifest as manifest_mod

    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{manifest_path.name}.add-", suffix=".yaml", dir=manifest_path.parent
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        candidate, problems = manifest_mod.check(tmp, use_cache=False)
    finally:
        tmp.unlink(missing_ok=True)
    real = manifest_path.absolute()
    problems = [
        replace(p, file=real) if p.file is not None and p.file.name == tmp.name else p
        for p in problems
    ]
    return candidate, problems
