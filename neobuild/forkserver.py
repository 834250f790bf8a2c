"""Fork servers: one pre-warmed process per export environment, forked once per export.

A fresh ``python _bootstrap.py SPEC`` per export pays the interpreter's start and the
framework's import (torch, TensorFlow: seconds) every time. During a build
(:func:`session`), the first export of an environment starts ``_forkserver.py`` in it,
which imports the model's framework once; every export of that environment is then a
``fork()`` of it. An environment is the interpreter plus the export's complete scrubbed
environment, so two models share a server only when a fresh process would see the same
start-up state.

Each forked export keeps the guarantees of :func:`neobuild.runner.run_process`: its own
session and process group (a timeout or Ctrl-C ends the whole group), the scrubbed
environment, the repository root as working directory and a fresh temporary directory
for its spec, the bootstrap's parent-death watch, and its output captured to its own
log through its own pipe. The recorded framework versions are those the export imports
itself, not what the server imported in advance.

The plain subprocess path stays the fallback: with ``--no-fork-server``, off Linux
(``fork()`` is unsafe with macOS's system frameworks and absent on Windows), and for an
environment whose server could not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess  # noqa: TID251 - the server is a long-lived process, not a command
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from neobuild import runner
from neobuild.errors import ExportError

__all__ = ["SERVER", "available", "run", "session"]

#: The server script, run by path in the export's interpreter.
SERVER = Path(__file__).resolve().with_name("_forkserver.py")

#: Seconds a server may take to import its framework before it counts as broken.
START_TIMEOUT = 300.0

#: Modules a server imports in advance, per framework. TensorFlow is left out: its
#: runtime starts threads at import time, and forking a threaded process is unsafe.
PREWARM: Mapping[str, tuple[str, ...]] = {
    "pytorch": ("torch",),
    "onnx": ("onnx",),
    "xgboost": ("xgboost",),
}


def available() -> bool:
    """True where exports may be forked: Linux, with ``os.fork`` and Unix sockets."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and hasattr(socket, "AF_UNIX")
        and hasattr(socket, "send_fds")
    )


class _Server:
    """One running ``_forkserver.py``: its process and its socket."""

    def __init__(self, python: Path, env: Mapping[str, str], prewarm: Sequence[str]) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="neobuild-fork-"))
        self.socket_path = self.directory / "s"
        self.log = open(self.directory / "server.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                os.fspath(python),
                os.fspath(SERVER),
                os.fspath(self.socket_path),
                json.dumps(list(prewarm)),
            ],
            cwd=self.directory,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        ready = _read_line(self.proc.stdout, START_TIMEOUT)
        if ready != b"ready\n":
            self.close()
            raise OSError(f"fork server did not start ({ready!r})")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a pipe, or b"" after ``timeout`` seconds."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


