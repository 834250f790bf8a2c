"""What a ``compile`` run reports: its jobs, its outcome and its progress events.

:class:`CompileItem` is one model and target and the state of its compilation job,
:class:`CompileResult` the outcome of one run (with its human and JSON forms), and
:class:`CompileEvent` one step of a run for progress display, worded by
:func:`describe_event`. Plain data: the submitting is in :mod:`neobuild.compile`, the
polling in :mod:`neobuild.jobwait`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neobuild.aws import JobInfo

FAILED_STATUSES = frozenset({"FAILED", "STOPPED"})


@dataclass
class CompileItem:
    """One model and target, and what happened to its job."""

    model: str
    target: str
    request_path: Path
    job_name: str | None = None
    status: str = "pending"  # pending | checked | a CompilationJobStatus
    arn: str | None = None
    output: str | None = None
    inference_image: str | None = None
    artifact_digest: str | None = None
    failure_reason: str | None = None
    uploaded: bool | None = None  # None: not submitted by this run
    existed: bool = False  # the job already existed and was described, not created
    region: str | None = None
    max_runtime: int = 900
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def terminal(self) -> bool:
        return self.status in {"COMPLETED", "FAILED", "STOPPED"}

    def apply(self, job: JobInfo) -> None:
        """Take the job's state from a DescribeCompilationJob answer."""
        self.job_name = job.name
        self.status = job.status
        self.arn = job.arn or self.arn
        self.output = job.output
        self.inference_image = job.inference_image
        self.artifact_digest = job.artifact_digest
        self.failure_reason = job.failure_reason

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target": self.target,
            "request": str(self.request_path),
            "job_name": self.job_name,
            "status": self.status,
            "arn": self.arn,
            "output": self.output,
            "inference_image": self.inference_image,
            "artifact_digest": self.artifact_digest,
            "failure_reason": self.failure_reason,
            "uploaded": self.uploaded,
            "existed": self.existed,
            "region": self.region,
            "warnings": list(self.warnings),
        }


@dataclass
class CompileResult:
    """The outcome of one ``compile`` run."""

    items: list[CompileItem]
    submitted: bool
    waited: bool

    @property
    def failures(self) -> list[CompileItem]:
        return [i for i in self.items if i.failed]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line: how many jobs ended in which state."""
        if not self.submitted:
            return f"{len(self.items)} request(s) pass pre-flight; add --submit to run them"
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        states = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
        return f"{len(self.items)} compilation job(s): {states or 'none'}"

    def render(self) -> str:
        """Human text: one line per job (with output location or failure), then the summary."""
        lines = []
        for item in self.items:
            line = f"{item.model} [{item.target}]: {item.status.lower()}"
            if item.job_name and self.submitted:
                line += f" {item.job_name}"
            if item.output and item.status == "COMPLETED":
                line += f" -> {item.output}"
            if item.failure_reason:
                line += f": {item.failure_reason}"
            lines.append(line)
            lines.extend(f"  warning: {w}" for w in item.warnings)
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "submitted": self.submitted,
            "waited": self.waited,
            "jobs": [i.to_json() for i in self.items],
        }


@dataclass(frozen=True)
class CompileEvent:
    """A step of a compile run, for progress display.

    ``kind`` is one of: ``checked``, ``uploaded``, ``upload-skipped``, ``created``,
    ``exists``, ``status`` (a job's status changed), ``waiting`` (one poll round; ``message``
    says how many jobs run), ``throttled``, ``stopping``, ``stop-failed``, ``lock-skipped``.
    """

    kind: str
    model: str = ""
    target: str = ""
    job_name: str | None = None
    status: str | None = None
    message: str = ""
    elapsed: float = 0.0


#: The sentence of each event kind; ``{e}`` is the event (see :func:`describe_event`).
_EVENT_TEXT: Mapping[str, str] = {
    "checked": "{where}: request passes pre-flight",
    "uploaded": "{where}: uploaded {e.message}",
    "upload-skipped": "{where}: {e.message} is already uploaded (same sha256)",
    "created": "{where}: created {job}",
    "exists": "{where}: {job} already exists ({e.status}); not recreated",
    "status": "{where}: {job} is {e.status} after {e.elapsed:.0f}s",
    "waiting": "waiting for {e.message} (next check in {e.elapsed:.0f}s)",
    "throttled": "SageMaker is throttling DescribeCompilationJob; slowing down ({e.message})",
    "stopping": "{where}: asked SageMaker to stop {job}",
    "stop-failed": "{where}: could not stop {job}: {e.message}",
    "lock-skipped": "{where}: not recorded in neo.lock: {e.message}",
}


def describe_event(event: CompileEvent) -> str:
    """A one-line human sentence for an event."""
    where = f"{event.model} [{event.target}]" if event.model else ""
    job = f"job {event.job_name}" if event.job_name else "job"
    text = _EVENT_TEXT.get(event.kind)
    if text is None:
        return f"{where}: {event.kind} {event.message}".strip()
    return text.format(where=where, job=job, e=event)


#: Where a run reports its events (``compile_models``' ``on_event``).
EventSink = Callable[[CompileEvent], None]
