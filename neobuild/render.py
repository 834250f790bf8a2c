"""Jinja rendering of the inference scripts (NEO_REFERENCE §2.6).

Templates live in ``templates/`` at the top of a source checkout and ship inside the
wheel as ``neobuild/templates``. A user's ``templates_dir`` (per model, then manifest
top level) is searched first, so any template can be replaced by one of the same name.

Values reach the generated Python only through the ``pyrepr`` filter (a Python literal,
so a model or input name with quotes cannot inject code), ``tojson`` (strict JSON text)
or ``comment`` (one line of text, safe after ``#``). A bare string in ``{{ }}`` is an
error: the environment's ``finalize`` refuses it. Missing variables are errors too
(``StrictUndefined``), reported with the template name and line.

The CreateCompilationJob requests are *not* templates: they are data, built and checked
in ``request.py`` and dumped with ``json.dumps(sort_keys=True)``; the inputs inside them
are the ``DataInputConfig`` string, in declared order.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import os
import re
import stat
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

from neobuild import depends
from neobuild.errors import RenderError
from neobuild.model import Manifest, Model

__all__ = [
    "EDGE_TEMPLATE",
    "HOSTING_TEMPLATES",
    "INF1_TEMPLATE",
    "PyCode",
    "archive_extras",
    "builtin_templates_dir",
    "manifest_templates_hash",
    "model_context",
    "model_template_dirs",
    "outputs_for",
    "pyrepr",
    "render",
    "render_model",
    "template_source",
    "templates_hash",
    "templates_hash_for",
]

#: The hosting script template per framework (NEO_REFERENCE §2.6).
HOSTING_TEMPLATES: Mapping[str, str] = {
    "pytorch": "inference/pytorch.py.j2",
    "mxnet": "inference/mxnet.py.j2",
    "tensorflow": "inference/tensorflow.py.j2",
    "onnx": "inference/dlr.py.j2",
    "keras": "inference/dlr.py.j2",
    "xgboost": "inference/dlr.py.j2",
    "tflite": "inference/dlr.py.j2",
    "darknet": "inference/dlr.py.j2",
}
#: ml_inf1 hosting uses the DLR pre/post-processing hooks whatever the framework.
INF1_TEMPLATE = "inference/dlr.py.j2"
EDGE_TEMPLATE = "edge/run_dlr.py.j2"

#: Frameworks whose SageMaker containers read ``code/inference.py`` from model.tar.gz.
_ARCHIVE_CODE = frozenset({"pytorch", "mxnet"})
#: The layout Neo wants the declared shapes in (NEO_REFERENCE §2.3).
_LAYOUT = {"tensorflow": "NHWC", "tflite": "NHWC", "xgboost": "rows of features"}
_DTYPES = {"float": "float32", "float32": "float32", "int64": "int64", "long": "int64"}


class PyCode(str):
    """Text that is already safe to place in generated Python (the output of a filter)."""

    __slots__ = ()


def pyrepr(value: Any) -> PyCode:
    """A Python literal for a JSON-like value (str, int, float, bool, None, list, tuple, dict).

    Deterministic (dicts keep their order) and injection-safe: strings go through
    :func:`repr`, which always yields a valid, inert string literal.
    """
    return PyCode(_literal(value))


def _is_undefined(value: Any) -> bool:
    """True for a jinja ``Undefined`` (jinja2 is imported only when something renders)."""
    module = sys.modules.get("jinja2")
    return module is not None and isinstance(value, module.Undefined)


def _literal(value: Any) -> str:
    if _is_undefined(value):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"pyrepr: {value!r} has no Python literal")
        return repr(value)
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, tuple):
        items = [_literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"pyrepr: cannot write a {type(value).__name__} as a Python literal")


def _tojson(value: Any) -> PyCode:
    """Strict JSON, mappings in their own order: the context is built in a fixed order,
    and input names (in a mapping a template builds from ``model.inputs``) must stay in
    declared order."""
    if _is_undefined(value):
        str(value)
    return PyCode(json.dumps(value))


def _comment(value: Any) -> PyCode:
    """One line of printable text (no line breaks), for use after ``#``."""
    text = str(value)  # a StrictUndefined raises here
    return PyCode("".join(c if c.isprintable() else "?" for c in text))


