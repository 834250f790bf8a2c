"""The template files: where they are, which one wins, and the hash of what a render loads.

Templates live in ``templates/`` at the top of a source checkout and ship inside the
wheel as ``neobuild/templates``. A user's ``templates_dir`` (per model, then manifest
top level) is searched first, so any template can be replaced by one of the same name.

:func:`templates_hash` follows a template's ``include``/``extends``/``import`` tags with
a lexical scan, so ``plan`` hashes templates without importing jinja2. The files it
looks at are recorded for the plan memo (``depends.note_*``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from neobuild import depends
from neobuild.errors import RenderError

__all__ = [
    "builtin_templates_dir",
    "search_path",
    "template_source",
    "templates_hash",
]


@functools.cache
def builtin_templates_dir() -> Path:
    """The shipped templates: ``neobuild/templates`` in a wheel, ``<repo>/templates`` in a checkout.

    Looked up once per process (``plan`` asks once per model).
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise RenderError(
        f"neobuild's templates are missing (looked in {package / 'templates'} and "
        f"{package.parent / 'templates'})",
        hint="reinstall neobuild",
    )


def search_path(templates_dir: Path | Sequence[Path] | None) -> tuple[Path, ...]:
    """The directories searched for templates: the user's ``templates_dir``, then the shipped ones."""
    if templates_dir is None:
        user: tuple[Path, ...] = ()
    elif isinstance(templates_dir, Path):
        user = (templates_dir,)
    else:
        user = tuple(templates_dir)
    for directory in user:
        if not directory.is_dir():
            raise RenderError(
                f"templates_dir {directory} does not exist or is not a directory",
                hint="fix templates_dir in neo.yaml (a path relative to the repository root)",
            )
    return (*user, builtin_templates_dir())


def template_source(
    name: str, templates_dir: Path | Sequence[Path] | None = None
) -> tuple[str, Path]:
    """The source text of the template ``name`` that wins the search, and its file."""
    for directory in search_path(templates_dir):
        path = directory / name
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            return _read(path, info.st_mtime_ns, info.st_size), path
    raise RenderError(f"template {name} not found", hint="check templates_dir in neo.yaml")


@functools.lru_cache(maxsize=256)
def _read(path: Path, mtime_ns: int, size: int) -> str:
    """A template's text, cached by (path, mtime, size): plan hashes many models."""
    del mtime_ns, size
    return path.read_text(encoding="utf-8")


def _winner(name: str, search_path: Sequence[Path]) -> tuple[str, int, int, int] | None:
    """``(file, mtime_ns, size, inode)`` of the template ``name`` that wins the search."""
    for directory in search_path:
        path = os.path.join(directory, name)
        try:
            info = os.stat(path)
        except OSError:
            if depends.active():
                depends.note_absent(os.path.abspath(path))
            continue
        if depends.active():
            depends.note_file(os.path.abspath(path), info)
        if stat.S_ISREG(info.st_mode):
            return path, info.st_mtime_ns, info.st_size, info.st_ino
    return None


#: A tag that loads another template (Jinja's default ``{% %}`` delimiters).
_LOAD_TAG = re.compile(r"\{%[-+]?\s*(include|extends|import|from)\b(.*?)[-+]?%\}", re.DOTALL)
_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_INCLUDE_TAIL = re.compile(r"(\s+(ignore\s+missing|with\s+context|without\s+context))+\s*$")
_CUT = {"import": re.compile(r"\bas\b"), "from": re.compile(r"\bimport\b")}
_LITERAL_PUNCTUATION = re.compile(r"[\s\[\](),]+")


def _tag_references(keyword: str, body: str) -> list[str] | None:
    """The template names one load tag names, or None when it computes a name."""
    masked = _STRING.sub(lambda m: '"' + "x" * (len(m.group()) - 2) + '"', body)
    end = len(body)
    cut = _CUT.get(keyword)
    if cut is not None:
        found = cut.search(masked)
        end = found.start() if found else end
    elif keyword == "include":
        tail = _INCLUDE_TAIL.search(masked)
        end = tail.start() if tail else end
    expression = body[:end]
    if _LITERAL_PUNCTUATION.sub("", _STRING.sub("", masked[:end])):
        return None  # a variable, a concatenation, a condition...
    names: list[str] = []
    for literal in _STRING.findall(expression):
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            return None
        if not isinstance(value, str):
            return None
        names.append(value)
    return names or None


