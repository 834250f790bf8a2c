"""Read ``neo.lock``: a fast reader of the canonical text, ruamel for anything else.

A valid lock as :mod:`~neobuild.lockfile.emitter` wrote it is parsed by a small reader
of that exact format; other text goes through ruamel, and an invalid lock is parsed again
with the round-trip loader for line and column numbers. A valid lock's parse is kept in
``.neobuild/lockcache`` (a :mod:`~neobuild.statefile`), keyed by the lock's bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neobuild.errors import InvalidLockError, LockError, Problem
from neobuild.lockfile.emitter import HEADER, scalar
from neobuild.lockfile.entries import Lock, entry_from_data
from neobuild.lockfile.schema import (
    FIX_HINT,
    LOCK_NAME,
    LOCK_SCHEMA,
    LOCK_VERSION,
    conforms_mapping,
    flatten_errors,
    make_validator,
)
from neobuild.statefile import StateFile

# ruamel.yaml and cerberus are imported where they are used: reading a valid lock (what
# `plan` does) needs neither.

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_STRING = json.JSONDecoder()
NOT_CANONICAL = object()


_WORDS = {"null": None, "true": True, "false": False}


@functools.lru_cache(maxsize=16384)
def _canonical_scalar(token: str) -> Any:
    """The value of a scalar token if :func:`scalar` writes exactly that token for it."""
    value: Any
    if token.startswith('"'):
        try:
            value = json.loads(token)
        except ValueError:
            return NOT_CANONICAL
        if not isinstance(value, str):
            return NOT_CANONICAL
    elif token in _WORDS:
        value = _WORDS[token]
    elif _INT.fullmatch(token):
        value = int(token)
    else:
        value = token
    return value if scalar(value) == token else NOT_CANONICAL


def _split_line(line: str) -> tuple[int, str, str | None] | None:
    """``(indent, key token, value token or None)`` of a ``key: value`` / ``key:`` line."""
    stripped = line.lstrip(" ")
    if stripped.startswith('"'):  # a quoted key may itself contain ": "
        try:
            _, end = _JSON_STRING.raw_decode(stripped)
        except ValueError:
            return None
    else:  # a bare key has no space and does not end with ':'
        end = stripped.find(": ")
        if end < 0:
            end = len(stripped) - 1
    key_token, rest = stripped[:end], stripped[end:]
    if not key_token or not rest.startswith(":"):
        return None
    if rest == ":":
        return len(line) - len(stripped), key_token, None
    if not rest.startswith(": "):
        return None
    return len(line) - len(stripped), key_token, rest[2:]


def parse_canonical(text: str) -> Any:
    """Parse text exactly as :func:`dumps` writes it, fast; ``NOT_CANONICAL`` otherwise.

    Reading a 1,000-model lock with a YAML library takes seconds; this takes a tenth of one.
    It accepts a text only if :func:`dumps` would write exactly that text for the result:
    the header, two-space indentation, keys strictly increasing within each mapping, every
    scalar in its canonical spelling, ``{}`` for an empty mapping and only for one, a final
    newline. Anything else (hand-edited or reformatted YAML, comments, flow style) goes to
    the real YAML parser instead, so this never reads a text differently from it.
    """
    if not text.startswith(HEADER) or not text.endswith("\n"):
        return NOT_CANONICAL
    root: dict[str, Any] = {}
    stack: list[dict[str, Any]] = [root]  # the open mappings, one per depth
    last: list[str | None] = [None]  # the last key seen at each depth
    opened = False  # the previous line was "key:", whose mapping needs a first entry
    for line in text[len(HEADER) : -1].split("\n"):
        split = _split_line(line)
        if split is None:
            return NOT_CANONICAL
        indent, key_token, value_token = split
        depth, odd = divmod(indent, 2)
        if odd or depth >= len(stack) or (opened and depth != len(stack) - 1):
            return NOT_CANONICAL
        opened = False
        del stack[depth + 1 :], last[depth + 1 :]
        key = _canonical_scalar(key_token)
        previous = last[depth]
        if not isinstance(key, str) or (previous is not None and not previous < key):
            return NOT_CANONICAL
        last[depth] = key
        if value_token is None:
            child: dict[str, Any] = {}
            stack[depth][key] = child
            stack.append(child)
            last.append(None)
            opened = True
            continue
        value = {} if value_token == "{}" else _canonical_scalar(value_token)
        if value is NOT_CANONICAL:
            return NOT_CANONICAL
        stack[depth][key] = value
    if opened or list(root) != ["lock_version", "models"]:
        return NOT_CANONICAL
    if not isinstance(root["models"], dict):
        return NOT_CANONICAL
    return root


def _position(doc: Any, path: tuple[str, ...]) -> tuple[int, int]:
    """1-based (line, col) of the deepest node of ``path`` found in the round-trip document."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    line, col = 1, 1
    node = doc
    for key in path:
        if not isinstance(node, CommentedMap) or key not in node:
            break
        try:
            if isinstance(node[key], CommentedMap | CommentedSeq) and node[key]:
                k_line, k_col = node.lc.key(key)
            else:
                k_line, k_col = node.lc.value(key)
        except (KeyError, TypeError, AttributeError):  # pragma: no cover - ruamel internals
            break
        line, col = k_line + 1, k_col + 1
        node = node[key]
    return line, col


def _invalid(path: Path, problems: list[Problem]) -> InvalidLockError:
    text = "\n".join(p.render() for p in problems)
    return InvalidLockError(f"{path} is invalid:\n{text}", problems=problems, hint=FIX_HINT)


