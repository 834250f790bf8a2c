"""Review 2, smaller findings: --shard N=0, tag: did-you-mean, verify's stray files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plan_support import fake_build, init_repo, make_manifest, make_model, seed_models, write

from neobuild import manifest as manifest_mod
from neobuild.errors import UsageError
from neobuild.lockfile import LOCK_NAME, Lock, read_lock, write_lock
from neobuild.model import Manifest
from neobuild.selection import select_models
from neobuild.shard import parse_shard
from neobuild.verify import verify

# ---- --shard ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1/0", "0/0"])
def test_shard_with_zero_shards_says_n_must_be_at_least_1(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_shard(text)
    assert "N (the number of shards) must be at least 1" in info.value.message
    hint = info.value.hint or ""
    assert "0/0" not in hint and "1/0" not in hint
    assert "1/1" in hint


def test_shard_k_out_of_range_still_names_the_valid_range() -> None:
    with pytest.raises(UsageError) as info:
        parse_shard("5/4")
    assert "K must be between 1 and N" in info.value.message
    assert info.value.hint == "use 1/4 … 4/4"


# ---- tag: selection ------------------------------------------------------------------------

TAGGED = """\
version: 1
defaults:
  targets: [ml_c5]
models:
  vision-a:
    framework: onnx
    export: models/a/export.py:export
    inputs: {x: [1, 4]}
    tags: [vision, edge]
  visoin-b:
    framework: onnx
    export: models/a/export.py:export
    inputs: {x: [1, 4]}
    tags: [nlp]
"""


@pytest.fixture
def tagged(tmp_path: Path) -> Manifest:
    write(tmp_path, "models/a/export.py", "def export(o, i):\n    pass\n")
    write(tmp_path, "neo.yaml", TAGGED)
    return manifest_mod.load(tmp_path / "neo.yaml", use_cache=False)


def test_misspelt_tag_is_suggested_among_tags(tagged: Manifest) -> None:
    assert [m.name for m in select_models(tagged, ["tag:vision"])] == ["vision-a"]
    with pytest.raises(UsageError) as info:
        select_models(tagged, ["tag:visoin"])  # a model is *named* visoin-b: not a tag
    assert info.value.message == "no model matches 'tag:visoin'"
    assert info.value.hint == "did you mean 'tag:vision'?"


def test_unknown_tag_lists_the_tags(tagged: Manifest) -> None:
    with pytest.raises(UsageError) as info:
        select_models(tagged, ["tag:gpu-heavy"])
    assert info.value.hint == "tags in neo.yaml: edge, nlp, vision"


def test_unknown_name_still_suggests_names(tagged: Manifest) -> None:
    with pytest.raises(UsageError) as info:
        select_models(tagged, ["vision-aa"])
    assert info.value.hint == "did you mean 'vision-a'?"
    with pytest.raises(UsageError) as info:
        select_models(tagged, ["zzz"])
    assert info.value.hint == "models in neo.yaml: vision-a, visoin-b"


# ---- verify: files directly in the build dir belong to no model ------------------------------


def test_stray_file_in_build_dir_has_no_model(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    init_repo(root)
    seed_models(root, ["alpha"])
    manifest = make_manifest(root, [make_model("alpha")])
    write_lock(root / LOCK_NAME, fake_build(manifest, Lock()))
    lock = read_lock(root / LOCK_NAME)
    write(root, "build/neo/stray.txt", "left here by hand")
    write(root, "build/neo/alpha.bak", "named like a model")
    write(root, "build/neo/old-model/model.tar.gz", "a removed model's directory")
    report = verify(manifest, lock)
    got = [(d.kind, d.model, d.path) for d in report]
    assert got == [
        ("orphaned", None, "build/neo/alpha.bak"),
        ("orphaned", None, "build/neo/stray.txt"),
        ("orphaned", "old-model", "build/neo/old-model"),
    ]
    data = json.loads(json.dumps(report.to_json()))
    stray = [d for d in data["drifts"] if d["path"] == "build/neo/stray.txt"]
    assert stray == [
        {
            "kind": "orphaned",
            "model": None,
            "path": "build/neo/stray.txt",
            "detail": "in the build directory, not in neo.lock",
        }
    ]
    assert "orphaned: build/neo/stray.txt: " in report.render()