def _finalize(value: Any) -> Any:
    if isinstance(value, PyCode | bool | int | float):
        return value
    if _is_undefined(value):
        return value  # StrictUndefined raises when printed
    raise ValueError(
        f"a bare {type(value).__name__} value ({str(value)[:40]!r}) was inserted into the "
        "script; pass it through |pyrepr, |tojson or |comment"
    )


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


def _search_path(templates_dir: Path | Sequence[Path] | None) -> tuple[Path, ...]:
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


@functools.lru_cache(maxsize=32)
def _environment(search_path: tuple[Path, ...]) -> jinja2.Environment:
    import jinja2  # here: `plan` hashes templates but never renders them

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["pyrepr"] = pyrepr
    env.filters["tojson"] = _tojson
    env.filters["comment"] = _comment
    return env


def _error_line(exc: BaseException, filename: str | None) -> int:
    """The template line an exception was raised at (jinja rewrites tracebacks to it)."""
    import jinja2

    line = getattr(exc, "lineno", None)
    if isinstance(exc, jinja2.TemplateSyntaxError) and line:
        return int(line)
    found = 0
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if filename is not None and frame.f_code.co_filename == filename:
            found = lineno
    return found


def render(
    name: str,
    context: Mapping[str, Any],
    *,
    templates_dir: Path | Sequence[Path] | None = None,
) -> str:
    """Render one template.

    Args:
        name: The template's path under a templates directory, e.g. ``inference/pytorch.py.j2``.
        context: The variables the template sees.
        templates_dir: User directories searched before the built-in templates.

    Returns:
        The rendered text.

    Raises:
        RenderError: the template is missing, has a syntax error, uses an undefined
            variable, inserts an unfiltered value, or fails otherwise; names the template
            file and line.
    """
    import jinja2

    env = _environment(_search_path(templates_dir))
    filename: str | None = None
    try:
        template = env.get_template(name)
        filename = template.filename
        return template.render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            f"template {name} not found",
            hint=f"looked in {', '.join(str(p) for p in _search_path(templates_dir))}",
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or name
        raise RenderError(
            f"{where}:{exc.lineno}: template syntax error: {exc.message}",
            hint="fix the template (Jinja syntax)",
        ) from exc
    except Exception as exc:
        line = _error_line(exc, filename)
        where = f"{filename or name}:{line}" if line else (filename or name)
        detail = str(exc) or type(exc).__name__
        hint = "fix the template or the variable it uses"
        if isinstance(exc, jinja2.UndefinedError):
            hint = f"the template uses a variable neobuild does not provide; variables: {', '.join(sorted(context))}"
        raise RenderError(f"{where}: cannot render template {name}: {detail}", hint=hint) from exc


def template_source(
    name: str, templates_dir: Path | Sequence[Path] | None = None
) -> tuple[str, Path]:
    """The source text of the template ``name`` that wins the search, and its file."""
    for directory in _search_path(templates_dir):
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
    search_path = _search_path(templates_dir)
    frozen = _closure(names, search_path)
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


def model_template_dirs(manifest: Manifest, model: Model) -> tuple[Path, ...]:
    """The user template directories for a model: its own, then the manifest's."""
    dirs: list[Path] = []
    if model.templates_dir is not None:
        dirs.append(manifest.root / model.templates_dir)
    if manifest.templates_dir is not None:
        top = manifest.templates_dir
        dirs.append(top if top.is_absolute() else manifest.root / top)
    return tuple(dirs)


