"""Valid manifests load without errors, match the JSON Schema, and round-trip through the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pytest
from locations import ASSETS
from ruamel.yaml import YAML

from neobuild import manifest, schema

CORPUS = ASSETS / "manifests" / "valid"
CASES = sorted(CORPUS.glob("*.yaml"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for rel in ("m/export.py", "pkg/export.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("def export(output_dir, inputs):\n    pass\n")
    # everything.yaml exports `pkg.export:bert`: validate parses the module for it
    with (tmp_path / "pkg" / "export.py").open("a") as handle:
        handle.write("\n\ndef bert(output_dir, inputs):\n    pass\n")
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


_ODD_VALUES: list[object] = [
    None, 0, -1, 1.5, True, "", "x", "ML_C5", [], {}, [None], {"a": None}, [[1, "a"]],
    {1: 2}, "2.10", 2.1, [1, 2], {"device": None}, {"platform": "LINUX"}, {"os": 1},
]  # fmt: skip


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def test_mangled_manifests_give_problems_never_exceptions(repo: Path) -> None:
    """Replace random values of the valid corpus with odd ones: always problems, no crash."""
    import copy
    import io
    import random

    rng = random.Random(20240601)
    yaml = YAML(typ="safe", pure=True)
    bases = [yaml.load(case.read_text()) for case in CASES]
    for _ in range(150):
        doc = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice([p for p in _paths(doc) if p])
            node = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(rng.choice(_ODD_VALUES))
        buffer = io.StringIO()
        yaml.dump(doc, buffer)
        (repo / "neo.yaml").write_text(buffer.getvalue())
        loaded, problems = manifest.check(repo / "neo.yaml", use_cache=False)
        errors = [p for p in problems if p.severity == "error"]
        assert (loaded is None) == bool(errors)
        assert all(p.file is not None and p.line >= 1 for p in problems)
