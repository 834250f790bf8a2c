"""The CLI as a translation layer: options become api keywords, errors become exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from neobuild import __version__, api, cli
from neobuild.errors import ExportError, ManifestError, Problem, UsageError
from neobuild.results import BuildReport, ModelReport

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(cli.app, list(args), env=env)


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "neo.yaml"
    path.write_text("version: 1\nmodels: {}\n")
    monkeypatch.setattr(api, "locate_manifest", lambda **kw: path)
    return path


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"neobuild {__version__}"


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("init", "validate", "schema", "plan", "package", "verify", "compile"):
        assert command in result.stdout


def test_unknown_option_is_a_usage_error() -> None:
    result = invoke("package", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_package_options_become_api_keywords(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_package(**kwargs: Any) -> BuildReport:
        seen.update(kwargs)
        return BuildReport(
            manifest=manifest, models=[ModelReport(name="a", status="built")], duration=1.0
        )

    monkeypatch.setattr(api, "package", fake_package)
    result = invoke(
        "package",
        "a",
        "tag:vision",
        "-j",
        "3",
        "--keep-going",
        "--force",
        "--smoke",
        "--allow-incomplete",
        "--since",
        "main",
        "--shard",
        "1/2",
        "--wait",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert seen["manifest_path"] == manifest
    assert seen["patterns"] == ["a", "tag:vision"]
    assert seen["jobs"] == 3
    assert (seen["keep_going"], seen["force"], seen["smoke"]) == (True, True, True)
    assert seen["allow_incomplete"] is True
    assert (seen["since"], seen["shard"], seen["wait"]) == ("main", "1/2", True)
    assert seen["all_models"] is False
    report = json.loads(result.stdout)  # --json: stdout is one JSON document
    assert report["summary"]["built"] == 1
    assert report["ok"] is True


def test_package_failure_exits_1(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        api,
        "package",
        lambda **kw: BuildReport(
            manifest=manifest, models=[ModelReport(name="a", status="failed")], duration=0.1
        ),
    )
    assert invoke("package", "--all").exit_code == 1


def test_expected_error_prints_message_and_hint(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kw: Any) -> None:
        raise ExportError("export of 'a' failed: exit code 1", hint="see build/neo/a/export.log")

    monkeypatch.setattr(api, "package", boom)
    result = invoke("package", "--all", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""  # nothing but JSON ever goes to stdout
    assert "export of 'a' failed" in result.stderr
    assert "hint: see build/neo/a/export.log" in result.stderr
    assert "Traceback" not in result.output


def test_manifest_error_lists_every_problem_and_exits_2(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = [
        Problem("unknown field", path="models.a.frameworkk", file=manifest, line=4, col=5),
        Problem(
            "must be a positive integer", path="models.a.inputs.x[0]", file=manifest, line=7, col=12
        ),
    ]

    def boom(**kw: Any) -> None:
        raise ManifestError("neo.yaml is invalid", problems=problems)

    monkeypatch.setattr(api, "package", boom)
    result = invoke("package", "--all")
    assert result.exit_code == 2
    assert f"{manifest}:4:5: models.a.frameworkk: unknown field" in result.stderr
    assert f"{manifest}:7:12: models.a.inputs.x[0]: must be a positive integer" in result.stderr


def test_usage_error_exits_2(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kw: Any) -> None:
        raise UsageError("no model matches 'resnet'", hint="did you mean 'resnet18'?")

    monkeypatch.setattr(api, "package", boom)
    result = invoke("package", "resnet")
    assert result.exit_code == 2
    assert "did you mean 'resnet18'?" in result.stderr


def test_unexpected_error_writes_crash_log_and_exits_3(
    manifest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(**kw: Any) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(api, "package", boom)
    monkeypatch.setattr("neobuild.error_handler.crash_dir", lambda: tmp_path / "crashes")
    result = invoke("package", "--all")
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert "internal error: RuntimeError: kaboom" in result.stderr
    logs = list((tmp_path / "crashes").glob("crash-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "RuntimeError: kaboom" in text and "Traceback" in text
    assert str(logs[0]) in result.stderr.replace("\n", "")


def test_debug_env_shows_the_traceback(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kw: Any) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(api, "package", boom)
    result = invoke("package", "--all", env={"NEOBUILD_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)


def test_interrupt_exits_130(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "package", boom)
    result = invoke("package", "--all")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr


def test_global_options_reach_manifest_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_locate(**kwargs: Any) -> Path:
        seen.update(kwargs)
        return tmp_path / "neo.yaml"

    monkeypatch.setattr(api, "locate_manifest", fake_locate)
    monkeypatch.setattr(
        api, "package", lambda **kw: BuildReport(manifest=tmp_path, models=[], duration=0.0)
    )
    result = invoke("-C", str(tmp_path), "--manifest", "other.yaml", "-q", "package", "--all")
    assert result.exit_code == 0, result.output
    assert seen == {"directory": tmp_path, "manifest": Path("other.yaml")}


def test_problem_paths_are_shown_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inside = Problem("bad", path="models.a", file=tmp_path / "teams" / "neo.yaml", line=3, col=1)
    outside = Problem("bad", path="models.a", file=Path("/elsewhere/neo.yaml"), line=3, col=1)
    assert inside.render() == "teams/neo.yaml:3:1: models.a: bad"
    assert outside.render() == "/elsewhere/neo.yaml:3:1: models.a: bad"


def test_committed_schema_is_current(repo_root: Path) -> None:
    """docs/neo.schema.json (the examples' modeline target) is what `neobuild schema` prints."""
    result = invoke("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(
        (repo_root / "docs" / "neo.schema.json").read_text()
    )
