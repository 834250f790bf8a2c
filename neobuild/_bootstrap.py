"""Call a model's export entrypoint; run by file path in the export subprocess.

    python /path/to/neobuild/_bootstrap.py SPEC.json

This file uses only the standard library and imports nothing from neobuild, so it runs
in an isolated export environment where neobuild is not installed. It is started by
``neobuild.export.run_export`` and never imported by the neobuild process except for
the constants below.

The spec (JSON) names ``root`` (put first on ``sys.path``), the entrypoint (``path``,
a file relative to root, or ``module``, a dotted module name), ``function``,
``output_dir``, ``inputs`` (passed through as they are, in declared order: a dict
name -> shape, a list of shapes, or null; ``json.load`` keeps a JSON object's key order)
and ``result``, where a result JSON is written atomically on every
outcome::

    {"status": "ok", "framework_versions": {"numpy": "2.4.6"}, "python": "3.11.7", ...}

Each failure also prints one line on stderr (into the export log) and exits with its own
code, so run_export can tell them apart even without the result file.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import os
import pathlib
import platform
import sys
import tempfile
import traceback
from typing import Any

EXIT_OK = 0
EXIT_BAD_SPEC = 10
EXIT_FILE_MISSING = 11
EXIT_IMPORT_FAILED = 12
EXIT_FUNCTION_MISSING = 13
EXIT_EXPORT_RAISED = 14
EXIT_EXPORT_EXITED = 15
EXIT_ORPHANED = 16  # neobuild died; the export ended itself

#: The name a file entrypoint is imported under: stable, so that anything that records
#: a module name (pickle, TorchScript's ``__torch__.<module>.<Class>``) records the same
#: name on every machine and in every checkout.
MODULE_NAME = "_neobuild_export"

#: Modules whose ``__version__`` is recorded when the export imported them.
FRAMEWORK_MODULES = (
    "h5py",
    "jax",
    "keras",
    "lightgbm",
    "mxnet",
    "numpy",
    "onnx",
    "onnxruntime",
    "sklearn",
    "tensorflow",
    "tf_keras",
    "tflite",
    "tflite_runtime",
    "torch",
    "torchvision",
    "xgboost",
)


#: Framework modules a fork server imported in advance and the export has not imported
#: (yet): left out of the recorded versions, as a fresh process would not have them.
HIDDEN_MODULES: set[str] = set()


def _framework_versions() -> dict[str, str]:
    versions = {}
    for name in FRAMEWORK_MODULES:
        if name in HIDDEN_MODULES:
            continue
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if isinstance(version, str):
            versions[name] = version
    return versions


def _write_result(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file, fsync, os.replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".result.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fail(spec: dict[str, Any], code: int, status: str, message: str, **extra: Any) -> int:
    print(f"neobuild: {message}", file=sys.stderr, flush=True)
    result = {"status": status, "message": message, "exit_code": code, **extra}
    result["python"] = platform.python_version()
    result["framework_versions"] = _framework_versions()
    _write_result(spec["result"], result)
    return code


def _suggestion(word: str, choices: list[str]) -> str | None:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in choices}
        match = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1)]
    return match[0] if match else None


class _Failure(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _import_entrypoint(spec: dict[str, Any]) -> Any:
    """Import the entrypoint's module, or raise :class:`_Failure`."""
    where = spec.get("path")
    if where:
        file = os.path.join(spec["root"], where)
        if not os.path.isfile(file):
            raise _Failure(
                EXIT_FILE_MISSING, "file_missing", f"entrypoint file {where} does not exist"
            )
        sys.argv = [file]
        module_spec = importlib.util.spec_from_file_location(MODULE_NAME, file)
        if module_spec is None or module_spec.loader is None:
            raise _Failure(EXIT_IMPORT_FAILED, "import_failed", f"cannot import {where}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[MODULE_NAME] = module
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            _print_traceback(exc)
            sys.modules.pop(MODULE_NAME, None)
            raise _import_failed(where, exc) from exc
        return module
    name = spec["module"]
    sys.argv = [name]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise _Failure(
                EXIT_FILE_MISSING, "file_missing", f"entrypoint module {name} not found"
            ) from exc
        _print_traceback(exc)
        raise _import_failed(name, exc) from exc
    except (Exception, SystemExit) as exc:
        _print_traceback(exc)
        raise _import_failed(name, exc) from exc


def _import_failed(where: str, exc: BaseException) -> _Failure:
    return _Failure(
        EXIT_IMPORT_FAILED, "import_failed", f"importing {where} failed: {_describe(exc)}"
    )


def _print_traceback(exc: BaseException) -> None:
    """Print ``exc``'s traceback without the bootstrap's and importlib's own frames."""
    sys.stderr.write("".join(_format_traceback(exc, set())))
    sys.stderr.flush()


def _format_traceback(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += _format_traceback(exc.__cause__, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif (
        exc.__context__ is not None
        and not exc.__suppress_context__
        and id(exc.__context__) not in seen
    ):
        lines += _format_traceback(exc.__context__, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if os.path.abspath(frame.filename) != os.path.abspath(__file__)
        and not frame.filename.startswith("<frozen importlib")
        and os.path.abspath(frame.filename) != os.path.abspath(importlib.__file__ or "")
    ]
    lines.append("Traceback (most recent call last):\n")
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return lines


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def parent_gone(initial: int, expected: int) -> bool:
    """True when neobuild is gone: this process was reparented away from ``initial`` (even
    if neobuild is not reaped yet), or process ``expected`` no longer exists (it died before
    we looked, or a wrapper interpreter sits between us). The fork server asks it too."""
    if os.getppid() != initial:
        return True
    try:
        os.kill(expected, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _die_with_parent() -> None:
    """End this export's whole process group when neobuild dies (even by kill -9).

    The export runs in a session of its own (so a timeout can stop all of it), which
    also shields it from signals aimed at neobuild's group: without this watch, an
    export would outlive a killed neobuild and its timeout.
    """
    import signal
    import threading
    import time

    initial = os.getppid()
    try:
        expected = int(os.environ.pop("NEOBUILD_PARENT_PID"))
    except (KeyError, ValueError):
        expected = initial

    def watch() -> None:
        while True:
            if parent_gone(initial, expected):
                try:
                    os.killpg(os.getpgid(0), signal.SIGKILL)
                finally:
                    os._exit(EXIT_ORPHANED)
            time.sleep(0.5)

    threading.Thread(target=watch, name="neobuild-parent-watch", daemon=True).start()


def _signature_problem(func: Any) -> str | None:
    """Why ``func(output_dir, inputs)`` cannot be called, or None if it can (or is unknown)."""
    import inspect

    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin or C function: just call it
        return None
    try:
        signature.bind(None, None)
    except TypeError as exc:
        return f"takes {signature} ({exc})"
    return None


def main(argv: list[str]) -> int:
    _die_with_parent()
    if len(argv) != 2:
        print("usage: python _bootstrap.py SPEC.json", file=sys.stderr)
        return EXIT_BAD_SPEC
    with open(argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)

    # The script's own directory (neobuild/) must not shadow the user's modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, spec["root"])

    where = spec.get("path") or spec.get("module")
    function = spec["function"]
    try:
        module = _import_entrypoint(spec)
    except _Failure as failure:
        return _fail(spec, failure.code, failure.status, failure.message)

    func = getattr(module, function, None)
    if func is None or not callable(func):
        names = sorted(
            n for n, v in vars(module).items() if callable(v) and not isinstance(v, type)
        )
        if func is None:
            message = f"function {function!r} not found in {where}"
            guess = _suggestion(function, names)
            if guess is not None:
                message += f"; did you mean {guess!r}?"
        else:
            message = f"{function!r} in {where} is a {type(func).__name__}, not a function"
            guess = None
        return _fail(
            spec,
            EXIT_FUNCTION_MISSING,
            "function_missing",
            message,
            suggestion=guess,
            callables=names,
        )

    output_dir = pathlib.Path(spec["output_dir"])
    problem = _signature_problem(func)
    if problem is not None:
        return _fail(
            spec,
            EXIT_FUNCTION_MISSING,
            "bad_signature",
            f"{where}:{function} {problem}; neobuild calls it as {function}(output_dir, inputs): "
            "output_dir is the pathlib.Path to write the model files into, inputs the shapes "
            "declared in neo.yaml (a dict name -> shape, a list of shapes, or None)",
        )
    try:
        func(output_dir, spec.get("inputs"))
    except SystemExit as exc:
        code_text = "0" if exc.code is None else str(exc.code)
        _print_traceback(exc)
        return _fail(
            spec,
            EXIT_EXPORT_EXITED,
            "exited",
            f"{where}:{function} called sys.exit({code_text}) instead of returning",
        )
    except Exception as exc:
        _print_traceback(exc)
        return _fail(
            spec, EXIT_EXPORT_RAISED, "raised", f"{where}:{function} raised {_describe(exc)}"
        )
    sys.stdout.flush()
    sys.stderr.flush()
    checks: dict[str, Any] = {}
    if spec.get("onnx_checker") and "onnx" in sys.modules:
        checks["onnx.checker"] = _onnx_checker(output_dir)
    _write_result(
        spec["result"],
        {
            "status": "ok",
            "exit_code": EXIT_OK,
            "python": platform.python_version(),
            "framework_versions": _framework_versions(),
            "checks": checks,
        },
    )
    return EXIT_OK


def _onnx_checker(output_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
    """``onnx.checker`` on each top-level ``.onnx`` file, here where onnx is already loaded.

    Only when the export (or the fork server's prewarm) imported onnx: then the check costs
    milliseconds here instead of an ``import onnx`` (over a second) in neobuild's process.
    Each result carries the file's stat, so neobuild uses it only for the same file.
    """
    try:
        import onnx.checker
    except Exception:  # no usable checker here: neobuild runs its own
        return {}
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(output_dir.glob("*.onnx")):
        try:
            st = path.stat()
        except OSError:
            continue
        try:
            onnx.checker.check_model(str(path))
            error = ""
        except Exception as exc:  # ValidationError and friends: report any
            text = str(exc).strip()
            error = text.splitlines()[0] if text else type(exc).__name__
        found[path.name] = {
            "error": error,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
        }
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv))
