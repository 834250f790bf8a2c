"""The result objects commands return: each has ``to_json`` (the ``--json`` document).

:class:`BuildReport` (``package``, one :class:`ModelReport` per model),
:class:`PlanOutput` (``plan``) and :class:`ValidateResult` (``validate``). The other
commands' results live beside the code that computes them (``verify.VerifyReport``,
``compilejobs.CompileResult``, ``checkresult.CheckReport``, ``show.ShowResult``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neobuild import __version__
from neobuild.errors import Problem

# The one line ``package`` prints when models were packaged without requests.
NO_REQUESTS_HINT = (
    "set compile.role_arn and compile.s3_prefix in neo.yaml (compile.region is optional: "
    "AWS_REGION is used without it) to render them"
)
NOT_RENDERED = "not rendered"


def no_requests_line(names: Sequence[str]) -> str:
    """``package``'s one line about models packaged without CreateCompilationJob requests."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    count = f"{len(names)} model{'s' if len(names) != 1 else ''}"
    return f"compilation requests not rendered for {count} ({shown}): {NO_REQUESTS_HINT}"


def json_text(document: Any) -> str:
    """How every ``--json`` document is printed: indented, keys in the order built.

    Not sorted, so that ordered mappings such as a model's inputs keep their declared
    order; the order is fixed by the code, so the output is deterministic.
    """
    return json.dumps(document, indent=2)


@dataclass
class ModelReport:
    """What happened to one model in this run."""

    name: str
    status: str  # built | fresh | restored | failed | skipped
    duration: float = 0.0
    message: str = ""
    hint: str | None = None
    log_path: Path | None = None
    log_tail: str = ""
    archive: str | None = None  # repo-relative path
    archive_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # exported file -> sha256
    targets: list[tuple[str, str, str]] = field(default_factory=list)  # (key, status, message)
    smoke: str | None = None
    warnings: list[str] = field(default_factory=list)
    compile_check: str | None = None  # ``status: detail`` of the local compile check
    compile_check_result: dict[str, Any] | None = None  # its figures, for --json

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "duration": round(self.duration, 3),
            "message": self.message,
            "hint": self.hint,
            "log": str(self.log_path) if self.log_path else None,
            "archive": self.archive,
            "archive_sha256": self.archive_sha256,
            "files": self.files,
            "targets": [{"target": k, "status": s, "message": m} for k, s, m in self.targets],
            "smoke": self.smoke,
            "warnings": self.warnings,
            "compile_check": self.compile_check_result,
        }


@dataclass
class BuildReport:
    """The outcome of one ``package`` run."""

    manifest: Path
    models: list[ModelReport]
    duration: float
    without_requests: list[str] = field(default_factory=list)  # built with no compile settings

    def count(self, status: str) -> int:
        return sum(1 for m in self.models if m.status == status)

    @property
    def ok(self) -> bool:
        return not any(m.status in ("failed", "skipped", "interrupted") for m in self.models)

    def summary(self) -> str:
        parts = [f"{self.count('built')} built"]
        for status, label in (
            ("restored", "restored from cache"),
            ("fresh", "up to date"),
            ("failed", "failed"),
            ("interrupted", "interrupted"),
            ("skipped", "not started"),
        ):
            if self.count(status):
                parts.append(f"{self.count(status)} {label}")
        return f"{', '.join(parts)} in {self.duration:.1f}s"

    def to_json(self) -> dict[str, Any]:
        return {
            "report_version": 1,
            "neobuild": __version__,
            "manifest": str(self.manifest),
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "summary": {
                s: self.count(s)
                for s in ("built", "restored", "fresh", "failed", "interrupted", "skipped")
            },
            "models": [m.to_json() for m in self.models],
            "requests_not_rendered": self.without_requests,
        }


@dataclass(frozen=True)
class PlanOutput:
    """What ``neobuild plan`` shows: a JSON document, its human text, and the stale count."""

    document: Any
    text: str
    stale_count: int
    warnings: tuple[str, ...] = ()  # the manifest's warnings, shown by `plan` too
    json_text: str | None = None  # the document as printed, when already rendered

    def to_json(self) -> Any:
        return self.document

    def to_json_text(self) -> str:
        """The document as ``--json`` prints it (:func:`json_text`)."""
        return self.json_text if self.json_text is not None else json_text(self.document)

    def render(self) -> str:
        return self.text


@dataclass(frozen=True)
class ValidateResult:
    """Every problem found in the manifest, and whether they fail validation."""

    manifest_path: Path
    problems: tuple[Problem, ...]
    strict: bool
    model_count: int
    promoted: int = 0  # warnings that --strict turned into errors

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not (self.strict and self.warnings)

    def to_json(self) -> dict[str, Any]:
        """The ``validate --json`` document (versioned like the other commands')."""
        return {
            "schema_version": 1,
            "manifest": str(self.manifest_path),
            "ok": self.ok,
            "models": self.model_count,
            "errors": self.errors,
            "warnings": self.warnings,
            "problems": [p.as_json() for p in self.problems],
        }

    def summary(self) -> str:
        if not self.problems:
            return f"{self.manifest_path}: {self.model_count} model(s), no problems"
        verdict = "ok" if self.ok else "invalid"
        promoted = f" ({self.promoted} of them warnings, under --strict)" if self.promoted else ""
        return (
            f"{self.manifest_path}: {verdict}: {self.errors} error(s){promoted}, "
            f"{self.warnings} warning(s)"
        )
