"""mkdocs hook: add the pages tools/docgen.py generates (nothing generated is committed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docgen
from mkdocs.structure.files import File, Files


def on_files(files: Files, config: Any) -> Files:
    for path, content in docgen.pages().items():
        files.append(File.generated(config, path, content=content))
    return files
