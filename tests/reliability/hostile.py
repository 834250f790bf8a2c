"""A small repository and the CLI run in-process, for the manifest reliability tests.

The fuzz slice (test_rel_fuzz.py) and the long script (benchmarks/fuzz_manifest.py)
share :func:`make_repo`, :func:`run` and the mutations in :mod:`mutate`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from neobuild.cli import app

EXPORT = "def export(output_dir, inputs):\n    (output_dir / 'model.json').write_text('{}')\n"

VALID = """\
version: 1
build_dir: build/neo
include: ["more/*.yaml"]
defaults:
  targets: [ml_c5]
  compile: {role_arn: "arn:aws:iam::123456789012:role/Neo", s3_prefix: "s3://b/neo"}
models:
  a:
    framework: xgboost
    export: models/a/export.py:export
    tags: [small, fast]
    sources: ["models/a/**"]
  b:
    framework: onnx
    export: models/b/export.py:export
    inputs: {input: [1, 3, 8, 8]}
    targets: [ml_c5, {platform: {os: LINUX, arch: ARM64}}]
    compile: {tags: {team: vision}}
"""

INCLUDED = """\
models:
  c:
    framework: pytorch
    framework_version: "2.0"
    export: ../models/c/export.py:export
    inputs: {x: [1, 4]}
    env: {SEED: "1"}
"""


@dataclass(frozen=True)
class Outcome:
    command: str
    code: int
    output: str


def make_repo(root: Path) -> Path:
    """A git repository with three models (one in an include) and a symlink out."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("a", "b", "c"):
        (root / "models" / name).mkdir(parents=True, exist_ok=True)
        (root / "models" / name / "export.py").write_text(EXPORT)
    (root / "more").mkdir(exist_ok=True)
    (root / "more" / "c.yaml").write_text(INCLUDED)
    (root / "neo.yaml").write_text(VALID)
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "x.yaml").write_text("models: {}\n")
    (outside / "export.py").write_text(EXPORT)
    if not os.path.lexists(root / "out"):
        (root / "out").symlink_to(outside)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def run(root: Path, *args: str) -> Outcome:
    """``neobuild -C root ARGS`` in-process; the exit code as the CLI would return it."""
    result = CliRunner().invoke(app, ["-C", str(root), *args])
    return Outcome(" ".join(args), result.exit_code, result.output)


#: What a case runs: every command that loads the manifest and uses its paths.
COMMANDS = (("validate",), ("plan",))


def run_case(root: Path, data: bytes) -> list[Outcome]:
    """Write ``data`` as the manifest and run :data:`COMMANDS` on it."""
    (root / "neo.yaml").write_bytes(data)
    return [run(root, *command) for command in COMMANDS]


def internal_error(outcome: Outcome) -> bool:
    """An exit the CLI gives only for a crash (3) or a message it prints for one."""
    return outcome.code not in (0, 1, 2) or "internal error" in outcome.output
