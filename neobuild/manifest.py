"""Load neo.yaml: parse, validate (cerberus + Neo's rules), and build frozen dataclasses.

The pipeline, for the top-level file and every file its ``include`` globs name:

1. parse with ruamel's C safe loader, keeping the node tree for positions
   (``node.start_mark``) and the scalars' original text (``2.10`` stays ``2.10``);
2. check the structure with cerberus (``schema.MANIFEST_SCHEMA``), each model on its own;
3. merge ``defaults`` under each model (top-level, then the file's own; mappings merge,
   lists and scalars replace) and apply Neo's rules (``neo.py``) to the result;
4. build :class:`~neobuild.model.Manifest`. Nothing after this module sees a dict.

Every problem is collected (all at once) as a :class:`~neobuild.errors.Problem`
positioned at the place the value was written, which may be a ``defaults`` block.

A validated manifest is cached in ``<root>/.neobuild/manifestcache``, keyed by
the content of every manifest file, the include globs' results and neobuild's version;
on a hit only the files the result depends on are stat'ed again. ``sources`` globs are
expanded only on a miss (to warn about one that matches no file): on a hit, a glob
that matched nothing is expanded again and one that matched has its literal directory
prefix stat'ed, so a glob that stops matching otherwise is caught at the next manifest
change.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import json
import os
import posixpath
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild import neo, schema
from neobuild.errors import ManifestError, Problem, Severity, UsageError
from neobuild.model import (
    FRAMEWORKS,
    CacheSettings,
    CompileSettings,
    ExportRef,
    InputForm,
    Inputs,
    InputSpec,
    Manifest,
    Model,
    Platform,
    Position,
    Target,
    VpcConfig,
)
from neobuild.statefile import STATE_DIR, StateFile
from neobuild.suggest import closest, did_you_mean

if TYPE_CHECKING:
    import cerberus
    from ruamel.yaml.nodes import MappingNode, Node

# cerberus and ruamel.yaml are imported where a manifest is parsed or validated: a
# manifest served from the cache (what `plan` does on every run) needs neither.

MANIFEST_NAME = "neo.yaml"
CACHE_FILE = StateFile("manifestcache", 3, "manifest cache", codec="json")

DEFAULT_BUILD_DIR = "build/neo"
DEFAULT_TIMEOUT = 900
DEFAULT_MAX_RUNTIME = 900

#: A model name follows the EntityName rule (neo.MODEL_NAME_*): at most 63 characters. The
#: job name ``<model>-<target>-<8 hex>`` is cut to 63 keeping the hash (request.job_name).
MODEL_NAME_MAX = neo.MODEL_NAME_MAX
_MODEL_NAME = re.compile(neo.MODEL_NAME_PATTERN)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_EXPORT_PATH = re.compile(rf"(?P<path>[^:\s]+\.py):(?P<function>{_IDENT})")
_EXPORT_MODULE = re.compile(rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<function>{_IDENT})")

PathKey = tuple[str | int, ...]


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def find_manifest(start: Path, explicit: Path | None = None) -> Path:
    """The manifest to use: ``explicit``, else ``neo.yaml`` in ``start`` or a parent.

    The search stops at the git root (the first directory holding ``.git``). A
    ``neo.yaml`` that exists but is not a file (a directory, a broken symlink) is an
    error, not skipped: the search does not silently fall through to a parent's.

    Raises:
        UsageError: ``start`` is not an existing directory (a mistyped ``-C``), no
            manifest was found, or ``explicit`` / the ``neo.yaml`` found is not a file.
    """
    if not start.is_dir():
        raise _missing_directory(start)
    if explicit is not None:
        if explicit.is_file():
            return explicit.absolute()
        if explicit.exists():
            raise UsageError(
                f"manifest {explicit} is not a file ({_kind(explicit)})",
                hint="pass the path of the neo.yaml file itself to --manifest",
            )
        raise UsageError(
            f"manifest {explicit} does not exist",
            hint="check the --manifest path, or run `neobuild init` to create one",
        )
    directory = start.absolute()
    while True:
        candidate = directory / MANIFEST_NAME
        if candidate.is_file():
            return candidate
        if os.path.lexists(candidate):
            raise UsageError(
                f"{candidate} is not a file ({_kind(candidate)})",
                hint=f"the manifest must be a YAML file named {MANIFEST_NAME}; "
                "rename or remove what is there, or pass --manifest FILE",
            )
        if (directory / ".git").exists() or directory.parent == directory:
            break
        directory = directory.parent
    raise UsageError(
        f"no {MANIFEST_NAME} in {start.absolute()} or its parents (up to the git root)",
        hint="run `neobuild init` to write one, or pass -C DIR / --manifest FILE",
    )


def _missing_directory(start: Path) -> UsageError:
    what = "is not a directory" if os.path.lexists(start) else "does not exist"
    return UsageError(
        f"directory {start.absolute()} {what}",
        hint="check the -C / --directory path",
    )


def _kind(path: Path) -> str:
    """What a path that is not a regular file is, for messages."""
    if path.is_dir():
        return "a directory"
    if path.is_symlink() and not path.exists():
        return "a broken symlink"
    if path.exists():
        return "not a regular file"
    return "missing"


def load(path: Path, *, use_cache: bool = True) -> Manifest:
    """Load and validate the manifest at ``path``.

    Warnings do not fail the load; they are in ``Manifest.warnings``.

    Raises:
        ManifestError: the manifest has errors; ``problems`` holds every problem.
    """
    manifest, problems = check(path, use_cache=use_cache)
    errors = [p for p in problems if p.severity == "error"]
    if manifest is None or errors:
        raise ManifestError(
            f"{path} has {len(errors)} error(s)",
            problems=problems,
            hint="fix the problems listed above; `neobuild validate` lists them again",
        )
    return manifest


def check(path: Path, *, use_cache: bool = True) -> tuple[Manifest | None, list[Problem]]:
    """Validate the manifest at ``path`` and return it with every error and warning.

    The manifest is None when there is at least one error. Problems are sorted by file
    (top level first, then includes) and position.
    """
    path = path.absolute()
    root = path.parent
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [Problem(f"cannot read the manifest: {exc.strerror or exc}", file=path)]
    if use_cache:
        cached = _cache_lookup(path, root, data)
        if cached is not None:
            return cached, list(cached.warnings)
    validator = _Validator(path, root)
    manifest = validator.run(data)
    problems = validator.sorted_problems()
    if manifest is not None and use_cache:
        _cache_store(path, root, data, manifest, validator)
    return manifest, problems


# --------------------------------------------------------------------------------------
# Parsing: plain data plus the node tree for positions
# --------------------------------------------------------------------------------------


@dataclass
class _Doc:
    """One parsed manifest file."""

    path: Path  # absolute
    rel_dir: str  # its directory, relative to the root ("" for the root)
    index: int  # 0 = top level
    data: Any = None
    node: Node | None = None
    digest: str = ""
    _index: dict[int, dict[str, tuple[Node, Node]]] = field(default_factory=dict, repr=False)

    def node_at(self, path: PathKey, *, at: str = "value") -> tuple[Node | None, bool]:
        """The node at ``path`` (or the deepest one on the way) and whether it was found.

        ``at="key"`` returns the key node of the last mapping step.
        """
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        node = self.node
        found = True
        key_node: Node | None = None
        for i, step in enumerate(path):
            last = i == len(path) - 1
            nxt: Node | None = None
            if isinstance(node, MappingNode):
                pair = self.pairs(node).get(str(step))
                if pair is not None:
                    key_node, nxt = pair
                if nxt is not None and last and at == "key":
                    return key_node, True
            elif (
                isinstance(node, SequenceNode)
                and isinstance(step, int)
                and 0 <= step < len(node.value)
            ):
                nxt = node.value[step]
            if nxt is None:
                found = False
                break
            node = nxt
        return node, found

    def pairs(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        """A mapping node's scalar keys -> (key node, value node); the first one wins."""
        from ruamel.yaml.nodes import ScalarNode

        index = self._index.get(id(node))
        if index is None:
            index = {}
            for k, v in node.value:
                if isinstance(k, ScalarNode):
                    index.setdefault(str(k.value), (k, v))
                    # data paths name null and boolean keys by their Python text
                    tag = str(getattr(k, "tag", ""))
                    if tag.endswith(":null"):
                        index.setdefault("None", (k, v))
                    elif tag.endswith(":bool"):
                        text = "True" if str(k.value).lower() == "true" else "False"
                        index.setdefault(text, (k, v))
            self._index[id(node)] = index
        return index

    def position(self, path: PathKey, *, at: str = "value") -> tuple[int, int]:
        node, _ = self.node_at(path, at=at)
        if node is None or node.start_mark is None:
            return 1, 1
        return node.start_mark.line + 1, node.start_mark.column + 1

    def text(self, path: PathKey) -> str | None:
        """The original text of the scalar at ``path`` (``2.10`` as written)."""
        from ruamel.yaml.nodes import ScalarNode

        node, found = self.node_at(path)
        if found and isinstance(node, ScalarNode):
            return str(node.value)
        return None

    def has(self, path: PathKey) -> bool:
        value = self.data
        for step in path:
            if isinstance(value, Mapping):
                if step not in value:
                    # a non-string key (``1:``) is addressed by its text
                    step = next((k for k in value if str(k) == step), step)
                    if step not in value:
                        return False
            elif not (isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value)):
                return False
            value = value[step]
        return True


