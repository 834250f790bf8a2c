"""Problems as the user reads them: collected with positions, deduplicated, capped.

Also the few words every check uses to describe a value or a path in a message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from neobuild import neo
from neobuild.errors import Problem, Severity
from neobuild.manifest.positions import Doc, ModelSource, PathKey, dotted
from neobuild.model import FRAMEWORKS

#: Problems of one kind listed before the rest are only counted.
SHOWN = 20


@dataclass
class Reporter:
    """Collects every problem, positioned where its value was written.

    A value in ``defaults`` that is wrong for many models is reported once, naming the
    others; past ``SHOWN`` problems of one kind (same file, container and severity) the
    rest are only counted, and :meth:`sorted_problems` adds one "and N more" for them.
    """

    docs: list[Doc]  # every file read, top level first: the order of problems
    problems: list[Problem] = field(default_factory=list)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)
    _shared: dict[tuple[Any, ...], list[str]] = field(default_factory=dict)
    # problems of one kind (same file, same container, same severity) past SHOWN:
    # key -> [count, doc, container path]
    _counts: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _more: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)

    def report(
        self,
        doc: Doc,
        path: PathKey,
        message: str,
        *,
        hint: str | None = None,
        severity: Severity = "error",
        at: str = "value",
        shown: PathKey | None = None,
    ) -> None:
        line, col = doc.position(path, at=at)
        where = dotted(shown if shown is not None else path)
        key = (doc.index, line, col, where, message)
        if key in self._seen:
            return
        self._seen.add(key)
        inherited = shown is not None and shown[:2] != path[:2]  # written in a defaults block
        if inherited and shown is not None:
            # One value in defaults, many models: report it once, naming the others.
            shared = (doc.index, line, col, message, severity)
            if shared in self._shared:
                self._shared[shared].append(str(shown[1]))
                return
            self._shared[shared] = []
        shown_path = shown if shown is not None else path
        kind = (doc.index, dotted(shown_path[:-1]), severity)
        count = self._counts[kind] = self._counts.get(kind, 0) + 1
        if count > SHOWN:
            more = self._more.setdefault(kind, [0, doc, path[:-1], severity])
            more[0] += 1
            return
        self.problems.append(
            Problem(
                message,
                path=where,
                file=doc.path,
                line=line,
                col=col,
                severity=severity,
                hint=hint,
            )
        )

    def report_model(
        self,
        src: ModelSource,
        sub: PathKey,
        message: str,
        *,
        hint: str | None = None,
        severity: Severity = "error",
        at: str = "value",
    ) -> None:
        """Report on a merged model value, positioned where it was written."""
        doc, full = src.locate(sub)
        if full == src.path and sub:  # not written anywhere: point at the model's name
            at = "key"
        self.report(doc, full, message, hint=hint, severity=severity, at=at, shown=src.path + sub)

    def sorted_problems(self) -> list[Problem]:
        order = {doc.path: doc.index for doc in self.docs}
        problems = [
            Problem(
                f"and {count} more problem(s) like the ones above, not shown",
                path=where,
                file=doc.path,
                line=doc.position(container)[0],
                col=doc.position(container)[1],
                severity=severity,
                hint=f"the first {SHOWN} are listed; fix them and run validate again",
            )
            for (_, where, _), (count, doc, container, severity) in self._more.items()
        ]
        for p in self.problems:
            key = (order.get(p.file, -1) if p.file else -1, p.line, p.col, p.message, p.severity)
            others = self._shared.get(key)
            if others:
                names = ", ".join(others[:3]) + (
                    f" and {len(others) - 3} more" if len(others) > 3 else ""
                )
                p = dataclasses.replace(p, message=f"{p.message} (also in models {names})")
            problems.append(p)
        return sorted(
            problems,
            key=lambda p: (order.get(p.file, -1) if p.file else -1, p.line, p.col, p.path),
        )

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def count_more(self, doc: Doc, container: PathKey, count: int) -> None:
        if count:
            kind = (doc.index, dotted(container), "error")
            more = self._more.setdefault(kind, [0, doc, container, "error"])
            more[0] += count


def short(value: str, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


REQUIRED_HINTS = {
    "version": "add `version: 1` at the top of the file",
    "models": "add `models:` with at least one model",
    "export": "add export: path/to/export.py:function",
    "framework": f"add framework: one of {', '.join(FRAMEWORKS)}",
    "targets": "add targets: [ml_c5] (or put targets in defaults)",
    "os": "add os: LINUX or ANDROID",
    "arch": f"add arch: one of {', '.join(neo.PLATFORM_ARCH)}",
    "url": "add url: s3://bucket/prefix",
    "security_group_ids": "add security_group_ids: [sg-…]",
    "subnets": "add subnets: [subnet-…]",
}
