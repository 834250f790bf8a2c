"""A pre-warmed export process that forks once per export; run by file path.

    python /path/to/neobuild/_forkserver.py SOCKET PREWARM_JSON

Like ``_bootstrap.py`` this file uses only the standard library, so it runs in an export
environment where neobuild is not installed. It is started by
:mod:`neobuild.forkserver` with the exact environment its exports get, imports the
modules named in PREWARM_JSON (e.g. ``["torch"]``), listens on the Unix socket SOCKET
(``SOCK_SEQPACKET``) and prints ``ready`` on stdout.

Each connection is one export. neobuild sends one JSON message
``{"spec": PATH, "cwd": DIR, "env": {...}}`` with the write end of the export's output
pipe attached (``SCM_RIGHTS``). The server forks; the child starts its own session
(so a timeout can end its whole process group), points stdin at /dev/null and stdout
and stderr at the pipe, moves to ``cwd``, replaces its environment by ``env`` and runs
``_bootstrap.main`` on the spec, as a fresh ``python _bootstrap.py SPEC`` would. The
server answers ``pid N`` once the child has its session, and ``exit STATUS`` (a raw
wait status) when it ends.

A forked child also gets fresh random state, as a new process would: Python reseeds
:mod:`random` at fork by itself, and the child reseeds numpy's legacy global
``RandomState`` when the server imported numpy in advance (:func:`_reseed_numpy`).

The server is single-threaded (forking a process that runs threads is unsafe) and ends
itself, and every export it started, when neobuild dies or closes the socket
directory. Each export also runs the bootstrap's own parent-death watch.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_bootstrap() -> Any:
    """The sibling ``_bootstrap.py``, loaded by path (neobuild may not be installed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_bootstrap", os.path.join(_HERE, "_bootstrap.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_bootstrap"] = module
    spec.loader.exec_module(module)
    return module


_bootstrap = _load_bootstrap()

# neobuild's own directory must not shadow anything the prewarm or an export imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

_MAX_MESSAGE = 1 << 20


def _prewarm(names: list[str]) -> dict[str, set[str]]:
    """Import ``names``; per name, the framework modules its import brought in."""
    brought: dict[str, set[str]] = {}
    for name in names:
        before = set(sys.modules)
        try:
            importlib.import_module(name)
        except BaseException as exc:  # the export itself will report it properly
            print(f"neobuild fork server: cannot prewarm {name}: {exc!r}", file=sys.stderr)
            continue
        new = set(sys.modules) - before
        brought[name] = {m for m in _bootstrap.FRAMEWORK_MODULES if m in new}
        if name == "onnx":
            _warm_onnx_checker()
    return brought


def _warm_onnx_checker() -> None:
    """Check a one-node model once, so every forked export finds onnx's operator schemas
    registered: the first ``check_model`` of a process spends ~15 ms building them, which
    each export (it runs the checker on its file) would otherwise pay again."""
    try:
        from onnx import TensorProto, checker, helper

        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warm", [x], [y])
        checker.check_model(helper.make_model(graph))
    except Exception as exc:  # only a warm-up: the export's own check reports real problems
        print(f"neobuild fork server: cannot warm onnx.checker: {exc!r}", file=sys.stderr)


def _record_imports(brought: dict[str, set[str]]) -> None:
    """Report only the framework modules the export itself imports (as a fresh process would).

    Modules the server imported in advance are hidden from the export's recorded
    framework versions until the export imports them, or a module that brought them in.
    """
    hidden = _bootstrap.HIDDEN_MODULES
    for name, modules in brought.items():
        hidden.add(name)
        hidden.update(modules)
    if not hidden:
        return
    original_import = builtins.__import__
    original_import_module = importlib.import_module

    def seen(name: str) -> None:
        top = name.partition(".")[0]
        if top in hidden:
            hidden.discard(top)
            hidden.difference_update(brought.get(top, ()))

    def traced_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if hidden and name:
            seen(name)
        return original_import(name, *args, **kwargs)

    def traced_import_module(name: str, package: str | None = None) -> Any:
        if hidden and not name.startswith("."):
            seen(name)
        return original_import_module(name, package)

    builtins.__import__ = traced_import
    importlib.import_module = traced_import_module


def _child(request: dict[str, Any], out_fd: int, ready_w: int, brought: dict[str, set[str]]) -> int:
    """In the forked child: become a fresh export process and run the bootstrap."""
    os.setsid()
    os.write(ready_w, b"x")
    os.close(ready_w)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _reseed_numpy()
    _record_imports(brought)
    try:
        code = int(_bootstrap.main(["_bootstrap.py", request["spec"]]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    return code


def _reseed_numpy() -> None:
    """Seed numpy's legacy global ``RandomState`` from ``os.urandom``, if numpy is loaded.

    A fresh process seeds it from the OS on first use; a forked child inherits the
    server's, so without this every export of one server would draw the same
    ``numpy.random.rand()`` numbers (Python's :mod:`random` is reseeded at fork already,
    numpy's ``default_rng()`` seeds itself on each call).
    """
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is None:  # not imported in advance: the export seeds it fresh
        return
    words = [int.from_bytes(os.urandom(4), "little") for _ in range(4)]
    numpy_random.seed(words)


def _finish_child(code: int) -> None:
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(path: str, prewarm: list[str]) -> int:
    initial = os.getppid()
    expected = int(os.environ.get("NEOBUILD_PARENT_PID", initial))
    brought = _prewarm(prewarm)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    children: dict[int, socket.socket] = {}
    print("ready", flush=True)
    while not stopping:
        if _bootstrap.parent_gone(initial, expected):
            for pid in children:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            return int(_bootstrap.EXIT_ORPHANED)
        for key, _ in selector.select(timeout=0.5):
            if key.data == "wake":
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            elif key.data == "accept":
                conn, _ = listener.accept()
                selector.register(conn, selectors.EVENT_READ, "request")
            else:
                request_conn: socket.socket = key.fileobj  # type: ignore[assignment]
                selector.unregister(request_conn)
                child = _start(request_conn, listener, brought)
                if child is None:
                    request_conn.close()
                else:
                    children[child] = request_conn
        _reap(children)
    return 0


def _start(
    conn: socket.socket, listener: socket.socket, brought: dict[str, set[str]]
) -> int | None:
    """Fork one export for the request on ``conn``; its pid, or None on a bad request."""
    try:
        data, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 1)
        request = json.loads(data)
    except (OSError, ValueError):
        return None
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the export
        code = 1
        try:
            os.close(ready_r)
            listener.close()
            conn.close()
            code = _child(request, fds[0], ready_w, brought)
        finally:
            _finish_child(code)
    os.close(fds[0])
    os.close(ready_w)
    os.read(ready_r, 1)  # the child has its own session now: a killpg reaches it
    os.close(ready_r)
    with contextlib.suppress(OSError):
        conn.send(f"pid {pid}".encode())
    return pid


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(f"exit {status}".encode())
            conn.close()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], json.loads(sys.argv[2])))
