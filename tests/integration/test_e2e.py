"""End to end: the real CLI builds every example model with the real frameworks.

One module-scoped build of the seven examples serves several tests; a second copy in
another directory, with another umask and other mtimes, proves the outputs are
byte-reproducible.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import copy_examples, neobuild, report
from ruamel.yaml import YAML

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]

EXPECTED_MEMBERS = {
    "torch-cnn": ["code/", "code/inference.py", "model.pth"],
    "onnx-mlp": ["model.onnx"],
    "xgb-classifier": ["model.json"],
    "keras-cnn": ["model.h5"],
    "tf-savedmodel": [
        "saved_model.pb",
        "variables/",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ],
    "tflite-mobile": ["model.tflite"],
    "mxnet-mlp": ["code/", "code/inference.py", "mxnet-mlp-0000.params", "mxnet-mlp-symbol.json"],
}


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    repo = copy_examples(tmp_path_factory.mktemp("e2e") / "repo")
    result = neobuild("package", "--all", "-j", "2", "--smoke", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    return repo, report(result)


def test_every_framework_is_built(built: tuple[Path, dict[str, Any]]) -> None:
    _repo, data = built
    assert data["ok"] is True
    assert data["summary"]["built"] == 7
    statuses = {m["name"]: m["status"] for m in data["models"]}
    assert statuses == dict.fromkeys(EXPECTED_MEMBERS, "built")


@pytest.mark.parametrize("name", sorted(EXPECTED_MEMBERS))
def test_archive_layout_follows_neo_rules(built: tuple[Path, dict[str, Any]], name: str) -> None:
    repo, _ = built
    archive = repo / "build" / "neo" / name / "model.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        names = [m.name + ("/" if m.isdir() else "") for m in members]
        assert names == EXPECTED_MEMBERS[name]
        for member in members:
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            assert member.mtime == 0
            assert member.isfile() or member.isdir()
        # Files at the archive root are the exported files, byte for byte.
        export = repo / "build" / "neo" / name / "export"
        for member in members:
            if member.isfile() and not member.name.startswith("code/"):
                extracted = tar.extractfile(member)
                assert extracted is not None
                assert extracted.read() == (export / member.name).read_bytes()
    assert archive.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime 0


def test_lock_records_what_was_built(built: tuple[Path, dict[str, Any]]) -> None:
    repo, _ = built
    lock = YAML(typ="safe").load((repo / "neo.lock").read_text())
    assert (repo / "neo.lock").read_text().startswith("# @generated")
    assert lock["lock_version"] == 1
    assert sorted(lock["models"]) == sorted(EXPECTED_MEMBERS)
    for name, entry in lock["models"].items():
        model_dir = repo / "build" / "neo" / name
        assert entry["archive"]["sha256"] == sha256(model_dir / "model.tar.gz")
        assert entry["archive"]["size"] == (model_dir / "model.tar.gz").stat().st_size
        for rel, record in entry["files"].items():
            assert record["sha256"] == sha256(model_dir / "export" / rel)
        for key, request in entry["requests"].items():
            body = json.loads((repo / request["path"]).read_text())
            assert body["CompilationJobName"] == request["job_name"]
            assert request["sha256"] == sha256(repo / request["path"])
            assert key in request["path"]
    # The framework version that really exported each model is recorded.
    assert lock["models"]["torch-cnn"]["exported_with"]["torch"].startswith("2.")
    assert lock["models"]["mxnet-mlp"]["exported_with"]["mxnet"] == "1.9.1"
    assert "tensorflow" in lock["models"]["tf-savedmodel"]["exported_with"]
    assert "xgboost" in lock["models"]["xgb-classifier"]["exported_with"]
    # --smoke ran every rendered handler on its exported model.
    assert {name: entry["smoke"] for name, entry in lock["models"].items()} == dict.fromkeys(
        EXPECTED_MEMBERS, "passed"
    )


def test_requests_and_scripts_are_rendered(built: tuple[Path, dict[str, Any]]) -> None:
    repo, _ = built
    base = repo / "build" / "neo"
    tflite = {p.name for p in (base / "tflite-mobile" / "requests").iterdir()}
    assert tflite == {"rasp4b.json", "jetson_nano.json", "android-arm64.json"}
    assert (base / "tflite-mobile" / "edge" / "run_dlr.py").is_file()
    for name in EXPECTED_MEMBERS:
        compile((base / name / "code" / "inference.py").read_text(), name, "exec")
    request = json.loads((base / "torch-cnn" / "requests" / "ml_c5.json").read_text())
    assert json.loads(request["InputConfig"]["DataInputConfig"]) == {"input0": [1, 3, 32, 32]}
    assert request["InputConfig"]["Framework"] == "PYTORCH"


def test_second_run_builds_nothing_and_verify_passes(built: tuple[Path, dict[str, Any]]) -> None:
    repo, _ = built
    before = (repo / "neo.lock").read_bytes()
    again = neobuild("package", "--all", "--json", cwd=repo)
    assert again.returncode == 0, again.stderr
    data = report(again)
    assert data["summary"] == {
        "built": 0,
        "restored": 0,
        "fresh": 7,
        "failed": 0,
        "interrupted": 0,
        "skipped": 0,
    }
    assert "0 built, 7 up to date" in again.stderr
    assert (repo / "neo.lock").read_bytes() == before
    assert neobuild("plan", "--check", cwd=repo).returncode == 0
    verified = neobuild("verify", cwd=repo)
    assert verified.returncode == 0, verified.stderr


def test_outputs_are_byte_reproducible_across_checkouts(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    repo, _ = built
    other = copy_examples(tmp_path / "elsewhere" / "deeper" / "repo")
    for path in other.rglob("*"):  # other mtimes
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    old_umask = os.umask(0o077)  # another umask, inherited by the subprocess
    try:
        result = neobuild("package", "--all", "-j", "2", "--smoke", cwd=other)
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    assert (other / "neo.lock").read_bytes() == (repo / "neo.lock").read_bytes()
    for name in EXPECTED_MEMBERS:
        rel = Path("build/neo") / name / "model.tar.gz"
        assert (other / rel).read_bytes() == (repo / rel).read_bytes(), name


def test_matrix_is_one_line_balanced_by_recorded_durations(
    built: tuple[Path, dict[str, Any]],
) -> None:
    repo, _ = built
    durations = json.loads((repo / ".neobuild" / "durations.json").read_text())["durations"]
    assert sorted(durations) == sorted(EXPECTED_MEMBERS)
    result = neobuild("plan", "--matrix", "3", "--all", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1  # fits in $GITHUB_OUTPUT
    include = json.loads(result.stdout)["include"]
    assert [entry["shard"] for entry in include] == ["1/3", "2/3", "3/3"]
    models = [name for entry in include for name in entry["models"].split()]
    assert sorted(models) == sorted(EXPECTED_MEMBERS)
    # Nothing is stale after the build: the default matrix is empty.
    assert json.loads(neobuild("plan", "--matrix", "3", cwd=repo).stdout) == {"include": []}
