"""TorchServe's Python backend worker, driven the way its Java frontend drives it.

TorchServe runs a model in ``ts/model_service_worker.py``, a Python process that listens
on a Unix socket and speaks TorchServe's binary protocol (``ts/protocol/
otf_message_handler.py``): a *load* message makes it call ``ts.model_loader`` with the
handler service named by the container (SageMaker's PyTorch container names
``sagemaker_pytorch_serving_container.handler_service:handle``), then each *inference*
message goes through ``ts.service.Service.predict`` to that handler service. The Java
frontend only turns HTTP into those messages; :class:`Worker` plays that part, so the
real worker, loader, handler service and toolkit run without Java.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import ts

TS_DIR = Path(ts.__file__).resolve().parent


@dataclass(frozen=True)
class Response:
    """One HTTP response as the frontend would send it."""

    status: int
    content_type: str
    body: bytes
    phrase: str


def _pack(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


class Worker:
    """``ts/model_service_worker.py`` in a subprocess, with ``model_dir`` loaded."""

    def __init__(self, model_dir: Path, handler: str, env: dict[str, str], log_path: Path) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ts-"))  # AF_UNIX paths are short
        socket_name = str(self._dir / "sock.9000")
        self._log = log_path.open("wb")
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(TS_DIR / "model_service_worker.py"),
                "--sock-type",
                "unix",
                "--sock-name",
                socket_name,
                "--metrics-config",
                str(TS_DIR / "configs" / "metrics.yaml"),
            ],
            env=env,
            cwd=str(model_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._log_path = log_path
        self._sock = self._connect(socket_name)
        self._sock.sendall(
            b"L"
            + _pack(b"model")
            + _pack(str(model_dir).encode())
            + struct.pack("!i", 1)  # batch size
            + _pack(handler.encode())
            + struct.pack("!i", -1)  # no GPU
            + _pack(b"")  # no envelope
            + struct.pack("!?", True)
        )
        code = self._int()
        message = self._read(self._int()).decode()
        self._int()  # end of list
        if code != 200:
            raise RuntimeError(f"load failed: {code} {message}\n{self.log()}")

    def _connect(self, name: str) -> socket.socket:
        deadline = time.monotonic() + 120
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the worker exited before listening:\n{self.log()}")
            if os.path.exists(name):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(name)
                    sock.settimeout(300)
                    return sock
                except OSError:
                    sock.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker never listened on {name}:\n{self.log()}")
            time.sleep(0.1)

    def _read(self, length: int) -> bytes:
        data = bytearray()
        while len(data) < length:
            chunk = self._sock.recv(length - len(data))
            if not chunk:
                raise RuntimeError(f"the worker closed the connection:\n{self.log()}")
            data += chunk
        return bytes(data)

    def _int(self) -> int:
        value: int = struct.unpack("!i", self._read(4))[0]
        return value

    def invoke(self, body: bytes, headers: dict[str, str]) -> Response:
        """Send one request (its body and HTTP headers) and return the response."""
        content_type = headers.get("Content-Type", "")
        message = b"I" + _pack(b"request-1")
        for name, value in headers.items():
            message += _pack(name.encode()) + _pack(value.encode())
        message += struct.pack("!i", -1)
        message += _pack(b"body") + _pack(content_type.encode()) + _pack(body)
        message += struct.pack("!i", -1) + struct.pack("!i", -1)
        self._sock.sendall(message)
        code = self._int()
        self._read(self._int())  # the batch's message
        self._read(self._int())  # request id
        response_type = self._read(max(self._int(), 0)).decode()
        status = self._int()
        phrase = self._read(self._int()).decode()
        for _ in range(self._int()):  # response headers
            self._read(self._int())
            self._read(self._int())
        payload = self._read(self._int())
        self._int()  # end of list
        return Response(status if code == 200 else code, response_type, payload, phrase)

    def log(self) -> str:
        self._log.flush()
        return self._log_path.read_text(errors="replace")[-5000:]

    def close(self) -> None:
        self._sock.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        for leftover in self._dir.iterdir():
            leftover.unlink()
        self._dir.rmdir()

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