def _entry_hint(dotted: tuple[str, ...]) -> str:
    if len(dotted) >= 2 and dotted[0] == "models":
        return f"delete the entry for model {dotted[1]!r} and rerun `neobuild package`"
    return FIX_HINT


def _parse_positions(path: Path, text: str) -> Any:
    """Parse with the round-trip loader (slow, keeps positions), raising on bad YAML."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        message = f"not valid YAML: {exc.problem or exc.context or exc}"
        if "<<<<<<<" in text:
            message += " (it contains a git merge conflict)"
        raise _invalid(path, [Problem(message, file=path, line=line, col=col)]) from exc
    except YAMLError as exc:
        raise _invalid(path, [Problem(f"not valid YAML: {exc}", file=path)]) from exc


def loads(text: str, *, path: Path = Path(LOCK_NAME)) -> Lock:
    """Parse and validate the text of a lock file.

    The common case (a valid lock as :func:`dumps` wrote it) is parsed by a small reader of
    that exact format; any other text goes through ruamel, and an invalid lock is parsed
    again with the round-trip loader to find line and column numbers.

    Args:
        text: The YAML text.
        path: The file name used in messages.

    Raises:
        InvalidLockError: bad YAML, unknown ``lock_version`` or a schema violation; every
            problem carries ``FILE:LINE:COL``.
    """
    # A checkout with core.autocrlf has CRLF line ends; the content is the same.
    data = parse_canonical(text.replace("\r\n", "\n"))
    if data is not NOT_CANONICAL and conforms_mapping(data, LOCK_SCHEMA):
        return Lock(models={name: entry_from_data(e) for name, e in data["models"].items()})
    if data is NOT_CANONICAL:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            data = YAML(typ="safe").load(text)
        except YAMLError:
            data = _parse_positions(path, text)  # raises with the position
    if data is None:
        return Lock()
    if isinstance(data, dict) and data.get("lock_version") not in (None, LOCK_VERSION):
        doc = _parse_positions(path, text)
        line, col = _position(doc, ("lock_version",))
        raise InvalidLockError(
            f"{path}:{line}:{col}: lock_version {data.get('lock_version')!r} is not supported "
            f"(this neobuild reads lock_version {LOCK_VERSION})",
            problems=[
                Problem(
                    f"unsupported lock_version {data.get('lock_version')!r}",
                    path="lock_version",
                    file=path,
                    line=line,
                    col=col,
                )
            ],
            hint="upgrade neobuild, or delete neo.lock and rerun `neobuild package`",
        )
    validator = make_validator(LOCK_SCHEMA)  # a validator holds state: one per use (threads)
    if not isinstance(data, dict) or not validator.validate(data):
        doc = _parse_positions(path, text)
        if not isinstance(data, dict):
            problem = Problem(
                f"expected a mapping with lock_version and models, found {type(data).__name__}",
                file=path,
                line=1,
                col=1,
            )
            raise _invalid(path, [problem])
        problems = []
        for dotted, message in flatten_errors(validator.errors):
            line, col = _position(doc, dotted)
            problems.append(
                Problem(
                    message,
                    path=".".join(dotted),
                    file=path,
                    line=line,
                    col=col,
                    hint=_entry_hint(dotted),
                )
            )
        raise _invalid(path, problems)
    document = validator.document
    return Lock(models={str(name): entry_from_data(e) for name, e in document["models"].items()})


def read_lock(path: Path, *, use_cache: bool = True) -> Lock:
    """Read ``neo.lock``; a missing file is an empty lock.

    A valid lock's parsed content is cached in ``.neobuild/lockcache`` beside it (when
    that directory exists), keyed by the SHA-256 of the lock's bytes: reading an
    unchanged 1,000-model lock then costs one read, one hash and one ``marshal.loads``.

    Args:
        path: The lock file.
        use_cache: False parses the text even when the cache has it (and stores nothing).

    Raises:
        InvalidLockError: the file is not a valid lock (the message has ``FILE:LINE:COL``).
        LockError: the file cannot be read.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Lock()
    except OSError as exc:
        raise LockError(f"cannot read {path}: {exc}", hint=FIX_HINT) from exc
    key = hashlib.sha256(raw).digest()
    if use_cache:
        cached = _cached_parse(path, key)
        if cached is not None:
            return cached
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockError(f"cannot read {path}: {exc}", hint=FIX_HINT) from exc
    # Universal newlines, as Path.read_text would give.
    lock = loads(text.replace("\r\n", "\n").replace("\r", "\n"), path=path)
    if use_cache:
        remember_parse(path, key, lock.to_json()["models"])
    return lock


# --------------------------------------------------------------------------- parse cache

CACHE_NAME = "lockcache"
_CACHE = StateFile(CACHE_NAME, 1, "lock parse cache")


def _cached_parse(path: Path, key: bytes) -> Lock | None:
    """The cached parse of a lock whose bytes hash to ``key``; None if absent or unusable."""
    models, _why = _CACHE.read(path.parent, key=key)
    if models is None:
        return None
    try:
        return Lock(models={str(name): entry_from_data(e) for name, e in models.items()})
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # a payload of another shape: parse the lock itself


def remember_parse(path: Path, key: bytes, models: Mapping[str, Any]) -> None:
    """Remember the parse of a valid lock; only where ``.neobuild/`` already exists."""
    _CACHE.write(path.parent, dict(models), key=key, create=False)
