"""The error boundary: expected errors print a message, the unexpected get a crash log."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from neobuild import __version__
from neobuild.console import Output
from neobuild.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ManifestError,
    NeobuildError,
)

T = TypeVar("T")


def report_error(out: Output, exc: NeobuildError) -> None:
    """Print an expected error: the message, every listed problem, then the hint."""
    if isinstance(exc, ManifestError) and exc.problems:
        for diagnostic in exc.problems:
            out.console.print(diagnostic.render(), markup=False, highlight=False)
        out.error(exc.message)  # "neo.yaml has N error(s)"
    else:  # other errors' messages already list their problems
        out.error(exc.message)
    if exc.hint:
        out.console.print(f"hint: {exc.hint}", markup=False, highlight=False)


def crash_dir() -> Path:
    import platformdirs  # only when a crash log is written

    return Path(platformdirs.user_log_dir("neobuild", appauthor=False))


def write_crash_log(exc: BaseException) -> Path:
    """Write the traceback and the environment's essentials; return the log's path."""
    text = "".join(
        [
            f"neobuild {__version__} crashed at {dt.datetime.now(dt.UTC).isoformat()}\n",
            f"python {sys.version.split()[0]} on {platform.platform()}\n",
            f"argv: {sys.argv!r}\ncwd: {os.getcwd()}\n\n",
            *traceback.format_exception(exc),
        ]
    )
    try:
        directory = crash_dir()
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(tempfile.gettempdir())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = directory / f"crash-{stamp}-{os.getpid()}.log"
    path.write_text(text, encoding="utf-8")
    return path


def guarded(out: Output, body: Callable[[], T]) -> T | int:
    """Run ``body``; turn every failure into a message and an exit code.

    Returns the body's result, or the exit code when it failed.
    """
    try:
        return body()
    except NeobuildError as exc:
        report_error(out, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("NEOBUILD_DEBUG"):
            raise
        path = write_crash_log(exc)
        out.error(f"internal error: {type(exc).__name__}: {exc}")
        out.console.print(
            f"A crash log was written to {path}. Please attach it to a bug report; "
            "rerun with NEOBUILD_DEBUG=1 to see the traceback.",
            markup=False,
        )
        return EXIT_INTERNAL