def outputs_for(model: Model) -> dict[str, str]:
    """Output path (relative to ``<build_dir>/<model>/``) -> template name, for a model.

    Every model gets ``code/inference.py``; a model with ``ml_inf1`` among other cloud
    targets also gets ``code/inference_inf1.py`` (the DLR hooks), and a model with an
    edge target gets ``edge/run_dlr.py``.
    """
    cloud = [t for t in model.targets if t.is_cloud]
    inf1 = [t for t in cloud if t.device == "ml_inf1"]
    hosting = HOSTING_TEMPLATES[model.framework]
    outputs: dict[str, str] = {}
    if cloud and len(inf1) == len(cloud):
        outputs["code/inference.py"] = INF1_TEMPLATE
    else:
        outputs["code/inference.py"] = hosting
        if inf1 and hosting != INF1_TEMPLATE:
            outputs["code/inference_inf1.py"] = INF1_TEMPLATE
    if any(t.is_edge for t in model.targets):
        outputs["edge/run_dlr.py"] = EDGE_TEMPLATE
    return outputs


def _dtype(model: Model) -> str:
    options = model.compiler_options
    if isinstance(options, Mapping) and isinstance(options.get("dtype"), str):
        return _DTYPES.get(options["dtype"].lower(), "float32")
    return "float32"


def model_context(manifest: Manifest, model: Model) -> dict[str, Any]:
    """The variables every template sees (plain data; see docs/templates.md)."""
    return {
        "model": {
            "name": model.name,
            "framework": model.framework,
            "framework_version": model.framework_version,
            "input_form": model.inputs.form,
            "input_names": list(model.inputs.names),
            "input_shapes": [list(s) for s in model.inputs.shapes],
            "inputs": [
                {"name": n, "shape": list(s)}
                for n, s in zip(model.inputs.names, model.inputs.shapes, strict=True)
            ],
            "dtype": _dtype(model),
            "layout": _LAYOUT.get(model.framework, "NCHW"),
        },
        "targets": [t.key for t in model.targets],
        "cloud_targets": [t.key for t in model.targets if t.is_cloud],
        "edge_targets": [t.key for t in model.targets if t.is_edge],
    }


def templates_hash_for(manifest: Manifest, model: Model) -> str:
    """:func:`templates_hash` of the templates :func:`render_model` uses for ``model``."""
    return templates_hash(outputs_for(model).values(), model_template_dirs(manifest, model))


def manifest_templates_hash(manifest: Manifest) -> str:
    """One ``sha256:<hex>`` over every model's :func:`templates_hash_for` (sorted by model).

    Prefer :func:`templates_hash_for` in a model's fingerprint: with it, editing one
    model's override leaves the other models fresh.
    """
    digest = hashlib.sha256()
    for name in sorted(manifest.models):
        model_hash = templates_hash_for(manifest, manifest.models[name])
        digest.update(f"{name}\0{model_hash}\0".encode())
    return "sha256:" + digest.hexdigest()


def render_model(manifest: Manifest, model: Model) -> dict[str, bytes]:
    """Render every script of a model.

    Returns:
        Paths relative to ``<build_dir>/<model>/`` (``code/inference.py``,
        ``edge/run_dlr.py``, …) mapped to their UTF-8 content, in sorted order.

    Raises:
        RenderError: a template fails, or renders something that is not valid Python
            (names the template and the line of the generated file).
    """
    dirs = model_template_dirs(manifest, model)
    context = model_context(manifest, model)
    rendered: dict[str, bytes] = {}
    for path, name in sorted(outputs_for(model).items()):
        text = render(name, context, templates_dir=dirs)
        if path.endswith(".py"):
            try:
                compile(text, f"{model.name}/{path}", "exec")
            except SyntaxError as exc:
                _, origin = template_source(name, dirs)
                raise RenderError(
                    f"{origin}: rendered {path} for model {model.name} is not valid Python "
                    f"(line {exc.lineno}: {exc.msg})",
                    hint="fix the template",
                ) from exc
        rendered[path] = text.encode("utf-8")
    return rendered


def archive_extras(model: Model, rendered: Mapping[str, bytes]) -> dict[str, bytes]:
    """What goes into model.tar.gz under ``code/`` (PyTorch and MXNet containers read it).

    ``code/requirements.txt`` is not produced: the manifest has no key for hosting-time
    requirements yet.
    """
    if model.framework not in _ARCHIVE_CODE:
        return {}
    return {path: data for path, data in sorted(rendered.items()) if path == "code/inference.py"}
