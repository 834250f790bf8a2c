"""The content of ``neo.lock`` as frozen dataclasses: :class:`Lock` and its entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from neobuild.errors import LockError
from neobuild.lockfile.schema import (
    ENTRY_SCHEMA,
    FIX_HINT,
    LOCK_VERSION,
    conforms_mapping,
    flatten_errors,
    make_validator,
)


@dataclass(frozen=True)
class FileRecord:
    """A file's size in bytes and its ``sha256:<hex>`` hash."""

    size: int
    sha256: str


@dataclass(frozen=True)
class RequestRecord:
    """A rendered CreateCompilationJob request: its path, hash and job name."""

    path: str
    sha256: str
    job_name: str


@dataclass(frozen=True)
class JobRecord:
    """A submitted compilation job, as last described by SageMaker."""

    name: str
    arn: str | None
    status: str
    output: str | None
    inference_image: str | None
    artifact_digest: str | None
    failure_reason: str | None


@dataclass(frozen=True)
class LockEntry:
    """One model's record in ``neo.lock``. Paths are repository-relative posix strings.

    ``files`` are keyed by path relative to the export directory; ``outputs`` by path relative
    to the model's build directory; ``requests`` and ``jobs`` by ``Target.key``.
    """

    fingerprint: str
    framework: str
    framework_version: str | None
    exported_with: dict[str, str]
    files: dict[str, FileRecord]
    archive: FileRecord
    archive_path: str
    outputs: dict[str, FileRecord]
    requests: dict[str, RequestRecord]
    smoke: str | None
    fingerprint_parts: dict[str, str]
    jobs: dict[str, JobRecord]
    git_commit: str | None
    git_dirty: bool | None
    compile_check: str | None = None  # the local compile check's result; absent when not run

    def to_json(self) -> dict[str, Any]:
        """The entry as plain JSON data (the same shape as in ``neo.lock``)."""
        return entry_to_data(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockEntry:
        """Build an entry from :meth:`to_json` data (e.g. a cache's ``entry.json``).

        Raises:
            LockError: the data does not match the entry schema.
        """
        data = dict(data)
        if conforms_mapping(data, ENTRY_SCHEMA):
            return entry_from_data(data)
        validator = make_validator(ENTRY_SCHEMA)  # a validator holds state: one per use
        if not validator.validate(data):
            problems = "; ".join(
                f"{'.'.join(p) or '<entry>'}: {m}" for p, m in flatten_errors(validator.errors)
            )
            raise LockError(f"invalid lock entry: {problems}", hint=FIX_HINT)
        return entry_from_data(validator.document)


@dataclass(frozen=True)
class Lock:
    """The whole lock: model name -> entry."""

    models: dict[str, LockEntry] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The lock as plain JSON data (the same shape as ``neo.lock``)."""
        return {
            "lock_version": LOCK_VERSION,
            "models": {name: entry_to_data(e) for name, e in sorted(self.models.items())},
        }


def _record_data(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def entry_to_data(entry: LockEntry) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in fields(entry):
        value = getattr(entry, f.name)
        if f.name == "compile_check" and value is None:
            continue  # written only when the check ran: older locks stay byte-identical
        if isinstance(value, FileRecord):
            value = _record_data(value)
        elif isinstance(value, dict):
            value = {
                k: _record_data(v) if isinstance(v, FileRecord | RequestRecord | JobRecord) else v
                for k, v in value.items()
            }
        data[f.name] = value
    return data


def _file(data: Mapping[str, Any]) -> FileRecord:
    return FileRecord(size=int(data["size"]), sha256=str(data["sha256"]))


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def entry_from_data(data: Mapping[str, Any]) -> LockEntry:
    """Convert validated entry data into a LockEntry (absent optional keys: None/empty)."""
    return LockEntry(
        fingerprint=str(data["fingerprint"]),
        framework=str(data["framework"]),
        framework_version=_opt(data.get("framework_version")),
        exported_with={str(k): str(v) for k, v in data.get("exported_with", {}).items()},
        files={str(k): _file(v) for k, v in data["files"].items()},
        archive=_file(data["archive"]),
        archive_path=str(data["archive_path"]),
        outputs={str(k): _file(v) for k, v in data.get("outputs", {}).items()},
        requests={
            str(k): RequestRecord(
                path=str(v["path"]), sha256=str(v["sha256"]), job_name=str(v["job_name"])
            )
            for k, v in data.get("requests", {}).items()
        },
        smoke=_opt(data.get("smoke")),
        compile_check=_opt(data.get("compile_check")),
        fingerprint_parts={str(k): str(v) for k, v in data.get("fingerprint_parts", {}).items()},
        jobs={
            str(k): JobRecord(
                name=str(v["name"]),
                arn=_opt(v.get("arn")),
                status=str(v["status"]),
                output=_opt(v.get("output")),
                inference_image=_opt(v.get("inference_image")),
                artifact_digest=_opt(v.get("artifact_digest")),
                failure_reason=_opt(v.get("failure_reason")),
            )
            for k, v in data.get("jobs", {}).items()
        },
        git_commit=_opt(data.get("git_commit")),
        git_dirty=data.get("git_dirty"),
    )


def carry_jobs(previous: LockEntry | None, entry: LockEntry) -> LockEntry:
    """``entry`` with the compilation jobs of ``previous`` whose request did not change.

    A rebuilt model keeps the jobs recorded for byte-identical requests; call it inside
    :func:`modify_lock` so a job recorded by a concurrent ``compile`` is never lost.
    """
    if previous is None:
        return entry
    jobs = {
        key: job
        for key, job in previous.jobs.items()
        if key in entry.requests and previous.requests.get(key) == entry.requests[key]
    }
    return replace(entry, jobs={**jobs, **entry.jobs})
