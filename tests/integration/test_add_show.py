"""`neobuild add` edits neo.yaml in place (validated first); `neobuild show` reports one model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from e2e_helpers import EXAMPLES, neobuild
from everyday_project import write_project

from neobuild import lockfile

ADD = (
    "add",
    "resnet",
    "--framework",
    "pytorch",
    "--framework-version",
    "1.8",
    "--export",
    "models/torch-cnn/export.py:export",
    "--input",
    "input0=1,3,224,224",
    "--target",
    "ml_c5",
    "--target",
    "jetson_nano",
    "--tag",
    "vision",
)


def _examples_manifest(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "models", tmp_path / "models")
    shutil.copy(EXAMPLES / "neo.yaml", tmp_path / "neo.yaml")
    return tmp_path / "neo.yaml"


def test_add_keeps_every_comment_and_line_and_appends_the_model(tmp_path: Path) -> None:
    manifest = _examples_manifest(tmp_path)
    before = manifest.read_text()
    result = neobuild(*ADD, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    after = manifest.read_text()
    assert after.startswith(before.rstrip("\n") + "\n")  # the file is unchanged up to the end
    assert after[len(before.rstrip("\n")) + 1 :] == (
        "  resnet:\n"
        "    framework: pytorch\n"
        '    framework_version: "1.8"\n'
        "    export: models/torch-cnn/export.py:export\n"
        "    inputs:\n"
        "      input0: [1, 3, 224, 224]\n"
        "    targets: [ml_c5, jetson_nano]\n"
        "    tags: [vision]\n"
    )
    shown = json.loads(neobuild("show", "resnet", "--json", cwd=tmp_path, timeout=120).stdout)
    assert shown["model"]["inputs"]["items"] == [{"name": "input0", "shape": [1, 3, 224, 224]}]
    assert [t["device"] for t in shown["model"]["targets"]] == ["ml_c5", "jetson_nano"]


def test_add_into_the_starter_turns_models_into_a_block(tmp_path: Path) -> None:
    (tmp_path / "models" / "torch-cnn").mkdir(parents=True)
    (tmp_path / "models" / "torch-cnn" / "export.py").write_text("def export(out, inputs): ...\n")
    assert neobuild("init", cwd=tmp_path).returncode == 0
    starter = (tmp_path / "neo.yaml").read_text()
    assert neobuild(*ADD, cwd=tmp_path, timeout=120).returncode == 0
    text = (tmp_path / "neo.yaml").read_text()
    assert "models:\n  resnet:\n    framework: pytorch\n" in text
    # Every comment of the starter is still there.
    comments = [line for line in starter.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in text.splitlines() for line in comments)
    assert neobuild("validate", cwd=tmp_path).returncode == 0


def test_add_that_would_not_validate_writes_nothing_and_says_where(tmp_path: Path) -> None:
    manifest = _examples_manifest(tmp_path)
    before = manifest.read_bytes()
    bad = [a.replace("pytorch", "pytorh").replace("jetson_nano", "jetson_nan") for a in ADD]
    result = neobuild(*bad, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert manifest.read_bytes() == before
    assert "models.resnet.framework: unknown framework 'pytorh'" in result.stderr
    assert "did you mean 'pytorch'?" in result.stderr
    assert "models.resnet.targets[1]" in result.stderr and "nothing was written" in result.stderr
    assert "neo.yaml:" in result.stderr  # positioned
    assert not list(tmp_path.glob(".neo.yaml.add-*"))  # the candidate is gone


def test_add_refuses_a_taken_name_and_a_bad_shape(tmp_path: Path) -> None:
    manifest = _examples_manifest(tmp_path)
    before = manifest.read_bytes()
    taken = neobuild(*[("torch-cnn" if a == "resnet" else a) for a in ADD], cwd=tmp_path)
    assert taken.returncode == 2 and "'torch-cnn' is already declared at" in taken.stderr
    shape = neobuild(*[("input0=1,x" if "input0" in a else a) for a in ADD], cwd=tmp_path)
    assert shape.returncode == 2 and "is not NAME=D1,D2" in shape.stderr
    assert manifest.read_bytes() == before


def test_show_lists_files_hashes_requests_and_jobs(tmp_path: Path) -> None:
    write_project(tmp_path, names=("resnet",))
    fresh = neobuild("show", "resnet", cwd=tmp_path, timeout=120)
    assert fresh.returncode == 0 and "not built yet" in fresh.stdout
    assert neobuild("package", "--all", cwd=tmp_path, timeout=600).returncode == 0
    # Record a job as `compile --submit` does (it writes SageMaker's answer into neo.lock).
    lock_path = tmp_path / "neo.lock"
    entry = lockfile.read_lock(lock_path).models["resnet"]
    job = lockfile.JobRecord(
        name=entry.requests["ml_c5"].job_name,
        arn=None,
        status="FAILED",
        output=None,
        inference_image=None,
        artifact_digest=None,
        failure_reason="ClientError: InputConfiguration: bad shape",
    )
    lockfile.update_lock(lock_path, {"resnet": dataclasses.replace(entry, jobs={"ml_c5": job})})

    human = neobuild("show", "resnet", cwd=tmp_path, timeout=120)
    assert human.returncode == 0, human.stderr
    digest = hashlib.sha256((tmp_path / "build/neo/resnet/model.tar.gz").read_bytes()).hexdigest()
    assert f"sha256:{digest}" in human.stdout
    assert "model.onnx" in human.stdout and "(fresh)" in human.stdout
    assert f"ml_c5: FAILED  {job.name}: ClientError" in human.stdout
    document = json.loads(neobuild("show", "resnet", "--json", cwd=tmp_path).stdout)
    assert document["schema_version"] == 1 and document["status"]["status"] == "fresh"
    assert document["lock"]["archive"]["sha256"] == f"sha256:{digest}"
    assert document["lock"]["jobs"]["ml_c5"]["status"] == "FAILED"
    assert document["lock"]["requests"]["ml_c5"]["path"].endswith(".json")


def test_show_of_an_unknown_model_suggests_one(tmp_path: Path) -> None:
    write_project(tmp_path)
    result = neobuild("show", "resnt", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "did you mean 'resnet'?" in result.stderr
    pattern = neobuild("show", "res*", cwd=tmp_path, timeout=120)
    assert pattern.returncode == 2 and "one model name, not a pattern" in pattern.stderr
