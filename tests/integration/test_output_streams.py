"""Results on stdout, diagnostics on stderr, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from e2e_helpers import neobuild
from everyday_project import write_project


def test_plan_table_goes_to_stdout_so_grep_finds_the_row(tmp_path: Path) -> None:
    write_project(tmp_path)
    plan = subprocess.Popen(
        [sys.executable, "-m", "neobuild", "plan"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    grep = subprocess.run(
        ["grep", "resnet"], stdin=plan.stdout, capture_output=True, text=True, timeout=120
    )
    assert plan.stdout is not None and plan.stderr is not None
    plan.stdout.close()
    plan.wait(timeout=120)
    stderr = plan.stderr.read().decode()
    assert grep.returncode == 0, stderr
    assert grep.stdout.startswith("resnet") and "stale" in grep.stdout
    assert "resnet" not in stderr


def test_warnings_go_to_stderr_and_json_alone_to_stdout(tmp_path: Path) -> None:
    write_project(tmp_path)
    manifest = tmp_path / "neo.yaml"
    # A sources glob that matches nothing is a warning: stderr, never in the JSON.
    manifest.write_text(
        manifest.read_text().replace(
            "    tags: [vision]\n", "    tags: [vision]\n    sources: [nothing/**]\n", 1
        )
    )
    result = neobuild("plan", "--json", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["models"]
    assert "warning" in result.stderr and "nothing/**" in result.stderr
    human = neobuild("plan", cwd=tmp_path, timeout=120)
    assert "warning" not in human.stdout and "MODEL" in human.stdout


def test_quiet_keeps_the_result_and_drops_the_chatter(tmp_path: Path) -> None:
    write_project(tmp_path)
    result = neobuild("-q", "plan", cwd=tmp_path, timeout=120)
    assert "resnet" in result.stdout and result.stderr == ""
