"""The AWS client: S3 uploads and reads, and SageMaker Neo compilation jobs (boto3).

:class:`Aws` holds the boto3 clients for one region and makes every request neobuild
sends (:func:`connect` builds one); :class:`UploadResult`, :class:`ObjectInfo`,
:class:`JobInfo` and :class:`JobSummary` are what its answers are read into. How a
failure reads is :mod:`neobuild.awserrors`'s job; botocore's check of a request before
it is sent is :mod:`neobuild.requestshape`'s. These three are the only modules that
import boto3 or botocore, and this is the only one that imports boto3.

boto3 and botocore are imported inside functions, so that ``neobuild --help`` and every
command that never reaches AWS stay fast. botocore is a core dependency (the request
pre-flight validates against its SageMaker service model); boto3 is the ``aws`` extra,
and :func:`require_boto3` turns its absence into a usage error naming the extra.

Clients come from boto3's normal credential chain (environment, ``AWS_PROFILE``, SSO,
instance roles) and region (``compile.region`` in neo.yaml, else the environment).
``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_SAGEMAKER``) are
honoured by botocore itself, which is how the tests reach a local moto server.

Every botocore exception is wrapped into :class:`~neobuild.errors.AwsError` where it
enters, with a hint saying what to do. Nothing here logs or returns credentials.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neobuild import __version__
from neobuild.awserrors import aws_errors, client_message, error_code, unless_missing, wrap_error
from neobuild.errors import AwsError, JobExistsError, UsageError
from neobuild.hashing import hash_file

#: CompilationJobStatus values that end a job (NEO_REFERENCE §1.4).
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "STOPPED"})

#: Objects up to this size are sent with one PutObject carrying ChecksumSHA256.
SINGLE_PUT_LIMIT = 64 * 1024 * 1024

_S3_URI = re.compile(r"s3://([^/]+)/(.+)")


# --------------------------------------------------------------------------- install


def require_boto3() -> None:
    """Refuse, as a usage error, to reach AWS when boto3 (the ``aws`` extra) is missing.

    botocore is a core dependency (the request pre-flight uses its service model); boto3,
    which sessions, clients and uploads need, comes with ``pip install "neobuild[aws]"``.

    Raises:
        UsageError: boto3 cannot be imported.
    """
    if importlib.util.find_spec("boto3") is None:
        raise UsageError(
            "talking to AWS needs boto3, which is not installed",
            hint='install the aws extra: pip install "neobuild[aws]"',
        )


# --------------------------------------------------------------------------- S3 URIs


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key.

    Raises:
        AwsError: not an ``s3://`` URI with a bucket and a key.
    """
    match = _S3_URI.fullmatch(uri)
    if match is None:
        raise AwsError(
            f"not an S3 object URI: {uri!r}", hint="use the form s3://bucket/prefix/model.tar.gz"
        )
    return match.group(1), match.group(2)


