"""Jinja rendering of the inference scripts (NEO_REFERENCE §2.6).

This module owns the Jinja environment, its filters, and what a model renders: which
scripts, with which variables, and the hash of the templates they use. Finding the
template files (a user's ``templates_dir`` first, then the shipped ones) and hashing
them is :mod:`neobuild.templatehash`.

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

import functools
import hashlib
import json
import math
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

from neobuild import templatehash
from neobuild.errors import RenderError
from neobuild.model import Manifest, Model

__all__ = [
    "EDGE_TEMPLATE",
    "HOSTING_TEMPLATES",
    "INF1_TEMPLATE",
    "PyCode",
    "archive_extras",
    "manifest_templates_hash",
    "model_context",
    "model_template_dirs",
    "outputs_for",
    "pyrepr",
    "render",
    "render_model",
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

    env = _environment(templatehash.search_path(templates_dir))
    filename: str | None = None
    try:
        template = env.get_template(name)
        filename = template.filename
        return template.render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            f"template {name} not found",
            hint=f"looked in {', '.join(str(p) for p in templatehash.search_path(templates_dir))}",
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
    """:func:`templatehash.templates_hash` of the templates :func:`render_model` uses for ``model``."""
    return templatehash.templates_hash(
        outputs_for(model).values(), model_template_dirs(manifest, model)
    )


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
                _, origin = templatehash.template_source(name, dirs)
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
