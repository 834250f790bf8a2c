"""neobuild.aws against a real moto server (and botocore's own validator)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import boto3
import pytest

from neobuild import aws, requestshape
from neobuild.errors import AwsError

pytest_plugins = ["moto_server"]

ROLE = "arn:aws:iam::123456789012:role/NeoRole"


def _request(
    name: str = "m-ml-c5-0123abcd", uri: str = "s3://neo-bucket/in/model.tar.gz"
) -> dict[str, Any]:
    return {
        "CompilationJobName": name,
        "RoleArn": ROLE,
        "InputConfig": {
            "S3Uri": uri,
            "DataInputConfig": '{"input0": [1, 3, 8, 8]}',
            "Framework": "PYTORCH",
            "FrameworkVersion": "2.0",
        },
        "OutputConfig": {"S3OutputLocation": "s3://neo-bucket/out/", "TargetDevice": "ml_c5"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
    }


def _archive(tmp_path: Path, content: bytes = b"not really a tarball") -> tuple[Path, str]:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(content)
    return path, "sha256:" + hashlib.sha256(content).hexdigest()


# ------------------------------------------------------------------ botocore validation


def test_botocore_accepts_a_good_request() -> None:
    assert requestshape.validate_request_with_botocore(_request()) == []


def test_botocore_reports_every_problem_it_checks() -> None:
    request = _request()
    del request["StoppingCondition"]
    request["OutputConfig"]["CompilerOptions"] = "{}"
    request["OutputConfig"]["Foo"] = "bar"
    request["InputConfig"]["DataInputConfig"] = {"input0": [1]}
    problems = requestshape.validate_request_with_botocore(request)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert 'Missing required parameter in input: "StoppingCondition"' in text
    assert "CompilerOptions" in text and "min length: 3" in text
    assert 'Unknown parameter in OutputConfig: "Foo"' in text and "upgrade boto3" in text
    assert "DataInputConfig" in text and "valid types" in text


def test_botocore_does_not_check_patterns() -> None:
    # NEO_REFERENCE §1.2: that is neobuild's own validator's job.
    assert requestshape.validate_request_with_botocore(_request(name="bad_name!")) == []


# ------------------------------------------------------------------ S3


def test_upload_then_skip_same_sha(moto_env: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket="neo-bucket")
    path, digest = _archive(tmp_path)
    client = aws.connect()
    uri = "s3://neo-bucket/in/model.tar.gz"
    first = client.upload_file(path, uri, sha256=digest)
    assert first.uploaded and first.size == path.stat().st_size
    head = boto3.client("s3").head_object(Bucket="neo-bucket", Key="in/model.tar.gz")
    assert head["Metadata"]["sha256"] == digest.removeprefix("sha256:")
    info = client.head_object(uri)
    assert info is not None and info.sha256 == digest
    second = client.upload_file(path, uri, sha256=digest)
    assert not second.uploaded
    # other bytes under the same key: uploaded again
    path2, digest2 = _archive(tmp_path / "..", b"other bytes")
    assert client.upload_file(path2, uri, sha256=digest2).uploaded
    assert client.require_object(uri, sha256=digest2).sha256 == digest2
    with pytest.raises(AwsError, match="expected sha256:"):
        client.require_object(uri, sha256=digest)


def test_upload_of_a_changed_archive_is_refused(moto_env: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket="neo-bucket")
    path, _ = _archive(tmp_path)
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(AwsError, match="not uploading it") as err:
        aws.connect().upload_file(path, "s3://neo-bucket/in/model.tar.gz", sha256=wrong)
    assert err.value.hint and "neobuild package" in err.value.hint
    assert aws.connect().head_object("s3://neo-bucket/in/model.tar.gz") is None


def test_missing_object_and_bucket(moto_env: str) -> None:
    boto3.client("s3").create_bucket(Bucket="neo-bucket")
    client = aws.connect()
    assert client.head_object("s3://neo-bucket/nothing.tar.gz") is None
    with pytest.raises(AwsError, match="S3 object does not exist: s3://neo-bucket/nothing") as err:
        client.require_object("s3://neo-bucket/nothing.tar.gz")
    assert err.value.hint and "upload" in err.value.hint
    with pytest.raises(AwsError, match="NoSuchBucket") as err:
        client.bucket_region("no-such-bucket-here")
    assert err.value.hint and "create the bucket" in err.value.hint


def test_bucket_region(moto_env: str) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="east-bucket")
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    client = aws.connect("us-east-1")
    assert client.bucket_region("east-bucket") == "us-east-1"  # LocationConstraint None
    assert client.bucket_region("west-bucket") == "eu-west-1"
    client.check_bucket_region("east-bucket")
    with pytest.raises(AwsError, match="bucket west-bucket is in region eu-west-1") as err:
        client.check_bucket_region("west-bucket")
    assert err.value.hint and "compile.region: eu-west-1" in err.value.hint
    aws.connect("eu-west-1").check_bucket_region("west-bucket")


def test_parse_s3_uri() -> None:
    assert aws.parse_s3_uri("s3://b-1/a/b.tar.gz") == ("b-1", "a/b.tar.gz")
    for bad in ("s3://bucket", "s3://bucket/", "https://x/y", "bucket/key"):
        with pytest.raises(AwsError, match="not an S3 object URI"):
            aws.parse_s3_uri(bad)


def test_put_get_delete_bytes(moto_env: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket="neo-bucket")
    client = aws.connect()
    uri = "s3://neo-bucket/cache/x/entry.json"
    assert client.get_bytes(uri) is None
    client.put_bytes(uri, b"{}")
    assert client.get_bytes(uri) == b"{}"
    assert (
        client.download_file(uri, tmp_path / "e.json")
        and (tmp_path / "e.json").read_bytes() == b"{}"
    )
    client.delete_object(uri)
    assert client.get_bytes(uri) is None
    assert not client.download_file(uri, tmp_path / "f.json")


# ------------------------------------------------------------------ jobs


def test_create_describe_exists_list(moto_env: str) -> None:
    client = aws.connect()
    assert client.find_compilation_job("m-ml-c5-0123abcd") is None
    arn = client.create_compilation_job(_request())
    assert arn.endswith(":compilation-job/m-ml-c5-0123abcd")
    with pytest.raises(aws.JobExistsError, match="already exists"):
        client.create_compilation_job(_request())
    job = client.describe_compilation_job("m-ml-c5-0123abcd")
    assert job.arn == arn and job.status == "COMPLETED" and job.terminal
    assert job.output == "s3://neo-bucket/out/"  # moto: S3ModelArtifacts = S3OutputLocation
    assert job.inference_image == "InferenceImage" and job.artifact_digest
    assert job.failure_reason is None
    platform = _request(name="m-linux-arm64")
    platform["OutputConfig"] = {
        "S3OutputLocation": "s3://neo-bucket/out/",
        # moto bug (NEO_REFERENCE §4): listing breaks on a TargetPlatform without Accelerator
        "TargetPlatform": {"Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA"},
    }
    client.create_compilation_job(platform)
    jobs = {j.name: j for j in client.list_compilation_jobs(name_contains="m-")}
    assert jobs["m-ml-c5-0123abcd"].target == "ml_c5"
    assert jobs["m-linux-arm64"].target == "LINUX-ARM64-NVIDIA"


def test_describe_unknown_job(moto_env: str) -> None:
    with pytest.raises(AwsError, match="describing compilation job nope"):
        aws.connect().describe_compilation_job("nope")


def test_stop_not_implemented_by_moto_is_an_aws_error(moto_env: str) -> None:
    client = aws.connect()
    client.create_compilation_job(_request())
    with pytest.raises(AwsError, match="stopping compilation job m-ml-c5-0123abcd"):
        client.stop_compilation_job("m-ml-c5-0123abcd")


def test_no_credentials(no_aws_credentials: None) -> None:
    with pytest.raises(AwsError, match="no AWS credentials found") as err:
        aws.connect().head_object("s3://neo-bucket/x.tar.gz")
    assert err.value.hint and "AWS_PROFILE" in err.value.hint


def test_unreachable_endpoint(moto_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(AwsError, match="could not reach AWS") as err:
        aws.connect().find_compilation_job("x")
    assert err.value.hint and "AWS_ENDPOINT_URL" in err.value.hint


def test_large_files_go_through_the_transfer_manager(
    moto_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws, "SINGLE_PUT_LIMIT", 10)
    boto3.client("s3").create_bucket(Bucket="neo-bucket")
    path, digest = _archive(tmp_path, b"x" * 1000)
    client = aws.connect()
    uri = "s3://neo-bucket/in/big.tar.gz"
    assert client.upload_file(path, uri, sha256=digest).uploaded
    assert client.require_object(uri, sha256=digest).size == 1000
    assert not client.upload_file(path, uri, sha256=digest).uploaded


def test_importing_neobuild_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, neobuild.cli, neobuild.aws, neobuild.requestshape, neobuild.compile, neobuild.buildcache, neobuild.reports;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
