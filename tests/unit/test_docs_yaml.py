"""Every ```yaml block of README.md and docs/*.md goes through `validate`.

A block is a whole neo.yaml unless the HTML comment right before it says otherwise:

- ``<!-- neobuild: fragment -->``: part of a manifest. Top-level keys (``cache:``,
  ``models:``...) are merged into a minimal manifest; model keys (``env:``...) into its
  one model. The result must validate.
- ``<!-- neobuild: invalid -->``: shown to illustrate an error; ``validate`` must find one.
- ``<!-- neobuild: not-a-manifest -->``: another file (neo.lock, a CI workflow); it must
  still parse as YAML.

The repository the block describes is built around it: every ``export`` file exists and
defines its function, every ``requirements`` file and ``templates_dir`` exists.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from locations import ROOT
from ruamel.yaml import YAML

from neobuild import manifest

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"(?:<!--\s*neobuild:\s*(?P<mark>[\w-]+)\s*-->\s*\n)?^```yaml\n(?P<body>.*?)^```$",
    re.S | re.M,
)
MARKS = {"manifest", "fragment", "invalid", "not-a-manifest"}
TOP_KEYS = {"version", "models", "build_dir", "include", "defaults", "templates_dir", "cache"}


def _blocks() -> list[Any]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("body")) + 1
            mark = match["mark"] or "manifest"
            found.append(
                pytest.param(
                    mark, match["body"], id=f"{page.relative_to(ROOT).as_posix()}:{line}-{mark}"
                )
            )
    return found


BLOCKS = _blocks()


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    return yaml


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _minimal() -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": {"targets": ["ml_c5"]},
        "models": {
            "m": {"framework": "onnx", "export": "m/export.py:export", "inputs": {"x": [1, 4]}}
        },
    }


def _scaffold(repo: Path, data: Any) -> None:
    """Create the files a manifest names: export files (with the function), requirements."""
    if isinstance(data, list):
        for item in data:
            _scaffold(repo, item)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key == "export" and isinstance(value, str):
            found = re.fullmatch(r"(?P<path>[^:\s]+\.py):(?P<function>\w+)", value)
            if found:
                path = repo / found["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(f"\n\ndef {found['function']}(output_dir, inputs):\n    pass\n")
        elif key == "requirements" and isinstance(value, str):
            (repo / value).parent.mkdir(parents=True, exist_ok=True)
            (repo / value).write_text("numpy\n", encoding="utf-8")
        elif key == "templates_dir" and isinstance(value, str):
            (repo / value).mkdir(parents=True, exist_ok=True)
        else:
            _scaffold(repo, value)


def test_pages_have_yaml_blocks_and_known_marks() -> None:
    assert len(BLOCKS) >= 8
    for param in BLOCKS:
        assert param.values[0] in MARKS, param.id


@pytest.mark.parametrize(("mark", "body"), BLOCKS)
def test_yaml_block(mark: str, body: str, tmp_path: Path) -> None:
    data = _yaml().load(body)
    if mark == "not-a-manifest":
        assert data is not None
        return
    assert isinstance(data, dict), "a manifest block must be a mapping"
    text = body
    if mark == "fragment":
        base = _minimal()
        if set(data) <= TOP_KEYS:
            data = _merge(base, data)
        else:
            base["models"]["m"] = _merge(base["models"]["m"], data)
            data = base
        stream = io.StringIO()
        _yaml().dump(data, stream)
        text = stream.getvalue()
    _scaffold(tmp_path, data)
    path = tmp_path / "neo.yaml"
    path.write_text(text, encoding="utf-8")

    loaded, problems = manifest.check(path, use_cache=False)

    errors = [p.render() for p in problems if p.severity == "error"]
    if mark == "invalid":
        assert errors, "a block marked invalid must fail validate"
    else:
        assert errors == [], "\n".join(errors)
        assert loaded is not None and loaded.models
