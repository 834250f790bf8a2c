"""A plain ``pip install neobuild`` (no ``aws`` extra) validates and packages (issue 12, 3).

The wheel is installed alone into a fresh venv (``wheel_env.plain_venv``). The request
pre-flight needs botocore's service model, a core dependency; ``compile --submit`` needs
boto3 and, without it, is a usage error (exit 2) naming ``neobuild[aws]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import init_repo, write_tree

pytest_plugins = ["wheel_env"]


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH (the checkout must not shadow the wheel)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


MANIFEST = """\
version: 1
models:
  tiny-darknet:
    framework: darknet
    export: models/tiny/export.py:export
    inputs: {data: [1, 3, 160, 224]}
    targets: [rasp4b]
    compile:
      role_arn: arn:aws:iam::123456789012:role/NeoCompile
      s3_prefix: s3://neo-inputs/neo
      region: us-east-1
"""

# A Darknet network written with the standard library: no framework in the venv.
EXPORT = """\
import struct
from pathlib import Path

CFG = "[net]\\nbatch=1\\nwidth=224\\nheight=160\\nchannels=3\\n\\n[convolutional]\\nfilters=4\\nsize=3\\n"


def export(output_dir, inputs):
    out = Path(output_dir)
    (out / "tiny.cfg").write_text(CFG)
    header = struct.pack("<iiiq", 0, 2, 0, 0)
    (out / "tiny.weights").write_bytes(header + bytes(4 * (4 + 4 * 3 * 3 * 3)))
"""


def _run(venv: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "neobuild"), "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(),
        cwd=repo.parent,  # not the checkout: the installed package is imported
    )


def _imports(venv: Path, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", probe], env=clean_env(), timeout=60)
    return proc.returncode == 0


@pytest.mark.slow
def test_plain_install_validates_packages_and_refuses_submit(
    plain_venv: Path, tmp_path: Path
) -> None:
    assert not _imports(plain_venv, "boto3"), "the plain venv must not have the aws extra"
    assert _imports(plain_venv, "botocore")
    repo = tmp_path / "repo"
    write_tree(repo, {"neo.yaml": MANIFEST, "models/tiny/export.py": EXPORT})
    (repo / ".gitignore").write_text("build/\n.neobuild/\n")
    init_repo(repo)

    validated = _run(plain_venv, repo, "validate")
    assert validated.returncode == 0, validated.stderr

    packaged = _run(plain_venv, repo, "package", "--all")
    assert packaged.returncode == 0, packaged.stderr
    assert "Traceback" not in packaged.stderr
    request = repo / "build" / "neo" / "tiny-darknet" / "requests" / "rasp4b.json"
    assert json.loads(request.read_text())["OutputConfig"]["TargetDevice"] == "rasp4b"
    assert (repo / "neo.lock").is_file()

    checked = _run(plain_venv, repo, "compile", "--all")  # the pre-flight needs no boto3
    assert checked.returncode == 0, checked.stderr

    submitted = _run(plain_venv, repo, "compile", "--all", "--submit")
    assert submitted.returncode == 2, submitted.stderr
    assert "neobuild[aws]" in submitted.stderr and "boto3" in submitted.stderr
    assert "Traceback" not in submitted.stderr


# Run where botocore cannot be imported (None in sys.modules: the import machinery's own
# "halted" ModuleNotFoundError), as in an install made with --no-deps.
NO_BOTOCORE = """
import logging, sys
sys.modules["botocore"] = None
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from neobuild import request
from neobuild.preflight import preflight
from neobuild.model import CompileSettings, ExportRef, Inputs, InputSpec, Manifest, Model, Target
from pathlib import Path
model = Model(
    name="m", framework="pytorch", framework_version="2.0",
    export=ExportRef(function="export", path="m/export.py"),
    inputs=Inputs(form="dict", items=(InputSpec("input0", (1, 3, 8, 8)),)),
    targets=(Target(device="ml_c5"),),
    compile=CompileSettings(
        role_arn="arn:aws:iam::123456789012:role/NeoRole", s3_prefix="s3://b/neo"
    ),
)
manifest = Manifest(path=Path("neo.yaml"), root=Path("."), build_dir=Path("b"), models={"m": model})
good = request.build_request(manifest, model, model.targets[0], archive_sha256="a" * 64)
print(preflight(good, model="m", target="ml_c5"))
print(preflight(good, model="m", target="ml_c5"))
bad = dict(good, RoleArn="not-an-arn")
try:
    preflight(bad, model="m", target="ml_c5")
except request.RequestError as exc:
    print("refused", bool(exc.problems) and all("RoleArn" in p for p in exc.problems))
"""


def test_preflight_without_botocore_says_so_once_and_keeps_its_rules() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_BOTOCORE], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "[]", "refused True"]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "botocore is not installed" in warnings[0]


def test_submit_without_boto3_is_a_usage_error_naming_the_extra(tmp_path: Path) -> None:
    """The fast twin of the wheel test: boto3 made unimportable in the dev venv."""
    repo = tmp_path / "repo"
    write_tree(repo, {"neo.yaml": MANIFEST, "models/tiny/export.py": EXPORT})
    init_repo(repo)
    no_boto3 = "import runpy, sys; sys.modules['boto3'] = None; runpy.run_module('neobuild')"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", no_boto3, "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    for args in (("package", "--all"), ("compile", "--all")):
        proc = run(*args)
        assert proc.returncode == 0, proc.stderr
    submitted = run("compile", "--all", "--submit")
    assert submitted.returncode == 2, submitted.stderr
    assert 'pip install "neobuild[aws]"' in submitted.stderr
    assert "Traceback" not in submitted.stderr
