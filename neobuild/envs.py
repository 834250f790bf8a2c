"""Per-model export environments: a virtual environment per distinct set of requirements.

A model with ``requirements:`` (an inline list, a file, or both) exports in a venv of its
own, kept in ``cache_dir()/envs/<key>``. The key hashes the requirements' content (the
file's bytes and those of the files it includes with ``-r``/``-c``), the interpreter that
creates the venv and the platform; two models with the same requirements share one.

Creation happens under a file lock (``envs/<key>.lock``), so two runs never build the
same env twice: the second waits and reuses. The venv is built in place and a marker
file is written last; an env without a valid marker, or whose python no longer starts,
is deleted and rebuilt. (Building in a sibling directory and renaming it would leave
console scripts whose ``#!`` line names the temporary directory; the lock plus the
marker give the same guarantee without that defect.) Reuse costs one ``python -c
"import sys"`` and no pip call.

Creating an env for torch or TensorFlow takes minutes, so its stages are reported as
events to whoever listens: see :mod:`neobuild.envprogress`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
import threading
from pathlib import Path

import filelock
import platformdirs

from neobuild import __version__
from neobuild.atomic import atomic_write_text
from neobuild.envprogress import PipWatcher, Reporter
from neobuild.errors import EnvironmentSetupError
from neobuild.model import Model
from neobuild.runner import ProcessResult, run_process, scrubbed_env

__all__ = ["cache_dir", "env_dir", "env_key", "export_python"]

MARKER = ".neobuild-env.json"
#: Seconds allowed for creating a venv and installing its requirements.
ENV_TIMEOUT = 1800.0
_KEY_FORMAT = 2  # 2: the interpreter's real path, not the path as typed
_INCLUDE_RE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")
_PIP_FAILURES = (
    (re.compile(r"No matching distribution found for (\S+)"), "{}"),
    (re.compile(r"Could not find a version that satisfies the requirement (\S+)"), "{}"),
    (re.compile(r"Invalid requirement: '?([^'\n]+)'?"), "{} (invalid requirement)"),
    (re.compile(r"Could not open requirements file: (.+)"), "requirements file ({})"),
    (re.compile(r"Failed to build installable wheels for .*?\((.+)\)"), "{} (failed to build)"),
    (re.compile(r"Could not build wheels for (\S+?),"), "{} (failed to build)"),
    (re.compile(r"Failed building wheel for (\S+)"), "{} (failed to build)"),
    (re.compile(r"Cannot install (.+?) because"), "{} (conflicting dependencies)"),
    (re.compile(r"ResolutionImpossible"), "the requirements (conflicting dependencies)"),
)
#: Env keys this process holds the lock of, and for which model (to name what a -j
#: worker waits on).
_creating: dict[str, str] = {}
_creating_lock = threading.Lock()


def _count_requirements(model: Model, req_file: Path | None) -> int:
    """The requirement lines (inline, the file and its ``-r`` includes; no options)."""
    count = len(model.requirements)
    pending = [req_file] if req_file is not None else []
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            stripped = line.split(" #")[0].strip()
            include = re.match(r"^(?:-r|--requirement)(?:\s+|=)(\S+)", stripped)
            if include and "://" not in include.group(1):
                pending.append((path.parent / include.group(1)).resolve())
            elif stripped and not stripped.startswith(("#", "-")):
                count += 1
    return count


def cache_dir() -> Path:
    """neobuild's cache: ``$NEOBUILD_CACHE_DIR``, or the platform's user cache dir."""
    configured = os.environ.get("NEOBUILD_CACHE_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(platformdirs.user_cache_dir("neobuild", appauthor=False))


def _requirement_files(first: Path) -> list[Path]:
    """``first`` and the files it includes with ``-r``/``-c``, recursively, in order."""
    found: list[Path] = []
    pending = [first]
    while pending:
        path = pending.pop(0)
        if path in found:
            continue
        found.append(path)
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue  # a missing include is pip's error to report, with its name
        for line in lines:
            match = _INCLUDE_RE.match(line)
            if match and "://" not in match.group(1):
                pending.append((path.parent / match.group(1)).resolve())
    return found


def _requirements_path(model: Model, root: Path) -> Path | None:
    if model.requirements_file is None:
        return None
    path = (root / model.requirements_file).resolve()
    if not path.is_file():
        raise EnvironmentSetupError(
            f"requirements file {model.requirements_file} of model {model.name!r} does not exist",
            hint=f"fix `requirements:` of model {model.name!r} in neo.yaml (paths are relative "
            f"to the repository root {root})",
        )
    return path


def env_key(model: Model, root: Path) -> str | None:
    """The cache key of the model's export environment, or None when it has none.

    Raises:
        EnvironmentSetupError: the model's requirements file does not exist.
    """
    if not model.has_own_env:
        return None
    root = root.resolve()
    files: list[list[str]] = []
    req_file = _requirements_path(model, root)
    if req_file is not None:
        for path in _requirement_files(req_file):
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = "missing"
            files.append([path.name, digest])
    material = {
        "format": _KEY_FORMAT,
        "requirements": list(model.requirements),
        "requirements_files": files,
        # The resolved interpreter: `python` and `python3` of one venv are one env (and a
        # venv made from any venv is made from its base interpreter anyway).
        "python": [os.path.realpath(sys.executable), sys.version],
        "implementation": sys.implementation.cache_tag,
        "platform": [sys.platform, platform.machine()],
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def env_dir(model: Model, root: Path) -> Path | None:
    """Where the model's export environment lives (it may not exist yet), or None."""
    key = env_key(model, root)
    return None if key is None else cache_dir() / "envs" / key


