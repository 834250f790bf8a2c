"""The documentation site: generated reference pages stay complete, and it builds --strict."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from locations import ROOT
from ruamel.yaml import YAML

from neobuild import api, cli
from neobuild.model import FRAMEWORKS

sys.path.insert(0, str(ROOT / "tools"))

import docgen


def _schema_keys(node: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, child in node.get("properties", {}).items():
        keys.add(prefix + key)
        keys |= _schema_keys(child, prefix + key + ".")
        items = child.get("items")
        if isinstance(items, dict):
            keys |= _schema_keys(items, prefix + key + "[].")
    return keys


def test_manifest_reference_has_every_key_with_type_default_and_example() -> None:
    page = docgen.manifest_reference()
    schema = api.schema()
    model_keys = _schema_keys(schema["properties"]["models"]["additionalProperties"])
    top_keys = {k for k in _schema_keys(schema) if not k.startswith(("models.", "defaults."))}
    for key in sorted(model_keys | top_keys):
        section = page.split(f"### `{key}`\n", 1)
        assert len(section) == 2, f"{key} is not documented"
        body = section[1].split("\n### ", 1)[0]
        assert "**type:**" in body and "**default:**" in body and "```yaml" in body, key


def test_a_schema_key_without_an_example_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(docgen.MANIFEST_KEYS, "timeout")
    with pytest.raises(KeyError, match="'timeout' has no example"):
        docgen.manifest_reference()


def test_command_reference_has_every_command_option_and_example() -> None:
    page = docgen.command_reference()
    for command in cli.app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        assert f"## `neobuild {name}`" in page
    for option in ("--wait-lock", "--junit", "--since", "--framework", "--input", "--strict"):
        assert f"`{option}`" in page
    assert "`--wait`, " not in page.split("## `neobuild package`")[1].split("## ")[0]
    assert page.count("```console") == len(cli.app.registered_commands)


def test_one_page_per_framework_with_its_example() -> None:
    pages = docgen.pages()
    for framework in FRAMEWORKS:
        page = pages[f"frameworks/{framework}.md"]
        assert "## What is checked" in page and "## Inputs: form and layout" in page
        assert "def export(" in page


def _doc_texts() -> dict[str, str]:
    texts = {
        p.relative_to(ROOT / "docs").as_posix(): p.read_text()
        for p in (ROOT / "docs").rglob("*.md")
    }
    texts.update(docgen.pages())
    return texts


def test_docs_stand_on_their_own() -> None:
    for name, text in _doc_texts().items():
        assert "NEO_REFERENCE" not in text, name
        assert not re.search(r"§\s*\d", text), name


def test_every_page_is_in_the_nav() -> None:
    config = YAML(typ="safe").load((ROOT / "mkdocs.yml").read_text())

    def walk(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in walk(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in walk(value)]
        return []

    assert set(walk(config["nav"])) == set(_doc_texts())


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            str(mkdocs),
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    manifest_page = (tmp_path / "site" / "reference" / "manifest" / "index.html").read_text()
    assert "compile.role_arn" in manifest_page
