"""Where output goes: results on stdout, diagnostics on stderr.

A command's result (the plan table, verify's drifts, compile's jobs, ``show``, or a
``--json`` document) goes to stdout, so ``neobuild plan | grep resnet`` finds the row;
progress, warnings and errors go to stderr, as git, DVC and terraform do.

One place decides colour, verbosity and whether a live progress display is allowed
(a terminal, and ``CI`` unset), so commands never ask ``isatty`` themselves.

``rich`` is imported only when something needs it (a terminal, forced colour, or a
rich renderable): plain lines to a pipe or a CI log are written directly, which keeps
the start-up of ``plan --json`` and a no-op ``package`` short.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: Environment variables with which rich would style output that is not a terminal.
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass
class Output:
    """The output settings of one CLI invocation."""

    verbosity: int = 0  # -2 errors only, -1 quiet, 0 normal, 1+ verbose
    err: Console | None = None

    @property
    def console(self) -> Console:
        """The rich console on stderr (created, and rich imported, on first use)."""
        if self.err is None:
            from rich.console import Console

            self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        return self.err

    def _plain(self) -> bool:
        """True when a line can go straight to stderr: no console yet, no styling wanted."""
        if self.err is not None:
            return False
        if any(os.environ.get(name) for name in _RICH_ENV):
            return False
        try:
            return not sys.stderr.isatty()
        except (AttributeError, ValueError):  # a replaced or closed stderr
            return False

    def _print(self, message: str, style: str | None = None) -> None:
        if self._plain():
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        else:
            self.console.print(message, markup=False, style=style)

    @property
    def live(self) -> bool:
        """True when a live progress display may be drawn."""
        return self.console.is_terminal and not os.environ.get("CI") and self.verbosity >= 0

    def info(self, message: str) -> None:
        """A normal message (hidden with -q)."""
        if self.verbosity >= 0:
            self._print(message)

    def detail(self, message: str) -> None:
        """A -v message."""
        if self.verbosity > 0:
            self._print(message, style="dim")

    def warn(self, message: str) -> None:
        """A warning: shown even with -q (not with -qq)."""
        if self.verbosity >= -1:
            self._print(f"warning: {message}", style="yellow")

    def error(self, message: str) -> None:
        self._print(f"error: {message}", style="bold red")

    def rich(self, renderable: Any) -> None:
        """A rich renderable on stderr (hidden with -q)."""
        if self.verbosity >= 0:
            self.console.print(renderable)

    def result(self, text: str) -> None:
        """A command's result: plain text on stdout, shown even with -q."""
        if text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()


def print_json(document: Any) -> None:
    """Write one JSON document to stdout, and nothing else goes there.

    Keys keep the order the document was built in (fixed by the code, so the output is
    deterministic): not sorted, so that ordered mappings such as a model's inputs keep
    their declared order.
    """
    from neobuild.results import json_text  # here: `--help` needs none of results.py

    print_json_text(json_text(document))


def print_json_text(text: str) -> None:
    """Write one rendered JSON document (:func:`neobuild.results.json_text`) to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
