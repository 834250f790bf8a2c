"""The one place that starts subprocesses: :func:`run_process` and its process groups.

Every process runs in a new session (its own process group) so that a timeout, or a
Ctrl-C in neobuild, ends the whole tree it started, grandchildren included; its output
(stdout and stderr interleaved) is appended to a log file, capped (:data:`LOG_KEEP_BYTES`),
and, with ``stream=True``, copied to neobuild's stderr. The environment is an allowlist
(:func:`scrubbed_env`): a process sees no credentials unless its model's ``env:`` asks
for them.

Exports (:mod:`neobuild.export`), export environments (:mod:`neobuild.envs`), smoke tests
and compile checks all start their processes here; the fork server
(:mod:`neobuild.forkserver`) forks exports with the same group, log and timeout handling.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import signal as signal_mod
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "KILL_GRACE",
    "OutputPump",
    "ProcessResult",
    "expand_vars",
    "group_alive",
    "run_process",
    "scrubbed_env",
    "signal_group",
    "signal_name",
    "stop_all",
    "tracked",
]

#: Seconds between SIGTERM and SIGKILL when a process group is stopped.
KILL_GRACE = 5.0
#: Lines of output kept for error messages.
TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
#: A log keeps the first and the last this many bytes of a process's output, with a
#: line saying how much was cut between them (an export printing in a loop fills no disk).
LOG_KEEP_BYTES = 8 * 1024 * 1024

#: Variables passed through from neobuild's environment, by exact name.
ALLOWED_VARS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TMPDIR",
        "TEMP",
        "TMP",
        "LD_LIBRARY_PATH",
        "XDG_CACHE_HOME",
        # network: proxies and CA bundles (pip and downloads inside an export)
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        # threads and CPU features of the numeric libraries
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        # Windows needs these to start Python at all
        "SYSTEMROOT",
        "SYSTEMDRIVE",
        "COMSPEC",
        "PATHEXT",
        "WINDIR",
        "USERPROFILE",
        "APPDATA",
        "LOCALAPPDATA",
    }
)
#: Variables passed through by prefix.
ALLOWED_PREFIXES = ("LC_",)
#: Extra prefixes passed to pip when an export environment is created.
PIP_PREFIXES = ("PIP_",)

#: Set for every export (a model's ``env:`` may override them).
#: PYTHONHASHSEED fixes set/dict-of-str iteration order; PYTHONDONTWRITEBYTECODE keeps
#: ``__pycache__`` out of the repository (it would change source fingerprints);
#: PYTHONNOUSERSITE hides ~/.local packages; PYTHONUTF8 makes open() independent of the
#: locale; PYTHONUNBUFFERED keeps stdout and stderr in order in the log; TZ=UTC makes
#: any time the export formats the same everywhere; SOURCE_DATE_EPOCH (honoured by tools
#: that embed timestamps) is 1980-01-01, the earliest time a zip file can hold.
FIXED_VARS: Mapping[str, str] = {
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONUTF8": "1",
    "PYTHONUNBUFFERED": "1",
    "TZ": "UTC",
    "SOURCE_DATE_EPOCH": "315532800",
}

_VAR_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ProcessResult:
    """How a process ended. ``signal`` is set when a signal killed it."""

    returncode: int
    signal: int | None
    timed_out: bool
    duration: float
    tail: str  # the last lines of its output

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self, timeout: float | None = None) -> str:
        """``exit code 1``, ``killed by SIGKILL`` or ``timed out after 600 s``."""
        if self.timed_out:
            limit = f"{timeout:g} s" if timeout is not None else f"{self.duration:.0f} s"
            return f"timed out after {limit}"
        if self.signal is not None:
            return f"killed by {signal_name(self.signal)}"
        return f"exit code {self.returncode}"


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 64`` for a number without a name."""
    try:
        return signal_mod.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --------------------------------------------------------------------------- environment