def _parse(doc: _Doc, data: bytes) -> Problem | None:
    """Fill ``doc.data``/``doc.node`` from ``data``; a positioned Problem on a syntax error."""
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    try:  # the C parser is much faster; the pure one has the same interface
        from ruamel.yaml.cyaml import CSafeLoader as _Loader
    except ImportError:  # pragma: no cover - no compiler on this platform
        from ruamel.yaml.loader import SafeLoader as _Loader  # type: ignore[assignment]

    doc.digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _not_utf8(doc.path, data, exc)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc.node = node
        too_big = _size_problem(doc.path, node) if node is not None else None
        if too_big is not None:
            return too_big
        with warnings.catch_warnings():  # ruamel warns on stderr about YAML 1.1 floats
            warnings.simplefilter("ignore")
            doc.data = loader.construct_document(node) if node is not None else None
    except ReaderError as exc:  # a character YAML does not allow (a control character)
        line, col = _line_col(text, exc.position)
        return Problem(
            f"invalid YAML: {exc.reason} (character U+{_code_point(exc.character):04X})",
            file=doc.path,
            line=line,
            col=col,
            hint="remove the control character, or write it as an escape inside double quotes",
        )
    except (ValueError, OverflowError) as exc:  # a scalar its constructor refuses
        mark = getattr(exc, "problem_mark", None)
        return Problem(
            f"invalid YAML value: {str(exc).splitlines()[0]}",
            file=doc.path,
            line=(mark.line + 1) if mark is not None else 1,
            col=(mark.column + 1) if mark is not None else 1,
            hint="quote the value to keep it a string",
        )
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = str(exc.problem or exc.context or "invalid YAML")
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context.strip()})"
        hint = "fix the YAML syntax at this position"
        if "unexpected ':'" in message:
            hint = 'inside { } and [ ], quote values that contain ":", e.g. "s3://bucket/x"'
        return Problem(
            f"invalid YAML: {message}",
            file=doc.path,
            line=(mark.line + 1) if mark is not None else 0,
            col=(mark.column + 1) if mark is not None else 0,
            hint=hint,
        )
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()
    return None


#: Values one file may expand to through YAML aliases: a fixed allowance plus a few per
#: node written, so an anchor reused by every model passes and an alias bomb ("billion
#: laughs": each level aliases the one below ten times) is refused before it is built.
_ALIAS_ALLOWANCE = 100_000
_ALIAS_FACTOR = 10
#: Nesting deeper than this is no manifest (and would exhaust the recursion of later steps).
_MAX_DEPTH = 64
#: Longer integers cannot even be printed (Python's int_max_str_digits is 4300).
_MAX_INT_TEXT = 100


def _size_problem(path: Path, root: Node) -> Problem | None:
    """A problem when the node tree nests too deep or aliases expand it too far.

    Each distinct node is visited once (sizes are memoised), so this is linear in the
    file however far its aliases would expand.
    """
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}  # the depth below a node, aliases followed
    reused: dict[int, Node] = {}
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    active: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)
            heights[key] = 1 + max((heights.get(id(c), 1) for c in children), default=0)
            continue
        if key in sizes:
            reused[key] = node
            continue
        if key in active:
            return _node_problem(
                path,
                node,
                "an alias refers to the mapping or list that contains it",
                "a manifest cannot contain itself: remove the recursive alias",
            )
        if depth > _MAX_DEPTH:
            return _node_problem(
                path,
                node,
                f"values nest more than {_MAX_DEPTH} levels deep",
                "flatten the structure; no manifest key nests this deep",
            )
        if not isinstance(node, MappingNode | SequenceNode):
            if str(node.tag).endswith(":int") and len(str(node.value)) > _MAX_INT_TEXT:
                return _node_problem(
                    path,
                    node,
                    f"an integer of {len(str(node.value))} characters",
                    "no manifest value needs a number this large; quote it if it is text",
                )
            sizes[key] = 1
            continue
        active.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(node))
    deepest = root
    if heights.get(id(root), 1) > _MAX_DEPTH:  # nested through aliases: find where
        while heights.get(id(deepest), 1) > _MAX_DEPTH and _children(deepest):
            deepest = max(_children(deepest), key=lambda c: heights.get(id(c), 1))
        return _node_problem(
            path,
            deepest,
            f"values nest more than {_MAX_DEPTH} levels deep through aliases",
            "flatten the structure; no manifest key nests this deep",
        )
    total = sizes[id(root)]
    limit = _ALIAS_ALLOWANCE + _ALIAS_FACTOR * len(sizes)
    if total <= limit:
        return None
    biggest = max(reused.values(), key=lambda n: sizes[id(n)])
    return _node_problem(
        path,
        biggest,
        f"YAML aliases expand this file to {total:,} values (at most {limit:,} here); "
        f"the anchor here ({sizes[id(biggest)]:,} values) is reused",
        "write the values out, or use `defaults:` instead of nested aliases",
    )


def _children(node: Node) -> list[Node]:
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _node_problem(path: Path, node: Node, message: str, hint: str) -> Problem:
    mark = node.start_mark
    return Problem(
        message,
        file=path,
        line=(mark.line + 1) if mark is not None else 1,
        col=(mark.column + 1) if mark is not None else 1,
        hint=hint,
    )


def _code_point(character: Any) -> int:
    """ruamel's ReaderError holds the bad character as an int or a one-character str."""
    return ord(character) if isinstance(character, str) and len(character) == 1 else int(character)


