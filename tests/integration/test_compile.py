"""neobuild.compile: end to end against a moto server, and polling paths with a Stubber."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import factories
import pytest
from botocore.stub import Stubber
from factories import make_manifest

from neobuild import aws, lockfile, request
from neobuild.archive import hash_bytes, hash_file, pack
from neobuild.compile import CompileFailedError, compile_models
from neobuild.compilejobs import CompileEvent, CompileItem, describe_event
from neobuild.errors import AwsError, RequestError, UsageError
from neobuild.model import (
    CompileSettings,
    Manifest,
    Model,
    Platform,
    Target,
)

pytest_plugins = ["moto_server"]

ROLE = "arn:aws:iam::123456789012:role/NeoRole"
BUCKET = "neo-bucket"


def make_model(name: str = "cnn", *, region: str = "us-east-1", bucket: str = BUCKET) -> Model:
    return factories.make_model(
        name,
        framework="pytorch",
        framework_version="2.0",
        inputs={"input0": (1, 3, 8, 8)},
        targets=(
            Target(device="ml_c5"),
            Target(
                platform=Platform(os="LINUX", arch="ARM64", accelerator="NVIDIA"),
                compiler_options={"gpu-code": "sm_72", "trt-ver": "8.0.0", "cuda-ver": "10.2"},
            ),
        ),
        compile=CompileSettings(role_arn=ROLE, s3_prefix=f"s3://{bucket}/neo", region=region),
    )


def package_model(
    manifest: Manifest, model: Model, payload: bytes = b"weights"
) -> lockfile.LockEntry:
    """What `neobuild package` leaves behind: archive, request files and a lock entry."""
    out = manifest.build_dir / model.name
    export = out / "export"
    export.mkdir(parents=True, exist_ok=True)
    (export / "model.pth").write_bytes(payload)
    archive = pack(export, ["model.pth"], out / "model.tar.gz")
    paths = request.write_requests(manifest, model, archive.sha256, out / "requests")
    entry = lockfile.LockEntry(
        fingerprint="sha256:" + "ab" * 32,
        framework=model.framework,
        framework_version=model.framework_version,
        exported_with={"torch": "2.0.1"},
        files={"model.pth": lockfile.FileRecord(size=len(payload), sha256=hash_bytes(payload))},
        archive=lockfile.FileRecord(size=archive.size, sha256=archive.sha256),
        archive_path=archive.path.relative_to(manifest.root).as_posix(),
        outputs={},
        requests={
            key: lockfile.RequestRecord(
                path=p.relative_to(manifest.root).as_posix(),
                sha256=hash_file(p),
                job_name=json.loads(p.read_text())["CompilationJobName"],
            )
            for key, p in paths.items()
        },
        smoke=None,
        fingerprint_parts={},
        jobs={},
        git_commit=None,
        git_dirty=None,
    )
    lockfile.update_lock(manifest.root / lockfile.LOCK_NAME, {model.name: entry})
    return entry


def read_request(manifest: Manifest, model: str, target: str) -> dict[str, Any]:
    path = manifest.build_dir / model / "requests" / f"{target}.json"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# ------------------------------------------------------------------ against moto


@pytest.fixture
def project(tmp_path: Path) -> tuple[Manifest, Model]:
    model = make_model()
    manifest = make_manifest(tmp_path, [model])
    package_model(manifest, model)
    return manifest, model


def test_submit_uploads_creates_and_records(moto_env: str, project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    events: list[CompileEvent] = []
    result = compile_models(manifest, [model], submit=True, wait=False, on_event=events.append)
    assert result.ok and [i.target for i in result.items] == ["ml_c5", "linux-arm64-nvidia"]
    kinds = [e.kind for e in events]
    assert kinds.count("created") == 2
    # both targets share the archive: uploaded once, skipped the second time
    assert kinds.count("uploaded") == 1 and kinds.count("upload-skipped") == 1
    assert all(describe_event(e) for e in events)

    sm = boto3.client("sagemaker")
    jobs = sm.list_compilation_jobs()["CompilationJobSummaries"]
    names = {item.job_name for item in result.items}
    assert {j["CompilationJobName"] for j in jobs} == names
    uri = read_request(manifest, "cnn", "ml_c5")["InputConfig"]["S3Uri"]
    bucket, key = aws.parse_s3_uri(uri)
    entry = lockfile.read_lock(manifest.root / "neo.lock").models["cnn"]
    head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    assert "sha256:" + head["Metadata"]["sha256"] == entry.archive.sha256

    job = entry.jobs["ml_c5"]
    described = sm.describe_compilation_job(CompilationJobName=job.name)
    assert job.arn == described["CompilationJobArn"]
    assert job.status == "COMPLETED"  # moto completes at once
    assert job.output == described["ModelArtifacts"]["S3ModelArtifacts"]
    assert job.inference_image == "InferenceImage"
    assert job.artifact_digest == described["ModelDigests"]["ArtifactDigest"]
    assert set(entry.jobs) == {"ml_c5", "linux-arm64-nvidia"}
    # nothing secret lands in the lock
    lock_text = (manifest.root / "neo.lock").read_text(encoding="utf-8")
    assert "testing" not in lock_text


def test_rerun_is_idempotent(moto_env: str, project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    first = compile_models(manifest, [model], submit=True, wait=True)
    lock_before = (manifest.root / "neo.lock").read_bytes()
    events: list[CompileEvent] = []
    second = compile_models(manifest, [model], submit=True, wait=True, on_event=events.append)
    assert [e.kind for e in events if e.kind != "checked"] == ["exists", "exists"]
    assert all(i.existed and i.uploaded is None for i in second.items)
    assert [i.arn for i in second.items] == [i.arn for i in first.items]
    jobs = boto3.client("sagemaker").list_compilation_jobs()["CompilationJobSummaries"]
    assert len(jobs) == 2
    assert (manifest.root / "neo.lock").read_bytes() == lock_before


def test_wrong_region_bucket(moto_env: str, tmp_path: Path) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    model = make_model(bucket="west-bucket")
    manifest = make_manifest(tmp_path, [model])
    package_model(manifest, model)
    with pytest.raises(AwsError, match="bucket west-bucket is in region eu-west-1"):
        compile_models(manifest, [model], submit=True, wait=False)
    assert boto3.client("sagemaker").list_compilation_jobs()["CompilationJobSummaries"] == []
    assert lockfile.read_lock(tmp_path / "neo.lock").models["cnn"].jobs == {}


def test_missing_bucket(moto_env: str, project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    with pytest.raises(AwsError, match="NoSuchBucket"):
        compile_models(manifest, [model], submit=True, wait=False)


def test_changed_archive_is_not_uploaded(moto_env: str, project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    (manifest.build_dir / "cnn" / "model.tar.gz").write_bytes(b"tampered")
    with pytest.raises(AwsError, match="not uploading it"):
        compile_models(manifest, [model], submit=True, wait=False)
    assert boto3.client("sagemaker").list_compilation_jobs()["CompilationJobSummaries"] == []


def test_preflight_only_needs_no_aws(
    no_aws_credentials: None, project: tuple[Manifest, Model]
) -> None:
    manifest, model = project
    result = compile_models(manifest, [model], submit=False, wait=False)
    assert [i.status for i in result.items] == ["checked", "checked"]
    assert result.ok and not result.submitted
    assert json.loads(json.dumps(result.to_json()))["jobs"][0]["status"] == "checked"


def test_submit_without_credentials(
    no_aws_credentials: None, project: tuple[Manifest, Model]
) -> None:
    manifest, model = project
    with pytest.raises(AwsError, match="no AWS credentials found") as err:
        compile_models(manifest, [model], submit=True, wait=False)
    assert err.value.hint and "AWS_PROFILE" in err.value.hint


def test_preflight_reports_every_problem_before_submitting(
    no_aws_credentials: None, tmp_path: Path
) -> None:
    good, bad = make_model("good"), make_model("bad")
    manifest = make_manifest(tmp_path, [good, bad])
    package_model(manifest, bad)
    path = manifest.build_dir / "bad" / "requests" / "ml_c5.json"
    data = json.loads(path.read_text())
    data["OutputConfig"]["TargetDevice"] = "ml_bogus"
    data["StoppingCondition"] = {"MaxRuntimeInSeconds": 0}
    path.write_text(json.dumps(data))
    with pytest.raises(RequestError) as err:
        compile_models(manifest, [good, bad], submit=True, wait=False)
    text = "\n".join(err.value.problems)
    assert "model good, target ml_c5: no request file" in text
    assert "neobuild package good" in text
    assert "ml_bogus" in text and "MaxRuntimeInSeconds" in text


# ------------------------------------------------------------------ polling with a Stubber


def describe_response(name: str, status: str, reason: str = "") -> dict[str, Any]:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    response: dict[str, Any] = {
        "CompilationJobName": name,
        "CompilationJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:compilation-job/{name}",
        "CompilationJobStatus": status,
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        "CreationTime": now,
        "LastModifiedTime": now,
        "FailureReason": reason,
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        "RoleArn": ROLE,
        "InputConfig": {"S3Uri": "s3://neo-bucket/x/model.tar.gz", "Framework": "PYTORCH"},
        "OutputConfig": {"S3OutputLocation": "s3://neo-bucket/out/", "TargetDevice": "ml_c5"},
    }
    if status == "COMPLETED":
        response["ModelArtifacts"] = {"S3ModelArtifacts": "s3://neo-bucket/out/model-ml_c5.tar.gz"}
        response["InferenceImage"] = "123.dkr.ecr.us-east-1.amazonaws.com/neo:1"
        response["ModelDigests"] = {"ArtifactDigest": "blake2:abc"}
    return response


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def stubbed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Manifest, Model, aws.Aws, Stubber, str]]:
    """One model with one target whose job already exists (INPROGRESS); polls are stubbed."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    model = make_model()
    model = dataclasses.replace(model, targets=model.targets[:1])
    manifest = make_manifest(tmp_path, [model])
    package_model(manifest, model)
    name = read_request(manifest, "cnn", "ml_c5")["CompilationJobName"]
    client = aws.Aws("us-east-1")
    stubber = Stubber(client.sagemaker)
    stubber.add_response(
        "describe_compilation_job",
        describe_response(name, "INPROGRESS"),
        {"CompilationJobName": name},
    )
    with stubber:
        yield manifest, model, client, stubber, name
    stubber.assert_no_pending_responses()


