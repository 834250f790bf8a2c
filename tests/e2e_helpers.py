"""Helpers for the end-to-end tests: real repositories in temp dirs, the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# Fixed git dates make commits (and so neo.lock's git_commit) equal across copies.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "neobuild tests",
    "GIT_AUTHOR_EMAIL": "tests@neobuild.invalid",
    "GIT_COMMITTER_NAME": "neobuild tests",
    "GIT_COMMITTER_EMAIL": "tests@neobuild.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
}


def neobuild(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a subprocess (``python -m neobuild``)."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    full_env.pop("NEOBUILD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "neobuild", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def init_repo(path: Path) -> None:
    git("init", "-q", "-b", "main", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "init", cwd=path)


def copy_examples(dest: Path, *, own_envs: frozenset[str] = frozenset({"mxnet-mlp"})) -> Path:
    """The examples as a git repo at ``dest``.

    Models not in ``own_envs`` export with the test interpreter (which has every
    framework but MXNet), so the suite does not build a venv per framework.
    """
    shutil.copytree(
        EXAMPLES, dest, ignore=shutil.ignore_patterns("build", ".neobuild", "neo.lock", "ci")
    )
    yaml = YAML()
    yaml.preserve_quotes = True
    manifest = dest / "neo.yaml"
    data = yaml.load(manifest)
    for name, model in data["models"].items():
        if name not in own_envs:
            model.pop("requirements", None)
    with manifest.open("w") as fh:
        yaml.dump(data, fh)
    init_repo(dest)
    return dest


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` report on stdout (stdout must hold nothing else)."""
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - a failure message
        raise AssertionError(
            f"stdout is not JSON:\n{result.stdout}\n--- stderr\n{result.stderr}"
        ) from exc
    return data
