"""What ``package`` shows while it builds.

On a terminal (and ``CI`` unset) a live display: one spinner line per running export
and an overall bar; messages scroll above it. Elsewhere, plain lines, one per model
as it finishes, which read well in CI logs.
"""

from __future__ import annotations

import contextlib
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

from neobuild.console import Output

if TYPE_CHECKING:
    from neobuild.results import ModelReport


class BuildProgress:
    """Progress of one ``package`` run over ``total`` models."""

    def __init__(self, out: Output, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}

    @contextlib.contextmanager
    def shown(self) -> Iterator[BuildProgress]:
        """Show the live display for the duration of the block (when allowed)."""
        if not (self.out.live and self.out.verbosity == 0):
            yield self
            return
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
            yield self
        self._progress = None

    def started(self, name: str) -> None:
        if self._progress is not None:
            self._tasks[name] = self._progress.add_task(f"  {name}", total=None)
        else:
            self.out.detail(f"starting {name}")

    def finished(self, report: ModelReport) -> None:
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
