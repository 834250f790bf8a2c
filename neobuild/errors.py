"""The one exception hierarchy of neobuild, and the diagnostics it carries.

Every expected failure is a :class:`NeobuildError` with a message and, where it helps,
a hint that says what to do next. The CLI boundary (``cli.py``) turns them into a
message on stderr and the exit code the class names; nothing else prints them.
Library exceptions are wrapped where they enter: ``raise ExportError(...) from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Severity = Literal["error", "warning"]

# Exit codes, documented in the README and DESIGN.md.
EXIT_OK = 0
EXIT_FAILED = 1  # a build or a check failed
EXIT_BAD_INPUT = 2  # bad manifest, bad usage
EXIT_INTERNAL = 3  # a bug: crash log written
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Problem:
    """One diagnostic about an input file, with its position when known.

    ``path`` is the dotted location inside the document (``models.bert.framework``);
    ``line``/``col`` are 1-based and 0 when unknown.
    """

    message: str
    path: str = ""
    file: Path | None = None
    line: int = 0
    col: int = 0
    severity: Severity = "error"
    hint: str | None = None

    def location(self) -> str:
        """``FILE:LINE:COL``; FILE relative to the cwd when it lies below it."""
        if self.file is None:
            return ""
        shown = display_path(self.file)
        if self.line:
            return f"{shown}:{self.line}:{self.col}"
        return shown

    def render(self) -> str:
        """``FILE:LINE:COL: path: message`` (+ hint on its own line)."""
        parts = [p for p in (self.location(), self.path) if p]
        head = ": ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.severity == "warning":
            text = f"{text} [warning]"
        if self.hint:
            text = f"{text}\n    hint: {self.hint}"
        return text

    def as_json(self) -> dict[str, object]:
        return {
            "file": str(self.file) if self.file is not None else None,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it, else as given."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class NeobuildError(Exception):
    """Base of every expected failure. ``exit_code`` is what the CLI exits with."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(NeobuildError):
    """Bad command-line usage: unknown model, conflicting options."""

    exit_code = EXIT_BAD_INPUT


class ManifestError(NeobuildError):
    """neo.yaml (or an included file) is invalid; carries every problem at once."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self, message: str, *, problems: list[Problem] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[Problem] = list(problems or [])


class ExportError(NeobuildError):
    """A model's export entrypoint failed, timed out or could not be started."""


class EnvironmentSetupError(ExportError):
    """A per-model export environment could not be created."""


class ArtifactError(NeobuildError):
    """Exported files break Neo's rules for the framework or disagree with the manifest."""

    def __init__(
        self, message: str, *, problems: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[str] = list(problems or [])


class PackageError(NeobuildError):
    """An archive could not be written or read."""


class LockError(NeobuildError):
    """neo.lock is unreadable, invalid, or held by another run."""


class InvalidLockError(LockError):
    """``neo.lock`` does not parse or does not match the lock schema (``problems`` says where)."""

    def __init__(self, message: str, *, problems: list[Problem], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class RenderError(NeobuildError):
    """A template failed to render (missing variable, syntax error, bad override)."""


class RequestError(NeobuildError):
    """A CreateCompilationJob request breaks a rule of the API (pre-flight)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self, message: str, *, problems: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[str] = list(problems or [])


class SmokeTestError(NeobuildError):
    """The rendered inference handler failed on the exported model."""


class ScmError(NeobuildError):
    """A git question could not be answered (not a repo, unknown ref, shallow clone)."""

    exit_code = EXIT_BAD_INPUT


class AwsError(NeobuildError):
    """S3 or SageMaker refused a request, or a compilation job failed."""


class CacheError(NeobuildError):
    """The shared build cache could not be read or written."""


# --------------------------------------------------------------------------- compile jobs, compile check
# Raised by aws.py, awserrors.py, compile.py, jobwait.py and pipeline.py (compile check).


class ThrottledError(AwsError):
    """AWS answered with a throttling error even after botocore's own retries."""


class JobExistsError(AwsError):
    """CreateCompilationJob answered ResourceInUse: a job with this name exists."""


class CompileFailedError(AwsError):
    """One or more compilation jobs ended FAILED or STOPPED; ``result`` holds them all.

    ``result`` is the run's :class:`neobuild.compilejobs.CompileResult` (typed loosely here:
    errors.py imports nothing from neobuild).
    """

    def __init__(self, message: str, *, result: object, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class CompileCheckError(NeobuildError):
    """``--strict``: a model's compile check found an unsupported operator or a mismatch."""

    def __init__(self, message: str, *, compile_check: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.compile_check = compile_check  # the result, kept on the failed model's report


class Interrupted(NeobuildError):
    """The run was interrupted before this model finished; nothing of it was kept."""

    exit_code = EXIT_INTERRUPTED


class Signalled(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised by the CLI's own signal handler.

    A subclass, not ``KeyboardInterrupt`` itself: CPython ends a process with SIGINT
    (exit -2, not 130) when a bare ``KeyboardInterrupt`` was ever raised inside code run
    by ``exec`` of a string (dataclasses and namedtuples are made that way), even when
    neobuild caught it and reported the interrupted run. Its subclasses are exempt.
    """


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a ``package`` run; ``report`` says what finished.

    ``report`` is the run's :class:`neobuild.results.BuildReport` (typed loosely here:
    errors.py imports nothing from neobuild). The JUnit report is already written; the
    CLI prints ``report`` for ``--json`` and exits 130.
    """

    def __init__(self, report: _JsonReport) -> None:
        super().__init__("interrupted")
        self.report = report


class _JsonReport(Protocol):
    def to_json(self) -> dict[str, Any]: ...
