"""Progress of creating a model's export environment, as events to whoever listens.

Creating an env for torch or TensorFlow takes minutes, so :mod:`neobuild.envs` reports
its stages as events (:class:`EnvEvent`) to the callbacks registered with
:func:`reporting` (``package`` and ``check`` show them, see ``neobuild/progress.py``): waiting for
another process's lock, creating the venv, installing the requirements (with the step
pip is on, read from its log by a :class:`PipWatcher`), verifying.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from neobuild.model import Model

__all__ = ["EnvEvent", "PipWatcher", "Reporter", "Stage", "pip_step", "reporting"]

#: pip's output lines that say what it is doing, and how the status line words them.
_PIP_STEPS = (
    (re.compile(r"^Collecting (\S+)"), "collecting {}"),
    (re.compile(r"^\s*Downloading (?:\S+/)?([^/\s]+)"), "downloading {}"),
    (re.compile(r"^\s*Using cached (?:\S+/)?([^/\s]+)"), "using cached {}"),
    (re.compile(r"^Building wheels? for (\S+)"), "building wheel for {}"),
    (re.compile(r"^Installing collected packages: (.+)"), "installing {}"),
)
_POLL_SECONDS = 0.25

Stage = Literal["waiting", "venv", "install", "verify", "ready", "failed"]


@dataclass(frozen=True)
class EnvEvent:
    """A step of creating a model's export environment.

    Attributes:
        model: the model whose export needs the env.
        key: the env's cache key (its directory name under ``envs/``).
        stage: ``waiting`` (for another process's lock), ``venv``, ``install``,
            ``verify``, then ``ready`` or ``failed``.
        text: the stage in words (``installing 3 requirements``).
        elapsed: seconds since this process started on the env.
        detail: within ``install``, the step pip is on (``collecting torch==2.3``); None
            on the event that starts a stage.
    """

    model: str
    key: str
    stage: Stage
    text: str
    elapsed: float
    detail: str | None = None


_reporters: list[Callable[[EnvEvent], None]] = []
_reporters_lock = threading.Lock()


@contextmanager
def reporting(callback: Callable[[EnvEvent], None]) -> Iterator[None]:
    """Send the events of every env created in this process (any thread) to ``callback``.

    The callback runs on the thread creating the env and must not raise.
    """
    with _reporters_lock:
        _reporters.append(callback)
    try:
        yield
    finally:
        with _reporters_lock:
            _reporters.remove(callback)


class Reporter:
    """The events of one env creation, timed from its start."""

    def __init__(self, model: Model, key: str) -> None:
        self.model = model.name
        self.key = key
        self.started = time.monotonic()
        self.stage: Stage = "venv"
        self.text = "starting"

    @staticmethod
    def listening() -> bool:
        """Whether any callback is registered (else watching pip's log is wasted work)."""
        with _reporters_lock:
            return bool(_reporters)

    def emit(self, stage: Stage, text: str, detail: str | None = None) -> None:
        """Send one event to every registered callback (an event with a detail keeps the stage)."""
        if detail is None:
            self.stage, self.text = stage, text
        event = EnvEvent(self.model, self.key, stage, text, time.monotonic() - self.started, detail)
        with _reporters_lock:
            callbacks = list(_reporters)
        for callback in callbacks:
            callback(event)


class PipWatcher(threading.Thread):
    """Reads pip's output as it lands in the log and reports the step pip is on."""

    def __init__(self, log_path: Path, offset: int, reporter: Reporter) -> None:
        super().__init__(daemon=True, name="neobuild-pip-watcher")
        self.log_path = log_path
        self.offset = offset
        self.reporter = reporter
        self.stop = threading.Event()
        self._partial = b""

    def run(self) -> None:
        while not self.stop.wait(_POLL_SECONDS):
            self._read()

    def _read(self) -> None:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read(1 << 20)
        except OSError:
            return
        self.offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        step = None
        for line in lines:
            step = pip_step(line.decode("utf-8", errors="replace")) or step
        if step is not None:
            self.reporter.emit("install", self.reporter.text, detail=step)


def pip_step(line: str) -> str | None:
    """What a line of pip's output says pip is doing, in a few words, or None."""
    for pattern, template in _PIP_STEPS:
        match = pattern.match(line)
        if match:
            what = match.group(1).strip()
            return template.format(what if len(what) <= 60 else what[:57] + "...")
    return None
