"""Where things are, for tests in any folder (unit/, cli/, integration/)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent  # the neobuild checkout
EXAMPLES = ROOT / "examples"
ASSETS = TESTS / "assets"
GOLDEN = TESTS / "golden"
