"""The corpus of invalid manifests: every problem with its exact position, path and message.

Each file in ``assets/manifests/invalid/`` is a neo.yaml followed by the problems it must
produce, one ``# expect: LINE:COL PATH: MESSAGE`` comment each (``[warning]`` marks a
warning), optionally followed by ``#   hint: HINT``. The manifest is copied into a small
repository holding ``m/export.py``, ``m/requirements.txt`` and ``tpl/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from locations import ASSETS

from neobuild import manifest
from neobuild.errors import ManifestError

CORPUS = ASSETS / "manifests" / "invalid"
CASES = sorted(CORPUS.glob("*.yaml"))
_EXPECT = re.compile(r"# expect: (\d+):(\d+) ([^ ]*): (.*)")


def _expected(text: str) -> list[tuple[int, int, str, str, str, str | None]]:
    out: list[tuple[int, int, str, str, str, str | None]] = []
    for line in text.splitlines():
        match = _EXPECT.fullmatch(line)
        if match:
            message, severity = match[4], "error"
            if message.endswith(" [warning]"):
                message, severity = message.removesuffix(" [warning]"), "warning"
            out.append((int(match[1]), int(match[2]), match[3], message, severity, None))
        elif line.startswith("#   hint: "):
            *head, _ = out[-1]
            out[-1] = (*head, line.removeprefix("#   hint: "))  # type: ignore[assignment]
    return out


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "export.py").write_text("def export(output_dir, inputs):\n    pass\n")
    (tmp_path / "m" / "requirements.txt").write_text("numpy\n")
    (tmp_path / "tpl").mkdir()
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_invalid_manifest(case: Path, repo: Path) -> None:
    target = repo / "neo.yaml"
    shutil.copy(case, target)
    expected = _expected(case.read_text())
    assert expected, f"{case.name} declares no expected problem"

    loaded, problems = manifest.check(target, use_cache=False)

    got = [(p.line, p.col, p.path, p.message, p.severity, p.hint) for p in problems]
    assert got == expected
    assert all(p.file == target for p in problems)
    if any(p.severity == "error" for p in problems):
        assert loaded is None
        with pytest.raises(ManifestError) as info:
            manifest.load(target, use_cache=False)
        assert info.value.problems == problems
