"""`init`, `validate` and `schema` through the CLI, on real manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neobuild import cli

runner = CliRunner()

BROKEN = """\
version: 1
models:
  resnet:
    framework: tensorflw
    export: models/resnet/export.py:export
    inputs:
      input: [1, 224, 224, -3]
    targets: [ml_c55]
"""


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "models/resnet").mkdir(parents=True)
    (tmp_path / "models/resnet/export.py").write_text("def export(o, i):\n    pass\n")
    (tmp_path / "neo.yaml").write_text(BROKEN)
    return tmp_path


def test_validate_examples_exits_0(repo_root: Path) -> None:
    result = runner.invoke(cli.app, ["-C", str(repo_root / "examples"), "validate"])
    assert result.exit_code == 0, result.output
    assert "7 model(s)" in result.stderr


def test_validate_reports_every_problem_with_positions(broken: Path) -> None:
    result = runner.invoke(cli.app, ["-C", str(broken), "validate"])
    assert result.exit_code == 2
    manifest = broken / "neo.yaml"
    err = result.stderr
    assert f"{manifest}:4:16: models.resnet.framework:" in err
    assert "did you mean 'tensorflow'?" in err
    assert f"{manifest}:7:28: models.resnet.inputs.input[3]:" in err
    assert f"{manifest}:8:15: models.resnet.targets[0]:" in err
    assert "'ml_c5'" in err
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_validate_json_is_pure_and_complete(broken: Path) -> None:
    result = runner.invoke(cli.app, ["-C", str(broken), "validate", "--json"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["ok"] is False
    problems = document["problems"]
    paths = {p["path"] for p in problems}
    assert {
        "models.resnet.framework",
        "models.resnet.inputs.input[3]",
        "models.resnet.targets[0]",
    } <= paths
    for problem in problems:
        assert set(problem) >= {"file", "line", "col", "path", "severity", "message"}
        assert problem["line"] > 0 and problem["col"] > 0


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m/export.py").write_text("def export(o, i):\n    pass\n")
    (tmp_path / "neo.yaml").write_text(
        "version: 1\nmodels:\n  m:\n    framework: tensorflow\n    framework_version: '2.3.2'\n"
        "    export: m/export.py:export\n    inputs: {input: [1, 224, 224, 3]}\n"
        "    targets: [ml_eia2]\n"
    )
    relaxed = runner.invoke(cli.app, ["-C", str(tmp_path), "validate"])
    assert relaxed.exit_code == 0, relaxed.output
    assert "[warning]" in relaxed.stderr
    strict = runner.invoke(cli.app, ["-C", str(tmp_path), "validate", "--strict"])
    assert strict.exit_code == 2
    assert "--strict" in strict.stderr


def test_init_writes_a_starter_that_validates_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = runner.invoke(cli.app, ["-C", str(tmp_path), "init"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "neo.yaml").read_text().startswith("# yaml-language-server: $schema=")
    assert runner.invoke(cli.app, ["-C", str(tmp_path), "validate"]).exit_code == 0
    again = runner.invoke(cli.app, ["-C", str(tmp_path), "init"])
    assert again.exit_code == 2
    assert "already exists" in again.stderr


def test_no_manifest_is_a_clear_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["-C", str(tmp_path), "plan"])
    assert result.exit_code == 2
    assert "neo.yaml" in result.stderr
    assert "Traceback" not in result.output


def test_manifest_found_from_a_subdirectory(broken: Path) -> None:
    sub = broken / "models" / "resnet"
    result = runner.invoke(cli.app, ["-C", str(sub), "validate", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["problems"][0]["file"] == str(broken / "neo.yaml")


def test_schema_is_json_with_the_enums(repo_root: Path) -> None:
    result = runner.invoke(cli.app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    text = json.dumps(schema)
    assert "ml_c5" in text and "jetson_nano" in text and "pytorch" in text
