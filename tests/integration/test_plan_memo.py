"""The plan memo: a plain plan with nothing changed answers from ``.neobuild/planmemo``,
and any change to what the plan read makes it plan from scratch again.

One real ``package --all`` (tiny ONNX exports) builds a repository; each test works on a
copy, primes the memo, checks that the next plan is a hit (the planning code is not
called), makes one change, and checks that the memo-backed plan equals a plan computed
from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_helpers import neobuild, write_tree
from everyday_project import EXPORT, HEADER

from neobuild import api, depends, planmemo
from neobuild.results import PlanOutput

MODELS = """\
  alpha:
    framework: onnx
    framework_version: "1.7.0"
    export: models/alpha/export.py:export
    sources: [models/alpha/**, common/**]
    inputs: {input: [1, 3, 8, 8]}
    targets: [ml_c5]
    templates_dir: templates
  beta:
    framework: onnx
    framework_version: "1.7.0"
    export: models/beta/export.py:export
    inputs: {input: [1, 3, 8, 8]}
    targets: [ml_c5, ml_m5]
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("memo") / "repo"
    write_tree(
        root,
        {
            "neo.yaml": HEADER + MODELS,
            "models/alpha/export.py": EXPORT,
            "models/beta/export.py": EXPORT,
            "common/util.py": "SHARED = 1\n",
            "templates/README": "overrides go here\n",
        },
    )
    result = neobuild("package", "--all", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def repo(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    shutil.rmtree(root / ".neobuild", ignore_errors=True)
    # Every file here was just written: trust them (the racy window is tested below).
    monkeypatch.setattr(depends, "RACY_WINDOW_NS", 0)
    return root


def _plan(root: Path, **kw: object) -> PlanOutput:
    return api.plan(manifest_path=root / "neo.yaml", **kw)  # type: ignore[arg-type]


def _primed(root: Path, monkeypatch: pytest.MonkeyPatch) -> PlanOutput:
    """Plan once (writing the memo), then check the next plan is answered by the memo."""
    first = _plan(root)
    assert planmemo.MEMO.path(root).is_file()

    def no_planning(*args: object, **kw: object) -> PlanOutput:
        raise AssertionError("planned from scratch although nothing changed")

    with monkeypatch.context() as patch:
        patch.setattr(api, "_plan_output", no_planning)
        again = _plan(root)
    assert again.document == first.document and again.text == first.text
    assert again.to_json_text() == json.dumps(first.document, indent=2)
    return first


def _bump(path: Path) -> None:
    """Move a file's mtime an hour back, so an edit shows even within one clock tick
    (back, not on: a future mtime is racy, and a racy plan is not remembered)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 1_000_000_000))


def _stale(output: PlanOutput) -> dict[str, list[str]]:
    return {
        m["name"]: [r["kind"] + ":" + r.get("detail", "") for r in m["reasons"]]
        for m in output.document["models"]
        if m["status"] == "stale"
    }


def test_nothing_changed_is_answered_from_the_memo(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _primed(repo, monkeypatch)
    assert first.stale_count == 0
    assert first.document == _plan(repo, memo=False).document


def _edit_source(root: Path) -> None:
    path = root / "common/util.py"
    path.write_text("SHARED = 2\n")  # same size
    _bump(path)


def _add_source(root: Path) -> None:
    (root / "models/alpha/extra.py").write_text("X = 1\n")


def _add_nested_source(root: Path) -> None:
    (root / "common/deep/er").mkdir(parents=True)
    (root / "common/deep/er/more.py").write_text("Y = 1\n")


def _remove_source(root: Path) -> None:
    (root / "common/util.py").unlink()


def _remove_archive(root: Path) -> None:
    (root / "build/neo/beta/model.tar.gz").unlink()


def _edit_request(root: Path) -> None:
    path = root / "build/neo/beta/requests/ml_m5.json"
    data = bytearray(path.read_bytes())
    data[-2] = ord(" ") if data[-2] != ord(" ") else ord("\t")
    path.write_bytes(bytes(data))
    _bump(path)


def _edit_manifest(root: Path) -> None:
    path = root / "neo.yaml"
    path.write_text(path.read_text().replace("targets: [ml_c5, ml_m5]", "targets: [ml_m5]"))


def _override_template(root: Path) -> None:
    (root / "templates/inference").mkdir()
    (root / "templates/inference/dlr.py.j2").write_text("# my own handler\n")


def _remove_lock(root: Path) -> None:
    (root / "neo.lock").unlink()


CHANGES: dict[str, tuple[Callable[[Path], None], dict[str, str]]] = {
    "source edited in place": (_edit_source, {"alpha": "source-changed:common/util.py"}),
    "source added": (_add_source, {"alpha": "source-added:models/alpha/extra.py"}),
    "source added in a new subfolder": (
        _add_nested_source,
        {"alpha": "source-added:common/deep/er/more.py"},
    ),
    "source removed": (_remove_source, {"alpha": "source-removed:common/util.py"}),
    "archive removed": (_remove_archive, {"beta": "output-missing:build/neo/beta/model.tar.gz"}),
    "request edited": (
        _edit_request,
        {"beta": "output-modified:build/neo/beta/requests/ml_m5.json"},
    ),
    "manifest edited": (_edit_manifest, {"beta": "manifest-changed:targets"}),
    "template overridden": (_override_template, {"alpha": "templates-changed:"}),
    "lock removed": (_remove_lock, {"alpha": "new-model:", "beta": "new-model:"}),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_to_anything_the_plan_read_is_seen(
    change: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, expected = CHANGES[change]
    primed = _primed(repo, monkeypatch)
    mutate(repo)
    memo_backed = _plan(repo)
    fresh = _plan(repo, memo=False)
    assert memo_backed.document == fresh.document
    assert memo_backed.text == fresh.text
    assert memo_backed.document != primed.document
    stale = _stale(memo_backed)
    for name, reason in expected.items():
        assert reason in stale.get(name, []), stale
    # and the plan after the change is remembered in its turn
    _primed(repo, monkeypatch)


def test_other_arguments_are_not_answered_by_the_memo(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _primed(repo, monkeypatch)
    only_beta = _plan(repo, patterns=["beta"])
    assert [m["name"] for m in only_beta.document["models"]] == ["beta"]
    with_fresh = _plan(repo, include_fresh=True)
    assert "alpha" in with_fresh.text


def test_files_changed_within_the_racy_window_are_not_remembered(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(depends, "RACY_WINDOW_NS", 2_000_000_000)
    (repo / "common/util.py").write_text("SHARED = 3\n")  # written just now
    _plan(repo)
    assert not planmemo.MEMO.path(repo).exists()


def test_a_damaged_memo_is_ignored(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _primed(repo, monkeypatch)
    memo = planmemo.MEMO.path(repo)
    data = bytearray(memo.read_bytes())
    data[-1] ^= 0xFF
    memo.write_bytes(bytes(data))
    assert _plan(repo).document == first.document


def test_cli_plan_json_from_the_memo_is_the_same_document(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    runs = [neobuild("plan", "--json", cwd=root) for _ in range(3)]
    assert all(r.returncode == 0 for r in runs)
    assert runs[0].stdout == runs[1].stdout == runs[2].stdout
    assert json.loads(runs[2].stdout)["summary"]["stale"] == 0


def test_package_all_with_nothing_stale_answers_from_the_memo(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _primed(repo, monkeypatch)
    junit = repo / "reports" / "junit.xml"

    def no_loading(*args: object, **kw: object) -> None:
        raise AssertionError("loaded the manifest although nothing is stale")

    with monkeypatch.context() as patch:
        patch.setattr(api, "_load", no_loading)
        report = api.package(manifest_path=repo / "neo.yaml", all_models=True, junit=junit)
    assert [(m.name, m.status) for m in report.models] == [("alpha", "fresh"), ("beta", "fresh")]
    assert 'tests="2"' in junit.read_text()


def test_package_all_with_something_stale_builds_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _primed(repo, monkeypatch)
    _remove_archive(repo)
    report = api.package(manifest_path=repo / "neo.yaml", all_models=True)
    assert {m.name: m.status for m in report.models} == {"alpha": "fresh", "beta": "built"}
    assert (repo / "build/neo/beta/model.tar.gz").is_file()
    assert _plan(repo).stale_count == 0
