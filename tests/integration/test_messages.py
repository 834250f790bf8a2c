"""Messages that say what to do: export contract, stray files, ONNX names, validate --json,
model names in the schema, the init modeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e_helpers import neobuild, write_tree
from everyday_project import EXPORT, write_project

from neobuild import api


def _package(root: Path) -> str:
    result = neobuild("package", "--all", cwd=root, timeout=600)
    assert result.returncode == 1, result.stderr
    return result.stderr


def test_an_export_with_the_wrong_signature_names_the_contract(tmp_path: Path) -> None:
    write_project(tmp_path, names=("resnet",))
    write_tree(tmp_path, {"models/relu/export.py": "def export(output_dir):\n    pass\n"})
    stderr = _package(tmp_path)
    assert "models/relu/export.py:export takes (output_dir)" in stderr
    assert "neobuild calls it as export(output_dir, inputs)" in stderr
    assert "def export(output_dir, inputs):" in stderr  # the hint


def test_an_export_writing_into_the_working_directory_names_the_files(tmp_path: Path) -> None:
    write_project(tmp_path, names=("resnet",))
    stray = EXPORT.replace('str(out / "model.onnx")', '"model.onnx"')
    write_tree(tmp_path, {"models/relu/export.py": stray})
    stderr = _package(tmp_path)
    assert "wrote nothing to" in stderr
    assert "it wrote into the working directory instead: model.onnx" in stderr


def test_the_onnx_input_name_hint_speaks_onnx(tmp_path: Path) -> None:
    write_project(tmp_path, names=("resnet",))
    manifest = tmp_path / "neo.yaml"
    manifest.write_text(manifest.read_text().replace("{input: [", "{images: ["))
    stderr = _package(tmp_path)
    assert "input names" in stderr and "'images'" in stderr
    assert "must be the ONNX graph's input names" in stderr
    assert "onnx.helper.make_tensor_value_info" in stderr


def test_validate_json_has_the_common_envelope(tmp_path: Path) -> None:
    write_project(tmp_path)
    ok = json.loads(neobuild("validate", "--json", cwd=tmp_path, timeout=120).stdout)
    assert ok["schema_version"] == 1 and ok["ok"] is True and ok["models"] == 2
    assert ok["problems"] == [] and ok["errors"] == 0
    plan = json.loads(neobuild("plan", "--json", cwd=tmp_path, timeout=120).stdout)
    assert plan["schema_version"] == ok["schema_version"]


NAMES = [
    "resnet",
    "res-net",
    "r2",
    "a--b",
    "-lead",
    "trail-",
    "under_score",
    "dot.ted",
    "x" * 40,
    "x" * 39,
]


@pytest.mark.parametrize("name", NAMES)
def test_schema_and_validate_agree_on_model_names(tmp_path: Path, name: str) -> None:
    names = api.schema()["properties"]["models"]["propertyNames"]
    by_schema = (
        bool(re.fullmatch(names["pattern"].strip("^$"), name)) and len(name) <= names["maxLength"]
    )
    write_project(tmp_path, names=(name,))
    result = api.validate(manifest_path=tmp_path / "neo.yaml")
    assert result.ok == by_schema, [p.render() for p in result.problems]


def test_init_modeline_points_at_a_schema_that_exists(tmp_path: Path) -> None:
    assert neobuild("init", cwd=tmp_path).returncode == 0
    first = (tmp_path / "neo.yaml").read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    saved = tmp_path / match[1]
    assert json.loads(saved.read_text()) == json.loads(neobuild("schema", cwd=tmp_path).stdout)