def test_inprogress_then_failed(stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str]) -> None:
    manifest, model, client, stubber, name = stubbed
    reason = "ClientError: InputConfiguration: Invalid PyTorch model or input-shape mismatch."
    for status in ("INPROGRESS", "INPROGRESS"):
        stubber.add_response("describe_compilation_job", describe_response(name, status))
    stubber.add_response("describe_compilation_job", describe_response(name, "FAILED", reason))
    clock = Clock()
    events: list[CompileEvent] = []
    with pytest.raises(CompileFailedError) as err:
        compile_models(
            manifest,
            [model],
            submit=True,
            wait=True,
            connect=lambda region: client,
            sleep=clock.sleep,
            clock=clock.clock,
            on_event=events.append,
        )
    assert f"model cnn, target ml_c5: compilation job {name} FAILED: {reason}" in str(err.value)
    assert err.value.hint and "/aws/sagemaker/CompilationJobs" in err.value.hint
    assert err.value.result.failures[0].failure_reason == reason
    assert clock.sleeps == [5.0, 7.5]  # backoff from the SDK's 5 s
    assert [e.status for e in events if e.kind == "status"] == ["FAILED"]
    job = lockfile.read_lock(manifest.root / "neo.lock").models["cnn"].jobs["ml_c5"]
    assert (job.status, job.failure_reason) == ("FAILED", reason)


