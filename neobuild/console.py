"""Where output goes: human text to stderr, ``--json`` documents alone to stdout.

One place decides colour, verbosity and whether a live progress display is allowed
(a terminal, and ``CI`` unset), so commands never ask ``isatty`` themselves.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console


@dataclass
class Output:
    """The output settings of one CLI invocation."""

    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose
    err: Console | None = None

    def __post_init__(self) -> None:
        if self.err is None:
            self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def console(self) -> Console:
        assert self.err is not None
        return self.err

    @property
    def live(self) -> bool:
        """True when a live progress display may be drawn."""
        return self.console.is_terminal and not os.environ.get("CI") and self.verbosity >= 0

    def info(self, message: str) -> None:
        """A normal message (hidden with -q)."""
        if self.verbosity >= 0:
            self.console.print(message, markup=False)

    def detail(self, message: str) -> None:
        """A -v message."""
        if self.verbosity > 0:
            self.console.print(message, markup=False, style="dim")

    def warn(self, message: str) -> None:
        """A warning: shown even with -q."""
        self.console.print(f"warning: {message}", markup=False, style="yellow")

    def error(self, message: str) -> None:
        self.console.print(f"error: {message}", markup=False, style="bold red")

    def rich(self, renderable: Any) -> None:
        if self.verbosity >= 0:
            self.console.print(renderable)


def print_json(document: Any) -> None:
    """Write one JSON document to stdout, and nothing else goes there."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()
