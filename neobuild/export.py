"""A model's export, run in a fresh process: ``python neobuild/_bootstrap.py SPEC.json``.

:func:`run_export` writes the spec (entrypoint, output directory, inputs in declared
order) into a temporary folder, runs the bootstrap by file path (so that a virtual
environment without neobuild can run it) on the build's fork server when there is one,
else through :func:`neobuild.runner.run_process`, with the scrubbed environment plus the
model's ``env:``, and turns how it ended into an :class:`~neobuild.errors.ExportError`
that says what to fix: a missing file or function, a wrong signature, a timeout, files
written into the working directory instead of the output directory. Temporary folders a
killed neobuild left behind are swept once per process. See ``docs/exports.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as signal_mod
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from neobuild import _bootstrap, forkserver
from neobuild.errors import ExportError
from neobuild.model import Model
from neobuild.outputs import MARKER
from neobuild.runner import ProcessResult, run_process, scrubbed_env

__all__ = [
    "BOOTSTRAP",
    "EXIT_CODES",
    "WORK_PREFIX",
    "ExportResult",
    "run_export",
    "sweep_stale_work",
]

#: The bootstrap script, run by path in the export's interpreter.
BOOTSTRAP = Path(__file__).resolve().with_name("_bootstrap.py")


@dataclass(frozen=True)
class ExportResult:
    """A successful export: what ran it and what it wrote."""

    duration: float
    framework_versions: dict[str, str]
    python: str
    log_path: Path
    files: tuple[str, ...] = ()  # sorted posix paths relative to the output dir
    checks: dict[str, Any] = field(default_factory=dict)  # checks the export process ran


def _log_line(log_path: Path, text: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write(text.rstrip("\n") + "\n")


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _list_files(directory: Path) -> tuple[str, ...]:
    files = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in filenames:
            files.append((Path(dirpath) / name).relative_to(directory).as_posix())
        for name in dirnames:
            if (Path(dirpath) / name).is_symlink():
                files.append((Path(dirpath) / name).relative_to(directory).as_posix())
    return tuple(sorted(files))


#: The exports' temporary folders: ``neobuild-export-<pid of neobuild>-<random>``.
WORK_PREFIX = "neobuild-export-"
#: A folder whose owner cannot be told (an older neobuild's) is stale after this long.
STALE_WORK_AGE = 24 * 3600.0
_SWEPT = threading.Event()


def sweep_stale_work(directory: Path | None = None, *, force: bool = False) -> list[str]:
    """Remove export work folders left by a neobuild that was killed; once per process.

    A folder is removed when the process that made it is gone, or, when its name holds
    no process id, when it was last changed more than a day ago: a concurrent run's
    folders are never touched.

    Returns:
        The names removed.
    """
    if _SWEPT.is_set() and not force:
        return []
    _SWEPT.set()
    base = directory or Path(tempfile.gettempdir())
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(base) if e.name.startswith(WORK_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        owner = entry.name[len(WORK_PREFIX) :].split("-", 1)[0]
        try:
            if (
                not entry.is_dir(follow_symlinks=False)
                or entry.stat(follow_symlinks=False).st_uid != os.getuid()
            ):
                continue
            if owner.isdigit():
                stale = int(owner) != os.getpid() and not _alive(int(owner))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_WORK_AGE
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def run_export(
    model: Model,
    *,
    root: Path,
    output_dir: Path,
    log_path: Path,
    python: Path,
    stream: bool = False,
) -> ExportResult:
    """Run the model's ``export(output_dir, inputs)`` in a fresh subprocess.

    The process runs ``python _bootstrap.py SPEC`` with cwd ``root``, the scrubbed
    environment plus the model's ``env:``, and the model's ``timeout``; its output is
    appended to ``log_path``.

    Args:
        model: the model to export.
        root: the repository root (working directory, first on ``sys.path``).
        output_dir: an empty directory (created when missing) the export writes into.
        log_path: the model's export log (appended to).
        python: the interpreter (``envs.export_python``).
        stream: also copy the output to stderr, each line prefixed by ``[model]``.

    Returns:
        The export's duration, the framework versions it imported, its Python version,
        the log path and the files it wrote.

    Raises:
        ExportError: the output dir is not empty; the entrypoint is missing, fails to
            import, raises, exits, is killed, times out or writes nothing. The message
            names the model, the entrypoint, how it ended, the log and the last lines.
    """
    root = root.resolve()
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise ExportError(
            f"export of model {model.name!r}: output directory {output_dir} is not empty",
            hint="the export must start from an empty directory; remove its contents",
        )
    ref = model.export
    sweep_stale_work()
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    try:
        spec_path = work / "spec.json"
        result_path = work / "result.json"
        spec = {
            "root": str(root),
            "path": ref.path,
            "module": ref.module,
            "function": ref.function,
            "output_dir": str(output_dir),
            "inputs": model.inputs.as_json(),
            "result": str(result_path),
            # where onnx is already imported, the export process checks the file itself
            "onnx_checker": model.framework == "onnx",
        }
        # No sort_keys: ``inputs`` must reach the export in declared order (PyTorch and
        # Neo take inputs positionally); the spec's own keys are written in a fixed order.
        spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        _log_line(log_path, f"neobuild: export {ref} with {python} (timeout {model.timeout} s)")
        started = time.time() - 1.0  # file systems with coarse mtimes
        try:
            proc = _start_export(model, python, spec_path, root, log_path, stream)
        except OSError as exc:
            raise ExportError(
                f"export of model {model.name!r}: cannot start {python}: {exc.strerror or exc}",
                hint="check the model's export environment (delete it from the cache to rebuild)",
            ) from exc
        result = _read_result(result_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    _log_line(log_path, f"neobuild: export {ref} ended: {proc.describe(model.timeout)}")
    if not proc.ok or result is None or result.get("status") != "ok":
        raise _export_error(model, proc, result, log_path, root)
    files = _list_files(output_dir)
    if not files:
        stray = _written_since(root, started, skip=output_dir)
        raise ExportError(
            f"export of model {model.name!r}: {ref} returned but wrote nothing to {output_dir}"
            + (
                f"\n  it wrote into the working directory instead: {', '.join(stray)}"
                if stray
                else ""
            )
            + f"\n  log: {log_path}"
            + (f"\n  last lines of output:\n{_indent(proc.tail)}" if proc.tail else ""),
            hint=f"the entrypoint must write the {model.framework} model files into the directory "
            "it gets as its first argument (not into the working directory)",
        )
    versions = result.get("framework_versions") or {}
    return ExportResult(
        duration=proc.duration,
        framework_versions={str(k): str(v) for k, v in sorted(versions.items())},
        python=str(result.get("python", "")),
        log_path=log_path,
        files=files,
        checks=dict(result.get("checks") or {}),
    )


def _written_since(root: Path, since: float, *, skip: Path, limit: int = 5) -> list[str]:
    """Files under ``root`` modified since ``since`` (an export's stray output), repo-relative.

    Hidden directories (``.git``, ``.neobuild``), neobuild's output directories and
    ``skip`` are not searched; the walk
    stops after 20,000 entries, so a huge checkout costs little.
    """
    found: list[str] = []
    seen = 0
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and Path(directory, d) != skip
            and not (Path(directory, d) / MARKER).exists()  # other models' outputs
        )
        for name in sorted(names):
            seen += 1
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                if path.stat().st_mtime >= since:
                    found.append(path.relative_to(root).as_posix())
            if len(found) >= limit or seen > 20_000:
                return found
    return found


class _RunOptions(TypedDict):
    """What a fork-server run and a plain subprocess run of one export share."""

    cwd: Path
    env: Mapping[str, str]
    timeout: float | None
    log_path: Path
    stream: bool
    stream_prefix: str


def _start_export(
    model: Model, python: Path, spec_path: Path, root: Path, log_path: Path, stream: bool
) -> ProcessResult:
    """Run the bootstrap on a fork server when a build has one (:mod:`neobuild.forkserver`),
    else in a fresh subprocess."""
    options = _RunOptions(
        cwd=root,
        env=_export_env(model, python),
        timeout=model.timeout,
        log_path=log_path,
        stream=stream,
        stream_prefix=f"[{model.name}] ",
    )
    forked = forkserver.run(python, spec_path, framework=model.framework, **options)
    if forked is not None:
        return forked
    return run_process([python, BOOTSTRAP, spec_path], **options)


def _export_env(model: Model, python: Path) -> dict[str, str]:
    """The scrubbed environment, with a venv's ``bin`` first on PATH as activation does."""
    env = scrubbed_env(model.env_dict)
    env["NEOBUILD_PARENT_PID"] = str(os.getpid())  # the bootstrap ends itself if we die
    bindir = Path(python).parent
    if (bindir.parent / "pyvenv.cfg").is_file() and "VIRTUAL_ENV" not in env:
        env["VIRTUAL_ENV"] = str(bindir.parent)
        env["PATH"] = os.pathsep.join(filter(None, [str(bindir), env.get("PATH", "")]))
    return env


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _export_error(
    model: Model,
    proc: ProcessResult,
    result: dict[str, Any] | None,
    log_path: Path,
    root: Path,
) -> ExportError:
    ref = model.export
    status = result.get("status") if result else None
    hint: str
    if proc.timed_out:
        what = f"{ref} {proc.describe(model.timeout)} and was killed"
        hint = (
            f"raise `timeout:` of model {model.name!r} in neo.yaml (now {model.timeout} s) "
            "or make the export faster"
        )
    elif result is not None and status not in (None, "ok"):
        what = f"{result.get('message', status)} ({proc.describe()})"
        if status == "file_missing":
            where = "module names are imported" if ref.module else "file paths are relative"
            hint = (
                f"fix `export:` of model {model.name!r} in neo.yaml; {where} "
                f"from the repository root {root}"
            )
        elif status == "bad_signature":
            hint = (
                f"give the function of model {model.name!r} the signature "
                f"`def {ref.function}(output_dir, inputs):` and write the model files into "
                "output_dir"
            )
        elif status == "function_missing":
            guess = result.get("suggestion")
            fix = f"use {guess!r}" if guess else "name a function the file defines"
            hint = f"fix the function in `export:` of model {model.name!r} in neo.yaml: {fix}"
        elif status == "import_failed":
            hint = (
                f"see the traceback in {log_path}; a missing package goes into the model's "
                "`requirements:`"
            )
        else:
            hint = f"see the traceback in {log_path}"
    elif proc.signal is not None:
        what = f"{ref} was {proc.describe()}"
        hint = f"see {log_path}"
        if proc.signal == signal_mod.SIGKILL:
            hint += "; SIGKILL often means the machine ran out of memory"
    else:
        what = f"{ref} failed ({proc.describe()})"
        hint = f"see {log_path}"
    message = f"export of model {model.name!r} failed: {what}\n  log: {log_path}"
    tail = proc.tail
    if result is not None and result.get("message"):
        # The bootstrap's own last line repeats the message: leave it out.
        lines = tail.splitlines()
        if lines and lines[-1].strip() == f"neobuild: {result['message']}":
            tail = "\n".join(lines[:-1])
    if tail.strip():
        message += f"\n  last lines of output:\n{_indent(tail)}"
    return ExportError(message, hint=hint)


# Keep the bootstrap's exit codes reachable for callers and tests.
EXIT_CODES = {
    "file_missing": _bootstrap.EXIT_FILE_MISSING,
    "import_failed": _bootstrap.EXIT_IMPORT_FAILED,
    "function_missing": _bootstrap.EXIT_FUNCTION_MISSING,
    "raised": _bootstrap.EXIT_EXPORT_RAISED,
    "exited": _bootstrap.EXIT_EXPORT_EXITED,
}