@functools.lru_cache(maxsize=256)
def _references(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, ...], bool]:
    """``(names, computed)``: the templates a template loads by literal name, and whether
    it also loads one by a computed name (then any template could be loaded).

    A lexical scan, so ``plan`` needs no jinja2. It may find a tag inside a comment or a
    ``raw`` block; that only hashes one template more.
    """
    try:
        source = _read(Path(path), mtime_ns, size)
    except UnicodeDecodeError:
        return (), False  # not a template Jinja could load
    names: list[str] = []
    computed = False
    for match in _LOAD_TAG.finditer(source):
        found = _tag_references(match.group(1), match.group(2))
        if found is None:
            computed = True
        else:
            names.extend(found)
    return tuple(dict.fromkeys(names)), computed


def _every_template(search_path: Sequence[Path]) -> set[str]:
    """Every file under the search path, as template names (posix, relative)."""
    names: set[str] = set()
    for directory in search_path:
        for parent, dirs, files in os.walk(directory):
            if depends.active():
                depends.note_dir(os.path.abspath(parent))
            dirs.sort()
            rel = Path(parent).relative_to(directory)
            names.update((rel / f).as_posix() for f in files)
    return names


#: One template in a hash: name, then the winning file's path, mtime_ns, size and inode
#: (path "" when no file has that name).
_Entry = tuple[str, str, int, int, int]

#: templates_hash results, keyed by every loadable template's name and winning file's stat.
_HASHES: dict[tuple[_Entry, ...], str] = {}


def _closure(names: Iterable[str], search_path: Sequence[Path]) -> tuple[_Entry, ...]:
    """The templates ``names`` need: themselves and whatever they include, extend or
    import, transitively, each resolved through the search path like the Jinja loader.

    A computed reference (``{% include name_var %}``) brings in every template under the
    search path.
    """
    required = set(names)
    pending = sorted(required)
    entries: dict[str, _Entry] = {}
    everything = False
    while pending:
        name = pending.pop()
        if name in entries:
            continue
        # Jinja's loader refuses absolute names and ".." (split_template_path).
        jinja_name = not name.startswith("/") and ".." not in name.split("/")
        found = _winner(name, search_path) if jinja_name else None
        if found is None:
            if name in required:
                raise RenderError(
                    f"template {name} not found", hint="check templates_dir in neo.yaml"
                )
            entries[name] = (name, "", 0, 0, 0)  # absent now; creating it changes the hash
            continue
        entries[name] = (name, *found)
        loads, computed = _references(found[0], found[1], found[2])
        pending.extend(n for n in loads if n not in entries)
        if computed and not everything:
            everything = True
            pending.extend(n for n in sorted(_every_template(search_path)) if n not in entries)
    return tuple(entries[name] for name in sorted(entries))


def templates_hash(names: Iterable[str], templates_dir: Path | Sequence[Path] | None = None) -> str:
    """``sha256:<hex>`` of the templates a render of ``names`` can load.

    That is the named templates and every template they include, extend or import,
    transitively (name and winning source, sorted); a name that is referenced but
    missing counts too, so creating it changes the hash. A computed template name
    makes every template under the search path count. A user override changes the
    hash, so the lock and fingerprint notice it; an override of a template nothing
    loads does not. Within a process the hash is reused while every file keeps its
    stat (``plan`` asks for the same few templates once per model).
    """
    frozen = _closure(names, search_path(templates_dir))
    cached = _HASHES.get(frozen)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for name, path, mtime_ns, size, _ in frozen:
        if not path:
            digest.update(name.encode() + b"\0\xff\0")  # never valid UTF-8: no source matches
            continue
        digest.update(name.encode() + b"\0" + _source_bytes(path, mtime_ns, size) + b"\0")
    result = "sha256:" + digest.hexdigest()
    if len(_HASHES) > 1024:
        _HASHES.clear()
    _HASHES[frozen] = result
    return result


def _source_bytes(path: str, mtime_ns: int, size: int) -> bytes:
    """A template's text as UTF-8 (its raw bytes when it is not text)."""
    try:
        return _read(Path(path), mtime_ns, size).encode("utf-8")
    except UnicodeDecodeError:
        return Path(path).read_bytes()