def expand_vars(value: str, parent: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from ``parent``; ``$$`` is a literal ``$``.

    An unset variable expands to its default, or to the empty string.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = parent.get(name)
        if found is None or (found == "" and default is not None):
            return default or ""
        return found

    return _VAR_RE.sub(replace, value)


def scrubbed_env(
    model_env: Mapping[str, str] | None = None,
    *,
    parent: Mapping[str, str] | None = None,
    pip: bool = False,
) -> dict[str, str]:
    """The environment of an export: an allowlist of ``parent`` plus the model's ``env:``.

    Args:
        model_env: the model's ``env:``; values may use ``${VAR}`` / ``${VAR:-default}``
            from ``parent``. A value that is exactly ``${VAR}`` with VAR unset leaves the
            variable out (so ``AWS_PROFILE: ${AWS_PROFILE}`` is harmless where unset).
        parent: the environment to take values from (default: ``os.environ``).
        pip: for creating an export environment: also pass ``PIP_*`` and do not set
            ``SOURCE_DATE_EPOCH`` (wheel builds reject pre-1980 timestamps).

    Returns:
        A new dict; nothing else from ``parent`` (no ``AWS_*`` credentials, no
        ``PYTHONPATH``, no ``VIRTUAL_ENV``) is in it.
    """
    source = os.environ if parent is None else parent
    prefixes = ALLOWED_PREFIXES + (PIP_PREFIXES if pip else ())
    env = {k: v for k, v in source.items() if k in ALLOWED_VARS or k.startswith(prefixes)}
    env.update(FIXED_VARS)
    if pip:
        env.pop("SOURCE_DATE_EPOCH", None)
        if "SOURCE_DATE_EPOCH" in source:
            env["SOURCE_DATE_EPOCH"] = source["SOURCE_DATE_EPOCH"]
    for name, value in (model_env or {}).items():
        whole = _VAR_RE.fullmatch(value)
        if whole and whole.group(1) and whole.group(2) is None and whole.group(1) not in source:
            env.pop(name, None)
            continue
        env[name] = expand_vars(value, source)
    return env


# --------------------------------------------------------------------------- processes


class OutputPump(threading.Thread):
    """Copies a process's output to the log (and stderr) and keeps its tail."""

    def __init__(self, pipe: IO[bytes], log: IO[bytes] | None, stream_prefix: str | None) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.log = log
        self.stream_prefix = stream_prefix
        self.tail = bytearray()
        self.logged = 0  # bytes of the head written to the log
        self.held = bytearray()  # the newest output past the head, written at the end
        self.cut = 0  # bytes dropped between the head and ``held``
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if self.log is not None:
                self._log(chunk)
            self.tail += chunk
            if len(self.tail) > 2 * _TAIL_BYTES:
                del self.tail[:-_TAIL_BYTES]
            if self.stream_prefix is not None:
                self._stream(self._decoder.decode(chunk))
        if self.log is not None:
            self._log_end()
        if self.stream_prefix is not None:
            self._stream(self._decoder.decode(b"", final=True))
            if self._partial:
                self._write(f"{self.stream_prefix}{self._partial}\n")

    def _log(self, chunk: bytes) -> None:
        """Write the head of the output to the log; hold the newest bytes past it."""
        assert self.log is not None
        room = LOG_KEEP_BYTES - self.logged
        with contextlib.suppress(ValueError, OSError):  # closed after a pump.join timeout
            if room > 0:
                self.log.write(chunk[:room])
                self.log.flush()
                self.logged += min(room, len(chunk))
                chunk = chunk[room:]
        if chunk:
            self.held += chunk
            if len(self.held) > 2 * LOG_KEEP_BYTES:
                excess = len(self.held) - LOG_KEEP_BYTES
                self.cut += excess
                del self.held[:excess]

    def _log_end(self) -> None:
        """Write what was held, after a line saying how much was cut before it."""
        assert self.log is not None
        if len(self.held) > LOG_KEEP_BYTES:
            self.cut += len(self.held) - LOG_KEEP_BYTES
            del self.held[:-LOG_KEEP_BYTES]
        with contextlib.suppress(ValueError, OSError):
            if self.cut:
                self.log.write(
                    f"\n[neobuild: {self.cut} bytes of output cut here; the log keeps the "
                    f"first and the last {LOG_KEEP_BYTES // (1024 * 1024)} MiB]\n".encode()
                )
            self.log.write(bytes(self.held))
            self.log.flush()
        self.held.clear()

    def _stream(self, text: str) -> None:
        # Whole lines only, so parallel exports do not interleave inside a line.
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            self._write("".join(f"{self.stream_prefix}{line}\n" for line in lines))

    @staticmethod
    def _write(text: str) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.write(text)
            sys.stderr.flush()

    def tail_text(self, lines: int = TAIL_LINES) -> str:
        text = bytes(self.tail[-_TAIL_BYTES:]).decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL what is left."""
    pgid = proc.pid
    if signal_group(pgid, signal_mod.SIGTERM):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_alive(pgid):
                break
            time.sleep(0.05)
        signal_group(pgid, signal_mod.SIGKILL)
    proc.wait()


# Process groups started by run_process and still running: stop_all() ends them when
# the user interrupts a run (worker threads never see KeyboardInterrupt themselves).
_LIVE: set[int] = set()
_LIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def tracked(pgid: int) -> Iterator[None]:
    """Count process group ``pgid`` as live (so :func:`stop_all` ends it) for the block."""
    with _LIVE_LOCK:
        _LIVE.add(pgid)
    try:
        yield
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(pgid)


def stop_all(grace: float = 2.0) -> int:
    """SIGTERM every live process group started here, then SIGKILL after ``grace``.

    Returns:
        How many groups were signalled.
    """
    with _LIVE_LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        signal_group(pgid, signal_mod.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(g) for g in groups):
        time.sleep(0.05)
    for pgid in groups:
        if group_alive(pgid):
            signal_group(pgid, signal_mod.SIGKILL)
    return len(groups)


def run_process(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    log_path: Path | None,
    stream: bool = False,
    stream_prefix: str = "",
    grace: float = KILL_GRACE,
) -> ProcessResult:
    """Run ``argv`` in a new process group and wait for it; never raises on failure.

    Output (stdout and stderr, interleaved) is appended to ``log_path`` and, with
    ``stream``, copied to stderr line by line (each line prefixed by ``stream_prefix``).
    When ``timeout`` expires the whole group gets SIGTERM, then SIGKILL after ``grace``
    seconds. Processes the command leaves behind in its group are ended the same way
    when it exits. A ``KeyboardInterrupt`` stops the group, then propagates.

    Args:
        argv: the command, no shell.
        cwd: working directory.
        env: the complete environment (see :func:`scrubbed_env`).
        timeout: seconds, or None for no limit.
        log_path: file to append the output to (its directory is created).
        stream: copy the output to stderr too.
        stream_prefix: prefix of every streamed line (e.g. ``"[resnet] "``).
        grace: seconds between SIGTERM and SIGKILL.

    Returns:
        How the process ended, with the last lines of its output.

    Raises:
        OSError: the command could not be started (e.g. the executable is missing).
    """
    log: IO[bytes] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - closed in finally
    try:
        started = time.monotonic()
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with _LIVE_LOCK:
            _LIVE.add(proc.pid)
        assert proc.stdout is not None
        pump = OutputPump(proc.stdout, log, stream_prefix if stream else None)
        pump.start()
        timed_out = False
        try:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop_group(proc, grace)
            else:
                # The command is done; end whatever it left running in its group.
                if group_alive(proc.pid):
                    _stop_group(proc, grace)
        except BaseException:
            _stop_group(proc, min(grace, 2.0))
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc.pid)
            pump.join(timeout=10)
            proc.stdout.close()
        duration = time.monotonic() - started
        code = proc.returncode
        return ProcessResult(
            returncode=code,
            signal=-code if code < 0 else None,
            timed_out=timed_out,
            duration=duration,
            tail=pump.tail_text(),
        )
    finally:
        if log is not None:
            log.close()
