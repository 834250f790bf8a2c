"""JUnit XML and the GitHub step summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from neobuild.reports import (
    ModelResult,
    append_step_summary,
    clean_text,
    step_summary_markdown,
    write_junit,
)


def _results(tmp_path: Path) -> list[ModelResult]:
    log = tmp_path / "export.log"
    log.write_text("line\n", encoding="utf-8")
    return [
        ModelResult(
            name="resnet",
            status="built",
            duration=1.5,
            message="built",
            targets=[("ml_c5", "rendered", "requests/ml_c5.json"), ("jetson_nano", "rendered", "")],
            smoke="passed",
        ),
        ModelResult(
            name="bert",
            status="failed",
            duration=2.25,
            message="export of bert failed: exit code 1\nmore detail",
            log_path=log,
            log_tail="Traceback (most recent call last):\n\x1b[31mValueError: <bad> & \x00 'x'\x1b[0m",
            hint="fix the export",
        ),
        ModelResult(name="xgb", status="fresh", message="up to date"),
        ModelResult(name="onnx", status="restored", message="restored from cache"),
        ModelResult(name="later", status="skipped", message="not started"),
        ModelResult(
            name="keras",
            status="built",
            targets=[("ml_c5", "failed", "DataInputConfig: NCHW expected"), ("rasp4b", "ok", "")],
            smoke="failed: ZeroDivisionError",
        ),
    ]


def test_junit_parses_and_counts_match(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "junit.xml"
    write_junit(path, _results(tmp_path))
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    # 6 models + 4 targets + 2 smoke tests
    assert len(cases) == 12
    failed = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert sorted(c.get("name") for c in failed) == [
        "bert",
        "keras [ml_c5]",
        "keras [smoke test]",
    ]
    assert [c.get("name") for c in skipped] == ["later"]
    for el in (root, suite):
        assert el.get("tests") == "12"
        assert el.get("failures") == "3"
        assert el.get("skipped") == "1"
        assert el.get("errors") == "0"
    assert float(suite.get("time", "0")) == pytest.approx(3.75)
    bert = next(c for c in cases if c.get("name") == "bert")
    failure = bert.find("failure")
    assert failure is not None
    assert failure.get("message") == "export of bert failed: exit code 1"
    text = failure.text or ""
    assert "more detail" in text and "hint: fix the export" in text
    assert "ValueError: <bad> & \ufffd 'x'" in text and "\x1b" not in text
    assert str(tmp_path / "export.log") in text
    target = next(c for c in cases if c.get("name") == "keras [ml_c5]")
    assert target.get("classname") == "neobuild.package.keras"


def test_junit_accepts_an_object_with_models(tmp_path: Path) -> None:
    @dataclass
    class Report:
        models: list[ModelResult] = field(default_factory=list)

    path = tmp_path / "j.xml"
    write_junit(path, Report(models=_results(tmp_path)[:1]))
    assert ET.parse(path).getroot().get("tests") == "4"
    before = path.read_bytes()
    write_junit(path, Report(models=_results(tmp_path)[:1]))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_secrets_are_masked(tmp_path: Path) -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG", "PATH": "/usr/bin:/bin"}
    assert clean_text("key=wJalrXUtnFEMI/K7MDENG path=/usr/bin:/bin", env=env) == (
        "key=*** path=/usr/bin:/bin"
    )


def test_secrets_are_masked_in_junit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "s3cr3t-t0ken-value")
    result = ModelResult(
        name="m", status="failed", message="boom", log_tail="token s3cr3t-t0ken-value"
    )
    path = tmp_path / "j.xml"
    write_junit(path, [result])
    data = path.read_text(encoding="utf-8")
    assert "s3cr3t" not in data and "token ***" in data


def test_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_step_summary(_results(tmp_path))
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n### neobuild package")
    assert "2 built, 1 fresh, 1 restored, 1 failed, 1 skipped" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 6  # header + one row per model
    bert = next(r for r in rows if r.startswith("| bert "))
    assert "failed" in bert and "exit code 1 more detail" in bert
    keras = next(r for r in rows if r.startswith("| keras "))
    assert "ml_c5 ❌, rasp4b" in keras


def test_step_summary_shows_the_compile_check_only_when_one_ran() -> None:
    plain = step_summary_markdown([ModelResult(name="a", status="built")])
    assert "Compile check" not in plain
    md = step_summary_markdown(
        [
            ModelResult(name="a", status="built", compile_check="passed: max abs diff 3e-07"),
            ModelResult(name="b", status="built", compile_check="unsupported: Det"),
            ModelResult(name="c", status="fresh"),
        ]
    )
    header, rule, *rows = [line for line in md.splitlines() if line.startswith("|")]
    assert header == "| Model | Status | Time | Targets | Compile check | Message |"
    assert rule.count("|") == header.count("|")
    assert [r.count("|") for r in rows] == [header.count("|")] * 3
    assert "| passed: max abs diff 3e-07 |" in rows[0]
    assert "| unsupported: Det |" in rows[1]


def test_step_summary_escapes_pipes() -> None:
    md = step_summary_markdown([ModelResult(name="a", status="failed", message="x | y\nz")])
    assert "x \\| y z" in md


def test_step_summary_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert not append_step_summary(_results(tmp_path))
