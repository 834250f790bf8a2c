"""``neobuild compile``: pre-flight the requests; with ``submit``, run them on SageMaker Neo.

For every selected model and target that has a request file
(``<build_dir>/<model>/requests/<target.key>.json``, written by ``package``):

1. the request is pre-flighted again (every problem of every request, before anything is
   sent);
2. with ``submit``: when a job of that name already exists it is described, not recreated
   (the name carries a hash of the request, so re-running is idempotent); otherwise the
   bucket's region is checked, ``model.tar.gz`` is uploaded to ``InputConfig.S3Uri`` (skipped
   when an object with the same sha256 is there), the object is checked and the job created;
3. with ``wait``: ``DescribeCompilationJob`` is polled with backoff (botocore has no waiter)
   until every job is COMPLETED, FAILED or STOPPED (:mod:`neobuild.jobwait`).

The lock records each job's name, ARN, status, output location (``S3ModelArtifacts``, read,
never built), ``InferenceImage`` and artifact digest. A FAILED or STOPPED job raises
:class:`CompileFailedError` quoting Neo's ``FailureReason`` verbatim with model and target.
The caller owns the terminal: progress goes to ``on_event``, and on Ctrl-C ``confirm_stop``
decides whether the running jobs are stopped. The items, result and events this module
returns and reports are defined in :mod:`neobuild.compilejobs`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild.compilejobs import CompileEvent, CompileItem, CompileResult, EventSink
from neobuild.errors import (
    AwsError,
    CompileFailedError,
    JobExistsError,
    RequestError,
    UsageError,
)
from neobuild.jobwait import (
    POLL_MAX,
    POLL_START,
    Clients,
    Connect,
    Poll,
    refresh_jobs,
    stop_jobs,
    wait_for_jobs,
)
from neobuild.model import Manifest, Model

if TYPE_CHECKING:
    from neobuild.aws import Aws
    from neobuild.lockfile import LockEntry


def _ignore(_event: CompileEvent) -> None:
    return None


def _default_connect(region: str | None) -> Aws:
    from neobuild import aws

    return aws.connect(region)


# --------------------------------------------------------------------------- pre-flight


def _load_request(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RequestError(f"{path}: cannot read the request: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError(f"{path}: a request must be a JSON object")
    return data


def _collect(
    manifest: Manifest, models: Sequence[Model], on_event: EventSink
) -> tuple[list[CompileItem], dict[str, dict[str, Any]]]:
    """Load and pre-flight every request; raise one RequestError listing every problem."""
    from neobuild import lockfile
    from neobuild import request as request_mod
    from neobuild.archive import hash_file
    from neobuild.preflight import preflight

    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)

    items: list[CompileItem] = []
    requests: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for model in models:
        for target in model.targets:
            path = manifest.build_dir / model.name / "requests" / f"{target.key}.json"
            item = CompileItem(
                model=model.name,
                target=target.key,
                request_path=path,
                region=model.compile.region,
                max_runtime=model.compile.max_runtime,
            )
            if not path.is_file():
                problems.append(
                    f"model {model.name}, target {target.key}: no request file {path} "
                    f"(run `neobuild package {model.name}` first)"
                )
                continue
            try:
                request = _load_request(path)
                item.warnings = preflight(
                    request, model=model.name, target=target.key, region=model.compile.region
                )
            except RequestError as exc:
                problems.extend(exc.problems or [exc.message])
                continue
            marked = request_mod.placeholders(request)
            if marked:
                problems.append(
                    f"model {model.name}, target {target.key}: placeholder values in "
                    f"{', '.join(marked)} (packaged with --allow-incomplete)"
                )
                continue
            entry = lock.models.get(model.name)
            record = entry.requests.get(target.key) if entry is not None else None
            if record is not None and record.sha256 != hash_file(path):
                item.warnings.append(
                    f"model {model.name}, target {target.key}: {path} differs from its record "
                    "in neo.lock (edited by hand?); submitting the file as it is"
                )
            item.job_name = str(request.get("CompilationJobName"))
            item.status = "checked"
            items.append(item)
            requests[_key(item)] = request
            on_event(CompileEvent("checked", item.model, item.target, item.job_name))
    if problems:
        raise RequestError(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} with the "
            "compilation requests:\n  " + "\n  ".join(problems),
            problems=problems,
            hint="fix neo.yaml (compile:, targets:) and re-run `neobuild package`",
        )
    return items, requests


def _key(item: CompileItem) -> str:
    return f"{item.model}\0{item.target}"


# --------------------------------------------------------------------------- submit


def _archive_for(
    manifest: Manifest, entry: LockEntry | None, item: CompileItem
) -> tuple[Path, str]:
    if entry is None:
        raise AwsError(
            f"model {item.model} is not in neo.lock, so there is no archive to upload",
            hint=f"run `neobuild package {item.model}` first",
        )
    return manifest.root / entry.archive_path, entry.archive.sha256


def _submit_one(
    manifest: Manifest,
    item: CompileItem,
    request: Mapping[str, Any],
    entry: LockEntry | None,
    clients: Clients,
    on_event: EventSink,
) -> None:
    from neobuild import aws

    client = clients.get(item.region)
    name = str(request["CompilationJobName"])
    existing = client.find_compilation_job(name)
    if existing is not None:
        item.apply(existing)
        item.existed = True
        on_event(CompileEvent("exists", item.model, item.target, name, existing.status))
        return
    uri = (request.get("InputConfig") or {}).get("S3Uri")
    if uri:
        bucket, _ = aws.parse_s3_uri(uri)
        if (item.region, bucket) not in clients.checked_buckets:
            client.check_bucket_region(bucket)
            clients.checked_buckets.add((item.region, bucket))
        archive, sha256 = _archive_for(manifest, entry, item)
        if not archive.is_file():
            raise AwsError(
                f"model {item.model}: archive {archive} is missing",
                hint=f"run `neobuild package {item.model}`",
            )
        upload = client.upload_file(archive, uri, sha256=sha256)
        item.uploaded = upload.uploaded
        kind = "uploaded" if upload.uploaded else "upload-skipped"
        on_event(CompileEvent(kind, item.model, item.target, name, message=uri))
        if not upload.uploaded:
            # the pre-check Neo's "S3 object does not exist" error would otherwise come from
            client.require_object(uri, sha256=sha256)
    try:
        item.arn = client.create_compilation_job(request)
    except JobExistsError:
        # created by a concurrent run between our describe and create
        item.apply(client.describe_compilation_job(name))
        item.existed = True
        on_event(CompileEvent("exists", item.model, item.target, name, item.status))
        return
    item.job_name = name
    item.status = "STARTING"
    on_event(CompileEvent("created", item.model, item.target, name, item.status))


# --------------------------------------------------------------------------- lock


def _record_jobs(
    lock_path: Path,
    items: Sequence[CompileItem],
    fingerprints: Mapping[str, str],
    on_event: EventSink,
) -> None:
    """Write each submitted job into its model's lock entry."""
    from neobuild import lockfile

    submitted = [i for i in items if i.job_name and i.status not in {"pending", "checked"}]
    if not submitted:
        return
    skipped: list[CompileItem] = []

    def change(current: lockfile.Lock) -> dict[str, LockEntry | None]:
        # Computed under the lock's file lock, so a concurrent update is never lost.
        skipped.clear()
        updates: dict[str, LockEntry | None] = {}
        for item in submitted:
            entry = updates.get(item.model) or current.models.get(item.model)
            if entry is None or entry.fingerprint != fingerprints.get(item.model):
                skipped.append(item)
                continue
            assert item.job_name is not None
            record = lockfile.JobRecord(
                name=item.job_name,
                arn=item.arn,
                status=item.status,
                output=item.output,
                inference_image=item.inference_image,
                artifact_digest=item.artifact_digest,
                failure_reason=item.failure_reason,
            )
            updates[item.model] = replace(entry, jobs={**entry.jobs, item.target: record})
        return updates

    lockfile.modify_lock(lock_path, change)
    for item in skipped:
        on_event(
            CompileEvent(
                "lock-skipped",
                item.model,
                item.target,
                item.job_name,
                message="the model was re-packaged while its job ran",
            )
        )


