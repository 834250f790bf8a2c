"""Help, verbosity flags, completion and flag names of the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import neobuild
from everyday_project import write_project
from typer.testing import CliRunner

from neobuild import api, cli
from neobuild.results import BuildReport, ModelReport

runner = CliRunner()
COMMANDS = sorted(
    c.name or (c.callback.__name__ if c.callback else "") for c in cli.app.registered_commands
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example(command: str) -> None:
    result = runner.invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"$ neobuild {command}" in result.output


def test_the_commands_have_examples() -> None:
    assert {"plan", "package", "compile", "add", "show", "validate"} <= set(COMMANDS)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["plan", "-q"], ["-q", "plan"]),
        (
            ["-C", "x", "package", "a", "-vv", "--json"],
            ["-C", "x", "-vv", "package", "a", "--json"],
        ),
        (["--manifest", "-q.yaml", "plan"], ["--manifest", "-q.yaml", "plan"]),
        (["package", "a", "--", "-q"], ["package", "a", "--", "-q"]),
        (["plan", "--quiet", "--verbose"], ["--quiet", "--verbose", "plan"]),
        (["-q"], ["-q"]),
    ],
)
def test_verbosity_flags_move_before_the_command(args: list[str], expected: list[str]) -> None:
    assert cli.hoist_verbosity(args) == expected


def test_quiet_after_the_command_works_like_before_it(tmp_path: Path) -> None:
    write_project(tmp_path)
    loud = neobuild("validate", cwd=tmp_path, timeout=120)
    assert loud.returncode == 0 and "no problems" in loud.stderr
    for args in (("validate", "-q"), ("-q", "validate")):
        quiet = neobuild(*args, cwd=tmp_path, timeout=120)
        assert quiet.returncode == 0 and quiet.stderr == "", args


def test_qq_hides_warnings_and_q_keeps_them(tmp_path: Path) -> None:
    write_project(tmp_path)
    manifest = tmp_path / "neo.yaml"
    manifest.write_text(manifest.read_text() + "    sources: [nothing/**]\n")
    assert "warning" in neobuild("plan", "-q", cwd=tmp_path, timeout=120).stderr
    silent = neobuild("plan", "-qq", cwd=tmp_path, timeout=120)
    assert silent.stderr == "" and "resnet" in silent.stdout


def _complete(tmp_path: Path, words: str) -> list[str]:
    env = {
        "_NEOBUILD_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    result = neobuild(cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_knows_models_tags_and_devices(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_project(repo, names=("resnet", "resnext", "bert"))
    assert _complete(repo, "neobuild package res") == ["resnet", "resnext"]
    assert _complete(repo, "neobuild plan tag:") == ["tag:vision"]
    assert _complete(repo, "neobuild show b") == ["bert"]
    assert _complete(repo, "neobuild add x --target jetson_n") == ["jetson_nano"]
    assert "pytorch" in _complete(repo, "neobuild add x --framework py")
    # -C before the command points completion at another repository.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _complete(elsewhere, f"neobuild -C {repo} compile be") == ["bert"]
    assert _complete(elsewhere, "neobuild compile be") == []  # no manifest: nothing, no error


def test_completion_scripts_are_offered() -> None:
    result = runner.invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in result.output


def _fake_package(seen: dict[str, Any]) -> Any:
    def fake(**kwargs: Any) -> BuildReport:
        seen.update(kwargs)
        return BuildReport(
            manifest=kwargs["manifest_path"],
            models=[ModelReport(name="a", status="built")],
            duration=0.1,
        )

    return fake


def test_wait_lock_is_packages_flag_and_wait_a_deprecated_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(api, "package", _fake_package(seen))
    new = runner.invoke(cli.app, ["package", "--all", "--wait-lock"])
    assert new.exit_code == 0 and seen["wait"] is True and "deprecated" not in new.stderr
    seen.clear()
    old = runner.invoke(cli.app, ["package", "--all", "--wait"])
    assert old.exit_code == 0 and seen["wait"] is True
    assert "`package --wait` is deprecated: it is now `--wait-lock`" in old.stderr
    seen.clear()
    assert runner.invoke(cli.app, ["package", "--all"]).exit_code == 0 and seen["wait"] is False
    help_text = runner.invoke(cli.app, ["package", "--help"], env={"COLUMNS": "200"}).output
    assert "--wait-lock" in help_text and "--wait " not in help_text.replace("--wait-lock", "")
    compile_help = runner.invoke(cli.app, ["compile", "--help"], env={"COLUMNS": "200"}).output
    assert "--wait" in compile_help and "Poll the jobs" in compile_help
    assert os.environ.get("NEOBUILD_DEBUG") is None


def test_add_and_show_pass_their_options_to_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neobuild.add import AddResult, NewModel
    from neobuild.show import ShowResult

    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    seen: dict[str, Any] = {}

    def fake_add(**kwargs: Any) -> AddResult:
        seen.update(kwargs)
        return AddResult(manifest_path=kwargs["manifest_path"], name=kwargs["name"])

    monkeypatch.setattr(api, "add", fake_add)
    result = runner.invoke(
        cli.app,
        [
            "add",
            "m",
            "--framework",
            "onnx",
            "--export",
            "e.py:f",
            "--input",
            "x=1,2",
            "--input",
            "y=3",
            "--target",
            "ml_c5",
            "--tag",
            "t",
            "--framework-version",
            "1.7.0",
            "--requirements",
            "r.txt",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == {
        "manifest_path": tmp_path / "neo.yaml",
        "name": "m",
        "new": NewModel(
            framework="onnx",
            export="e.py:f",
            inputs=["x=1,2", "y=3"],
            targets=["ml_c5"],
            framework_version="1.7.0",
            tags=["t"],
            requirements="r.txt",
        ),
    }
    shown = ShowResult(
        name="m", declared_at=None, entry={}, status={"status": "fresh"}, lock=None, build_dir="b"
    )
    monkeypatch.setattr(api, "show", lambda **kw: seen.update(show=kw) or shown)
    result = runner.invoke(cli.app, ["show", "m", "--json"])
    assert result.exit_code == 0 and seen["show"] == {
        "manifest_path": tmp_path / "neo.yaml",
        "name": "m",
    }
    assert json.loads(result.stdout)["status"] == {"status": "fresh"}
