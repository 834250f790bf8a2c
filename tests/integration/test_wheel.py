"""The built wheel installs into a fresh venv, ships the templates, and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from locations import EXAMPLES, ROOT

pytest_plugins = ["wheel_env"]
pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH (the checkout must not shadow the wheel)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_wheel_ships_templates_and_typing_marker(wheel: Path) -> None:
    templates = ROOT / "templates"
    expected = {
        "neobuild/templates/" + p.relative_to(templates).as_posix()
        for p in templates.rglob("*")
        if p.is_file()
    }
    assert expected, "templates/ is empty"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert expected <= names
    assert "neobuild/py.typed" in names
    assert "neobuild/_bootstrap.py" in names


def test_wheel_installs_and_validates_the_examples(plain_venv: Path, tmp_path: Path) -> None:
    venv = plain_venv
    exe = venv / "bin" / "neobuild"
    env = clean_env()

    help_run = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env)
    assert help_run.returncode == 0, help_run.stderr
    assert "package" in help_run.stdout

    examples = EXAMPLES
    work = tmp_path / "examples"
    shutil.copytree(examples, work, ignore=shutil.ignore_patterns("build", ".neobuild", "neo.lock"))
    # Run from an unrelated cwd so the installed package, not the checkout, is imported.
    run = subprocess.run(
        [str(exe), "-C", str(work), "validate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "no problems" in run.stderr or "ok" in run.stderr

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import neobuild, sys; print(neobuild.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert str(venv) in where.stdout