def test_stopped_is_a_failure(stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str]) -> None:
    manifest, model, client, stubber, name = stubbed
    stubber.add_response("describe_compilation_job", describe_response(name, "STOPPING"))
    stubber.add_response("describe_compilation_job", describe_response(name, "STOPPED"))
    clock = Clock()
    with pytest.raises(CompileFailedError, match="STOPPED: \\(SageMaker gave no FailureReason\\)"):
        compile_models(
            manifest,
            [model],
            submit=True,
            wait=True,
            connect=lambda r: client,
            sleep=clock.sleep,
            clock=clock.clock,
        )
    result = compile_models(manifest, [model], submit=False, wait=False, raise_on_failure=False)
    assert result.ok  # pre-flight only: no jobs looked at
    assert (
        lockfile.read_lock(manifest.root / "neo.lock").models["cnn"].jobs["ml_c5"].status
        == "STOPPED"
    )


def test_throttling_then_success(stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str]) -> None:
    manifest, model, client, stubber, name = stubbed
    stubber.add_client_error(
        "describe_compilation_job",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
    )
    stubber.add_response("describe_compilation_job", describe_response(name, "COMPLETED"))
    clock = Clock()
    events: list[CompileEvent] = []
    result = compile_models(
        manifest,
        [model],
        submit=True,
        wait=True,
        connect=lambda r: client,
        sleep=clock.sleep,
        clock=clock.clock,
        on_event=events.append,
    )
    assert result.ok and result.items[0].status == "COMPLETED"
    assert clock.sleeps == [10.0]  # the first poll was throttled: 5 s doubled
    assert "throttled" in [e.kind for e in events]
    job = lockfile.read_lock(manifest.root / "neo.lock").models["cnn"].jobs["ml_c5"]
    assert job.output == "s3://neo-bucket/out/model-ml_c5.tar.gz"  # read, not built
    assert job.inference_image and job.artifact_digest == "blake2:abc"


