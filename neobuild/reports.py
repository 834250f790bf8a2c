"""CI reports of a ``package`` run (and of ``check``): JUnit XML and the GitHub step summary.

Both take the per-model outcomes of a run: a :class:`ModelResult` list, or any object with a
``models`` list of objects that have the same attributes (the build report). JUnit gets one
testcase per model and one per model and target (requests, and the smoke test when it ran), with
the failure message and the log tail. Text from logs is cleaned of ANSI colours and of
characters XML cannot hold, and values of secret-looking environment variables are masked.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from neobuild.atomic import atomic_write_bytes

#: The statuses a model can end a run in.
STATUSES = ("built", "fresh", "restored", "failed", "interrupted", "skipped")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|API_KEY", re.I)


@dataclass
class ModelResult:
    """What happened to one model in a run (filled by the build orchestration).

    Attributes:
        name: the model's name.
        status: one of :data:`STATUSES`.
        duration: seconds spent on the model.
        message: one line (or a few) saying what happened; the error message on failure.
        log_path: the export log, when there is one.
        log_tail: the last lines of that log.
        targets: ``(target key, status, message)`` per target; status ``failed`` fails it,
            ``skipped`` skips it, anything else passes.
        hint: what to do about a failure.
        smoke: the smoke test's status (``passed``, ``failed: …``, ``skipped``), or None
            when it was not part of the run.
    """

    name: str
    status: str
    duration: float = 0.0
    message: str = ""
    log_path: Path | None = None
    log_tail: str = ""
    targets: list[tuple[str, str, str]] = field(default_factory=list)
    hint: str | None = None
    smoke: str | None = None
    compile_check: str | None = None  # ``status: detail`` of the local compile check


class ModelOutcome(Protocol):
    """What the reports read from a model's result (ModelResult, or the build's report)."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def message(self) -> str: ...
    @property
    def log_path(self) -> Path | None: ...
    @property
    def log_tail(self) -> str: ...
    @property
    def targets(self) -> Sequence[tuple[str, str, str]]: ...


class HasModels(Protocol):
    @property
    def models(self) -> Sequence[ModelOutcome]: ...


Results = Iterable[ModelOutcome] | HasModels


def _outcomes(results: Results) -> list[ModelOutcome]:
    models = getattr(results, "models", None)
    if models is not None:
        return list(models)
    return list(results)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text hygiene


def _secret_values(env: Mapping[str, str]) -> list[str]:
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def clean_text(text: str, *, env: Mapping[str, str] | None = None) -> str:
    """Text fit for a report: no ANSI colours, no XML-illegal characters, secrets masked."""
    text = _ANSI.sub("", text)
    text = _NOT_XML.sub("\N{REPLACEMENT CHARACTER}", text)
    for secret in _secret_values(os.environ if env is None else env):
        text = text.replace(secret, "***")
    return text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


# --------------------------------------------------------------------------- JUnit


@dataclass(frozen=True)
class _Case:
    classname: str
    name: str
    status: str  # passed | failed | skipped
    time: float = 0.0
    message: str = ""
    details: str = ""
    out: str = ""


def _status_of(value: str) -> str:
    value = value.lower()
    if value.startswith(("failed", "error")):
        return "failed"
    if value.startswith(("skipped", "not run", "off")):
        return "skipped"
    return "passed"


def _cases(outcomes: Sequence[ModelOutcome]) -> list[_Case]:
    cases: list[_Case] = []
    for model in outcomes:
        hint = getattr(model, "hint", None)
        details = model.message
        if hint:
            details += f"\nhint: {hint}"
        if model.log_path is not None:
            details += f"\nlog: {model.log_path}"
        if model.log_tail:
            details += f"\n--- last lines of the log ---\n{model.log_tail}"
        status = (
            "failed"
            if model.status in ("failed", "interrupted")  # a cancelled run is no pass
            else "skipped"
            if model.status == "skipped"
            else "passed"
        )
        cases.append(
            _Case(
                classname="neobuild.package",
                name=model.name,
                status=status,
                time=model.duration,
                message=_first_line(model.message) or model.status,
                details=details if status != "passed" else "",
                out=f"{model.status}: {model.message}".rstrip(": ") if status == "passed" else "",
            )
        )
        for key, target_status, message in model.targets:
            tstatus = _status_of(target_status)
            cases.append(
                _Case(
                    classname=f"neobuild.package.{model.name}",
                    name=f"{model.name} [{key}]",
                    status=tstatus,
                    message=_first_line(message) or target_status,
                    details=message if tstatus != "passed" else "",
                    out=f"{target_status}: {message}" if tstatus == "passed" else "",
                )
            )
        smoke = getattr(model, "smoke", None)
        if smoke:
            sstatus = _status_of(smoke)
            cases.append(
                _Case(
                    classname=f"neobuild.package.{model.name}",
                    name=f"{model.name} [smoke test]",
                    status=sstatus,
                    message=_first_line(smoke),
                    details=smoke if sstatus != "passed" else "",
                )
            )
        check = getattr(model, "compile_check", None)
        if check:
            # A hint, not a failure of the build: unsupported/mismatch fail this testcase
            # only when --strict failed the model for it; otherwise they show as skipped.
            cstatus = (
                "passed"
                if check.startswith("passed")
                else "failed"
                if model.status == "failed" and not check.startswith("not-checked")
                else "skipped"
            )
            cases.append(
                _Case(
                    classname=f"neobuild.package.{model.name}",
                    name=f"{model.name} [compile check]",
                    status=cstatus,
                    message=_first_line(check),
                    details=check if cstatus == "failed" else "",
                    out=check if cstatus != "failed" else "",
                )
            )
    return cases


