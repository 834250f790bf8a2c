"""The README's tour, run verbatim in a fresh git repository with the installed neobuild.

The test reads the ```sh blocks of README.md's "A short tour" section and runs each with
bash (``-e -u -o pipefail``: every command must succeed). The last block, the optional
compile step, runs against the moto server (``AWS_ENDPOINT_URL``). Nothing of the tour is
copied here: change the README and this test runs the new tour.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from locations import ROOT

import neobuild
from neobuild import lockfile

README = ROOT / "README.md"
SECTION = "## A short tour"

pytestmark = pytest.mark.slow
pytest_plugins = ["moto_server"]


def tour_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.S | re.M)


def _env() -> dict[str, str]:
    """This interpreter's scripts first on PATH; the neobuild under test importable."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    code_root = str(Path(neobuild.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (code_root, env.get("PYTHONPATH")) if p)
    env.pop("NEOBUILD_CACHE_URL", None)
    return env


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-u", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _neobuild(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["neobuild", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )


def test_the_tour_has_a_build_and_a_compile_step() -> None:
    blocks = tour_blocks()
    assert len(blocks) == 2, "the tour is one build block and one optional compile block"
    assert blocks[0].startswith("neobuild init")
    assert "compile" in blocks[1] and "--submit" in blocks[1]


def test_readme_tour_runs_verbatim(tmp_path: Path, moto_env: str) -> None:
    import boto3

    build, compile_step = tour_blocks()
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    ran = _bash(build, repo)
    assert ran.returncode == 0, f"tour block 1 failed:\n{ran.stdout}\n{ran.stderr}"
    tiny = repo / "build" / "neo" / "tiny"
    assert (tiny / "model.tar.gz").is_file()
    assert (tiny / "code" / "inference.py").is_file()
    assert not (tiny / "requests").exists()  # no compile settings: no requests
    note = [line for line in ran.stderr.splitlines() if "requests not rendered" in line]
    assert len(note) == 1, ran.stderr
    assert "compile.role_arn" in note[0] and "compile.s3_prefix" in note[0]
    assert "(tiny)" in note[0]

    entry = lockfile.read_lock(repo / lockfile.LOCK_NAME).models["tiny"]
    assert entry.requests == {} and entry.jobs == {}
    assert "code/inference.py" in entry.outputs

    # A model without requests is fresh for plan, in text and JSON, and verifies.
    assert _neobuild(repo, "plan", "--check").returncode == 0
    planned = json.loads(_neobuild(repo, "plan", "--json").stdout)
    assert "tiny" in json.dumps(planned)
    assert _neobuild(repo, "verify").returncode == 0
    # compile without settings is a usage error that says what to set.
    refused = _neobuild(repo, "compile", "tiny")
    assert refused.returncode == 2, refused.stderr
    assert "compile.role_arn" in refused.stderr and "Traceback" not in refused.stderr

    bucket = re.search(r"s3://([^/\s]+)/", compile_step)
    assert bucket is not None, "the compile step names an s3_prefix"
    boto3.client("s3", endpoint_url=moto_env).create_bucket(Bucket=bucket[1])
    ran = _bash(compile_step, repo)
    assert ran.returncode == 0, f"tour block 2 failed:\n{ran.stdout}\n{ran.stderr}"
    request = json.loads((tiny / "requests" / "ml_c5.json").read_text())
    assert request["InputConfig"]["Framework"] == "ONNX"
    assert json.loads(request["InputConfig"]["DataInputConfig"]) == {"features": [1, 4]}
    lock = (repo / "neo.lock").read_text()
    assert request["CompilationJobName"] in lock
    assert "COMPLETED" in lock
