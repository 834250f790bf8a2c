"""Shared fixtures: every test runs with its own HOME, cache dir and git identity."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "neobuild tests")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tests@neobuild.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "neobuild tests")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tests@neobuild.invalid")
    monkeypatch.delenv("NEOBUILD_DEBUG", raising=False)
    monkeypatch.delenv("NEOBUILD_CACHE_URL", raising=False)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    # Per-model export environments are expensive: share them across the session
    # unless a test points NEOBUILD_CACHE_DIR somewhere else itself.
    shared = Path(tmp_path_factory.getbasetemp()).parent / "neobuild-shared-cache"
    monkeypatch.setenv("NEOBUILD_CACHE_DIR", str(shared))


@pytest.fixture
def repo_root() -> Path:
    """The neobuild source checkout (for examples/ and templates/)."""
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mxnet_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv holding MXNet 1.9.1 (made once per machine; see mxnet_env)."""
    from mxnet_env import mxnet_venv_python

    return mxnet_venv_python(Path(tmp_path_factory.getbasetemp()).parent / "neobuild-mxnet-venv")
