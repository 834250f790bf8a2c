"""Model names that differ only in letter case are rejected (build dirs on macOS, AWS names)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from neobuild import manifest
from neobuild.errors import ManifestError

HINT = (
    "    hint: rename one of them: build directories on case-insensitive file systems "
    "(macOS, Windows) and AWS resource names would collide"
)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write(tmp_path, {"models/a/export.py": "def export(output_dir, inputs):\n    pass\n"})
    return tmp_path


def test_names_differing_in_case_in_one_file(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            defaults: {framework: xgboost, targets: [ml_c5]}
            models:
              a-b: {export: "models/a/export.py:export"}
              other: {export: "models/a/export.py:export"}
              A-b: {export: "models/a/export.py:export"}
            """,
        },
    )
    loaded, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert loaded is None
    assert [p.render() for p in problems] == [
        f"{repo / 'neo.yaml'}:6:3: models.A-b: model 'A-b' differs only in letter case from "
        f"model 'a-b' declared at {repo / 'neo.yaml'}:4:3\n" + HINT
    ]
    with pytest.raises(ManifestError):
        manifest.load(repo / "neo.yaml", use_cache=False)


def test_names_differing_in_case_across_includes(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            include: [teams/*.yaml]
            defaults: {framework: xgboost, targets: [ml_c5]}
            models:
              resnet-V2: {export: "models/a/export.py:export"}
            """,
            "teams/x.yaml": """\
            models:
              b: {export: "../models/a/export.py:export"}
              RESNET-v2: {export: "../models/a/export.py:export"}
            """,
        },
    )
    loaded, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert loaded is None
    assert [p.render() for p in problems] == [
        f"{repo / 'teams/x.yaml'}:3:3: models.RESNET-v2: model 'RESNET-v2' differs only in "
        f"letter case from model 'resnet-V2' declared at {repo / 'neo.yaml'}:5:3\n" + HINT
    ]


def test_the_cache_does_not_keep_a_collision_valid(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            defaults: {framework: xgboost, targets: [ml_c5]}
            models:
              a-b: {export: "models/a/export.py:export"}
              a-c: {export: "models/a/export.py:export"}
            """,
        },
    )
    assert sorted(manifest.load(repo / "neo.yaml").models) == ["a-b", "a-c"]
    text = (repo / "neo.yaml").read_text().replace("a-c:", "A-B:")
    (repo / "neo.yaml").write_text(text)
    with pytest.raises(ManifestError) as caught:
        manifest.load(repo / "neo.yaml")
    assert [p.message for p in caught.value.problems] == [
        f"model 'A-B' differs only in letter case from model 'a-b' declared at "
        f"{repo / 'neo.yaml'}:4:3"
    ]
