"""The built wheel, installed alone into a fresh venv: a pytest plugin for the slow tests.

Enable it in a test module with ``pytest_plugins = ["wheel_env"]``.

- ``wheel`` (session scope): ``python -m build --wheel --no-isolation`` of this checkout
  (no network: hatchling is in the dev venv).
- ``plain_venv`` (session scope): a new venv (no system site packages) into which the
  wheel is installed without extras, its dependencies coming from the index pip is
  configured with; what a user gets from a plain ``pip install neobuild``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (path,) = out.glob("neobuild-*.whl")
    return path


@pytest.fixture(scope="session")
def plain_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)]
    proc = subprocess.run(install, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    return venv
