"""Smaller holes: tag characters, the exports' stale temporary folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import VALID, make_repo, run

from neobuild import preflight
from neobuild.export import WORK_PREFIX, sweep_stale_work


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("team", "vision", True),
        ("team", "a\u00a0b\u3000c", True),  # Unicode space separators are \p{Z}
        ("te\nam", "vision", False),
        ("team", "vi\tsion", False),
        ("team", "line\u2028sep", True),
        ("team", "bell\x07", False),
    ],
)
def test_compile_tags_follow_the_api_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, ok: bool
) -> None:
    import json

    repo = make_repo(tmp_path / "repo")
    tags = json.dumps({key: value})  # JSON is YAML: escapes stay escapes
    (repo / "neo.yaml").write_text(
        VALID.replace("compile: {tags: {team: vision}}", f"compile: {{tags: {tags}}}")
    )
    outcome = run(repo, "validate")
    print(f"compile tag {key!r}: {value!r} -> validate exit {outcome.code}")
    assert outcome.code == (0 if ok else 2), outcome.output
    if not ok:
        assert "does not match the Tag" in outcome.output
    for module in (preflight._regex_module, None):  # with and without the regex package
        monkeypatch.setattr(preflight, "_regex_module", module)
        check = preflight._Checker()
        preflight._check_tags(check, [{"Key": key, "Value": value}])
        assert (not check.problems) == ok, check.problems


def test_stale_export_folders_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f"{WORK_PREFIX}{dead.pid}-abc",
            "alive": f"{WORK_PREFIX}{alive.pid}-def",
            "mine": f"{WORK_PREFIX}{os.getpid()}-ghi",
            "old-unnamed": f"{WORK_PREFIX}x1y2z3",
            "new-unnamed": f"{WORK_PREFIX}q7r8s9",
            "other": "not-neobuild-123",
        }
        for name in names.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "spec.json").write_text("{}")
        two_days = time.time() - 2 * 24 * 3600
        os.utime(tmp_path / names["old-unnamed"], (two_days, two_days))
        removed = sweep_stale_work(tmp_path, force=True)
        print("swept:", removed)
        assert sorted(removed) == sorted([names["dead"], names["old-unnamed"]])
        left = {p.name for p in tmp_path.iterdir()}
        assert left == set(names.values()) - set(removed)
    finally:
        alive.kill()
        alive.wait()