def _failure_message(failures: Sequence[CompileItem]) -> str:
    lines = []
    for item in failures:
        reason = item.failure_reason or "(SageMaker gave no FailureReason)"
        lines.append(
            f"model {item.model}, target {item.target}: compilation job {item.job_name} "
            f"{item.status}: {reason}"
        )
    head = f"{len(failures)} compilation job{'s' if len(failures) != 1 else ''} did not complete"
    return head + ":\n  " + "\n  ".join(lines)


# --------------------------------------------------------------------------- entry point


def compile_models(
    manifest: Manifest,
    models: Sequence[Model],
    *,
    submit: bool,
    wait: bool,
    on_event: EventSink | None = None,
    confirm_stop: Callable[[Sequence[CompileItem]], bool] | None = None,
    connect: Connect | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float = POLL_START,
    max_poll_interval: float = POLL_MAX,
    wait_timeout: float | None = None,
    raise_on_failure: bool = True,
) -> CompileResult:
    """Pre-flight the models' requests; with ``submit`` run them on SageMaker Neo.

    Args:
        manifest: the loaded manifest.
        models: the selected models (each target with a request file is one job).
        submit: upload the archives and create the jobs (or describe existing ones).
        wait: poll until every job is COMPLETED, FAILED or STOPPED (implies ``submit``'s
            jobs exist; without ``submit`` nothing is polled).
        on_event: progress callback (see :class:`~neobuild.compilejobs.CompileEvent` and
            :func:`~neobuild.compilejobs.describe_event`).
        confirm_stop: asked on Ctrl-C while waiting, with the running jobs; True stops them.
            KeyboardInterrupt is re-raised either way, after the lock is updated.
        connect: region -> :class:`~neobuild.aws.Aws` (tests inject stubbed clients).
        sleep: waits between polls (tests inject a fake).
        clock: monotonic seconds (tests inject a fake).
        poll_interval: first wait between polls; grows by 1.5x up to ``max_poll_interval``.
        max_poll_interval: the longest wait between polls.
        wait_timeout: give up waiting after this many seconds (default: the largest
            MaxRuntimeInSeconds plus 30 minutes).
        raise_on_failure: raise CompileFailedError when a job FAILED or was STOPPED.

    Returns:
        One item per model and target, with its job's state.

    Raises:
        UsageError: ``wait`` without ``submit``, or ``submit`` without boto3 installed.
        RequestError: a request is missing or fails pre-flight (nothing is submitted).
        AwsError: AWS refused something, or waiting timed out.
        CompileFailedError: a job FAILED or was STOPPED (with ``raise_on_failure``).
    """
    from neobuild import lockfile

    if wait and not submit:
        raise UsageError(
            "--wait follows the jobs that --submit creates", hint="add --submit (it is idempotent)"
        )
    if submit and connect is None:
        from neobuild import aws

        aws.require_boto3()  # before any pre-flight work: a missing extra is a usage error
    sink = on_event or _ignore
    items, requests = _collect(manifest, models, sink)
    result = CompileResult(items=items, submitted=submit, waited=submit and wait)
    if not submit:
        return result
    lock_path = manifest.root / lockfile.LOCK_NAME
    lock = lockfile.read_lock(lock_path)
    fingerprints = {name: entry.fingerprint for name, entry in lock.models.items()}
    clients = Clients(connect or _default_connect)
    try:
        for item in items:
            _submit_one(
                manifest, item, requests[_key(item)], lock.models.get(item.model), clients, sink
            )
        if not wait:
            refresh_jobs(items, clients, sink)
    finally:
        _record_jobs(lock_path, items, fingerprints, sink)
    if wait:
        poll = Poll(
            sleep=sleep, clock=clock, interval=poll_interval, max_interval=max_poll_interval
        )
        try:
            wait_for_jobs(items, clients, poll, wait_timeout, sink)
        except KeyboardInterrupt:
            running = [i for i in items if not i.terminal]
            if running and confirm_stop is not None and confirm_stop(running):
                stop_jobs(running, clients, sink)
            raise
        finally:
            _record_jobs(lock_path, items, fingerprints, sink)
    if raise_on_failure and result.failures:
        raise CompileFailedError(
            _failure_message(result.failures),
            result=result,
            hint="the compilation log is in CloudWatch, log group /aws/sagemaker/CompilationJobs, "
            "stream named after the job; fix the model and re-run `neobuild package` and "
            "`neobuild compile --submit` (a changed request gets a new job name)",
        )
    return result