def test_other_errors_while_polling_are_wrapped(
    stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str],
) -> None:
    manifest, model, client, stubber, name = stubbed
    stubber.add_client_error(
        "describe_compilation_job", service_error_code="AccessDeniedException", service_message="no"
    )
    with pytest.raises(AwsError, match=f"describing compilation job {name}: AccessDeniedException"):
        compile_models(
            manifest,
            [model],
            submit=True,
            wait=True,
            connect=lambda r: client,
            sleep=Clock().sleep,
        )


def test_wait_timeout(stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str]) -> None:
    manifest, model, client, stubber, name = stubbed
    for _ in range(3):
        stubber.add_response("describe_compilation_job", describe_response(name, "INPROGRESS"))
    clock = Clock()
    with pytest.raises(AwsError, match="gave up waiting after 12s for 1 compilation job") as err:
        compile_models(
            manifest,
            [model],
            submit=True,
            wait=True,
            connect=lambda r: client,
            sleep=clock.sleep,
            clock=clock.clock,
            wait_timeout=20,
        )
    assert err.value.hint and "re-run" in err.value.hint
    assert clock.sleeps == [5.0, 7.5]
    job = lockfile.read_lock(manifest.root / "neo.lock").models["cnn"].jobs["ml_c5"]
    assert job.status == "INPROGRESS" and job.arn


def _interrupt(_seconds: float) -> None:
    raise KeyboardInterrupt