class CheckOutcome(Protocol):
    """What a JUnit report needs of one compile check (``checkresult.CheckResult``)."""

    @property
    def model(self) -> str: ...
    @property
    def seconds(self) -> float: ...
    @property
    def failed(self) -> bool: ...
    def summary(self) -> str: ...


def _check_cases(results: Iterable[CheckOutcome], *, strict: bool) -> list[_Case]:
    """One testcase per model of ``neobuild check``.

    ``passed`` passes; ``unsupported`` and ``mismatch`` fail under ``--strict`` and are
    skipped (with the reason) otherwise, as ``not-checked`` always is: the check is a
    hint, and without ``--strict`` it fails nothing.
    """
    cases = []
    for result in results:
        summary = result.summary()
        status = (
            "passed"
            if summary.startswith("passed")
            else "failed"
            if strict and result.failed
            else "skipped"
        )
        cases.append(
            _Case(
                classname="neobuild.check",
                name=result.model,
                status=status,
                time=result.seconds,
                message=_first_line(summary),
                details=summary if status == "failed" else "",
                out=summary if status == "passed" else "",
            )
        )
    return cases


def junit_xml(results: Results, *, suite: str = "neobuild package") -> bytes:
    """The JUnit XML document for a run (UTF-8 bytes, deterministic for equal input)."""
    return _suite_xml(_cases(_outcomes(results)), suite)


def check_junit_xml(results: Iterable[CheckOutcome], *, strict: bool) -> bytes:
    """The JUnit XML document for ``neobuild check`` (see :func:`_check_cases`)."""
    return _suite_xml(_check_cases(results, strict=strict), "neobuild check")


def _suite_xml(cases: Sequence[_Case], suite: str) -> bytes:
    failures = sum(1 for c in cases if c.status == "failed")
    skipped = sum(1 for c in cases if c.status == "skipped")
    total_time = sum(c.time for c in cases)
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{total_time:.3f}",
    }
    root = ET.Element("testsuites", {"name": suite, **counts})
    suite_el = ET.SubElement(root, "testsuite", {"name": suite, **counts})
    for case in cases:
        el = ET.SubElement(
            suite_el,
            "testcase",
            {
                "classname": case.classname,
                "name": clean_text(case.name),
                "time": f"{case.time:.3f}",
            },
        )
        if case.status == "failed":
            failure = ET.SubElement(
                el, "failure", {"message": clean_text(case.message), "type": "failure"}
            )
            failure.text = clean_text(case.details)
        elif case.status == "skipped":
            ET.SubElement(el, "skipped", {"message": clean_text(case.message)})
        if case.out:
            ET.SubElement(el, "system-out").text = clean_text(case.out)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(path: Path, results: Results, *, suite: str = "neobuild package") -> None:
    """Write the JUnit XML report of a run to ``path``, atomically.

    Args:
        path: where to write (parent directories are created).
        results: ModelResult objects, or an object with a ``models`` list of them.
        suite: the testsuite name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, junit_xml(results, suite=suite))


def write_check_junit(path: Path, results: Iterable[CheckOutcome], *, strict: bool) -> None:
    """Write the JUnit XML report of ``neobuild check`` to ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, check_junit_xml(results, strict=strict))


# --------------------------------------------------------------------------- step summary


def _cell(text: str, limit: int = 200) -> str:
    text = clean_text(" ".join(text.split()))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


_ICON = {
    "built": "✅",
    "fresh": "✔️",
    "restored": "♻️",
    "failed": "❌",
    "interrupted": "⏹️",
    "skipped": "⏭️",
}


def step_summary_markdown(results: Results, *, title: str = "neobuild package") -> str:
    """The markdown table of a run, as appended to ``$GITHUB_STEP_SUMMARY``.

    A *Compile check* column is added when any model ran the local compile check.
    """
    outcomes = _outcomes(results)
    counts = {s: sum(1 for m in outcomes if m.status == s) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no models"
    checked = any(getattr(m, "compile_check", None) for m in outcomes)
    lines = [
        f"### {title}",
        "",
        summary,
        "",
        "| Model | Status | Time | Targets |"
        + (" Compile check |" if checked else "")
        + " Message |",
        "|---|---|---:|---|" + ("---|" if checked else "") + "---|",
    ]
    for m in outcomes:
        targets = ", ".join(
            f"{key} ❌" if _status_of(status) == "failed" else key for key, status, _ in m.targets
        )
        check = f" {_cell(getattr(m, 'compile_check', None) or '', 120)} |" if checked else ""
        lines.append(
            f"| {_cell(m.name)} | {_ICON.get(m.status, '')} {m.status} | {m.duration:.1f}s "
            f"| {_cell(targets)} |{check} {_cell(m.message)} |"
        )
    return "\n".join(lines) + "\n\n"


def append_step_summary(
    results: Results, *, path: Path | None = None, title: str = "neobuild package"
) -> bool:
    """Append the run's markdown table to ``$GITHUB_STEP_SUMMARY`` (or ``path``).

    Returns:
        False (and writes nothing) when neither ``path`` nor the variable is set.
    """
    if path is None:
        env = os.environ.get("GITHUB_STEP_SUMMARY")
        if not env:
            return False
        path = Path(env)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(step_summary_markdown(results, title=title))
    return True
