"""scm (real git repos in tmp dirs) and plan --since on top of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import (
    commit_all,
    fake_build,
    git,
    init_repo,
    make_manifest,
    make_model,
    seed_models,
    write,
)

from neobuild.errors import ScmError
from neobuild.lockfile import Lock
from neobuild.plan import plan
from neobuild.scm import changed_paths, merge_base, repo_state
from neobuild.staleness import affected_models


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    init_repo(root)
    seed_models(root, ["alpha", "beta"])
    write(root, "docs/readme.md", "hello\n")
    commit_all(root, "seed")
    return root


def test_repo_state(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    assert repo_state(repo) == (head, False)
    write(repo, "untracked.txt", "x")
    assert repo_state(repo) == (head, True)
    plain = tmp_path / "plain"
    plain.mkdir()
    assert repo_state(plain) == (None, None)


def test_changes_across_commits_staged_unstaged_untracked(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    write(repo, "models/alpha/net.py", "committed\n")
    commit_all(repo)
    write(repo, "models/beta/export.py", "unstaged\n")
    write(repo, "common/staged.py", "staged\n")
    git(repo, "add", "common/staged.py")
    write(repo, "common/untracked.py", "untracked\n")
    write(repo, "build/neo/ignored.bin", "ignored by .gitignore\n")
    assert changed_paths(repo, base) == {
        "models/alpha/net.py",
        "models/beta/export.py",
        "common/staged.py",
        "common/untracked.py",
    }
    assert merge_base(repo, base) == base
    assert changed_paths(repo, "HEAD") == {
        "models/beta/export.py",
        "common/staged.py",
        "common/untracked.py",
    }


def test_renames_and_deletions_report_both_paths(repo: Path) -> None:
    git(repo, "mv", "models/alpha/export.py", "models/alpha/main.py")
    (repo / "docs/readme.md").unlink()
    assert changed_paths(repo, "HEAD") == {
        "models/alpha/export.py",
        "models/alpha/main.py",
        "docs/readme.md",
    }
    commit_all(repo, "rename")
    assert changed_paths(repo, "HEAD~1") == {
        "models/alpha/export.py",
        "models/alpha/main.py",
        "docs/readme.md",
    }


def test_branches_use_the_merge_base(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, "models/beta/net.py", "feature work\n")
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "main")
    write(repo, "models/alpha/net.py", "main moved on\n")
    commit_all(repo, "main")
    git(repo, "checkout", "-q", "feature")
    # Only the branch's own change, not what main did since the fork.
    assert changed_paths(repo, "main") == {"models/beta/net.py"}


def test_manifest_in_a_subdirectory(repo: Path) -> None:
    sub = repo / "ml"
    write(sub, "models/x/export.py", "x\n")
    commit_all(repo, "sub")
    write(sub, "models/x/export.py", "y\n")
    write(repo, "outside.txt", "not under ml/\n")
    assert changed_paths(sub, "HEAD") == {"models/x/export.py"}


def test_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ScmError, match="unknown revision 'nope'") as err:
        changed_paths(repo, "nope")
    assert err.value.hint
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ScmError, match="not inside a git repository"):
        changed_paths(plain, "HEAD")
    empty = tmp_path / "empty"
    init_repo(empty)  # no commit yet
    assert repo_state(empty) == (None, None)
    with pytest.raises(ScmError, match="unknown revision 'HEAD'"):
        changed_paths(empty, "HEAD")


def test_shallow_clone_without_base_says_to_fetch(repo: Path, tmp_path: Path) -> None:
    for i in range(3):
        write(repo, f"models/alpha/f{i}.py", str(i))
        commit_all(repo, f"c{i}")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    assert changed_paths(clone, "HEAD") == set()  # HEAD itself is there
    with pytest.raises(ScmError) as err:
        changed_paths(clone, "HEAD~2")
    assert "shallow" in err.value.message
    assert err.value.hint is not None
    assert "git fetch --unshallow" in err.value.hint and "fetch-depth: 0" in err.value.hint
    # A branch fetched shallowly has no common ancestor here either.
    git(repo, "checkout", "-q", "-b", "other", "HEAD~3")
    write(repo, "models/beta/o.py", "o")
    commit_all(repo, "other")
    git(clone, "fetch", "-q", "--depth", "1", "origin", "other:other")
    with pytest.raises(ScmError, match="shallow") as err:
        changed_paths(clone, "other")
    assert err.value.hint is not None and "--unshallow" in err.value.hint


def _models() -> list:
    return [
        make_model("alpha", sources=["models/alpha/**", "common/**"]),
        make_model("beta", sources=["models/beta/**"]),
        make_model("gamma", sources=["models/gamma/*.py"], requirements_file="reqs/gamma.txt"),
    ]


def test_affected_models(repo: Path) -> None:
    manifest = make_manifest(repo, _models())
    got = affected_models(
        manifest,
        ["common/util.py", "models/beta/deleted.py", "reqs/gamma.txt", "docs/readme.md"],
    )
    assert got == {
        "alpha": ["common/util.py"],
        "beta": ["models/beta/deleted.py"],
        "gamma": ["reqs/gamma.txt"],
    }
    # A neo.yaml change affects every model without a lock entry saying otherwise.
    assert set(affected_models(manifest, ["neo.yaml"])) == {
        "alpha",
        "beta",
        "gamma",
    }
    lock = fake_build(manifest, Lock())
    assert affected_models(manifest, ["neo.yaml"], lock=lock) == {}
    edited = make_manifest(repo, [*_models()[:2], make_model("gamma", timeout=5)])
    assert set(affected_models(edited, ["neo.yaml"], lock=lock)) == {"gamma"}


def test_include_file_affects_only_its_models(repo: Path) -> None:
    team = repo / "teams/a/neo.yaml"
    models = [
        make_model("alpha", position=team),
        make_model("beta", position=repo / "neo.yaml"),
    ]
    manifest = make_manifest(repo, models, files=[team])
    assert list(affected_models(manifest, ["teams/a/neo.yaml"], models)) == ["alpha"]


def test_plan_since_selects_and_cross_checks(repo: Path) -> None:
    manifest = make_manifest(repo, _models())
    lock = fake_build(manifest, Lock())
    base = commit_all(repo, "built")
    write(repo, "models/beta/new.py", "untracked change\n")
    result = plan(
        manifest, list(manifest.models.values()), lock, since=base, templates_hash="sha256:tmpl"
    )
    assert [m.name for m in result.models] == ["beta"]
    assert result.models[0].changed_since == ("models/beta/new.py",)
    assert result.merge_base == base
    assert set(result.unaffected) == {"alpha", "gamma"}
    assert result.to_json()["since"] == base
    assert not result.is_stale("alpha")
    assert result.fingerprint("alpha").digest == lock.models["alpha"].fingerprint

    # A change git does not see (an ignored source) is still caught by the fingerprint.
    (repo / ".gitignore").write_text("build/\n.neobuild/\ncommon/generated.py\n")
    commit_all(repo, "ignore generated")
    write(repo, "common/generated.py", "git ignores me\n")
    result = plan(
        manifest, list(manifest.models.values()), lock, since="HEAD", templates_hash="sha256:tmpl"
    )
    names = {m.name: m for m in result.models}
    assert set(names) == {"alpha", "beta"}
    assert names["alpha"].changed_since == ()
    assert names["alpha"].status == "stale"
    assert any(r.detail == "common/generated.py" for r in names["alpha"].reasons)


def test_since_with_a_real_manifest_and_includes(tmp_path: Path) -> None:
    from neobuild import manifest as manifest_mod
    from neobuild.staleness import Reason

    root = tmp_path / "repo"
    init_repo(root)
    write(root, "models/a/export.py", "def export(o, i): pass\n")
    write(root, "models/b/export.py", "def export(o, i): pass\n")
    model = (
        '    framework: onnx\n    framework_version: "1.7.0"\n    inputs: {input: [1, 3, 8, 8]}\n'
    )
    write(
        root,
        "neo.yaml",
        "version: 1\ninclude: [teams/*/neo.yaml]\ndefaults:\n  targets: [ml_c5]\nmodels:\n"
        f"  a:\n{model}    export: models/a/export.py:export\n",
    )
    team = f"models:\n  b:\n{model}    export: ../../models/b/export.py:export\n"
    write(root, "teams/x/neo.yaml", team)
    loaded = manifest_mod.load(root / "neo.yaml", use_cache=False)
    lock = fake_build(loaded, Lock())
    commit_all(root, "built")

    write(root, "teams/x/neo.yaml", team + "    timeout: 60\n")
    write(root, "neo.yaml", (root / "neo.yaml").read_text() + "# a comment only\n")
    loaded = manifest_mod.load(root / "neo.yaml", use_cache=False)
    result = plan(
        loaded, list(loaded.models.values()), lock, since="HEAD", templates_hash="sha256:tmpl"
    )
    assert [m.name for m in result.models] == ["b"]
    item = result.get("b")
    assert item.reasons == (Reason("manifest-changed", "timeout"),)
    assert item.changed_since == ("neo.yaml", "teams/x/neo.yaml")
    assert result.unaffected == ("a",)
