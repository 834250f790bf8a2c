"""The install routes docs/install.md documents work: a git URL, a path, the CI example
and the pre-commit hooks. (The wheel route is tests/test_wheel.py.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import neobuild
from everyday_project import write_project
from locations import ROOT
from ruamel.yaml import YAML


def _pip_install(spec: str, target: Path) -> None:
    """Install neobuild alone (its dependencies are in this venv already, no network)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            spec,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr


def _runs_from(target: Path, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import neobuild, sys; print(neobuild.__file__); "
            "from neobuild.cli import main; sys.argv=['neobuild', 'validate']; main()",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[0]


@pytest.mark.slow
@pytest.mark.parametrize("route", ["git", "path"])
def test_pip_installs_neobuild_from_a_git_url_or_a_path(route: str, tmp_path: Path) -> None:
    spec = f"git+file://{ROOT}" if route == "git" else str(ROOT)
    if route == "git" and not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    target = tmp_path / "site"
    _pip_install(spec, target)
    project = tmp_path / "project"
    write_project(project)
    assert _runs_from(target, project).startswith(str(target))
    assert (target / "neobuild" / "templates").is_dir() or any(target.rglob("*.j2"))


def test_the_ci_example_installs_from_the_git_repository() -> None:
    workflow = YAML(typ="safe").load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    installs = [
        step["run"]
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "pip install" in str(step.get("run", ""))
    ]
    assert installs
    for run in installs:
        assert re.fullmatch(
            r'pip install "neobuild\[aws\] @ git\+https://github\.com/\$\{\{ env\.NEOBUILD_REPO \}\}'
            r'@\$\{\{ env\.NEOBUILD_REF \}\}"',
            run.strip(),
        ), run
    assert re.fullmatch(r"[0-9a-f]{40}", workflow["env"]["NEOBUILD_REF"])  # a commit, not a tag


def test_the_pre_commit_hook_and_its_snippets(tmp_path: Path) -> None:
    (hook,) = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "neobuild-validate" and hook["pass_filenames"] is False
    assert re.search(hook["files"], "teams/vision/neo.yaml")
    install = (ROOT / "docs" / "install.md").read_text()
    snippets = re.findall(r"```yaml\n(repos:.*?)```", install, re.S)
    assert len(snippets) == 2
    remote, local = (YAML(typ="safe").load(s)["repos"][0] for s in snippets)
    assert remote["hooks"][0]["id"] == hook["id"] and "v0.1.0" not in remote["rev"]
    assert local["repo"] == "local" and local["hooks"][0]["entry"] == hook["entry"]
    # The hook's entry, run as pre-commit runs it (no file names), checks the manifest.
    write_project(tmp_path)
    args = hook["entry"].split()[1:]
    assert neobuild(*args, cwd=tmp_path, timeout=120).returncode == 0
    (tmp_path / "neo.yaml").write_text("version: 1\nmodels: {a: {framework: pytorh}}\n")
    assert neobuild(*args, cwd=tmp_path, timeout=120).returncode == 2
