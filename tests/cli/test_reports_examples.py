"""The CI examples only use commands and options the CLI really has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML

from neobuild.cli import app


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _options() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    commands: dict[str, Any] = group.commands  # type: ignore[attr-defined]
    options = {name: {o for p in cmd.params for o in p.opts} for name, cmd in commands.items()}
    options[""] = {o for p in group.params for o in p.opts}
    return options


_CALL = re.compile(r"(?:^|[\s;&|(])neobuild((?:[ \t]+[^\s;&|>)\"]+)+)", re.M)


def _neobuild_calls(workflow: Any) -> list[list[str]]:
    calls = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = re.sub(r"\$\{\{[^}]*\}\}", "X", step.get("run", ""))
            calls.extend(match.group(1).split() for match in _CALL.finditer(script))
    return calls


def test_github_workflow_uses_real_options(repo_root: Path) -> None:
    workflow = _load(repo_root / "examples" / "ci" / "github-actions.yml")
    assert list(workflow["jobs"]) == ["plan", "package", "compile"]
    assert workflow["jobs"]["package"]["needs"] == "plan"
    assert (
        "fromJSON(needs.plan.outputs.matrix)" in workflow["jobs"]["package"]["strategy"]["matrix"]
    )
    options = _options()
    calls = _neobuild_calls(workflow)
    used = {c[0] for c in calls}
    assert {"validate", "plan", "package", "compile"} <= used
    for call in calls:
        command, args = call[0], call[1:]
        assert command in options, command
        for arg in args:
            if arg.startswith("-"):
                assert arg in options[command] | options[""], f"neobuild {command} has no {arg}"
    compile_call = next(c for c in calls if c[0] == "compile")
    assert {"--submit", "--wait"} <= set(compile_call)


def test_pre_commit_hook(repo_root: Path) -> None:
    hooks = _load(repo_root / ".pre-commit-hooks.yaml")
    hook = next(h for h in hooks if h["id"] == "neobuild-validate")
    assert hook["entry"].split() == ["neobuild", "validate"]
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    assert "validate" in _options()
    files = re.compile(hook["files"])
    for path in ("neo.yaml", "teams/vision/neo.yaml", "neo.yml"):
        assert files.search(path), path
    for path in ("neo.yaml.bak", "xneo.yaml", "neo.lock"):
        assert not files.search(path), path


@pytest.mark.parametrize("doc", ["docs/ci.md"])
def test_docs_mention_every_env_var(repo_root: Path, doc: str) -> None:
    text = (repo_root / doc).read_text(encoding="utf-8")
    for name in (
        "NEOBUILD_CACHE_URL",
        "NEOBUILD_CACHE_READ_ONLY",
        "GITHUB_STEP_SUMMARY",
        "AWS_ENDPOINT_URL",
    ):
        assert name in text
