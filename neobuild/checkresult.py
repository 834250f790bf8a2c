"""What a compile check found: its result types, statuses and how outputs are compared.

:class:`CheckResult` is one model's outcome (``passed``, ``unsupported``, ``mismatch``
or ``not-checked``), :class:`CheckReport` the outcome of ``neobuild check``, and
:func:`compare` judges the compiled model's outputs against the framework's within
:data:`RTOL`/:data:`ATOL`. Running the check lives in :mod:`neobuild.compilecheck`.

See docs/compile-check.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ATOL",
    "MISMATCH",
    "NOT_CHECKED",
    "PASSED",
    "RTOL",
    "STATUSES",
    "UNSUPPORTED",
    "CheckReport",
    "CheckResult",
    "compare",
]

PASSED = "passed"
UNSUPPORTED = "unsupported"
MISMATCH = "mismatch"
NOT_CHECKED = "not-checked"
STATUSES = (PASSED, UNSUPPORTED, MISMATCH, NOT_CHECKED)

#: Floating outputs match when ``|compiled - reference| <= ATOL + RTOL * |reference|``
#: everywhere (numpy's ``allclose``); integer and boolean outputs must be equal.
RTOL = 1e-4
ATOL = 1e-4


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one model's compile check.

    Attributes:
        model: the model's name.
        status: ``passed``, ``unsupported``, ``mismatch`` or ``not-checked``.
        detail: one line: the operators, the difference and where, or why not checked.
        compiler: what compiled it (``apache-tvm 0.27.0.post1``), when something did.
        ops: the operators TVM's frontend refused (``unsupported``).
        max_abs: the largest absolute difference over all outputs (when compared).
        max_rel: the largest relative difference (``|a - b| / |reference|``, reference ≠ 0).
        where: the worst element: ``output 0 [0, 3]``.
        seconds: wall time of the whole check; ``timings``: its steps.
    """

    model: str
    status: str
    detail: str = ""
    compiler: str | None = None
    ops: tuple[str, ...] = ()
    max_abs: float | None = None
    max_rel: float | None = None
    where: str | None = None
    seconds: float = 0.0
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """True for the results ``--strict`` fails the build on."""
        return self.status in (UNSUPPORTED, MISMATCH)

    def summary(self) -> str:
        """``status: detail``, the value recorded in neo.lock and shown in reports."""
        return f"{self.status}: {self.detail}" if self.detail else self.status

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail,
            "compiler": self.compiler,
            "ops": list(self.ops),
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "where": self.where,
            "rtol": RTOL,
            "atol": ATOL,
            "seconds": round(self.seconds, 3),
            "timings": dict(self.timings),
        }


# --------------------------------------------------------------------------- comparison


def compare(
    reference: Sequence[Any], compiled: Sequence[Any], *, rtol: float = RTOL, atol: float = ATOL
) -> tuple[str, str, tuple[float | None, float | None, str | None]]:
    """Compare outputs in order; ``(status, detail, (max_abs, max_rel, where))``.

    Outputs whose sizes agree are compared flat in the reference's shape (TL2cgen adds
    unit axes that XGBoost leaves out). ``where`` names the worst element: the one
    furthest outside the tolerance, else the largest absolute difference.
    """
    import numpy as np

    if len(reference) != len(compiled):
        return (
            MISMATCH,
            f"{len(compiled)} output(s) from the compiled model, {len(reference)} from the framework",
            (None, None, None),
        )
    max_abs = max_rel = 0.0
    worst_where: str | None = None
    worst_excess = -math.inf
    failed_at: str | None = None
    for index, (ref_raw, out_raw) in enumerate(zip(reference, compiled, strict=True)):
        ref = np.asarray(ref_raw)
        out = np.asarray(out_raw)
        if ref.size != out.size:
            return (
                MISMATCH,
                f"output {index}: shape {list(out.shape)} from the compiled model, "
                f"{list(ref.shape)} from the framework",
                (None, None, f"output {index}"),
            )
        out = out.reshape(ref.shape)
        if ref.size == 0:
            continue
        exact = ref.dtype.kind in "biu" and out.dtype.kind in "biu"
        a = ref.astype(np.float64)
        b = out.astype(np.float64)
        diff = np.abs(a - b)
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)
        allowed = np.zeros_like(a) if exact else atol + rtol * np.abs(a)
        excess = diff - allowed
        flat = int(np.argmax(excess))
        position = [int(i) for i in np.unravel_index(flat, ref.shape)]
        here = f"output {index} {position}"
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(a != 0, diff / np.abs(a), 0.0)
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float(rel.max()))
        if float(excess.flat[flat]) > worst_excess:
            worst_excess = float(excess.flat[flat])
            worst_where = here
        if failed_at is None and float(excess.flat[flat]) > 0:
            failed_at = here
    measured = f"max abs diff {max_abs:.3g}, max rel diff {max_rel:.3g}"
    if failed_at is not None:
        return (
            MISMATCH,
            f"{measured}, worst at {worst_where} (tolerance rtol={rtol:g}, atol={atol:g})",
            (max_abs, max_rel, worst_where),
        )
    return (
        PASSED,
        f"{measured} (within rtol={rtol:g}, atol={atol:g})",
        (max_abs, max_rel, worst_where),
    )


# --------------------------------------------------------------------------- neobuild check


@dataclass(frozen=True)
class CheckReport:
    """The outcome of ``neobuild check``: one result per selected model."""

    results: tuple[CheckResult, ...]
    strict: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.strict and any(r.failed for r in self.results))

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def render(self) -> str:
        lines = [f"{r.model}: {r.summary()}" for r in self.results]
        counts = ", ".join(f"{self.count(s)} {s}" for s in STATUSES if self.count(s))
        lines.append(f"compile check: {counts or 'no models'} in {self.duration:.1f}s")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "strict": self.strict,
            "duration": round(self.duration, 3),
            "summary": {s: self.count(s) for s in STATUSES},
            "models": [{"name": r.model, **r.to_json()} for r in self.results],
        }
