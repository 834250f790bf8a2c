"""End to end, as a user runs it: the neobuild CLI as a subprocess against a moto server.

Two git clones of one repository share an S3 build cache: the first packages and pushes,
the second restores without exporting, then submits the compilation jobs, follows them and
re-runs idempotently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import pytest

pytest_plugins = ["moto_server"]

pytestmark = [pytest.mark.aws, pytest.mark.frameworks]

NEOBUILD = str(Path(sys.executable).with_name("neobuild"))

MANIFEST = """\
version: 1
build_dir: build/neo
defaults:
  compile:
    role_arn: arn:aws:iam::123456789012:role/NeoCompile
    s3_prefix: s3://neo-inputs/neo
    region: us-east-1
models:
  xgb:
    framework: xgboost
    export: models/xgb/export.py:export
    targets: [ml_c5, ml_m5]
"""


def run(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [NEOBUILD, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    if ok:
        assert proc.returncode == 0, f"neobuild {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def origin(tmp_path: Path, repo_root: Path) -> Path:
    repo = tmp_path / "origin"
    (repo / "models" / "xgb").mkdir(parents=True)
    export = repo_root / "examples" / "models" / "xgb-classifier" / "export.py"
    (repo / "models" / "xgb" / "export.py").write_bytes(export.read_bytes())
    (repo / "neo.yaml").write_text(MANIFEST, encoding="utf-8")
    (repo / ".gitignore").write_text("build/\n.neobuild/\nneo.lock.lock\n", encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    return repo


def test_two_clones_share_the_cache_and_compile(
    moto_env: str, origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="neo-cache")
    s3.create_bucket(Bucket="neo-inputs")
    monkeypatch.setenv("NEOBUILD_CACHE_URL", "s3://neo-cache/v1")
    first, second = tmp_path / "first", tmp_path / "second"
    git(tmp_path, "clone", "-q", str(origin), str(first))
    git(tmp_path, "clone", "-q", str(origin), str(second))

    # clone 1 builds and pushes to the cache
    built = run(first, "package", "--all", "--json")
    assert json.loads(built.stdout)["summary"]["built"] == 1
    cached = [o["Key"] for o in s3.list_objects_v2(Bucket="neo-cache")["Contents"]]
    assert len(cached) == 3 and any(k.endswith("/entry.json") for k in cached)

    # clone 2 restores instead of exporting, with identical outputs and lock
    junit = second / "reports" / "junit.xml"
    restored = run(second, "package", "--all", "--junit", str(junit))
    assert "restored from cache" in restored.stderr
    assert (second / "neo.lock").read_bytes() == (first / "neo.lock").read_bytes()
    archive = "build/neo/xgb/model.tar.gz"
    assert (second / archive).read_bytes() == (first / archive).read_bytes()
    assert (second / "build" / "neo" / "xgb" / "export.log").is_file()
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests", "0")) >= 1
    run(second, "verify")

    # pre-flight only, then submit and follow
    run(second, "compile", "--all")
    assert s3.list_objects_v2(Bucket="neo-inputs").get("KeyCount") == 0
    submitted = json.loads(run(second, "compile", "--all", "--submit", "--wait", "--json").stdout)
    assert submitted["ok"] and [j["status"] for j in submitted["jobs"]] == ["COMPLETED"] * 2
    assert [j["uploaded"] for j in submitted["jobs"]] == [True, False]  # one archive, two targets
    inputs = [o["Key"] for o in s3.list_objects_v2(Bucket="neo-inputs")["Contents"]]
    assert len(inputs) == 1 and inputs[0].endswith("/model.tar.gz")
    sm = boto3.client("sagemaker")
    assert len(sm.list_compilation_jobs()["CompilationJobSummaries"]) == 2
    lock_text = (second / "neo.lock").read_text(encoding="utf-8")
    for job in submitted["jobs"]:
        assert job["arn"] in lock_text and job["output"] in lock_text
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in lock_text  # "testing": no secrets

    # re-running describes the existing jobs: nothing new, the lock unchanged
    again = json.loads(run(second, "compile", "--all", "--submit", "--wait", "--json").stdout)
    assert all(j["existed"] and j["uploaded"] is None for j in again["jobs"])
    assert len(sm.list_compilation_jobs()["CompilationJobSummaries"]) == 2
    assert (second / "neo.lock").read_text(encoding="utf-8") == lock_text
    run(second, "verify")


def test_compile_errors_exit_cleanly(moto_env: str, origin: Path) -> None:
    run(origin, "package", "--all")
    # no bucket for the inputs: an AWS error with a hint, not a traceback
    proc = run(origin, "compile", "--all", "--submit", ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "NoSuchBucket" in proc.stderr and "Traceback" not in proc.stderr
    assert "create the bucket" in proc.stderr
