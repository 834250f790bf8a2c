"""What ``package`` shows while it builds.

On a terminal (and ``CI`` unset) a live display: one spinner line per running export
and an overall bar; messages scroll above it. Elsewhere, plain lines, one per model
as it finishes, which read well in CI logs.

Creating a model's export environment (minutes for torch or TensorFlow) is shown too:
on the live display as a line of its own under the model's, with the stage, the step
pip is on and the time so far; elsewhere as one line per stage (``-q`` hides them).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from neobuild import envprogress
from neobuild.console import Output

if TYPE_CHECKING:
    from neobuild.results import ModelReport


def env_line(event: envprogress.EnvEvent) -> str:
    """One line for a stage of creating an export environment (logs and CI)."""
    return f"{event.model}: export environment {event.key[:8]}: {event.text} [{event.elapsed:.1f}s]"


def show_stage(out: Output, event: envprogress.EnvEvent) -> None:
    """Print ``event`` as one line when it starts a stage; pip's steps would flood a CI log
    (a failure is reported by the model's error)."""
    if event.detail is None and event.stage != "failed":
        out.info(env_line(event))


@contextlib.contextmanager
def env_lines(out: Output) -> Iterator[None]:
    """One line per stage of creating an export environment inside the block, for
    commands without a live display (``check``)."""
    with envprogress.reporting(lambda event: show_stage(out, event)):
        yield


class BuildProgress:
    """Progress of one ``package`` run over ``total`` models."""

    def __init__(self, out: Output, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}
        self._env_tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()  # env events come from the worker threads

    @contextlib.contextmanager
    def shown(self) -> Iterator[BuildProgress]:
        """Show the live display for the duration of the block (when allowed)."""
        with envprogress.reporting(self.env_event):
            if not (self.out.live and self.out.verbosity == 0):
                yield self
                return
            with self._live():
                yield self

    @contextlib.contextmanager
    def _live(self) -> Iterator[None]:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.out.console,
            transient=True,
        )
        self._overall = self._progress.add_task("packaging", total=self.total)
        with self._progress:
            yield
        self._progress = None

    def env_event(self, event: envprogress.EnvEvent) -> None:
        """Show a step of creating a model's export environment (any thread)."""
        with self._lock:
            progress = self._progress
            if progress is None:
                show_stage(self.out, event)
                return
            task = self._env_tasks.get(event.model)
            if event.stage in ("ready", "failed"):
                if task is not None:
                    progress.remove_task(self._env_tasks.pop(event.model))
                return
            text = f"    {event.model} env: {event.text}"
            if event.detail:
                text += f" · {event.detail}"
            if task is None:
                self._env_tasks[event.model] = progress.add_task(text, total=None)
            else:
                progress.update(task, description=text)

    def started(self, name: str) -> None:
        with self._lock:
            self._started(name)

    def _started(self, name: str) -> None:
        if self._progress is not None:
            self._tasks[name] = self._progress.add_task(f"  {name}", total=None)
        else:
            self.out.detail(f"starting {name}")

    def finished(self, report: ModelReport) -> None:
        with self._lock:  # whole lines: the env lines come from the worker threads
            self._finished(report)

    def _finished(self, report: ModelReport) -> None:
        self.done += 1
        if self._progress is not None:
            task = self._tasks.pop(report.name, None)
            if task is not None:
                self._progress.remove_task(task)
            if self._overall is not None:
                self._progress.advance(self._overall)
        counter = f"[{self.done}/{self.total}]"
        if report.status == "failed":
            self.out.error(
                f"{counter} {report.name} failed after {report.duration:.1f}s: {report.message}"
            )
            if report.hint:
                self.out.console.print(f"    hint: {report.hint}", markup=False)
            return
        label = {"built": "built", "restored": "restored from cache"}.get(
            report.status, report.status
        )
        note = f" ({report.message})" if report.status == "built" and report.message else ""
        self.out.info(f"{counter} {label} {report.name} in {report.duration:.1f}s{note}")
        for warning in report.warnings:
            self.out.warn(f"{report.name}: {warning}")
