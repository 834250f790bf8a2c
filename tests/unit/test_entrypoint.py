"""validate finds what package would refuse before an export runs, without importing code."""

from __future__ import annotations

from pathlib import Path

import pytest

from neobuild import entrypoint, manifest

MANIFEST = """\
version: 1
models:
  m:
    framework: onnx
    export: {export}
    inputs: {{x: [1, 4]}}
    targets: [ml_c5]
"""


def _check(root: Path, export: str, *, use_cache: bool = False) -> list[str]:
    (root / "neo.yaml").write_text(MANIFEST.format(export=export))
    _, problems = manifest.check(root / "neo.yaml", use_cache=use_cache)
    return [p.render().replace(str(root) + "/", "") for p in problems if p.severity == "error"]


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


@pytest.mark.parametrize(
    ("source", "defined"),
    [
        ("def export(out, inputs):\n    pass\n", True),
        ("async def export(out, inputs):\n    pass\n", True),
        ("from helpers import build as export\n", True),
        ("import export\n", True),
        ("export = make_exporter()\n", True),
        ("export: object = None\n", True),
        (
            "try:\n    from fast import export\nexcept ImportError:\n    from slow import export\n",
            True,
        ),
        ("if True:\n    def export(out, inputs):\n        pass\n", True),
        ("class export:\n    pass\n", True),
        ("a, (b, export) = 1, (2, 3)\n", True),
        ("from helpers import *\n", True),  # cannot tell: not judged
        ("def __getattr__(name):\n    return print\n", True),
        ("globals()['export'] = print\n", True),
        ("def build(out, inputs):\n    def export():\n        pass\n", False),  # nested
        ("class A:\n    def export(self):\n        pass\n", False),
        ("", False),
    ],
)
def test_scan_finds_module_level_names(tmp_path: Path, source: str, defined: bool) -> None:
    path = tmp_path / "export.py"
    path.write_text(source)
    found = entrypoint.scan(path)
    assert found is not None
    assert found.lacks("export") is not defined


def test_scan_never_imports_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    path = tmp_path / "export.py"
    path.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef export(out, inputs):\n    pass\n")
    found = entrypoint.scan(path)
    assert found is not None and not found.lacks("export")
    assert not marker.exists()


def test_missing_function_is_positioned_with_did_you_mean(tmp_path: Path) -> None:
    _write(tmp_path, "m/export.py", "def export(out, inputs):\n    pass\n")
    assert _check(tmp_path, "m/export.py:exprt") == [
        "neo.yaml:5:13: models.m.export: export file m/export.py defines no function 'exprt'"
        "\n    hint: did you mean 'export'?"
    ]
    assert _check(tmp_path, "m/export.py:export") == []


def test_missing_function_lists_what_the_file_defines(tmp_path: Path) -> None:
    _write(
        tmp_path, "m/export.py", "def save(out, inputs):\n    pass\n\n\ndef _helper():\n    pass\n"
    )
    (problem,) = _check(tmp_path, "m/export.py:export")
    assert problem.endswith("hint: it defines: save, _helper")


def test_syntax_error_in_the_export_file(tmp_path: Path) -> None:
    _write(tmp_path, "m/export.py", "def export(out, inputs)\n    pass\n")
    (problem,) = _check(tmp_path, "m/export.py:export")
    assert problem.startswith(
        "neo.yaml:5:13: models.m.export: export file m/export.py is not valid Python (line 1:"
    )


def test_module_form_is_checked_when_the_module_is_in_the_repository(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/models/__init__.py", "def export(out, inputs):\n    pass\n")
    _write(tmp_path, "pkg/resnet.py", "def export(out, inputs):\n    pass\n")
    assert _check(tmp_path, "pkg.resnet:export") == []
    assert _check(tmp_path, "pkg.models:export") == []
    assert _check(tmp_path, "pkg.resnet:exportt") == [
        "neo.yaml:5:13: models.m.export: export file pkg/resnet.py defines no function "
        "'exportt'\n    hint: did you mean 'export'?"
    ]
    # an installed package (not in the repository) is left to the export environment
    assert _check(tmp_path, "somewhere.installed:export") == []


def test_manifest_cache_rechecks_an_edited_export_file(tmp_path: Path) -> None:
    _write(tmp_path, "m/export.py", "def export(out, inputs):\n    pass\n")
    assert _check(tmp_path, "m/export.py:export", use_cache=True) == []
    assert _check(tmp_path, "m/export.py:export", use_cache=True) == []  # from the cache
    _write(tmp_path, "m/export.py", "def export_v2(out, inputs):\n    pass\n")
    assert _check(tmp_path, "m/export.py:export", use_cache=True) == [
        "neo.yaml:5:13: models.m.export: export file m/export.py defines no function 'export'"
        "\n    hint: did you mean 'export_v2'?"
    ]


def test_inputs_inside_build_dir_are_refused_by_validate(tmp_path: Path) -> None:
    _write(tmp_path, "out/m/export.py", "def export(out, inputs):\n    pass\n")
    (tmp_path / "neo.yaml").write_text(
        MANIFEST.format(export="out/m/export.py:export").replace(
            "models:", "build_dir: out\nmodels:"
        )
    )
    _, problems = manifest.check(tmp_path / "neo.yaml", use_cache=False)
    assert [(p.line, p.col, p.path, p.message) for p in problems] == [
        (
            6,
            13,
            "models.m.export",
            "out/m/export.py is inside build_dir out, which neobuild replaces",
        )
    ]
