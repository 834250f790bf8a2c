"""Valid manifests load without errors, match the JSON Schema, and round-trip through the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from neobuild import manifest, schema

CORPUS = Path(__file__).parent / "assets" / "manifests" / "valid"
CASES = sorted(CORPUS.glob("*.yaml"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for rel in ("m/export.py", "pkg/export.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("def export(output_dir, inputs):\n    pass\n")
    (tmp_path / "m" / "requirements.txt").write_text("numpy\n")
    (tmp_path / "tpl").mkdir()
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_valid_manifest(case: Path, repo: Path) -> None:
    path = repo / "neo.yaml"
    shutil.copy(case, path)

    fresh, problems = manifest.check(path, use_cache=False)
    assert [p.render() for p in problems if p.severity == "error"] == []
    assert fresh is not None
    assert len(fresh.models) >= 1

    # the JSON Schema accepts what the validator accepts
    document = YAML(typ="safe", pure=True).load(case.read_text())
    validator = jsonschema.Draft202012Validator(schema.json_schema())
    assert [e.message for e in validator.iter_errors(document)] == []

    # written to the cache and read back: equal, positions included
    first = manifest.load(path)
    cached = manifest.load(path)
    assert cached == fresh == first
    for name, model in fresh.models.items():
        again = cached.models[name]
        assert again.position == model.position
        assert [t.position for t in again.targets] == [t.position for t in model.targets]
        assert again.canonical_json() == model.canonical_json()
    assert cached.warnings == fresh.warnings


def test_everything_resolves_as_documented(repo: Path) -> None:
    shutil.copy(CORPUS / "everything.yaml", repo / "neo.yaml")
    m = manifest.load(repo / "neo.yaml", use_cache=False)
    resnet, bert = m.models["resnet-18"], m.models["bert"]
    assert [t.compiler_options for t in resnet.targets] == [
        {"dtype": "float32"},
        "--verbose 1 --num-neuroncores 2",  # a string replaces the model's mapping
        # a JSON object written as a string is parsed, then merged
        {"dtype": "float32", "gpu-code": "sm_53", "trt-ver": "5.0.6", "cuda-ver": "10.0"},
    ]
    assert resnet.env == (("HF_HUB_OFFLINE", "1"), ("PYTHONHASHSEED", "0"))
    assert resnet.sources == ("m/**", "*.cfg")
    assert resnet.templates_dir == "tpl"
    assert bert.compile.max_runtime == 7200
    assert bert.compile.tags == (("cost-center", "42"), ("model", "bert"), ("team name", "vision"))
    assert bert.sources == ("pkg/**",)
    assert bert.requirements == ("tensorflow-cpu==2.9.3", "transformers>=4")
    assert m.build_dir == repo / "out"