def _venv_python(directory: Path) -> Path:
    if os.name == "nt":
        return directory / "Scripts" / "python.exe"
    return directory / "bin" / "python"


def _is_usable(directory: Path, key: str) -> bool:
    """The marker says the env is complete and its python still starts."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("key") != key:
        return False
    python = _venv_python(directory)
    if not python.exists():
        return False
    try:
        result = run_process(
            [python, "-c", "import sys"],
            cwd=directory,
            env=scrubbed_env(),
            timeout=60,
            log_path=None,
        )
    except OSError:
        return False
    return result.ok


def _log(log_path: Path, text: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write(text.rstrip("\n") + "\n")


def export_python(
    model: Model, *, root: Path, log_path: Path | None = None, stream: bool = False
) -> Path:
    """The interpreter the model's export runs with, creating its venv when needed.

    Args:
        model: the model.
        root: the repository root (requirements files are relative to it; pip runs there).
        log_path: where pip's output goes (default: ``envs/<key>.log`` in the cache).
        stream: also copy pip's output to stderr.

    Returns:
        ``sys.executable`` for a model without requirements; otherwise the python of its
        venv, created once and reused.

    Raises:
        EnvironmentSetupError: the venv could not be created or a requirement could not
            be installed (the message names it and the log).
    """
    key = env_key(model, root)
    if key is None:
        return Path(sys.executable)
    root = root.resolve()
    envs = cache_dir() / "envs"
    directory = envs / key
    python = _venv_python(directory)
    if _is_usable(directory, key):
        return python
    envs.mkdir(parents=True, exist_ok=True)
    log_path = log_path if log_path is not None else envs / f"{key}.log"
    reporter = Reporter(model, key)
    lock_path = envs / f"{key}.lock"
    lock = filelock.FileLock(str(lock_path))
    try:
        # Taking the lock and noting who holds it is one step for this process's threads,
        # so a -j worker that finds it taken can name the model it waits for.
        holder: str | None = None
        with _creating_lock:
            try:
                lock.acquire(timeout=0)
                _creating[key] = model.name
                waited = False
            except filelock.Timeout:
                holder, waited = _creating.get(key), True
        if waited:
            _log(log_path, f"neobuild: waiting while another build creates {directory}")
            reporter.emit(
                "waiting",
                f"waiting for another neobuild process that is creating it (lock {lock_path})"
                if holder is None
                else f"waiting for model {holder!r}, which is creating the same environment",
            )
            lock.acquire(timeout=ENV_TIMEOUT + 60)
            with _creating_lock:
                _creating[key] = model.name
    except filelock.Timeout as exc:
        raise EnvironmentSetupError(
            f"export environment of model {model.name!r}: another process has been creating "
            f"{directory} for more than {ENV_TIMEOUT + 60:.0f} s",
            hint=f"if no other neobuild is running, delete {envs / (key + '.lock')}",
        ) from exc
    try:
        if _is_usable(directory, key):  # built by the process we waited for
            if waited:
                reporter.emit("ready", "ready (created while waiting)")
            return python
        try:
            _create(model, root, directory, log_path, stream, reporter)
        except BaseException:
            reporter.emit("failed", f"failed while {reporter.text}; log: {log_path}")
            raise
        reporter.emit("ready", f"ready: {directory}")
        return python
    finally:
        with _creating_lock:
            _creating.pop(key, None)
            lock.release()


def _create(
    model: Model,
    root: Path,
    directory: Path,
    log_path: Path,
    stream: bool,
    reporter: Reporter,
) -> None:
    """Build the venv in ``directory`` (under the lock); the marker is written last."""
    what = ", ".join([*model.requirements, *filter(None, [model.requirements_file])])
    _log(log_path, f"neobuild: creating export environment {directory} for {what}")
    if directory.exists() or directory.is_symlink():
        (directory / MARKER).unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
    env = scrubbed_env(model.env_dict, pip=True)
    try:
        reporter.emit("venv", "creating venv")
        venv = _run([sys.executable, "-m", "venv", directory], model, root, env, log_path, stream)
        if not venv.ok:
            raise EnvironmentSetupError(
                f"export environment of model {model.name!r}: python -m venv failed "
                f"({venv.describe(ENV_TIMEOUT)})\n  stage: creating venv\n  log: {log_path}",
                hint=f"see {log_path}; on Debian/Ubuntu install the python3-venv package",
            )
        args: list[str | os.PathLike[str]] = []
        if model.requirements:
            inline = directory / "neobuild-requirements.txt"
            inline.write_text("".join(f"{r}\n" for r in model.requirements), encoding="utf-8")
            args += ["-r", inline]
        req_file = _requirements_path(model, root)
        if req_file is not None:
            args += ["-r", req_file]
        count = _count_requirements(model, req_file)
        reporter.emit("install", f"installing {count} requirement{'s' * (count != 1)}")
        start = log_path.stat().st_size if log_path.exists() else 0
        watcher = PipWatcher(log_path, start, reporter) if reporter.listening() else None
        if watcher is not None:
            watcher.start()
        try:
            pip = _run(
                [
                    _venv_python(directory),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    *args,
                ],
                model,
                root,
                env,
                log_path,
                stream,
            )
        finally:
            if watcher is not None:
                watcher.stop.set()
                watcher.join()
        if not pip.ok:
            raise _pip_error(
                model, pip.describe(ENV_TIMEOUT), _read_from(log_path, start), log_path
            )
        reporter.emit("verify", "verifying")
        marker = {
            "key": directory.name,
            "neobuild": __version__,
            "python": sys.version.split()[0],
            "requirements": list(model.requirements),
            "requirements_file": model.requirements_file,
        }
        atomic_write_text(directory / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
        if not _is_usable(directory, directory.name):
            raise EnvironmentSetupError(
                f"export environment of model {model.name!r}: its python does not start "
                f"after pip install\n  stage: verifying\n  log: {log_path}",
                hint=f"run {_venv_python(directory)} -c 'import sys' to see why; "
                f"pip's output is in {log_path}",
            )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    _log(log_path, f"neobuild: export environment ready: {directory}")


def _run(
    argv: list[str | os.PathLike[str]],
    model: Model,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    stream: bool,
) -> ProcessResult:
    _log(log_path, "$ " + " ".join(os.fspath(a) for a in argv))
    try:
        return run_process(
            argv,
            cwd=cwd,
            env=env,
            timeout=ENV_TIMEOUT,
            log_path=log_path,
            stream=stream,
            stream_prefix=f"[{model.name}] ",
        )
    except OSError as exc:
        raise EnvironmentSetupError(
            f"cannot start {os.fspath(argv[0])}: {exc.strerror or exc}",
            hint="check the Python interpreter neobuild runs with",
        ) from exc


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _pip_error(model: Model, how: str, output: str, log_path: Path) -> EnvironmentSetupError:
    culprit = None
    for pattern, template in _PIP_FAILURES:
        match = pattern.search(output)
        if match:
            culprit = (
                template.format(*(g.strip() for g in match.groups()))
                if match.groups()
                else template
            )
            break
    tail = "\n".join(f"    {line}" for line in output.strip().splitlines()[-20:])
    subject = f"could not install {culprit}" if culprit else f"pip install failed ({how})"
    message = (
        f"export environment of model {model.name!r}: {subject}\n"
        f"  stage: installing requirements (pip install)\n  log: {log_path}"
    ) + (f"\n  last lines of output:\n{tail}" if tail else "")
    return EnvironmentSetupError(
        message,
        hint=f"check the name and version of the requirement in `requirements:` of model "
        f"{model.name!r} (and that it supports Python {sys.version.split()[0]} on "
        f"{sys.platform}-{platform.machine()}); pip's output is in {log_path}",
    )
