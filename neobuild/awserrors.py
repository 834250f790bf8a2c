"""How AWS failures read: botocore exceptions translated into neobuild errors.

Every botocore exception becomes an :class:`~neobuild.errors.AwsError` (a
:class:`~neobuild.errors.ThrottledError` when AWS asks to slow down) where it enters,
with a hint saying what to do: :func:`wrap_error` for one exception, :func:`aws_errors`
around a block, :func:`unless_missing` for an S3 read where "no such object" is an
answer. :mod:`neobuild.aws` calls these around every request it makes.

One of the three modules that import botocore (with :mod:`neobuild.aws` and
:mod:`neobuild.requestshape`), and only inside functions, so that importing this one
stays cheap. Nothing here logs or returns credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from neobuild.errors import AwsError, ThrottledError

#: Error codes that mean "slow down", whatever the service calls them.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)

#: Error codes S3 answers for a missing object.
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})

_T = TypeVar("_T")


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (``"ResourceInUse"``), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_throttling(exc: BaseException) -> bool:
    """True when AWS asked us to slow down (the caller may retry later)."""
    return error_code(exc) in THROTTLING_CODES


def client_message(exc: BaseException) -> str:
    """``"Code: Message"`` from a botocore ClientError's response, else ``str(exc)``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        return f"{code}: {message}".rstrip(": ") if code else str(exc)
    return str(exc)


def wrap_error(exc: BaseException, action: str) -> AwsError:
    """Turn a botocore exception into an AwsError saying what failed and what to do.

    Args:
        exc: the exception botocore raised.
        action: what neobuild was doing, e.g. ``"uploading s3://b/k"``.
    """
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return AwsError(
            f"{action}: no AWS credentials found",
            hint="set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
            "run `aws sso login`, or run where an instance/role provides credentials",
        )
    if isinstance(exc, bx.ProfileNotFound):
        return AwsError(
            f"{action}: {exc}",
            hint="check AWS_PROFILE against ~/.aws/config and ~/.aws/credentials",
        )
    if isinstance(exc, bx.NoRegionError):
        return AwsError(
            f"{action}: no AWS region configured",
            hint="set compile.region in neo.yaml, or AWS_REGION / AWS_DEFAULT_REGION",
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return AwsError(
            f"{action}: could not reach AWS ({exc})",
            hint="check the network, the region name and AWS_ENDPOINT_URL if it is set",
        )
    if isinstance(exc, bx.ParamValidationError):
        return AwsError(f"{action}: botocore rejected the request: {exc}")
    if isinstance(exc, bx.ClientError):
        code = error_code(exc) or ""
        text = f"{action}: {client_message(exc)}"
        if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
            return AwsError(text, hint="the AWS session has expired: refresh the credentials")
        if code in {
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
        }:
            return AwsError(text, hint="the AWS credentials are not valid: check AWS_PROFILE")
        if code in {"AccessDenied", "AccessDeniedException", "403", "Forbidden"}:
            return AwsError(
                text,
                hint="the caller lacks an IAM permission for this call (s3:PutObject, "
                "s3:GetObject, s3:GetBucketLocation, sagemaker:CreateCompilationJob, "
                "sagemaker:DescribeCompilationJob, iam:PassRole on the role)",
            )
        if code in {"NoSuchBucket"}:
            return AwsError(text, hint="create the bucket, or fix compile.s3_prefix in neo.yaml")
        if code in THROTTLING_CODES:
            return ThrottledError(text, hint="AWS is throttling requests: wait a minute and re-run")
        return AwsError(text)
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"{action}: {exc}")
    return AwsError(f"{action}: {type(exc).__name__}: {exc}")


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Re-raise any botocore exception inside the block as an AwsError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise wrap_error(exc, action) from exc


def unless_missing(action: str, call: Callable[[], _T]) -> _T | None:
    """``call()``, or None when S3 answers "no such object"; any other failure as an AwsError.

    Args:
        action: what neobuild was doing, for the message, e.g. ``"reading s3://b/k"``.
        call: the S3 request.
    """
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            return None
        raise wrap_error(exc, action) from exc
    except Exception as exc:
        raise wrap_error(exc, action) from exc
