"""selection: model names and tag: selectors, with did-you-mean hints that say which kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import write

from neobuild import manifest as manifest_mod
from neobuild.errors import UsageError
from neobuild.model import Manifest
from neobuild.selection import select_models

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
