"""schema.py and starter.py: the JSON Schema agrees with the validator; init's starter validates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from neobuild import manifest, neo, schema, starter
from neobuild.errors import UsageError
from neobuild.model import FRAMEWORKS


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    generated = schema.json_schema()
    jsonschema.Draft202012Validator.check_schema(generated)
    return jsonschema.Draft202012Validator(generated)


def _yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _model_props() -> dict[str, Any]:
    props: dict[str, Any] = schema.json_schema()["properties"]["models"]["additionalProperties"][
        "properties"
    ]
    return props


def test_schema_is_deterministic_json() -> None:
    assert json.dumps(schema.json_schema(), sort_keys=True) == json.dumps(
        schema.json_schema(), sort_keys=True
    )
    assert schema.json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_is_generated_from_the_cerberus_schema() -> None:
    top = schema.json_schema()
    assert set(top["properties"]) == set(schema.MANIFEST_SCHEMA)
    assert top["required"] == ["version", "models"]
    assert set(_model_props()) == set(schema.MODEL_FIELDS)
    assert set(top["properties"]["defaults"]["properties"]) == set(schema.DEFAULTS_FIELDS)
    assert "export" not in top["properties"]["defaults"]["properties"]
    compile_props = _model_props()["compile"]["properties"]
    assert set(compile_props) == set(schema.COMPILE_FIELDS)
    assert compile_props["role_arn"]["maxLength"] == neo.FIELD_RULES["RoleArn"].max_len


def test_enums_come_from_neo() -> None:
    props = _model_props()
    assert props["framework"]["anyOf"][0]["enum"] == list(FRAMEWORKS)
    target = props["targets"]["items"]
    assert target["anyOf"][0]["anyOf"][0]["enum"] == list(neo.TARGET_DEVICES)
    platform = target["anyOf"][1]["properties"]["platform"]["properties"]
    assert platform["arch"]["anyOf"][0]["enum"] == list(neo.PLATFORM_ARCH)


def test_example_manifest_validates_against_the_schema(
    validator: jsonschema.Draft202012Validator, repo_root: Path
) -> None:
    document = _yaml((repo_root / "examples" / "neo.yaml").read_text())
    assert list(validator.iter_errors(document)) == []


def test_example_modeline_points_at_the_schema(repo_root: Path) -> None:
    first = (repo_root / "examples" / "neo.yaml").read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")


VALID = """\
version: 1
include: [teams/*.yaml]
defaults: {timeout: 60, targets: [ml_c5], compile: {region: us-east-1, tags: {a: b}}}
models:
  a:
    framework: PyTorch
    framework_version: "2.0"
    export: m/export.py:export
    inputs: [[1, 3, 8, 8]]
    requirements: [torch]
    targets:
      - ML_C5
      - {device: jetson_nano, compiler_options: {gpu-code: sm_53}}
      - {platform: {os: linux, arch: ARM64, accelerator: null}}
  b: {framework: xgboost, export: "pkg.mod:f", smoke: true, requirements: r.txt}
"""


def test_valid_documents_pass(validator: jsonschema.Draft202012Validator) -> None:
    assert list(validator.iter_errors(_yaml(VALID))) == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("models", "a", "framework"), "tensorflw"),
        (("models", "a", "inputs"), [[1, 3, -1, 8]]),
        (("models", "a", "inputs"), {"x": [1, None]}),
        (("models", "a", "framework_version"), 2.1),
        (("models", "a", "targets"), ["ml_c55"]),
        (
            ("models", "a", "targets"),
            [{"device": "ml_c5", "platform": {"os": "LINUX", "arch": "ARM64"}}],
        ),
        (("models", "a", "targets"), [{"platform": {"os": "LINUX"}}]),
        (("models", "a", "targets"), []),
        (("models", "a", "timeout"), 0),
        (("models", "a", "framwork"), "onnx"),
        (("models", "a", "compile"), {"role_arn": "arn:x"}),
        (("models", "a", "env"), {"1X": "y"}),
        (("version",), 2),
        (("defaults",), {"export": "x.py:f"}),
    ],
)
def test_invalid_documents_fail(
    validator: jsonschema.Draft202012Validator, change: tuple[str, ...], needle: Any
) -> None:
    document = _yaml(VALID)
    node = document
    for key in change[:-1]:
        node = node[key]
    node[change[-1]] = needle
    assert list(validator.iter_errors(document)) != []


# -- starter ---------------------------------------------------------------------------


def test_starter_validates_and_has_the_modeline(
    tmp_path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    path = tmp_path / "neo.yaml"
    starter.write_starter(path)
    text = path.read_text()
    assert text.startswith(f"# yaml-language-server: $schema={starter.SCHEMA_PATH}\n")
    loaded, problems = manifest.check(path, use_cache=False)
    assert problems == []
    assert loaded is not None and loaded.models == {}
    assert list(validator.iter_errors(_yaml(text))) == []


def test_starter_example_model_validates_when_uncommented(tmp_path: Path) -> None:
    text = starter.STARTER.replace("models: {}\n", "")
    lines = []
    for line in text.splitlines():
        if line.startswith("# models:") or line.startswith("#   "):
            line = line[2:]
        lines.append(line)
    (tmp_path / "models/resnet18").mkdir(parents=True)
    (tmp_path / "models/resnet18/export.py").write_text("def export(o, i): pass\n")
    (tmp_path / "models/resnet18/requirements.txt").write_text("torch\n")
    (tmp_path / "neo.yaml").write_text("\n".join(lines) + "\n")
    m = manifest.load(tmp_path / "neo.yaml", use_cache=False)
    assert [t.key for t in m.models["resnet18"].targets] == ["ml_c5", "jetson_nano"]


def test_starter_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "neo.yaml"
    path.write_text("mine\n")
    with pytest.raises(UsageError) as info:
        starter.write_starter(path)
    assert "already exists" in info.value.message
    assert path.read_text() == "mine\n"


def test_starter_needs_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        starter.write_starter(tmp_path / "missing" / "neo.yaml")
