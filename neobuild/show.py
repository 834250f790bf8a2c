"""``neobuild show MODEL``: one model as neobuild sees it.

The resolved entry (defaults and includes merged), where it is declared, whether it is
stale and why, and what ``neo.lock`` records for it: exported files and their hashes,
the archive, the rendered requests, and the compilation jobs ``compile --submit``
last saw (their states as SageMaker reported them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ShowResult:
    """One model: its resolved entry, its plan status and its lock entry (if built)."""

    name: str
    declared_at: str | None
    entry: dict[str, Any]
    status: dict[str, Any]
    lock: dict[str, Any] | None
    build_dir: str

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "declared_at": self.declared_at,
            "model": self.entry,
            "status": self.status,
            "build_dir": self.build_dir,
            "lock": self.lock,
        }

    def render(self) -> str:
        """Human text: a header, the resolved entry, then files, requests and jobs."""
        e = self.entry
        lines = [f"{self.name}  ({self.status.get('status', 'unknown')})"]
        if self.declared_at:
            lines.append(f"  declared at   {self.declared_at}")
        export = e["export"]
        lines += [
            f"  framework     {e['framework']} {e.get('framework_version') or ''}".rstrip(),
            f"  export        {export.get('path') or export.get('module')}:{export['function']}",
            f"  inputs        {_inputs(e['inputs'])}",
            f"  targets       {', '.join(_target(t) for t in e['targets'])}",
        ]
        if e.get("tags"):
            lines.append(f"  tags          {', '.join(e['tags'])}")
        if e.get("sources"):
            lines.append(f"  sources       {', '.join(e['sources'])}")
        for reason in self.status.get("reasons", []):
            lines.append(f"  stale because {reason['message']}")
        if self.lock is None:
            lines.append("  not built yet: run `neobuild package " + self.name + "`")
            return "\n".join(lines)
        lock = self.lock
        lines.append(f"  built from    git {lock.get('git_commit') or '(no commit)'}")
        lines.append(f"  fingerprint   {lock['fingerprint']}")
        lines.append(f"  archive       {lock['archive_path']}  {lock['archive']['sha256']}")
        lines.append("  files")
        for path, record in sorted(lock["files"].items()):
            lines.append(f"    {path}  {record['sha256']}  ({record['size']} bytes)")
        lines.append("  requests")
        for target, record in sorted(lock["requests"].items()):
            lines.append(f"    {target}: {record['path']}  job {record['job_name']}")
        jobs = lock.get("jobs") or {}
        if jobs:
            lines.append("  jobs")
            for target, job in sorted(jobs.items()):
                line = f"    {target}: {job['status']}  {job['name']}"
                if job.get("output"):
                    line += f" -> {job['output']}"
                if job.get("failure_reason"):
                    line += f": {job['failure_reason']}"
                lines.append(line)
        else:
            lines.append("  jobs          none submitted (`neobuild compile --submit`)")
        return "\n".join(lines)


def _inputs(inputs: dict[str, Any]) -> str:
    items = inputs.get("items") or []
    if inputs.get("form") == "none" or not items:
        return "(none)"
    return ", ".join(f"{i['name'] or f'input{n}'}={list(i['shape'])}" for n, i in enumerate(items))


def _target(target: dict[str, Any]) -> str:
    if target.get("device"):
        return str(target["device"])
    platform = target.get("platform") or {}
    return "/".join(str(v) for v in platform.values() if v)


def show(manifest_path: Path, name: str) -> ShowResult:
    """What neobuild knows about model ``name``.

    Raises:
        UsageError: no model is called ``name`` (with a did-you-mean).
        ManifestError, LockError: the manifest or neo.lock is invalid.
    """
    from neobuild import lockfile, pipeline
    from neobuild import manifest as manifest_mod
    from neobuild.model import repo_relative

    manifest = manifest_mod.load(manifest_path)
    if name not in manifest.models:
        from neobuild.errors import UsageError
        from neobuild.selection import select_models

        matches = select_models(manifest, [name])  # no match: raises with a did-you-mean
        raise UsageError(
            f"`show` takes one model name, not a pattern: {name!r}",
            hint=f"for example `neobuild show {matches[0].name}`",
        )
    model = manifest.models[name]
    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    plan = pipeline.plan_models(manifest, [model], lock).to_json()
    status: dict[str, Any] = next((m for m in plan["models"] if m["name"] == name), {})
    entry = lock.models.get(name)
    return ShowResult(
        name=name,
        declared_at=str(model.position) if model.position else None,
        entry=model.to_json(),
        status=status,
        lock=entry.to_json() if entry is not None else None,
        build_dir=repo_relative(manifest.root, pipeline.model_dir(manifest, model)),
    )
