"""A clean working tree: after `init` and a build, `git status` lists only what to commit."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import git, init_repo, neobuild, write_tree
from everyday_project import EXPORT, write_project

from neobuild import outputs
from neobuild.gitignore import ignore_build_dir, state_dir


def _status(root: Path) -> list[str]:
    return sorted(git("status", "--porcelain", "--untracked-files=all", cwd=root).splitlines())


def test_init_and_build_leave_only_what_the_user_commits(tmp_path: Path) -> None:
    write_tree(tmp_path, {"README.md": "mine\n", "models/relu/export.py": EXPORT})
    init_repo(tmp_path)
    assert neobuild("init", cwd=tmp_path).returncode == 0
    write_project(tmp_path, names=("resnet",))  # the user declares a model
    built = neobuild("package", "--all", cwd=tmp_path, timeout=600)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "build" / "neo" / "resnet" / "model.tar.gz").is_file()
    assert _status(tmp_path) == ["?? neo.lock", "?? neo.yaml"]
    assert not (tmp_path / "neo.lock.lock").exists()
    assert (tmp_path / ".neobuild" / "neo.lock.lock").exists()
    assert not (tmp_path / "build" / "neo" / outputs.STAGING).exists()
    # The user commits; a rebuild with a change leaves only the changed lock.
    git("add", "-A", cwd=tmp_path)
    git("commit", "-q", "-m", "model", cwd=tmp_path)
    export = tmp_path / "models" / "relu" / "export.py"
    export.write_text(EXPORT.replace('producer_name="t"', 'producer_name="u"'))
    assert neobuild("package", "--all", cwd=tmp_path, timeout=600).returncode == 0
    assert _status(tmp_path) == [" M models/relu/export.py", " M neo.lock"]


def test_a_build_dir_holding_user_files_is_not_ignored(tmp_path: Path) -> None:
    build_dir = tmp_path / "out"
    (build_dir / "notes").mkdir(parents=True)
    ignore_build_dir(build_dir)
    assert not (build_dir / ".gitignore").exists()  # hiding "notes" from git would lose it
    ours = build_dir / "resnet"
    ours.mkdir()
    outputs.mark(ours)
    (build_dir / "notes").rmdir()
    ignore_build_dir(build_dir)
    assert (build_dir / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_users_own_gitignore_in_the_build_dir_is_kept(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.tar.gz\n")
    ignore_build_dir(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == "*.tar.gz\n"
    state = state_dir(tmp_path)
    assert (state / ".gitignore").read_text().endswith("*\n")