def _ctrl_c_while_waiting(
    stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str],
    confirm_stop: Callable[[Sequence[CompileItem]], bool],
    on_event: Callable[[CompileEvent], None] | None = None,
) -> None:
    """Submit and wait; the first sleep between polls is a Ctrl-C, which propagates."""
    manifest, model, client, _, _ = stubbed
    with pytest.raises(KeyboardInterrupt):
        compile_models(
            manifest,
            [model],
            submit=True,
            wait=True,
            connect=lambda r: client,
            sleep=_interrupt,
            confirm_stop=confirm_stop,
            on_event=on_event,
        )


def test_ctrl_c_asks_and_stops(stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str]) -> None:
    manifest, _, _, stubber, name = stubbed
    stubber.add_response("describe_compilation_job", describe_response(name, "INPROGRESS"))
    stubber.add_response("stop_compilation_job", {}, {"CompilationJobName": name})
    asked: list[list[str]] = []

    def confirm(items: Sequence[CompileItem]) -> bool:
        asked.append([i.job_name or "" for i in items])
        return True

    _ctrl_c_while_waiting(stubbed, confirm)
    assert asked == [[name]]
    job = lockfile.read_lock(manifest.root / "neo.lock").models["cnn"].jobs["ml_c5"]
    assert job.status == "STOPPING"


def test_ctrl_c_stop_refused(stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str]) -> None:
    # moto answers StopCompilationJob with HTTP 500 (not implemented): reported, not raised.
    manifest, _, _, stubber, name = stubbed
    stubber.add_response("describe_compilation_job", describe_response(name, "INPROGRESS"))
    stubber.add_client_error(
        "stop_compilation_job", service_error_code="InternalFailure", http_status_code=500
    )
    events: list[CompileEvent] = []
    _ctrl_c_while_waiting(stubbed, lambda items: True, events.append)
    failed = [e for e in events if e.kind == "stop-failed"]
    assert len(failed) == 1 and "InternalFailure" in failed[0].message
    job = lockfile.read_lock(manifest.root / "neo.lock").models["cnn"].jobs["ml_c5"]
    assert job.status == "INPROGRESS"


def test_ctrl_c_declined_leaves_the_job(
    stubbed: tuple[Manifest, Model, aws.Aws, Stubber, str],
) -> None:
    _, _, _, stubber, name = stubbed
    stubber.add_response("describe_compilation_job", describe_response(name, "INPROGRESS"))
    _ctrl_c_while_waiting(stubbed, lambda items: False)
    # the Stubber would fail on an unexpected stop_compilation_job call


def test_wait_needs_submit(project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    with pytest.raises(UsageError, match="--wait"):
        compile_models(manifest, [model], submit=False, wait=True)


def test_hand_edited_request_is_flagged(
    no_aws_credentials: None, project: tuple[Manifest, Model]
) -> None:
    manifest, model = project
    path = manifest.build_dir / "cnn" / "requests" / "ml_c5.json"
    data = json.loads(path.read_text())
    data["StoppingCondition"]["MaxRuntimeInSeconds"] = 1200
    path.write_text(json.dumps(data))
    result = compile_models(manifest, [model], submit=False, wait=False)
    edited, untouched = result.items
    assert any("differs from its record in neo.lock" in w for w in edited.warnings)
    assert not any("neo.lock" in w for w in untouched.warnings)


def test_render(no_aws_credentials: None, project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    text = compile_models(manifest, [model], submit=False, wait=False).render()
    assert text.splitlines() == [
        "cnn [ml_c5]: checked",
        "cnn [linux-arm64-nvidia]: checked",
        "2 request(s) pass pre-flight; add --submit to run them",
    ]


def test_render_submitted(moto_env: str, project: tuple[Manifest, Model]) -> None:
    manifest, model = project
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    result = compile_models(manifest, [model], submit=True, wait=True)
    lines = result.render().splitlines()
    assert lines[0].startswith("cnn [ml_c5]: completed cnn-ml-c5-")
    assert lines[0].endswith(" -> s3://neo-bucket/neo/cnn/compiled/ml_c5/")
    assert lines[-1] == "2 compilation job(s): 2 completed"