def _line_col(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    position = max(0, min(position, len(text)))
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - line_start + 1


def _not_utf8(path: Path, data: bytes, exc: UnicodeDecodeError) -> Problem:
    """The problem for a file that is not UTF-8, positioned at the first bad byte."""
    start = exc.start
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    col = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    message = f"not UTF-8 text: {exc.reason} (byte 0x{data[start]:02x} at offset {start})"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = "not UTF-8 text: the file starts with a UTF-16 byte order mark"
    return Problem(
        message,
        file=path,
        line=line,
        col=col,
        hint="save it as UTF-8 (a UTF-16 BOM is the usual cause)",
    )


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

_VALIDATORS: dict[str, cerberus.Validator] = {}


def _validator(name: str) -> cerberus.Validator:
    """One cerberus Validator per schema, built once (building one is slow)."""
    import cerberus

    if name not in _VALIDATORS:
        schemas = {
            "top": schema.shallow(schema.MANIFEST_SCHEMA),
            "included": schema.shallow(schema.INCLUDED_SCHEMA),
            "model": schema.MODEL_FIELDS,
        }
        _VALIDATORS[name] = cerberus.Validator(schemas[name])
    return _VALIDATORS[name]


def _schema_for(name: str) -> dict[str, Any]:
    return {
        "top": schema.MANIFEST_SCHEMA,
        "included": schema.INCLUDED_SCHEMA,
        "model": schema.MODEL_FIELDS,
    }[name]


@dataclass
class _ModelSource:
    """Where a model was declared, and the defaults that apply to it (lowest first)."""

    name: str
    doc: _Doc
    defaults: list[tuple[_Doc, PathKey]]  # (doc, ("defaults",)), top-level first

    @property
    def path(self) -> PathKey:
        return ("models", self.name)

    def candidates(self) -> Iterator[tuple[_Doc, PathKey]]:
        """Where a merged value may have come from, most specific first."""
        yield self.doc, self.path
        yield from reversed(self.defaults)


@dataclass
class _Validator:
    path: Path
    root: Path
    docs: list[_Doc] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    probes: dict[str, bool] = field(default_factory=dict)  # "f:rel"/"d:rel" -> existed
    include_patterns: list[str] = field(default_factory=list)
    _globs: dict[str, bool] = field(default_factory=dict)
    _source_index: Any = None
    _seen: set[tuple[Any, ...]] = field(default_factory=set)
    _shared: dict[tuple[Any, ...], list[str]] = field(default_factory=dict)
    # problems of one kind (same file, same container, same severity) past _SHOWN:
    # key -> [count, doc, container path]
    _counts: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _more: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)

    # ---- reporting -------------------------------------------------------------------

    def report(
        self,
        doc: _Doc,
        path: PathKey,
        message: str,
        *,
        hint: str | None = None,
        severity: Severity = "error",
        at: str = "value",
        shown: PathKey | None = None,
    ) -> None:
        line, col = doc.position(path, at=at)
        dotted = _dotted(shown if shown is not None else path)
        key = (doc.index, line, col, dotted, message)
        if key in self._seen:
            return
        self._seen.add(key)
        inherited = shown is not None and shown[:2] != path[:2]  # written in a defaults block
        if inherited and shown is not None:
            # One value in defaults, many models: report it once, naming the others.
            shared = (doc.index, line, col, message, severity)
            if shared in self._shared:
                self._shared[shared].append(str(shown[1]))
                return
            self._shared[shared] = []
        shown_path = shown if shown is not None else path
        kind = (doc.index, _dotted(shown_path[:-1]), severity)
        count = self._counts[kind] = self._counts.get(kind, 0) + 1
        if count > _SHOWN:
            more = self._more.setdefault(kind, [0, doc, path[:-1], severity])
            more[0] += 1
            return
        self.problems.append(
            Problem(
                message,
                path=dotted,
                file=doc.path,
                line=line,
                col=col,
                severity=severity,
                hint=hint,
            )
        )

    def report_model(
        self,
        src: _ModelSource,
        sub: PathKey,
        message: str,
        *,
        hint: str | None = None,
        severity: Severity = "error",
        at: str = "value",
    ) -> None:
        """Report on a merged model value, positioned where it was written."""
        doc, full = self.locate(src, sub)
        if full == src.path and sub:  # not written anywhere: point at the model's name
            at = "key"
        self.report(doc, full, message, hint=hint, severity=severity, at=at, shown=src.path + sub)

    def locate(self, src: _ModelSource, sub: PathKey) -> tuple[_Doc, PathKey]:
        for doc, base in src.candidates():
            if doc.has(base + sub):
                return doc, base + sub
        # not written anywhere (a missing key): point at the model's name
        return src.doc, src.path

    def sorted_problems(self) -> list[Problem]:
        order = {doc.path: doc.index for doc in self.docs}
        problems = [
            Problem(
                f"and {count} more problem(s) like the ones above, not shown",
                path=where,
                file=doc.path,
                line=doc.position(container)[0],
                col=doc.position(container)[1],
                severity=severity,
                hint=f"the first {_SHOWN} are listed; fix them and run validate again",
            )
            for (_, where, _), (count, doc, container, severity) in self._more.items()
        ]
        for p in self.problems:
            key = (order.get(p.file, -1) if p.file else -1, p.line, p.col, p.message, p.severity)
            others = self._shared.get(key)
            if others:
                names = ", ".join(others[:3]) + (
                    f" and {len(others) - 3} more" if len(others) > 3 else ""
                )
                p = dataclasses.replace(p, message=f"{p.message} (also in models {names})")
            problems.append(p)
        return sorted(
            problems,
            key=lambda p: (order.get(p.file, -1) if p.file else -1, p.line, p.col, p.path),
        )

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    # ---- files -----------------------------------------------------------------------

    def source_matches(self, rel: str) -> bool:
        """Whether a repo-relative ``sources`` glob matches a file (as the fingerprint
        expands it), recording what the validated-manifest cache re-checks.

        Cheap on purpose: globs are expanded only here, on a cache miss (a manifest
        file changed). A glob that matched nothing is re-checked on every lookup (so
        its warning goes once it matches); for one that matched, only its literal
        directory prefix is (one stat), so a glob that stops matching for another
        reason is caught at the next manifest change.
        """
        known = self._globs.get(rel)
        if known is not None:
            return known
        from neobuild.fingerprint import SourceIndex

        if self._source_index is None:
            self._source_index = SourceIndex(self.root)
        matched = bool(self._source_index.match([rel]))
        self._globs[rel] = matched
        if not matched:
            self.probes[f"g:{rel}"] = False
        else:
            prefix = _literal_prefix(rel)
            if prefix == rel:
                self.exists(rel, "f" if os.path.isfile(os.path.join(self.root, rel)) else "d")
            elif prefix:
                self.exists(prefix, "d")
        return matched

    def exists(self, rel: str, kind: str) -> bool:
        """Whether the repo-relative path exists as a file ("f") or directory ("d")."""
        target = os.path.join(self.root, rel)  # os.path: False, not OSError, on odd names
        ok = os.path.isfile(target) if kind == "f" else os.path.isdir(target)
        self.probes[f"{kind}:{rel}"] = ok
        return ok

    def resolves_inside(self, rel: str) -> bool:
        """Whether a path, symlinks on the way followed, stays inside the repository."""
        real = os.path.realpath(os.path.join(self.root, rel))
        inside = real.startswith(self._real_root + os.sep)
        self.probes[f"i:{rel}"] = inside
        return inside

    def real(self, rel: str) -> str:
        return os.path.realpath(os.path.join(self.root, rel))

    @functools.cached_property
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def repo_path(self, doc: _Doc, value: str) -> str | None:
        """``value`` (relative to ``doc``'s directory) as a repo-relative posix path.

        None when it is absolute or leaves the repository.
        """
        if value.startswith("/") or re.match(r"[A-Za-z]:[\\/]", value) or value.startswith("~"):
            return None
        joined = posixpath.normpath(posixpath.join(doc.rel_dir, value.replace("\\", "/")))
        if joined == ".." or joined.startswith("../"):
            return None
        return joined

    # ---- the pipeline ----------------------------------------------------------------

    def run(self, data: bytes) -> Manifest | None:
        top = _Doc(self.path, "", 0)
        self.docs.append(top)
        if not self.parse_file(top, data, "top"):
            return None
        self.load_includes(top)
        sources = self.collect_models()
        models: dict[str, Model] = {}
        for src in sources:
            model = self.build_model(src)
            if model is not None:
                models[src.name] = model
        settings = self.top_level(top)
        if settings is not None:
            build_real = os.path.realpath(settings[0])
            for src in sources:
                if src.name in models:
                    self.inputs_in_build_dir(src, models[src.name], build_real)
        if self.has_errors or settings is None:
            return None
        build_dir, templates_dir, cache = settings
        warnings = tuple(p for p in self.sorted_problems() if p.severity == "warning")
        return Manifest(
            path=self.path,
            root=self.root,
            build_dir=build_dir,
            models=models,
            files=tuple(doc.path for doc in self.docs),
            cache=cache,
            templates_dir=templates_dir,
            warnings=warnings,
        )

    def inputs_in_build_dir(self, src: _ModelSource, model: Model, build: str) -> None:
        """``package`` refuses a build_dir holding a model's input: say so here first.

        ``build`` is the build_dir's real path: an input reached through a symlink counts.
        """
        for key, rel in (
            ("export", model.export.path),
            ("requirements", model.requirements_file),
            ("templates_dir", model.templates_dir),
        ):
            if rel is None:
                continue
            path = self.real(rel)
            if path == build or path.startswith(build + os.sep):
                shown = os.path.relpath(build, os.path.realpath(self.root))
                self.report_model(
                    src,
                    (key,),
                    f"{rel} is inside build_dir {Path(shown).as_posix()}, which neobuild replaces",
                    hint="set build_dir to a directory of its own, e.g. build/neo",
                )

    def parse_file(self, doc: _Doc, data: bytes, kind: str) -> bool:
        syntax = _parse(doc, data)
        if syntax is not None:
            self.problems.append(syntax)
            return False
        if doc.data is None:
            self.report(
                doc,
                (),
                "the manifest is empty",
                hint="start from `neobuild init`, or add `version: 1` and `models:`",
            )
            return False
        if not isinstance(doc.data, dict):
            self.report(
                doc,
                (),
                f"the manifest must be a mapping, got {_describe(doc.data)}",
                hint="start with `version: 1` and `models:`",
            )
            return False
        self.cerberus(doc, (), doc.data, kind)
        return True

    def cerberus(self, doc: _Doc, base: PathKey, document: Any, kind: str) -> None:
        validator = _validator(kind)
        # cerberus sorts its error list at every error (quadratic): a long list or mapping
        # with many bad entries is cut after the first ones, the rest only counted
        document = self.trimmed(doc, base, document, _schema_for(kind))
        try:
            ok = validator.validate(document, normalize=False)
        except TypeError:  # cerberus cannot sort its errors under keys of mixed types
            ok = validator.validate(_string_keys(document), normalize=False)
        if ok:
            return
        for error, in_keys in _leaf_errors(validator._errors):
            self.cerberus_problem(doc, base, error, in_keys, _schema_for(kind))

    def trimmed(self, doc: _Doc, base: PathKey, document: Any, fields: Mapping[str, Any]) -> Any:
        """``document`` with each long container cut after its ``_SHOWN + 1``-th bad entry.

        The entries cut are checked one by one (linear) and counted as "more problems"
        of the container's kind; the first ones still go through cerberus for messages.
        """
        if not isinstance(document, dict):
            return document
        out = dict(document)
        for key, value in document.items():
            rules = fields.get(key) if isinstance(key, str) else None
            if not isinstance(rules, dict):
                continue
            where = (*base, key)
            sub = rules.get("schema")
            types = _as_list(rules.get("type"))  # a value of another type: cerberus says so
            if isinstance(value, dict) and isinstance(sub, dict) and "dict" in types:
                out[key] = self.trimmed(doc, where, value, sub)
            elif (
                isinstance(value, list)
                and isinstance(sub, dict)
                and "list" in types
                and len(value) > _BIG
            ):
                bad = [i for i, item in enumerate(value) if not _ok(sub, item)]
                cut = _cut(bad, rules)
                if cut is not None:
                    out[key] = value[:cut]
                    self.count_more(doc, where, sum(1 for i in bad if i >= cut))
            elif isinstance(value, dict) and "dict" in types and len(value) > _BIG:
                keys, values = rules.get("keysrules"), rules.get("valuesrules")
                items = list(value.items())
                bad = [
                    i
                    for i, (k, v) in enumerate(items)
                    if (isinstance(keys, dict) and not _ok(keys, k))
                    or (isinstance(values, dict) and not _ok(values, v))
                ]
                cut = _cut(bad, rules)
                if cut is not None:
                    out[key] = dict(items[:cut])
                    self.count_more(doc, where, sum(1 for i in bad if i >= cut))
        return out

    def count_more(self, doc: _Doc, container: PathKey, count: int) -> None:
        if count:
            kind = (doc.index, _dotted(container), "error")
            more = self._more.setdefault(kind, [0, doc, container, "error"])
            more[0] += count

    def cerberus_problem(
        self, doc: _Doc, base: PathKey, error: Any, in_keys: bool, root_schema: dict[str, Any]
    ) -> None:
        from cerberus import errors as cerr

        path: PathKey = base + tuple(error.document_path)
        rules = _rules_at(root_schema, tuple(error.schema_path)[:-1])
        meta = rules.get("meta", {}) if isinstance(rules, dict) else {}
        code = error.code
        value = error.value
        name = str(path[-1]) if path else ""
        if code == cerr.UNKNOWN_FIELD.code:
            allowed = _allowed_keys(root_schema, tuple(error.schema_path))
            guess = did_you_mean(name, allowed)
            if name == "export" and path[:1] == ("defaults",):
                guess = "export is per model: move it into each model"
            self.report(
                doc,
                path,
                f"unknown key {name!r}",
                hint=guess or (f"allowed keys: {', '.join(allowed)}" if allowed else None),
                at="key",
            )
        elif code == cerr.REQUIRED_FIELD.code:
            parent = path[:-1]
            where = "the manifest" if not parent else _dotted(parent)
            self.report(
                doc,
                parent,
                f"missing required key {name!r}",
                hint=_REQUIRED_HINTS.get(name, f"add `{name}:` to {where}"),
                at="key",
                shown=parent,
            )
        elif code in (cerr.BAD_TYPE.code, cerr.NOT_NULLABLE.code):
            self.bad_type(doc, path, rules, value, name)
        elif code == cerr.EMPTY_NOT_ALLOWED.code:
            self.report(doc, path, "must not be empty")
        elif code in (cerr.MIN_LENGTH.code, cerr.MAX_LENGTH.code, cerr.REGEX_MISMATCH.code):
            self.length_or_pattern(doc, path, rules, meta, value, code, error.constraint, in_keys)
        elif code == cerr.MIN_VALUE.code:
            self.report(doc, path, f"must be at least {error.constraint}, got {value!r}")
        elif code == cerr.MAX_VALUE.code:
            self.report(doc, path, f"must be at most {error.constraint}, got {value!r}")
        elif code == cerr.UNALLOWED_VALUE.code and name == "version":
            self.report(
                doc,
                path,
                f"unsupported manifest version {value!r}",
                hint="this neobuild reads `version: 1`",
            )
        else:  # pragma: no cover - a rule the schema does not use
            self.report(doc, path, f"invalid value {value!r} ({error.rule})")

    def bad_type(self, doc: _Doc, path: PathKey, rules: Any, value: Any, name: str) -> None:
        types = rules.get("type") if isinstance(rules, dict) else None
        expected = _expected(types)
        text = doc.text(path)
        hint = None
        if name == "framework_version" and isinstance(value, int | float) and text is not None:
            self.report(
                doc,
                path,
                f"framework_version {text} is read by YAML as the number {value!r}",
                hint=f'quote it: framework_version: "{text}"',
            )
            return
        if _as_list(types) == ["string"] and isinstance(value, int | float | bool) and text:
            hint = f'quote it: "{text}"'
        self.report(doc, path, f"expected {expected}, got {_describe(value)}", hint=hint)

    def length_or_pattern(
        self,
        doc: _Doc,
        path: PathKey,
        rules: Any,
        meta: Mapping[str, Any],
        value: Any,
        code: int,
        constraint: Any,
        in_keys: bool,
    ) -> None:
        from cerberus import errors as cerr

        at = "key" if in_keys else "value"
        rule_name = meta.get("rule")
        if rule_name is not None and isinstance(value, str):
            message = neo.field_problem(rule_name, value) or f"invalid {rule_name} {value!r}"
            self.report(doc, path, message, at=at)
            return
        if code == cerr.REGEX_MISMATCH.code:
            name = str(path[-2]) if len(path) > 1 else ""
            if name == "env":
                message = f"{value!r} is not a valid environment variable name"
            elif path and path[-1] == "region":
                message = f"{value!r} is not an AWS Region name like us-east-1"
            else:
                message = f"{value!r} does not match {rules.get('regex')}"
            self.report(doc, path, message, at=at)
            return
        types = _as_list(rules.get("type") if isinstance(rules, dict) else None)
        unit = "item" if "list" in types else "entry" if "dict" in types else "character"
        bound = "at least" if code == cerr.MIN_LENGTH.code else "at most"
        count = len(value) if hasattr(value, "__len__") else value
        self.report(doc, path, f"needs {bound} {constraint} {unit}(s), got {count}", at=at)

    # ---- includes and models ---------------------------------------------------------

    def load_includes(self, top: _Doc) -> None:
        patterns = top.data.get("include")
        if not isinstance(patterns, list):
            return
        seen: set[Path] = {top.path}
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, str) or not pattern:
                continue
            flaw = _path_flaw(pattern, pattern=True)
            if flaw is not None:
                self.report(
                    top, ("include", i), f"include {_short(pattern)} {flaw}", hint=_FLAW_HINT
                )
                continue
            self.include_patterns.append(pattern)
            rel = self.repo_path(top, pattern)
            if rel is None:
                self.report(
                    top,
                    ("include", i),
                    f"include {pattern!r} leaves the repository",
                    hint="include only files under the directory of neo.yaml",
                )
                continue
            matches = _expand(self.root, rel)
            if not matches:
                self.report(
                    top,
                    ("include", i),
                    f"include {pattern!r} matches no file",
                    severity="warning",
                    hint="check the glob; paths are relative to this file",
                )
            for match in matches:
                if match in seen:
                    continue
                seen.add(match)
                if not self.resolves_inside(match.relative_to(self.root).as_posix()):
                    self.report(
                        top,
                        ("include", i),
                        f"include {_short(pattern)} reaches "
                        f"{match.relative_to(self.root).as_posix()}, which a symlink leads "
                        "outside the repository",
                        hint="include only files under the directory of neo.yaml",
                    )
                    continue
                doc = _Doc(
                    match,
                    posixpath.dirname(match.relative_to(self.root).as_posix()),
                    len(self.docs),
                )
                self.docs.append(doc)
                try:
                    data = match.read_bytes()
                except OSError as exc:
                    self.report(top, ("include", i), f"cannot read {match}: {exc.strerror}")
                    continue
                self.parse_file(doc, data, "included")

    def collect_models(self) -> list[_ModelSource]:
        top = self.docs[0]
        top_defaults = _defaults_of(top)
        declared: dict[str, _ModelSource] = {}
        folded: dict[str, _ModelSource] = {}  # name.casefold() -> first declaration
        for doc in self.docs:
            if not isinstance(doc.data, dict):
                continue
            models = doc.data.get("models")
            if not isinstance(models, dict):
                continue
            defaults = list(top_defaults)
            if doc is not top:
                defaults.extend(_defaults_of(doc))
            for name in models:
                if not isinstance(name, str):
                    self.report(doc, ("models", name), "a model name must be a string", at="key")
                    continue
                first = declared.get(name)
                if first is not None:
                    line, col = first.doc.position(first.path, at="key")
                    self.report(
                        doc,
                        ("models", name),
                        f"model {name!r} is already declared at {first.doc.path}:{line}:{col}",
                        hint="model names must be unique across neo.yaml and its includes",
                        at="key",
                    )
                    continue
                src = _ModelSource(name, doc, defaults)
                declared[name] = src
                self.check_name(src)
                self.check_case(src, folded.setdefault(name.casefold(), src))
                if isinstance(models[name], dict):
                    self.cerberus(doc, src.path, models[name], "model")
        return list(declared.values())

    def check_case(self, src: _ModelSource, first: _ModelSource) -> None:
        """Names equal but for letter case collide in build dirs on macOS and in AWS names."""
        if first is src:
            return
        line, col = first.doc.position(first.path, at="key")
        self.report(
            src.doc,
            src.path,
            f"model {src.name!r} differs only in letter case from model {first.name!r} "
            f"declared at {first.doc.path}:{line}:{col}",
            hint="rename one of them: build directories on case-insensitive file systems "
            "(macOS, Windows) and AWS resource names would collide",
            at="key",
        )

    def check_name(self, src: _ModelSource) -> None:
        name = src.name
        if not _MODEL_NAME.fullmatch(name):
            self.report(
                src.doc,
                src.path,
                f"model name {name!r} cannot be part of a CompilationJobName",
                hint="use letters, digits and hyphens; start and end with a letter or digit",
                at="key",
            )
        elif len(name) > MODEL_NAME_MAX:
            self.report(
                src.doc,
                src.path,
                f"model name {name!r} is {len(name)} characters; at most {MODEL_NAME_MAX} "
                "are allowed (the limit of AWS resource names such as a CompilationJobName)",
                hint="shorten the name",
                at="key",
            )

    def merged(self, src: _ModelSource) -> dict[str, Any] | None:
        entry = src.doc.data["models"][src.name]
        if not isinstance(entry, dict):
            return None
        result: dict[str, Any] = {}
        for doc, base in src.defaults:
            block = doc.data.get(base[0]) if isinstance(doc.data, dict) else None
            if isinstance(block, dict):
                result = _deep_merge(result, block, replace=_ORDERED_KEYS)
        return _deep_merge(result, entry, replace=_ORDERED_KEYS)

    def origin(self, src: _ModelSource, key: str) -> _Doc:
        """The file a model's top-level key was written in (for relative paths)."""
        doc, _ = self.locate(src, (key,))
        return doc

    # ---- one model -------------------------------------------------------------------

    def build_model(self, src: _ModelSource) -> Model | None:
        m = self.merged(src)
        if m is None:
            return None
        ok = True
        for key in ("framework", "targets"):
            if key not in m or m[key] is None:
                self.report(
                    src.doc,
                    src.path,
                    f"missing required key {key!r}",
                    hint=_REQUIRED_HINTS.get(key),
                    at="key",
                )
                ok = False
        framework = self.framework(src, m.get("framework"))
        version = m.get("framework_version")
        if not isinstance(version, str) or neo.field_problem("FrameworkVersion", version):
            version = None  # reported by cerberus; skip the version tables
        export = self.export(src, m.get("export"))
        compile_settings = self.compile_settings(m.get("compile"))
        self.partial_compile(src, m.get("compile"))
        model_options = self.options(src, ("compiler_options",), m.get("compiler_options"))
        indexed, targets_ok = self.targets(src, m.get("targets"), model_options)
        targets = tuple(target for _, target in indexed)
        if framework is not None:
            region = compile_settings.region
            for i, target in indexed:
                for severity, message in neo.target_problems(
                    framework, version, target, region=region
                ):
                    sub = _target_sub(m, i, message)
                    self.report_model(src, sub, message, severity=severity)
        inputs = self.inputs(src, framework, version, targets, m)
        sources = self.sources(src, m.get("sources"), export)
        requirements, requirements_file = self.requirements(src, m.get("requirements"))
        templates_dir = self.templates_dir(src, m.get("templates_dir"))
        if not ok or not targets_ok or framework is None or export is None or inputs is None:
            return None
        raw_env, raw_tags, timeout = m.get("env"), m.get("tags"), m.get("timeout")
        env: dict[Any, Any] = raw_env if isinstance(raw_env, dict) else {}
        tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
        line, col = src.doc.position(src.path, at="key")
        return Model(
            name=src.name,
            framework=framework,
            export=export,
            inputs=inputs,
            targets=targets,
            framework_version=version,
            sources=sources,
            requirements=requirements,
            requirements_file=requirements_file,
            env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
            timeout=timeout if isinstance(timeout, int) and _is_int(timeout) else DEFAULT_TIMEOUT,
            tags=tuple(str(t) for t in tags),
            compiler_options=model_options,
            compile=compile_settings,
            templates_dir=templates_dir,
            smoke=m.get("smoke") is True,
            compile_check=m.get("compile_check") is True,
            position=Position(src.doc.path, line, col),
        )

    def framework(self, src: _ModelSource, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        normal = value.lower()
        if normal in FRAMEWORKS:
            return normal
        self.report_model(
            src,
            ("framework",),
            f"unknown framework {value!r}",
            hint=did_you_mean(value, FRAMEWORKS) or f"one of: {', '.join(FRAMEWORKS)}",
        )
        return None

    def export(self, src: _ModelSource, value: Any) -> ExportRef | None:
        if not isinstance(value, str) or not value:
            return None
        sub: PathKey = ("export",)
        doc = self.origin(src, "export")
        by_path = _EXPORT_PATH.fullmatch(value)
        flaw = _path_flaw(by_path["path"], pattern=False) if by_path is not None else None
        if flaw is not None:
            self.report_model(src, sub, f"export file {_short(value)} {flaw}", hint=_FLAW_HINT)
            return None
        if by_path is not None:
            rel = self.repo_path(doc, by_path["path"])
            if rel is None:
                self.report_model(
                    src, sub, f"export file {by_path['path']!r} is outside the repository"
                )
                return None
            if not self.exists(rel, "f"):
                self.report_model(
                    src,
                    sub,
                    f"export file {rel} does not exist",
                    hint="paths are relative to the manifest file that declares the model",
                )
                return None
            if not self.resolves_inside(rel):
                self.report_model(
                    src,
                    sub,
                    f"export file {rel} is a symlink that leads outside the repository",
                    hint="keep export code inside the repository so its changes are tracked",
                )
                return None
            if not self.export_function(src, rel, by_path["function"]):
                return None
            return ExportRef(function=by_path["function"], path=rel)
        by_module = _EXPORT_MODULE.fullmatch(value)
        if by_module is not None:
            module_file = self.module_file(by_module["module"])
            if module_file is not None and not self.export_function(
                src, module_file, by_module["function"]
            ):
                return None
            return ExportRef(function=by_module["function"], module=by_module["module"])
        self.report_model(
            src,
            sub,
            f"export {value!r} is not path/to/file.py:function or package.module:function",
            hint="e.g. export: models/resnet/export.py:export",
        )
        return None

    def module_file(self, module: str) -> str | None:
        """The repo-relative file of ``package.module`` when it is in the repository."""
        from neobuild.entrypoint import module_candidates

        for candidate in module_candidates(module):
            if self.exists(candidate, "f") and self.resolves_inside(candidate):
                return candidate
        return None  # an installed package: the export environment resolves it

    def export_function(self, src: _ModelSource, rel: str, function: str) -> bool:
        """Whether ``rel`` may define ``function`` (parsed with ast, never imported).

        ``package`` would refuse the model after building its environment and starting
        the export; this finds it first. The file's stat is recorded so the manifest
        cache re-checks it when the file changes.
        """
        from neobuild.entrypoint import scan

        try:
            stat = os.stat(self.root / rel)
        except OSError:
            return True
        self.probes[f"s:{stat.st_mtime_ns}:{stat.st_size}:{rel}"] = True
        found = scan(self.root / rel)
        if found is None:
            return True
        if found.syntax_error is not None:
            self.report_model(
                src,
                ("export",),
                f"export file {rel} is not valid Python ({found.syntax_error})",
                hint="fix the file; the export would fail to import it",
            )
            return False
        if found.lacks(function):
            names = found.functions()
            self.report_model(
                src,
                ("export",),
                f"export file {rel} defines no function {function!r}",
                hint=did_you_mean(function, names)
                or (
                    f"it defines: {', '.join(names[:8])}" if names else "the file defines nothing"
                ),
            )
            return False
        return True

    def options(self, src: _ModelSource, sub: PathKey, value: Any) -> Any:
        """Compiler options as JSON values; a JSON object written as a string is parsed."""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except ValueError as exc:
                self.report_model(
                    src,
                    sub,
                    f"compiler_options is not valid JSON: {exc}",
                    hint="write it as a YAML mapping, e.g. compiler_options: {mcpu: skylake-avx512}",
                )
                return None
        if value is not None:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                self.report_model(
                    src,
                    sub,
                    f"compiler_options cannot be written as JSON: {exc}",
                    hint="quote dates and use only strings, numbers, booleans, lists and mappings",
                )
                return None
        return value

    def targets(
        self, src: _ModelSource, value: Any, model_options: Any
    ) -> tuple[list[tuple[int, Target]], bool]:
        """The valid targets with their index, and whether every target was valid."""
        if not isinstance(value, list):
            return [], False
        result: list[tuple[int, Target]] = []
        keys: dict[str, int] = {}
        ok = True
        for i, item in enumerate(value):
            sub: PathKey = ("targets", i)
            target = self.target(src, sub, item, model_options)
            if target is None:
                ok = False
                continue
            if target.key in keys:
                self.report_model(
                    src,
                    sub,
                    f"target {target.key} is listed twice (first at targets[{keys[target.key]}])",
                    hint="remove the duplicate",
                )
                ok = False
                continue
            keys[target.key] = i
            result.append((i, target))
        return result, ok and bool(result)

    def target(
        self, src: _ModelSource, sub: PathKey, item: Any, model_options: Any
    ) -> Target | None:
        doc, full = self.locate(src, sub)
        line, col = doc.position(full)
        position = Position(doc.path, line, col)
        if isinstance(item, str):
            device = self.device(src, sub, item)
            if device is None:
                return None
            return Target(
                device=device,
                compiler_options=_merge_options(model_options, None),
                position=position,
            )
        if not isinstance(item, dict):
            return None  # cerberus reported the type
        has_device = item.get("device") is not None
        has_platform = item.get("platform") is not None
        if has_device == has_platform:
            self.report_model(
                src,
                sub,
                "a target needs exactly one of device or platform"
                if not has_device
                else "a target has device or platform, not both",
                hint="TargetDevice and TargetPlatform are mutually exclusive",
            )
            return None
        options = self.options(src, (*sub, "compiler_options"), item.get("compiler_options"))
        merged = _merge_options(model_options, options)
        if has_device:
            if not isinstance(item["device"], str):
                return None
            device = self.device(src, (*sub, "device"), item["device"])
            if device is None:
                return None
            return Target(device=device, compiler_options=merged, position=position)
        platform = self.platform(src, (*sub, "platform"), item["platform"])
        if platform is None:
            return None
        return Target(platform=platform, compiler_options=merged, position=position)

    def device(self, src: _ModelSource, sub: PathKey, value: str) -> str | None:
        normal = value.lower()
        if normal in neo.TARGET_DEVICES:
            return normal
        guess = did_you_mean(value, neo.TARGET_DEVICES)
        hint = guess
        if guess is None and value.upper() in neo.PLATFORM_OS + neo.PLATFORM_ARCH:
            hint = "a platform is written {platform: {os: LINUX, arch: ARM64}}"
        self.report_model(
            src,
            sub,
            f"unknown target device {value!r}",
            hint=hint or "see `neobuild schema` for the 37 TargetDevice values",
        )
        return None

    def platform(self, src: _ModelSource, sub: PathKey, value: Any) -> Platform | None:
        if not isinstance(value, dict):
            return None
        parts: dict[str, str | None] = {}
        ok = True
        for key, allowed in (
            ("os", neo.PLATFORM_OS),
            ("arch", neo.PLATFORM_ARCH),
            ("accelerator", neo.PLATFORM_ACCELERATOR),
        ):
            raw = value.get(key)
            if raw is None:
                parts[key] = None
                ok = ok and key == "accelerator"
                continue
            if not isinstance(raw, str):
                ok = False
                continue
            normal = raw.upper()
            if normal not in allowed:
                guess = did_you_mean(raw, allowed) or _ALIASES.get(normal)
                self.report_model(
                    src,
                    (*sub, key),
                    f"unknown {key} {raw!r}",
                    hint=guess or f"one of: {', '.join(allowed)}",
                )
                ok = False
                continue
            parts[key] = normal
        if not ok or parts["os"] is None or parts["arch"] is None:
            return None
        return Platform(os=parts["os"], arch=parts["arch"], accelerator=parts["accelerator"])

    def inputs(
        self,
        src: _ModelSource,
        framework: str | None,
        version: str | None,
        targets: tuple[Target, ...] | None,
        m: Mapping[str, Any],
    ) -> Inputs | None:
        value = m.get("inputs")
        sub: PathKey = ("inputs",)
        if framework is None:  # still check the shapes
            if isinstance(value, dict):
                for k, v in value.items():
                    self.shape(src, (*sub, k), v)
            elif isinstance(value, list):
                for j, v in enumerate(value):
                    self.shape(src, (*sub, j), v)
            return None
        forms = neo.INPUT_FORMS[framework]
        empty = value is None or value == {} or value == []
        if framework == "xgboost":
            if not empty:
                self.report_model(
                    src, sub, "xgboost takes no inputs", hint="remove `inputs:` from this model"
                )
                return None
            return Inputs(form="none")
        if empty:
            if neo.inputs_optional(framework, version, targets or ()):
                return Inputs(form="none")
            hint = "e.g. inputs: {input0: [1, 3, 224, 224]}"
            if framework == "pytorch":
                hint += '; PyTorch may leave them out with framework_version "2.0" and only ml_* targets'
            self.report_model(src, sub, f"{framework} needs inputs (name -> shape)", hint=hint)
            return None
        if not isinstance(value, dict | list):
            return None  # cerberus reported the type
        if isinstance(value, list) and "list" not in forms:
            self.report_model(
                src,
                sub,
                f"{framework} takes inputs as a mapping of input name -> shape, not a list",
                hint="e.g. inputs: {input_1: [1, 3, 224, 224]}",
            )
            return None
        items: list[InputSpec] = []
        ok = True
        entries: list[tuple[str | None, PathKey, Any]]
        if isinstance(value, dict):
            entries = [(k, (*sub, str(k)), v) for k, v in value.items()]
        else:
            entries = [(None, (*sub, i), v) for i, v in enumerate(value)]
        for name, where, shape in entries:
            if name is not None and not isinstance(name, str):
                self.report_model(src, where, "input names must be strings", at="key")
                ok = False
                continue
            checked = self.shape(src, where, shape)
            if checked is None:
                ok = False
                continue
            items.append(InputSpec(name=name, shape=checked))
            warning = neo.layout_problem(framework, checked)
            if warning is not None:
                self.report_model(src, where, warning, severity="warning")
        if not ok:
            return None
        form: InputForm = "dict" if isinstance(value, dict) else "list"
        inputs = Inputs(form=form, items=tuple(items))
        text = json.dumps(inputs.as_json())
        limit = neo.FIELD_RULES["DataInputConfig"].max_len or 0
        if len(text) > limit:
            self.report_model(
                src,
                sub,
                f"inputs are {len(text)} characters of JSON; DataInputConfig allows {limit}",
            )
            return None
        return inputs

    def shape(self, src: _ModelSource, where: PathKey, shape: Any) -> tuple[int, ...] | None:
        hint = "shapes are lists of positive integers, e.g. [1, 3, 224, 224]"
        if not isinstance(shape, list) or not shape:
            got = "an empty list" if shape == [] else _describe(shape)
            self.report_model(
                src, where, f"a shape must be a list of positive integers, got {got}", hint=hint
            )
            return None
        ok = True
        for j, dim in enumerate(shape):
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
                extra = (
                    "; Neo needs static shapes" if dim is None or (_is_int(dim) and dim < 1) else ""
                )
                self.report_model(
                    src,
                    (*where, j),
                    f"a dimension must be a positive integer, got {_describe(dim)}{extra}",
                    hint=hint,
                )
                ok = False
        return tuple(shape) if ok else None

    def sources(self, src: _ModelSource, value: Any, export: ExportRef | None) -> tuple[str, ...]:
        if isinstance(value, list):
            doc = self.origin(src, "sources")
            result: list[str] = []
            for i, pattern in enumerate(value):
                if not isinstance(pattern, str) or not pattern:
                    continue
                flaw = _path_flaw(pattern, pattern=True)
                rel = self.repo_path(doc, pattern) if flaw is None else None
                prefix = _literal_prefix(rel) if rel is not None else ""
                if flaw is None and rel is None:
                    flaw = "leaves the repository"
                elif rel is not None and prefix and not self.resolves_inside(prefix):
                    flaw = f"leaves the repository: {prefix} is a symlink to outside it"
                if flaw is not None:
                    self.report_model(src, ("sources", i), f"source {_short(pattern)} {flaw}")
                    continue
                assert rel is not None
                if not self.source_matches(rel):
                    guess = _path_guess(self.root, rel, pattern)
                    self.report_model(
                        src,
                        ("sources", i),
                        f"{pattern!r} matches no file",
                        severity="warning",
                        hint=f"{guess} (paths are relative to this file)"
                        if guess
                        else "check the glob (paths are relative to this file): the model "
                        "is not rebuilt when a file its sources miss changes",
                    )
                result.append(rel)
            return tuple(result)
        if export is None:
            return ()
        path = export.path
        if path is None and export.module is not None:
            stem = export.module.replace(".", "/")
            for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
                if self.exists(candidate, "f"):
                    path = candidate
                    break
        if path is None:
            return ()
        directory = posixpath.dirname(path)
        return (f"{directory}/**",) if directory else (path,)

    def requirements(self, src: _ModelSource, value: Any) -> tuple[tuple[str, ...], str | None]:
        if isinstance(value, list):
            return tuple(str(v) for v in value if isinstance(v, str)), None
        if not isinstance(value, str):
            return (), None
        flaw = _path_flaw(value, pattern=False)
        if flaw is not None:
            self.report_model(
                src, ("requirements",), f"requirements file {_short(value)} {flaw}", hint=_FLAW_HINT
            )
            return (), None
        rel = self.repo_path(self.origin(src, "requirements"), value)
        if rel is not None and not self.resolves_inside(rel):
            rel = None
        if rel is None:
            self.report_model(
                src, ("requirements",), f"requirements file {value!r} is outside the repository"
            )
            return (), None
        if not self.exists(rel, "f"):
            self.report_model(
                src,
                ("requirements",),
                f"requirements file {rel} does not exist",
                hint="give a file path, or a list of specifiers: [torch==2.0.1]",
            )
        return (), rel

    def templates_dir(self, src: _ModelSource, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        flaw = _path_flaw(value, pattern=False)
        if flaw is not None:
            self.report_model(src, ("templates_dir",), f"{_short(value)} {flaw}", hint=_FLAW_HINT)
            return None
        rel = self.repo_path(self.origin(src, "templates_dir"), value)
        if rel is not None and not self.resolves_inside(rel):
            rel = None
        if rel is None:
            self.report_model(src, ("templates_dir",), f"{_short(value)} is outside the repository")
            return None
        if not self.exists(rel, "d"):
            self.report_model(src, ("templates_dir",), f"templates_dir {rel} is not a directory")
        return rel

    def partial_compile(self, src: _ModelSource, value: Any) -> None:
        """``role_arn`` and ``s3_prefix`` come together.

        Without both, ``package`` writes no requests (and says so); one without the
        other is a half-configured model that would be packaged without requests by
        mistake. The other keys (``region``, ``max_runtime``, ``tags``...) may be set in
        ``defaults`` for models that have requests, so alone they are not an error.
        """
        from neobuild.model import REQUEST_KEYS

        if not isinstance(value, dict):
            return
        missing = [k for k in REQUEST_KEYS if value.get(k) in (None, "")]
        if not missing or len(missing) == len(REQUEST_KEYS):
            return
        given = [k for k in REQUEST_KEYS if k not in missing]
        wanted = " and ".join(f"compile.{k}" for k in missing)
        examples = {
            "role_arn": "arn:aws:iam::<account>:role/<name>",
            "s3_prefix": "s3://<bucket>/<prefix>",
        }
        self.report_model(
            src,
            ("compile", given[0]),
            f"compile settings are incomplete: {wanted} {'is' if len(missing) == 1 else 'are'} "
            f"not set, so no compilation request can be written (compile.{given[0]} is)",
            hint="add "
            + " and ".join(f"`{k}: {examples[k]}`" for k in missing)
            + " under compile: (in the model or in defaults), or remove the compile settings "
            "to package without requests",
            at="key",
        )

    def compile_settings(self, value: Any) -> CompileSettings:
        if not isinstance(value, dict):
            return CompileSettings()
        vpc = value.get("vpc")
        vpc_config = None
        if isinstance(vpc, dict):
            groups, subnets = vpc.get("security_group_ids"), vpc.get("subnets")
            if isinstance(groups, list) and isinstance(subnets, list):
                vpc_config = VpcConfig(
                    security_group_ids=tuple(str(g) for g in groups),
                    subnets=tuple(str(s) for s in subnets),
                )
        tags = value.get("tags")
        max_runtime = value.get("max_runtime")
        return CompileSettings(
            role_arn=_str_or_none(value.get("role_arn")),
            s3_prefix=_str_or_none(value.get("s3_prefix")),
            region=_str_or_none(value.get("region")),
            max_runtime=max_runtime
            if isinstance(max_runtime, int) and _is_int(max_runtime)
            else DEFAULT_MAX_RUNTIME,
            kms_key_id=_str_or_none(value.get("kms_key_id")),
            vpc=vpc_config,
            tags=tuple(sorted((str(k), str(v)) for k, v in tags.items()))
            if isinstance(tags, dict)
            else (),
        )

    # ---- top level -------------------------------------------------------------------

    def top_level(self, top: _Doc) -> tuple[Path, Path | None, CacheSettings | None] | None:
        data = top.data
        build = data.get("build_dir", DEFAULT_BUILD_DIR)
        if not isinstance(build, str) or not build:
            return None
        flaw = _path_flaw(build, pattern=False)
        if flaw is not None:
            self.report(top, ("build_dir",), f"build_dir {_short(build)} {flaw}", hint=_FLAW_HINT)
            return None
        build_rel = self.repo_path(top, build)
        real = self.real(build_rel) if build_rel is not None else ""
        if build_rel is None or build_rel == "." or not self.resolves_inside(build_rel):
            self.report(
                top,
                ("build_dir",),
                f"build_dir {_short(build)} must be a directory inside the repository"
                + (" (a symlink leads outside it)" if build_rel not in (None, ".") else ""),
                hint="e.g. build_dir: build/neo",
            )
            return None
        git = self.real(".git")
        if real == git or real.startswith(git + os.sep) or real == self.real(STATE_DIR):
            self.report(
                top,
                ("build_dir",),
                f"build_dir {_short(build)} is inside {'.git' if real.startswith(git) else STATE_DIR}",
                hint="e.g. build_dir: build/neo",
            )
            return None
        templates: Path | None = None
        value = data.get("templates_dir")
        if isinstance(value, str) and value:
            flaw = _path_flaw(value, pattern=False)
            rel = self.repo_path(top, value) if flaw is None else None
            if rel is not None and not self.resolves_inside(rel):
                rel = None
            if rel is None:
                self.report(
                    top,
                    ("templates_dir",),
                    f"{_short(value)} {flaw or 'is outside the repository'}",
                    hint=_FLAW_HINT if flaw else None,
                )
            elif not self.exists(rel, "d"):
                self.report(top, ("templates_dir",), f"templates_dir {rel} is not a directory")
            else:
                templates = self.root / rel
        cache = data.get("cache")
        settings = None
        if isinstance(cache, dict) and isinstance(cache.get("url"), str):
            settings = CacheSettings(url=cache["url"], read_only=cache.get("read_only") is True)
        return self.root / build_rel, templates, settings


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

#: Problems of one kind listed before the rest are only counted, and the size past which
#: a list or mapping is checked entry by entry before cerberus sees it.
_SHOWN = 20
_BIG = 64


def _ok(rules: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` passes ``rules`` (one cerberus check of one value)."""
    import cerberus

    key = id(rules)
    validator = _VALIDATORS.get(f"item:{key}")
    if validator is None:
        validator = _VALIDATORS[f"item:{key}"] = cerberus.Validator({"v": rules})
    try:
        return bool(validator.validate({"v": value}, normalize=False))
    except TypeError:
        return False
    except cerberus.SchemaError:  # rules that are not an item's: do not cut on them
        return True


def _cut(bad: list[int], rules: Mapping[str, Any]) -> int | None:
    """Where to cut a container with bad entries at ``bad`` (None: keep it whole); a
    ``maxlength`` rule still sees one entry too many."""
    if len(bad) <= _SHOWN:
        return None
    return max(bad[_SHOWN] + 1, int(rules.get("maxlength", 0)) + 1)


_FLAW_HINT = "write a path relative to the manifest, inside the repository"
#: Limits of a path written in the manifest. The name and path lengths are Linux's
#: NAME_MAX and PATH_MAX; ``**`` in a glob costs a walk of the tree per occurrence.
_NAME_MAX = 255
_PATH_MAX = 4096
_MAX_DOUBLE_STARS = 4
_MAX_COMPONENTS = 64


def _path_flaw(value: str, *, pattern: bool) -> str | None:
    """Why ``value`` cannot be a path (or glob) neobuild may use; None when it can."""
    if "\0" in value:
        return "contains a NUL byte"
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return f"contains the control character U+{ord(bad):04X}"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return "is not valid Unicode text"
    if len(value.encode()) > _PATH_MAX:
        return f"is longer than {_PATH_MAX} bytes (the file system's limit)"
    parts = value.replace("\\", "/").split("/")
    if any(len(part.encode()) > _NAME_MAX for part in parts):
        return f"has a name longer than {_NAME_MAX} bytes (the file system's limit)"
    if len(parts) > _MAX_COMPONENTS:
        return f"has more than {_MAX_COMPONENTS} path components"
    stars = sum(part == "**" for part in parts) if pattern else 0
    if stars > _MAX_DOUBLE_STARS:
        return f"uses '**' {stars} times (at most {_MAX_DOUBLE_STARS}: one spans any depth)"
    return None


def _short(value: str, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


_REQUIRED_HINTS = {
    "version": "add `version: 1` at the top of the file",
    "models": "add `models:` with at least one model",
    "export": "add export: path/to/export.py:function",
    "framework": f"add framework: one of {', '.join(FRAMEWORKS)}",
    "targets": "add targets: [ml_c5] (or put targets in defaults)",
    "os": "add os: LINUX or ANDROID",
    "arch": f"add arch: one of {', '.join(neo.PLATFORM_ARCH)}",
    "url": "add url: s3://bucket/prefix",
    "security_group_ids": "add security_group_ids: [sg-…]",
    "subnets": "add subnets: [subnet-…]",
}

#: Names people type for an Arch/Os that is not in the enum.
_ALIASES = {
    "AARCH64": "did you mean 'ARM64'?",
    "AMD64": "did you mean 'X86_64'?",
    "X64": "did you mean 'X86_64'?",
    "ARMV7": "did you mean 'ARM_EABIHF'?",
    "INTEL": "did you mean 'INTEL_GRAPHICS'?",
    "WINDOWS": "Windows is reached through the devices x86_win32 / x86_win64",
}


def _dotted(path: PathKey) -> str:
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "dict": "a mapping",
    "list": "a list",
    "number": "a number",
}


def _as_list(types: Any) -> list[str]:
    if types is None:
        return []
    return [types] if isinstance(types, str) else list(types)


def _expected(types: Any) -> str:
    words = [_TYPE_WORDS.get(t, t) for t in _as_list(types)]
    return " or ".join(words) if words else "a value"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _leaf_errors(errors: Any, in_keys: bool = False) -> Iterator[tuple[Any, bool]]:
    """Flatten cerberus's error tree; ``in_keys`` marks errors about mapping keys."""
    for error in errors:
        if error.is_group_error:
            yield from _leaf_errors(error.child_errors, in_keys or error.rule == "keysrules")
        else:
            yield error, in_keys


def _string_keys(value: Any) -> Any:
    """``value`` with every mapping key turned into a string (``1:`` -> ``"1"``)."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _rules_at(root: Mapping[str, Any], schema_path: tuple[Any, ...]) -> Any:
    node: Any = root
    for step in schema_path:
        if isinstance(node, Mapping) and step in node:
            node = node[step]
        else:
            return {}
    return node


def _allowed_keys(root: Mapping[str, Any], schema_path: tuple[Any, ...]) -> list[str]:
    """The keys allowed next to an unknown one; its schema_path ends at the field name."""
    fields = _rules_at(root, schema_path[:-1]) if schema_path else root
    if isinstance(fields, Mapping) and "schema" in fields:
        fields = fields["schema"]
    return [str(k) for k in fields] if isinstance(fields, Mapping) else []


def _defaults_of(doc: _Doc) -> list[tuple[_Doc, PathKey]]:
    if isinstance(doc.data, dict) and isinstance(doc.data.get("defaults"), dict):
        return [(doc, ("defaults",))]
    return []


#: Model keys whose mapping is ordered (inputs are positional for PyTorch and Neo): a
#: model's own value replaces the defaults' whole, so its declared order is the order.
_ORDERED_KEYS = frozenset({"inputs"})


def _deep_merge(
    base: Mapping[str, Any], over: Mapping[str, Any], replace: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``over`` merged onto ``base``: mappings merge (except keys in ``replace``),
    everything else replaces."""
    result = dict(base)
    for key, value in over.items():
        old = result.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and key not in replace:
            result[key] = _deep_merge(old, value)
        else:
            result[key] = value
    return result


def _merge_options(model: Any, target: Any) -> Any:
    """The target's compiler options merged over the model's (mappings merge)."""
    if target is None or target == {}:
        return model if model != {} else None
    if isinstance(model, dict) and isinstance(target, dict):
        return {**model, **target}
    return target


def _target_sub(m: Mapping[str, Any], i: int, message: str) -> PathKey:
    """Point a target rule at the option it is about, when it is about one."""
    item = m["targets"][i] if isinstance(m.get("targets"), list) else None
    if isinstance(item, dict):
        about_options = any(w in message for w in ("compiler_options", "ANDROID_PLATFORM"))
        if about_options and "compiler_options" in item:
            return ("targets", i, "compiler_options")
        if "Neo does not support" in message and "platform" in item:
            return ("targets", i, "platform")
    return ("targets", i)


def _expand(root: Path, pattern: str) -> list[Path]:
    """Files matching a repo-relative glob, sorted (``**`` spans directories)."""
    if not glob.has_magic(pattern):
        candidate = root / pattern
        return [candidate] if os.path.isfile(candidate) else []
    found = glob.glob(pattern, root_dir=root, recursive=True)
    return sorted(root / f for f in found if os.path.isfile(root / f))


def _literal_prefix(rel: str) -> str:
    """The leading components of a glob without wildcards (``models/a`` of ``models/a/*.py``)."""
    literal: list[str] = []
    for part in rel.split("/"):
        if glob.has_magic(part):
            break
        literal.append(part)
    return "/".join(literal)


def _path_guess(root: Path, rel: str, written: str) -> str | None:
    """``did you mean '...'?`` for a glob whose literal part names a missing file or
    directory close to an existing one (one directory listing); None otherwise."""
    parts = rel.split("/")
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return None
        parent = root.joinpath(*parts[:i])
        if os.path.lexists(parent / part):
            continue
        try:
            with os.scandir(parent) as it:
                names = [e.name for e in it if not e.name.startswith(".") or part.startswith(".")]
        except OSError:
            return None
        guess = closest(part, names)
        if guess is None or guess == part:
            return None
        shown = written.split("/")
        if part in shown:
            shown[shown.index(part)] = guess
            return f"did you mean {'/'.join(shown)!r}?"
        return f"did you mean {'/'.join([*parts[:i], guess, *parts[i + 1 :]])!r}?"
    return None


# --------------------------------------------------------------------------------------
# The validated-manifest cache
# --------------------------------------------------------------------------------------


def _cache_store(
    path: Path, root: Path, data: bytes, manifest: Manifest, validator: _Validator
) -> None:
    record = {
        "root": str(root),
        "manifest": path.name,
        "include_patterns": validator.include_patterns,
        "includes": [
            [doc.path.relative_to(root).as_posix(), doc.digest] for doc in validator.docs[1:]
        ],
        "probes": validator.probes,
        "result": _encode_manifest(manifest, root),
    }
    CACHE_FILE.write(root, record, key=data)  # a read-only checkout only costs the cache


def _cache_lookup(path: Path, root: Path, data: bytes) -> Manifest | None:
    """The cached manifest when every input is unchanged; None otherwise (or if unreadable)."""
    try:
        record, _why = CACHE_FILE.read(root, key=data)
        if record is None or (record["root"], record["manifest"]) != (str(root), path.name):
            return None
        includes: list[str] = []
        for pattern in record["include_patterns"]:
            rel = posixpath.normpath(pattern)
            includes.extend(p.relative_to(root).as_posix() for p in _expand(root, rel) if p != path)
        if sorted(set(includes)) != sorted(rel for rel, _ in record["includes"]):
            return None
        for rel, digest in record["includes"]:
            if hashlib.sha256((root / rel).read_bytes()).hexdigest() != digest:
                return None
        real_root = os.path.realpath(root) + os.sep
        realpath = RealPaths()
        index: Any = None
        for probe, existed in record["probes"].items():
            kind, rel = probe.split(":", 1)
            target = os.path.join(root, rel)  # plain strings: a thousand stats stay cheap
            if kind == "i":
                now = realpath(target).startswith(real_root)
            elif kind == "s":  # an export file parsed for its function: unchanged since
                mtime, size, rel = rel.split(":", 2)
                stat = os.stat(os.path.join(root, rel))
                now = stat.st_mtime_ns == int(mtime) and stat.st_size == int(size)
            elif kind == "g":  # a sources glob that matched no file (rare: usually none)
                if index is None:
                    from neobuild.fingerprint import SourceIndex

                    index = SourceIndex(root)
                now = bool(index.match([rel]))
            else:
                now = os.path.isfile(target) if kind == "f" else os.path.isdir(target)
            if now != existed:
                return None
        return _decode_manifest(record["result"], path, root)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None  # missing, corrupt or foreign: validate from scratch


class RealPaths:
    """``os.path.realpath`` with each directory resolved once (one instance per pass).

    A thousand models' export files share a few directories; resolving each path from
    the root costs one ``lstat`` per component, this one ``lstat`` per file. Use a new
    instance for each pass over the files: directories are not re-checked.

    Example::

        realpath = RealPaths()
        inside = all(realpath(p).startswith(real_root) for p in paths)
    """

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        head, tail = os.path.split(path)
        if tail in ("", ".", "..") or not head or head == path:
            return os.path.realpath(path)
        joined = os.path.join(self._directory(head), tail)
        return os.path.realpath(joined) if os.path.islink(joined) else joined

    def _directory(self, path: str) -> str:
        """The real path of a directory, from the real path of its parent."""
        real = self._dirs.get(path)
        if real is None:
            real = self._dirs[path] = self(path)
        return real


def _encode_position(pos: Position | None, root: Path) -> list[Any] | None:
    if pos is None:
        return None
    return [pos.file.relative_to(root).as_posix(), pos.line, pos.col]


class _Files(dict[str, Path]):
    """Repo-relative name -> absolute Path, built once per file (positions share them)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, rel: str) -> Path:
        path = self[rel] = self.root / rel
        return path


def _decode_position(data: Any, files: _Files) -> Position | None:
    if data is None:
        return None
    return Position(files[data[0]], int(data[1]), int(data[2]))


def _encode_manifest(manifest: Manifest, root: Path) -> dict[str, Any]:
    models = []
    for m in manifest.models.values():
        data = m.to_json()
        data["position"] = _encode_position(m.position, root)
        for t_json, target in zip(data["targets"], m.targets, strict=True):
            t_json["position"] = _encode_position(target.position, root)
        models.append(data)
    return {
        "build_dir": manifest.build_dir.relative_to(root).as_posix(),
        "templates_dir": manifest.templates_dir.relative_to(root).as_posix()
        if manifest.templates_dir is not None
        else None,
        "cache": [manifest.cache.url, manifest.cache.read_only] if manifest.cache else None,
        "files": [f.relative_to(root).as_posix() for f in manifest.files],
        "models": models,
        "warnings": [
            {**p.as_json(), "file": p.file.relative_to(root).as_posix() if p.file else None}
            for p in manifest.warnings
        ],
    }


def _decode_manifest(data: Mapping[str, Any], path: Path, root: Path) -> Manifest:
    files = _Files(root)
    models = {}
    for m in data["models"]:
        model = _decode_model(m, files)
        models[model.name] = model
    cache = data["cache"]
    return Manifest(
        path=path,
        root=root,
        build_dir=root / data["build_dir"],
        models=models,
        files=tuple(root / f for f in data["files"]),
        cache=CacheSettings(url=cache[0], read_only=cache[1]) if cache else None,
        templates_dir=root / data["templates_dir"] if data["templates_dir"] else None,
        warnings=tuple(
            Problem(
                w["message"],
                path=w["path"],
                file=root / w["file"] if w["file"] else None,
                line=w["line"],
                col=w["col"],
                severity=w["severity"],
                hint=w["hint"],
            )
            for w in data["warnings"]
        ),
    )


def _decode_model(m: Mapping[str, Any], files: _Files) -> Model:
    inputs = m["inputs"]
    compile_ = m["compile"]
    vpc = compile_["vpc"]
    return Model(
        name=m["name"],
        framework=m["framework"],
        export=ExportRef(**m["export"]),
        inputs=Inputs(
            form=inputs["form"],
            items=tuple(
                InputSpec(name=i["name"], shape=tuple(i["shape"])) for i in inputs["items"]
            ),
        ),
        targets=tuple(
            Target(
                device=t["device"],
                platform=Platform(**t["platform"]) if t["platform"] else None,
                compiler_options=t["compiler_options"],
                position=_decode_position(t["position"], files),
            )
            for t in m["targets"]
        ),
        framework_version=m["framework_version"],
        sources=tuple(m["sources"]),
        requirements=tuple(m["requirements"]),
        requirements_file=m["requirements_file"],
        env=tuple((k, v) for k, v in m["env"]),
        timeout=m["timeout"],
        tags=tuple(m["tags"]),
        compiler_options=m["compiler_options"],
        compile=CompileSettings(
            role_arn=compile_["role_arn"],
            s3_prefix=compile_["s3_prefix"],
            region=compile_["region"],
            max_runtime=compile_["max_runtime"],
            kms_key_id=compile_["kms_key_id"],
            vpc=VpcConfig(tuple(vpc["security_group_ids"]), tuple(vpc["subnets"])) if vpc else None,
            tags=tuple((k, v) for k, v in compile_["tags"]),
        ),
        templates_dir=m["templates_dir"],
        smoke=m["smoke"],
        compile_check=m.get("compile_check", False),
        position=_decode_position(m["position"], files),
    )
