"""Following compilation jobs once they exist: poll them, refresh them, stop them.

``DescribeCompilationJob`` is polled with backoff (botocore has no waiter for
compilation jobs) until every job is COMPLETED, FAILED or STOPPED; a throttled round
doubles the interval, and waiting gives up a while after the longest
MaxRuntimeInSeconds. :class:`Clients` keeps one :class:`~neobuild.aws.Aws` per region,
shared with the submitting in :mod:`neobuild.compile`. Each function updates the
:class:`~neobuild.compilejobs.CompileItem` it is given and reports through ``on_event``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neobuild.compilejobs import CompileEvent, CompileItem, EventSink
from neobuild.errors import AwsError, NeobuildError, ThrottledError

if TYPE_CHECKING:
    from neobuild.aws import Aws

#: The SDK polls every 5 s (``Session.wait_for_compilation_job``); neobuild starts there.
POLL_START = 5.0
POLL_MAX = 60.0
POLL_FACTOR = 1.5
#: Waiting gives up this long after MaxRuntimeInSeconds (queueing, upload of the output).
WAIT_SLACK = 1800.0


Connect = Callable[[str | None], "Aws"]


class Clients:
    """One Aws per region, created on first use."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._by_region: dict[str | None, Aws] = {}
        self.checked_buckets: set[tuple[str | None, str]] = set()

    def get(self, region: str | None) -> Aws:
        if region not in self._by_region:
            self._by_region[region] = self._connect(region)
        return self._by_region[region]


@dataclass
class Poll:
    """How to wait between polls: sleep and clock (tests inject fakes), first and longest wait."""

    sleep: Callable[[float], None]
    clock: Callable[[], float]
    interval: float = POLL_START
    max_interval: float = POLL_MAX


def wait_for_jobs(
    items: Sequence[CompileItem],
    clients: Clients,
    poll: Poll,
    timeout: float | None,
    on_event: EventSink,
) -> None:
    """Poll every unfinished job until all are terminal; AwsError on timeout."""
    running = [i for i in items if not i.terminal]
    if not running:
        return
    if timeout is None:
        timeout = max(i.max_runtime for i in running) + WAIT_SLACK
    started = poll.clock()
    interval = poll.interval
    while True:
        elapsed = poll.clock() - started
        still: list[CompileItem] = []
        throttled = False
        for item in running:
            assert item.job_name is not None
            try:
                job = clients.get(item.region).describe_compilation_job(item.job_name)
            except ThrottledError:
                throttled = True
                still.append(item)
                continue
            before = item.status
            item.apply(job)
            if item.status != before:
                on_event(
                    CompileEvent(
                        "status",
                        item.model,
                        item.target,
                        item.job_name,
                        item.status,
                        elapsed=elapsed,
                    )
                )
            if not item.terminal:
                still.append(item)
        running = still
        if not running:
            return
        if throttled:
            interval = min(interval * 2, poll.max_interval)
            on_event(CompileEvent("throttled", message=f"next check in {interval:.0f}s"))
        elapsed = poll.clock() - started
        if elapsed + interval > timeout:
            names = ", ".join(f"{i.model} [{i.target}] ({i.job_name}: {i.status})" for i in running)
            raise AwsError(
                f"gave up waiting after {elapsed:.0f}s for {len(running)} compilation "
                f"job{'s' if len(running) != 1 else ''}: {names}",
                hint="the jobs keep running on SageMaker; re-run `neobuild compile --submit "
                "--wait` later to follow them (nothing is submitted twice)",
            )
        on_event(
            CompileEvent(
                "waiting",
                message=f"{len(running)} job{'s' if len(running) != 1 else ''}",
                elapsed=interval,
            )
        )
        poll.sleep(interval)
        if not throttled:
            interval = min(interval * POLL_FACTOR, poll.max_interval)


def refresh_jobs(items: Sequence[CompileItem], clients: Clients, on_event: EventSink) -> None:
    """Describe each newly created job once, so the lock holds its real state (best effort)."""
    for item in items:
        if item.existed or item.job_name is None or item.terminal:
            continue
        try:
            job = clients.get(item.region).describe_compilation_job(item.job_name)
        except ThrottledError:
            continue
        item.apply(job)
        if item.status != "STARTING":
            on_event(CompileEvent("status", item.model, item.target, item.job_name, item.status))


def stop_jobs(items: Sequence[CompileItem], clients: Clients, on_event: EventSink) -> None:
    """Ask SageMaker to stop each unfinished job; a refusal is an event, not an error."""
    for item in items:
        if item.terminal or item.job_name is None:
            continue
        try:
            clients.get(item.region).stop_compilation_job(item.job_name)
        except NeobuildError as exc:
            on_event(
                CompileEvent(
                    "stop-failed", item.model, item.target, item.job_name, message=str(exc)
                )
            )
            continue
        item.status = "STOPPING"
        on_event(CompileEvent("stopping", item.model, item.target, item.job_name, item.status))