class _Pool:
    """The servers of one build, by environment; started on first use."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, ...], _Server | None] = {}
        self._lock = threading.Lock()
        self._starting: dict[tuple[str, ...], threading.Lock] = {}

    def server(
        self, python: Path, env: Mapping[str, str], prewarm: Sequence[str]
    ) -> _Server | None:
        key = (os.fspath(python), json.dumps(sorted(env.items())), *prewarm)
        with self._lock:
            gate = self._starting.setdefault(key, threading.Lock())
        with gate:  # one start per environment, even with parallel exports
            if key not in self._servers:
                try:
                    self._servers[key] = _Server(python, env, prewarm)
                except OSError:
                    self._servers[key] = None  # this environment uses plain subprocesses
            return self._servers[key]

    def close(self) -> None:
        with self._lock:
            servers = [s for s in self._servers.values() if s is not None]
            self._servers.clear()
        for server in servers:
            server.close()


_ACTIVE: _Pool | None = None
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def session(enabled: bool = True) -> Iterator[None]:
    """Fork exports from pre-warmed servers inside this block (when ``enabled`` and
    :func:`available`; otherwise every export in it is a plain subprocess). The servers
    end with the block."""
    global _ACTIVE
    pool = _Pool() if enabled and available() else None
    with _ACTIVE_LOCK:
        previous, _ACTIVE = _ACTIVE, pool
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE = previous
        if pool is not None:
            pool.close()


def run(
    python: Path,
    spec_path: Path,
    *,
    framework: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    log_path: Path,
    stream: bool = False,
    stream_prefix: str = "",
    grace: float = runner.KILL_GRACE,
) -> runner.ProcessResult | None:
    """Run one export spec on the environment's fork server.

    Returns:
        How the export ended, as :func:`neobuild.runner.run_process` reports it; None
        when no fork server is in use (outside :func:`session`, or its server could not
        start): the caller runs a plain subprocess instead.

    Raises:
        ExportError: the server died during the export.
    """
    pool = _ACTIVE
    if pool is None:
        return None
    server = pool.server(python, env, PREWARM.get(framework, ()))
    if server is None:
        return None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    log = open(log_path, "ab")  # noqa: SIM115 - closed in finally
    try:
        request = json.dumps(
            {"spec": os.fspath(spec_path), "cwd": os.fspath(cwd), "env": dict(env)}
        )
        started = time.monotonic()
        try:
            conn.connect(os.fspath(server.socket_path))
            socket.send_fds(conn, [request.encode()], [write_fd])
        except OSError:
            return None  # the server is gone: this export runs as a plain subprocess
        finally:
            os.close(write_fd)
        pump = runner.OutputPump(os.fdopen(read_fd, "rb"), log, stream_prefix if stream else None)
        pump.start()
        try:
            pid = _expect(conn, "pid", None)
            if pid is None:
                raise ExportError(
                    "the fork server of this export environment ended before the export started",
                    hint="run again with --no-fork-server, and report it",
                )
            with runner.tracked(pid):
                status, timed_out = _wait(conn, pid, timeout, grace)
        finally:
            pump.join(timeout=10)
            pump.pipe.close()
        code = os.waitstatus_to_exitcode(status) if status is not None else -signal.SIGKILL
        return runner.ProcessResult(
            returncode=code,
            signal=-code if code < 0 else None,
            timed_out=timed_out,
            duration=time.monotonic() - started,
            tail=pump.tail_text(),
        )
    finally:
        conn.close()
        log.close()


def _expect(conn: socket.socket, word: str, timeout: float | None) -> int | None:
    """The number of the server's next ``WORD N`` message; None when it closed the socket.

    Raises:
        TimeoutError: nothing came within ``timeout`` seconds.
    """
    conn.settimeout(timeout)
    data = conn.recv(256)
    if not data:
        return None
    got, _, number = data.decode().partition(" ")
    if got != word:
        raise ExportError(f"fork server protocol: expected {word!r}, got {data!r}")
    return int(number)


def _wait(
    conn: socket.socket, pid: int, timeout: float | None, grace: float
) -> tuple[int | None, bool]:
    """Wait for the export's exit; stop its group on timeout, Ctrl-C or leftovers.

    Returns:
        The raw wait status (None if the server died first) and whether it timed out.
    """
    timed_out = False
    try:
        try:
            status = _expect(conn, "exit", timeout)
        except TimeoutError:
            timed_out = True
            status = _stop(conn, pid, grace)
    except BaseException:
        _stop(conn, pid, min(grace, 2.0))
        raise
    if runner.group_alive(pid):  # the export is done; end what it left in its group
        deadline = time.monotonic() + grace
        runner.signal_group(pid, signal.SIGTERM)
        while runner.group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        runner.signal_group(pid, signal.SIGKILL)
    return status, timed_out


def _stop(conn: socket.socket, pid: int, grace: float) -> int | None:
    """SIGTERM the export's group, SIGKILL after ``grace``; its wait status."""
    runner.signal_group(pid, signal.SIGTERM)
    try:
        return _expect(conn, "exit", grace)
    except TimeoutError:
        runner.signal_group(pid, signal.SIGKILL)
        return _expect(conn, "exit", 30.0)
