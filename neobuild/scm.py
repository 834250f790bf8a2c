"""Git questions, answered through gitpython: the only module that imports ``git``.

Paths are returned relative to the directory asked about (normally the manifest
root, which may be a subdirectory of the git work tree), as posix strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import git

from neobuild.errors import ScmError

_UNSHALLOW_HINT = (
    "fetch more history: `git fetch --unshallow` (or `git fetch --deepen=N`), "
    "or in GitHub Actions set `fetch-depth: 0` on actions/checkout"
)


def _no_git() -> ScmError:
    return ScmError(
        "the git executable was not found",
        hint="install git, or point GIT_PYTHON_GIT_EXECUTABLE at it",
    )


def _open(root: Path) -> git.Repo:
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ScmError(
            f"{root} is not inside a git repository",
            hint="run neobuild from a git checkout, or drop --since",
        ) from exc


def _prefix(repo: git.Repo, root: Path) -> str:
    """``root`` relative to the work tree, with a trailing slash ("" at the top)."""
    top = Path(str(repo.working_tree_dir)).resolve()
    rel = root.resolve().relative_to(top).as_posix()
    return "" if rel == "." else rel + "/"


def repo_state(root: Path, *, ignore: Sequence[Path] = ()) -> tuple[str | None, bool | None]:
    """The HEAD commit and whether the work tree is dirty (untracked files count).

    Args:
        root: a directory inside the repository.
        ignore: paths whose changes do not make the tree dirty: neobuild's own
            outputs (neo.lock, the build directory, ``.neobuild/``).

    Returns:
        ``(None, None)`` when ``root`` is not in a git repository or has no commit
        yet: a build outside git records no commit rather than failing.
    """
    try:
        repo = git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None, None
    try:
        with repo:
            commit = repo.head.commit.hexsha
            top = Path(repo.working_tree_dir or root).resolve()
            excludes = []
            for path in ignore:
                try:
                    rel = path.resolve().relative_to(top).as_posix()
                except ValueError:
                    continue
                excludes.append(f":(exclude,top){rel}")
            status = repo.git.status("--porcelain", "--untracked-files=all", "--", ":/", *excludes)
            dirty = bool(status.strip())
    except (ValueError, git.GitCommandError, git.GitCommandNotFound):  # unborn HEAD, no git
        return None, None
    return commit, dirty


def merge_base(root: Path, since: str) -> str:
    """``git merge-base SINCE HEAD``.

    Raises:
        ScmError: not a repository, unknown ref, or history too shallow to find the base.
    """
    repo = _open(root)
    try:
        with repo:
            return _merge_base(repo, since)
    except git.GitCommandNotFound as exc:
        raise _no_git() from exc


def _merge_base(repo: git.Repo, since: str) -> str:
    shallow = _is_shallow(repo)
    try:
        repo.git.rev_parse("--verify", "--quiet", f"{since}^{{commit}}")
    except git.GitCommandError as exc:
        if shallow:
            raise ScmError(
                f"--since {since}: {since!r} is not in this shallow clone",
                hint=_UNSHALLOW_HINT,
            ) from exc
        raise ScmError(
            f"--since {since}: unknown revision {since!r}",
            hint="give a branch, tag or commit that exists here (e.g. origin/main); "
            "in CI, fetch it first",
        ) from exc
    try:
        base = str(repo.git.merge_base(since, "HEAD")).strip()
    except git.GitCommandError as exc:
        if shallow:
            raise ScmError(
                f"--since {since}: the common ancestor of {since} and HEAD is not in this "
                "shallow clone",
                hint=_UNSHALLOW_HINT,
            ) from exc
        raise ScmError(
            f"--since {since}: {since} and HEAD have no common ancestor",
            hint="give a ref that shares history with HEAD",
        ) from exc
    if not base:
        raise ScmError(f"--since {since}: no merge base with HEAD", hint=_UNSHALLOW_HINT)
    return base


def _is_shallow(repo: git.Repo) -> bool:
    try:
        return bool(repo.git.rev_parse("--is-shallow-repository").strip() == "true")
    except git.GitCommandError:
        return False


def changed_paths(root: Path, since: str) -> set[str]:
    """Files changed between ``git merge-base SINCE HEAD`` and the work tree.

    Includes staged and unstaged changes, deletions, untracked files (not ignored
    ones), and both sides of renames. Paths are relative to ``root``; changes
    outside ``root`` are left out.

    Raises:
        ScmError: not a repository, unknown ref, or a shallow clone without the base.
    """
    repo = _open(root)
    try:
        with repo:
            return _changed_paths(repo, root, since)
    except git.GitCommandNotFound as exc:
        raise _no_git() from exc


def _changed_paths(repo: git.Repo, root: Path, since: str) -> set[str]:
    base = _merge_base(repo, since)
    prefix = _prefix(repo, root)
    try:
        # --no-renames lists a rename as a deletion plus an addition: both paths.
        diff = repo.git.diff("--name-only", "--no-renames", "-z", "--no-ext-diff", base, "--", ".")
        untracked = repo.git.ls_files("--others", "--exclude-standard", "-z", "--full-name")
    except git.GitCommandError as exc:
        raise ScmError(
            f"--since {since}: git diff failed: {exc.stderr.strip() or exc}",
            hint="check that `git diff` works in this checkout",
        ) from exc
    # `git diff` paths are relative to the top of the work tree.
    paths = {p for p in diff.split("\0") if p} | {p for p in untracked.split("\0") if p}
    return {p[len(prefix) :] for p in paths if p.startswith(prefix)}
