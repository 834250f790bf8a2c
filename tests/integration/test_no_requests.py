"""Models without compile settings, through the real CLI with real ONNX exports.

No ``compile.role_arn``/``s3_prefix``: ``package`` builds archive, scripts and lock and
says so in one line; ``plan``, ``verify``, ``--json`` and ``neo.lock`` agree that the model
has no requests; ``compile`` refuses it (exit 2). One key without the other is a
``validate`` error. Adding both renders the requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from everyday_project import EXPORT
from factories import init_repo, write

from neobuild import lockfile

NEOBUILD = str(Path(sys.executable).with_name("neobuild"))


MANIFEST = """\
version: 1
defaults:
  targets: [ml_c5]
  framework: onnx
  inputs: {input: [1, 3, 8, 8]}
models:
  bare:
    export: models/bare/export.py:export
  ready:
    export: models/ready/export.py:export
    compile:
      role_arn: arn:aws:iam::123456789012:role/NeoCompile
      s3_prefix: s3://my-bucket/neo
"""

ONLY_ROLE = """\
    compile:
      role_arn: arn:aws:iam::123456789012:role/NeoCompile
"""


BOTH_IN_DEFAULTS = """\
version: 1
defaults:
  targets: [ml_c5]
  framework: onnx
  inputs: {input: [1, 3, 8, 8]}
  compile:
    role_arn: arn:aws:iam::123456789012:role/NeoCompile
    s3_prefix: s3://my-bucket/neo
models:
  bare:
    export: models/bare/export.py:export
  ready:
    export: models/ready/export.py:export
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEOBUILD, *args], cwd=root, capture_output=True, text=True, timeout=300)


def test_a_model_without_compile_settings_builds_without_requests(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    init_repo(root)
    write(root, "models/bare/export.py", EXPORT)
    write(root, "models/ready/export.py", EXPORT)
    write(root, "neo.yaml", MANIFEST)

    built = run(root, "package", "--all", "-j", "2", "--json")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["requests_not_rendered"] == ["bare"]
    by_name = {m["name"]: m for m in report["models"]}
    assert by_name["bare"]["targets"] == [
        {"target": "ml_c5", "status": "not rendered", "message": "no compile settings"}
    ]
    assert by_name["ready"]["targets"][0]["status"] == "rendered"
    lines = [line for line in built.stderr.splitlines() if "not rendered" in line]
    assert lines == [
        "compilation requests not rendered for 1 model (bare): set compile.role_arn and "
        "compile.s3_prefix in neo.yaml (compile.region is optional: AWS_REGION is used "
        "without it) to render them"
    ]
    bare = root / "build" / "neo" / "bare"
    assert (bare / "model.tar.gz").is_file() and (bare / "code" / "inference.py").is_file()
    assert not (bare / "requests").exists()
    assert (root / "build" / "neo" / "ready" / "requests" / "ml_c5.json").is_file()
    lock = lockfile.read_lock(root / lockfile.LOCK_NAME)
    assert lock.models["bare"].requests == {}
    assert set(lock.models["ready"].requests) == {"ml_c5"}

    # plan and verify: the missing requests are expected, not drift
    assert run(root, "plan", "--check").returncode == 0
    planned = json.loads(run(root, "plan", "--json").stdout)
    assert "bare" in json.dumps(planned)
    assert run(root, "verify").returncode == 0
    again = json.loads(run(root, "package", "--all", "--json").stdout)
    assert again["summary"]["fresh"] == 2 and again["requests_not_rendered"] == []

    # compile: the named model is a usage error; --all skips it and checks the other
    refused = run(root, "compile", "bare")
    assert refused.returncode == 2
    assert "nothing to compile for bare" in refused.stderr
    assert "compile.role_arn and compile.s3_prefix" in refused.stderr
    checked = run(root, "compile", "--all")
    assert checked.returncode == 0, checked.stderr
    assert "skipping 1 model(s) without compile settings: bare" in checked.stderr

    # one key without the other: validate and package both refuse, positioned
    bare_export = "models/bare/export.py:export\n"
    write(root, "neo.yaml", MANIFEST.replace(bare_export, bare_export + ONLY_ROLE, 1))
    for command in ("validate", "package"):
        result = run(root, command, *(("--all",) if command == "package" else ()))
        assert result.returncode == 2, result.stderr
        assert (
            "neo.yaml:10:7: models.bare.compile.role_arn: compile settings are incomplete: "
            "compile.s3_prefix is not set"
        ) in result.stderr

    # both keys: the requests are rendered and the export is reused
    write(root, "neo.yaml", BOTH_IN_DEFAULTS)
    rebuilt = run(root, "package", "--all", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["requests_not_rendered"] == []
    assert (bare / "requests" / "ml_c5.json").is_file()
    assert set(lockfile.read_lock(root / lockfile.LOCK_NAME).models["bare"].requests) == {"ml_c5"}
    assert run(root, "plan", "--check").returncode == 0
