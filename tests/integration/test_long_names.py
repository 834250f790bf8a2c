"""Model names up to 63 characters work end to end (issue 12, point 2).

The manifest allows any EntityName-shaped name of at most 63 characters; the JSON Schema
says the same. The job name ``<model>-<target>-<8 hex>`` is cut to 63 keeping the hash;
S3 keys, tags and build paths take the full name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from e2e_helpers import ROOT, init_repo, neobuild, report, write_tree
from ruamel.yaml import YAML

from neobuild import manifest, neo, schema
from neobuild.errors import ManifestError

pytest_plugins = ["moto_server"]

# Two 63-character names that share their first 62 characters.
PREFIX = "resnet50-imagenet-int8-calibrated-edge-v2-monorepo-team-vision-"
LONG_A = PREFIX[:62] + "a"
LONG_B = PREFIX[:62] + "b"
JOB_NAME = re.compile(neo.FIELD_RULES["CompilationJobName"].pattern or "")

MANIFEST = f"""\
version: 1
defaults:
  framework: xgboost
  targets: [ml_c5]
  compile:
    role_arn: arn:aws:iam::123456789012:role/NeoCompile
    s3_prefix: s3://neo-inputs/neo
    region: us-east-1
models:
  {LONG_A}: {{export: "models/xgb/export.py:export"}}
  {LONG_B}: {{export: "models/xgb/export.py:export"}}
"""


def _names_doc(name: str) -> str:
    return (
        f"version: 1\nmodels:\n  {name}:\n"
        "    framework: xgboost\n    export: e.py:f\n    targets: [ml_c5]\n"
    )


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "neo.yaml"
    path.write_text(text)
    (tmp_path / "e.py").write_text("def f(output_dir, inputs):\n    pass\n")
    try:
        manifest.load(path, use_cache=False)
    except ManifestError as exc:
        return [p.render() for p in exc.problems]
    return []


def test_the_names_are_63_characters_and_share_a_prefix() -> None:
    assert len(LONG_A) == len(LONG_B) == neo.MODEL_NAME_MAX == 63
    assert LONG_A[:62] == LONG_B[:62]


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        (LONG_A, True),
        ("a", True),
        ("a--b", True),
        (LONG_A + "x", False),  # 64 characters
        ("-a", False),
        ("a_b", False),
    ],
)
def test_validator_and_json_schema_agree_on_model_names(
    tmp_path: Path, name: str, valid: bool
) -> None:
    text = _names_doc(name)
    schema_errors = list(
        jsonschema.Draft202012Validator(schema.json_schema()).iter_errors(
            YAML(typ="safe", pure=True).load(text)
        )
    )
    assert (schema_errors == []) is valid, schema_errors
    problems = _problems(tmp_path, text)
    if valid:
        assert problems == []
    else:
        assert len(problems) == 1 and f"model name {name!r}" in problems[0], problems


def test_a_64_character_name_is_refused_with_the_limit(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, _names_doc(LONG_A + "x"))
    assert "is 64 characters; at most 63 are allowed" in problem


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    export = ROOT / "examples" / "models" / "xgb-classifier" / "export.py"
    write_tree(
        root,
        {
            "neo.yaml": MANIFEST,
            "models/xgb/export.py": export.read_text(),
            ".gitignore": "build/\n.neobuild/\n",
        },
    )
    init_repo(root)
    return root


def _request(root: Path, name: str) -> dict[str, Any]:
    path = root / "build" / "neo" / name / "requests" / "ml_c5.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.aws
@pytest.mark.frameworks
def test_long_names_package_preflight_and_submit(moto_env: str, repo: Path) -> None:
    checked = neobuild("validate", cwd=repo)
    assert checked.returncode == 0, checked.stderr

    built = neobuild("package", "--all", "--json", cwd=repo)
    assert built.returncode == 0, built.stderr
    assert report(built)["summary"]["built"] == 2

    jobs = {}
    for name in (LONG_A, LONG_B):
        assert (repo / "build" / "neo" / name / "model.tar.gz").is_file()
        req = _request(repo, name)
        job = req["CompilationJobName"]
        assert len(job) == 63 and JOB_NAME.fullmatch(job), job
        stem, digest = job.rsplit("-", 1)
        assert re.fullmatch(r"[0-9a-f]{8}", digest)
        assert name.startswith(stem)  # the stem is cut; the hash is kept
        assert f"/neo/{name}/" in req["InputConfig"]["S3Uri"]
        assert req["OutputConfig"]["S3OutputLocation"].endswith(f"/neo/{name}/compiled/ml_c5/")
        assert {"Key": "neobuild:model", "Value": name} in req["Tags"]
        jobs[name] = job
    # The stems are equal (the names differ only past the cut): the hash tells them apart.
    assert jobs[LONG_A].rsplit("-", 1)[0] == jobs[LONG_B].rsplit("-", 1)[0]
    assert jobs[LONG_A] != jobs[LONG_B]
    lock = (repo / "neo.lock").read_text()
    assert all(name in lock and job in lock for name, job in jobs.items())

    preflight = neobuild("compile", "--all", cwd=repo)
    assert preflight.returncode == 0, preflight.stderr

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="neo-inputs")
    submitted = neobuild("compile", "--all", "--submit", "--json", cwd=repo)
    assert submitted.returncode == 0, submitted.stderr
    result = report(submitted)
    assert result["ok"] and {j["job_name"] for j in result["jobs"]} == set(jobs.values())
    sm = boto3.client("sagemaker")
    created = {
        j["CompilationJobName"] for j in sm.list_compilation_jobs()["CompilationJobSummaries"]
    }
    assert created == set(jobs.values())
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="neo-inputs")["Contents"])
    assert [k.split("/")[1] for k in keys] == sorted([LONG_A, LONG_B])