def sha256_hex(digest: str) -> str:
    """``"sha256:<hex>"`` or ``"<hex>"`` -> ``"<hex>"``."""
    return digest.removeprefix("sha256:").lower()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class UploadResult:
    """What :meth:`Aws.upload_file` did."""

    uri: str
    uploaded: bool  # False: an object with the same sha256 was already there
    size: int


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head_object`` says about an object."""

    uri: str
    size: int
    sha256: str | None  # "sha256:<hex>" from x-amz-meta-sha256 or a single-part checksum
    etag: str | None


@dataclass(frozen=True)
class JobInfo:
    """The parts of DescribeCompilationJob neobuild uses (NEO_REFERENCE §1.4)."""

    name: str
    arn: str | None
    status: str
    failure_reason: str | None
    output: str | None  # ModelArtifacts.S3ModelArtifacts, read as given
    inference_image: str | None
    artifact_digest: str | None  # ModelDigests.ArtifactDigest

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> JobInfo:
        """Build from a DescribeCompilationJob response."""
        return cls(
            name=str(data["CompilationJobName"]),
            arn=data.get("CompilationJobArn"),
            status=str(data.get("CompilationJobStatus", "UNKNOWN")),
            failure_reason=data.get("FailureReason") or None,
            output=(data.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or None,
            inference_image=data.get("InferenceImage") or None,
            artifact_digest=(data.get("ModelDigests") or {}).get("ArtifactDigest") or None,
        )


@dataclass(frozen=True)
class JobSummary:
    """One row of ListCompilationJobs."""

    name: str
    arn: str
    status: str
    target: str | None


# --------------------------------------------------------------------------- clients


class Aws:
    """boto3 clients for one region, created on first use.

    Tests attach ``botocore.stub.Stubber`` to :attr:`sagemaker` or :attr:`s3`.
    """

    def __init__(self, region: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        with aws_errors("setting up the AWS session"):
            self._session = boto3.Session(region_name=region)
        self._config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            user_agent_extra=f"neobuild/{__version__}",
            connect_timeout=20,
            read_timeout=60,
        )
        self._clients: dict[str, Any] = {}
        # boto3 clients are thread-safe, creating them from one Session is not.
        self._lock = threading.Lock()

    @property
    def region(self) -> str | None:
        """The region the clients use (``compile.region`` or the environment)."""
        region = self._session.region_name
        return str(region) if region else None

    def client(self, service: str) -> Any:
        """The (cached) boto3 client for ``service``; safe to call from several threads."""
        with self._lock:
            if service not in self._clients:
                with aws_errors(f"creating the {service} client"):
                    try:
                        self._clients[service] = self._session.client(service, config=self._config)
                    except ValueError as exc:  # e.g. AWS_ENDPOINT_URL=notaurl
                        raise AwsError(
                            f"cannot create the {service} client: {exc}",
                            hint="AWS_ENDPOINT_URL (or endpoint_url in ~/.aws/config) must be "
                            "a URL like https://host:port",
                        ) from exc
            return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sagemaker(self) -> Any:
        return self.client("sagemaker")

    # ----------------------------------------------------------------------- S3

    def bucket_region(self, bucket: str) -> str:
        """The region a bucket lives in (GetBucketLocation; ``None`` means us-east-1).

        Raises:
            AwsError: the bucket does not exist or cannot be read.
        """
        from botocore.exceptions import ClientError

        action = f"looking up the region of bucket {bucket}"
        try:
            location = self.s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        except ClientError as exc:
            if error_code(exc) in {"AccessDenied", "403"}:
                # GetBucketLocation may be denied while HeadBucket is allowed.
                with aws_errors(action):
                    head = self.s3.head_bucket(Bucket=bucket)
                headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                region = head.get("BucketRegion") or headers.get("x-amz-bucket-region")
                if region:
                    return str(region)
            raise wrap_error(exc, action) from exc
        except Exception as exc:
            raise wrap_error(exc, action) from exc
        if not location:
            return "us-east-1"
        if location == "EU":
            return "eu-west-1"
        return str(location)

    def check_bucket_region(self, bucket: str) -> None:
        """Fail unless the bucket is in this client's region (Neo requires it, §1.3 rule 7)."""
        region = self.region
        found = self.bucket_region(bucket)
        if region and found != region:
            raise AwsError(
                f"bucket {bucket} is in region {found}, but SageMaker Neo is called in {region}; "
                "Neo only reads input from a bucket in its own region",
                hint=f"set compile.region: {found} in neo.yaml, or use a bucket in {region} "
                "for compile.s3_prefix",
            )

    def head_object(self, uri: str) -> ObjectInfo | None:
        """Describe the object at ``uri``, or None when there is none.

        Raises:
            AwsError: any failure other than "not found".
        """
        bucket, key = parse_s3_uri(uri)
        head = unless_missing(
            f"reading {uri}",
            lambda: self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"),
        )
        if head is None:
            return None
        digest = (head.get("Metadata") or {}).get("sha256")
        if not digest:
            checksum = head.get("ChecksumSHA256")
            # a multipart checksum ("...-3") is a checksum of checksums: not the file's.
            if checksum and "-" not in checksum:
                digest = base64.b64decode(checksum).hex()
        return ObjectInfo(
            uri=uri,
            size=int(head.get("ContentLength", 0)),
            sha256=f"sha256:{sha256_hex(digest)}" if digest else None,
            etag=head.get("ETag"),
        )

    def require_object(self, uri: str, *, sha256: str | None = None) -> ObjectInfo:
        """The pre-submit check: the object exists (and has the expected sha256 when known).

        Raises:
            AwsError: the object is missing or holds other bytes.
        """
        info = self.head_object(uri)
        if info is None:
            raise AwsError(
                f"S3 object does not exist: {uri}",
                hint="run `neobuild compile --submit` to upload the archive first, "
                "or check InputConfig.S3Uri in the request",
            )
        if sha256 and info.sha256 and sha256_hex(info.sha256) != sha256_hex(sha256):
            raise AwsError(
                f"S3 object {uri} has sha256 {info.sha256}, expected {sha256}",
                hint="re-run `neobuild compile --submit` to upload the current archive",
            )
        return info

    def upload_file(self, path: Path, uri: str, *, sha256: str) -> UploadResult:
        """Upload ``path`` to ``uri`` unless an object with the same sha256 is already there.

        The object carries ``x-amz-meta-sha256`` (the hex digest), and S3 verifies the bytes
        against ``ChecksumSHA256`` on the way in.

        Args:
            path: the local file.
            uri: ``s3://bucket/key``.
            sha256: the file's digest, ``"sha256:<hex>"`` or bare hex.
        """
        bucket, key = parse_s3_uri(uri)
        size = path.stat().st_size
        actual = hash_file(path)
        if actual != f"sha256:{sha256_hex(sha256)}":
            raise AwsError(
                f"{path} has sha256 {actual}, not {sha256} as recorded: not uploading it",
                hint="the archive changed after it was packaged: re-run `neobuild package`",
            )
        try:
            existing = self.head_object(uri)
        except AwsError as exc:
            # Without s3:ListBucket a missing object answers 403, not 404: upload anyway.
            if error_code(exc.__cause__ or exc) not in {"403", "AccessDenied"}:
                raise
            existing = None
        if existing is not None and existing.sha256 == f"sha256:{sha256_hex(sha256)}":
            return UploadResult(uri=uri, uploaded=False, size=existing.size)
        digest_hex = sha256_hex(sha256)
        metadata = {"sha256": digest_hex}
        with aws_errors(f"uploading {path} to {uri}"):
            if size <= SINGLE_PUT_LIMIT:
                with path.open("rb") as body:
                    self.s3.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=body,
                        Metadata=metadata,
                        ChecksumSHA256=base64.b64encode(bytes.fromhex(digest_hex)).decode(),
                        ContentType="application/gzip",
                    )
            else:
                self.s3.upload_file(
                    str(path),
                    bucket,
                    key,
                    ExtraArgs={
                        "Metadata": metadata,
                        "ChecksumAlgorithm": "SHA256",
                        "ContentType": "application/gzip",
                    },
                )
        return UploadResult(uri=uri, uploaded=True, size=size)

    def put_bytes(self, uri: str, data: bytes) -> None:
        """Write a small object in one PutObject, with its sha256 (cache entries)."""
        bucket, key = parse_s3_uri(uri)
        digest = hashlib.sha256(data).digest()
        with aws_errors(f"writing {uri}"):
            self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                Metadata={"sha256": digest.hex()},
                ChecksumSHA256=base64.b64encode(digest).decode(),
            )

    def get_bytes(self, uri: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        bucket, key = parse_s3_uri(uri)
        return unless_missing(
            f"reading {uri}",
            lambda: bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()),
        )

    def download_file(self, uri: str, dest: Path) -> bool:
        """Download ``uri`` to ``dest``; False when there is no such object."""
        bucket, key = parse_s3_uri(uri)

        def download() -> bool:
            self.s3.download_file(bucket, key, str(dest))
            return True

        return unless_missing(f"downloading {uri}", download) is not None

    def delete_object(self, uri: str) -> None:
        bucket, key = parse_s3_uri(uri)
        with aws_errors(f"deleting {uri}"):
            self.s3.delete_object(Bucket=bucket, Key=key)

    # ----------------------------------------------------------------------- Neo jobs

    def create_compilation_job(self, request: Mapping[str, Any]) -> str:
        """Create a compilation job and return its ARN.

        Raises:
            JobExistsError: a job with this name already exists (ResourceInUse).
            AwsError: any other refusal.
        """
        from botocore.exceptions import ClientError

        name = request.get("CompilationJobName", "?")
        action = f"creating compilation job {name}"
        try:
            response = self.sagemaker.create_compilation_job(**request)
        except ClientError as exc:
            if error_code(exc) == "ResourceInUse":
                raise JobExistsError(f"compilation job {name} already exists") from exc
            if error_code(exc) == "ResourceLimitExceeded":
                raise AwsError(
                    f"{action}: {client_message(exc)}",
                    hint="too many compilation jobs are running in this account and region: "
                    "wait for some to finish or ask AWS for a higher quota",
                ) from exc
            raise wrap_error(exc, action) from exc
        except Exception as exc:
            raise wrap_error(exc, action) from exc
        return str(response["CompilationJobArn"])

    def describe_compilation_job(self, name: str) -> JobInfo:
        """DescribeCompilationJob.

        Raises:
            ThrottledError: AWS asked to slow down (a poller backs off and asks again).
            AwsError: any other failure, including an unknown job.
        """
        with aws_errors(f"describing compilation job {name}"):
            response = self.sagemaker.describe_compilation_job(CompilationJobName=name)
        return JobInfo.from_response(response)

    def find_compilation_job(self, name: str) -> JobInfo | None:
        """Like :meth:`describe_compilation_job`, but None when no job has this name."""
        from botocore.exceptions import ClientError

        try:
            return self.describe_compilation_job(name)
        except AwsError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) in {
                "ResourceNotFound",
                "ValidationException",
            }:
                return None
            raise

    def list_compilation_jobs(
        self, *, name_contains: str | None = None, status: str | None = None
    ) -> list[JobSummary]:
        """ListCompilationJobs through its paginator, newest first."""
        kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        if name_contains:
            kwargs["NameContains"] = name_contains
        if status:
            kwargs["StatusEquals"] = status
        jobs: list[JobSummary] = []
        with aws_errors("listing compilation jobs"):
            for page in self.sagemaker.get_paginator("list_compilation_jobs").paginate(**kwargs):
                for row in page.get("CompilationJobSummaries", []):
                    target = row.get("CompilationTargetDevice")
                    if target is None and row.get("CompilationTargetPlatformOs"):
                        parts = [
                            row.get("CompilationTargetPlatformOs"),
                            row.get("CompilationTargetPlatformArch"),
                            row.get("CompilationTargetPlatformAccelerator"),
                        ]
                        target = "-".join(str(p) for p in parts if p)
                    jobs.append(
                        JobSummary(
                            name=str(row["CompilationJobName"]),
                            arn=str(row["CompilationJobArn"]),
                            status=str(row["CompilationJobStatus"]),
                            target=target,
                        )
                    )
        return jobs

    def stop_compilation_job(self, name: str) -> None:
        """Ask Neo to stop a job.

        Raises:
            AwsError: the stop was refused (including by servers that do not implement it).
        """
        with aws_errors(f"stopping compilation job {name}"):
            self.sagemaker.stop_compilation_job(CompilationJobName=name)


def connect(region: str | None = None) -> Aws:
    """Clients for ``region`` (None: the environment's region) from boto3's credential chain.

    Raises:
        UsageError: boto3 (the ``aws`` extra) is not installed.
    """
    require_boto3()
    return Aws(region)
