"""CreateCompilationJob requests: built as data from the manifest, named, written.

A request is a plain dict in the ``aws sagemaker create-compilation-job
--cli-input-json`` form (NEO_REFERENCE §5), written with ``json.dumps(sort_keys=True,
indent=2)`` so equal inputs give equal bytes. It is not a Jinja template: a template
would only add a second, weaker way of producing JSON. Job names are stable and fit the
API's 63 characters (a hash of the request's content keeps them unique).

:func:`write_requests` runs :func:`neobuild.preflight.preflight` on every request before
writing any of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neobuild import neo
from neobuild.atomic import atomic_write_bytes
from neobuild.errors import RequestError
from neobuild.model import Manifest, Model, Target
from neobuild.preflight import preflight

__all__ = [
    "PLACEHOLDER_ROLE_ARN",
    "PLACEHOLDER_S3_PREFIX",
    "build_request",
    "job_name",
    "placeholders",
    "request_bytes",
    "write_requests",
]

log = logging.getLogger(__name__)

PLACEHOLDER_ROLE_ARN = "arn:aws:iam::000000000000:role/REPLACE-ME"
PLACEHOLDER_S3_PREFIX = "s3://REPLACE-ME/neobuild"
_PLACEHOLDER_MARK = "REPLACE-ME"

_JOB_NAME_MAX = 63
_HASH_LEN = 8
_TAG_MODEL = "neobuild:model"
_TAG_ARCHIVE = "neobuild:archive-sha256"
# --------------------------------------------------------------------------- building


def _hex(archive_sha256: str) -> str:
    digest = archive_sha256.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise RequestError(
            f"archive hash {archive_sha256!r} is not a sha256 hex digest",
            hint="pass the archive's 'sha256:<64 hex>' hash",
        )
    return digest


def request_bytes(request: Mapping[str, Any]) -> bytes:
    """The bytes a request file holds: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(request, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def job_name(model: str, target: Target, content: Mapping[str, Any]) -> str:
    """``<model>-<target>-<8 hex of the request content>``, cut to fit ``EntityName``.

    ``content`` is the request without its name; the hash makes the name unique per
    content, so a changed request never collides with an earlier job (``ResourceInUse``).
    """
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:_HASH_LEN]
    stem = re.sub(r"[^A-Za-z0-9-]", "-", f"{model}-{target.key}")
    stem = stem[: _JOB_NAME_MAX - _HASH_LEN - 1].strip("-")
    return f"{stem}-{digest}" if stem else digest


def _missing(model: Model, key: str, example: str, allow_incomplete: bool) -> None:
    message = (
        f"model {model.name}: compile.{key} is not set, so no compilation request can be written"
    )
    hint = (
        f"add `{key}: {example}` under `compile:` in neo.yaml (in `defaults:` or in the "
        "model), or pass --allow-incomplete to write a placeholder"
    )
    if not allow_incomplete:
        raise RequestError(message, hint=hint)
    # With --allow-incomplete, write_requests() reports the placeholders once per request.


def build_request(
    manifest: Manifest,
    model: Model,
    target: Target,
    *,
    archive_sha256: str,
    allow_incomplete: bool = False,
) -> dict[str, Any]:
    """The CreateCompilationJob request for one model and target (NEO_REFERENCE §5).

    Args:
        manifest: The loaded manifest (unused today beyond the model; kept for symmetry).
        model: The model.
        target: One of ``model.targets``.
        archive_sha256: The archive's hash (``sha256:<hex>`` or bare hex); part of the
            S3 input key, so a new archive never overwrites an old one.
        allow_incomplete: Write clearly marked placeholders (``REPLACE-ME``) for a missing
            ``role_arn``/``s3_prefix`` instead of raising; a warning is logged.

    Returns:
        The request as a JSON-able dict.

    Raises:
        RequestError: ``compile.role_arn`` or ``compile.s3_prefix`` is missing (and
            ``allow_incomplete`` is false), or the archive hash is malformed.
    """
    del manifest
    settings = model.compile
    digest = _hex(archive_sha256)
    role_arn = settings.role_arn
    if not role_arn:
        _missing(model, "role_arn", "arn:aws:iam::<account>:role/<name>", allow_incomplete)
        role_arn = PLACEHOLDER_ROLE_ARN
    prefix = settings.s3_prefix
    if not prefix:
        _missing(model, "s3_prefix", "s3://<bucket>/<prefix>", allow_incomplete)
        prefix = PLACEHOLDER_S3_PREFIX
    prefix = prefix.rstrip("/")

    input_config: dict[str, Any] = {
        "S3Uri": f"{prefix}/{model.name}/{digest}/model.tar.gz",
        "Framework": neo.FRAMEWORK_ENUM[model.framework],
    }
    shapes = model.inputs.as_json()
    if model.framework != "xgboost" and shapes is not None:
        # json.dumps keeps declaration order: PyTorch inputs must stay in forward order.
        input_config["DataInputConfig"] = json.dumps(shapes)
    if model.framework_version and neo.sends_framework_version(model.framework, target):
        input_config["FrameworkVersion"] = neo.short_version(model.framework_version)

    output_config: dict[str, Any] = {
        "S3OutputLocation": f"{prefix}/{model.name}/compiled/{target.key}/",
    }
    if target.device is not None:
        output_config["TargetDevice"] = target.device
    elif target.platform is not None:
        platform: dict[str, str] = {"Os": target.platform.os, "Arch": target.platform.arch}
        if target.platform.accelerator:
            platform["Accelerator"] = target.platform.accelerator
        output_config["TargetPlatform"] = platform
    options = neo.compiler_options_json(target.compiler_options)
    if options is not None:
        output_config["CompilerOptions"] = options
    if settings.kms_key_id:
        output_config["KmsKeyId"] = settings.kms_key_id

    request: dict[str, Any] = {
        "RoleArn": role_arn,
        "InputConfig": input_config,
        "OutputConfig": output_config,
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime},
        "Tags": [
            {"Key": _TAG_MODEL, "Value": model.name},
            {"Key": _TAG_ARCHIVE, "Value": digest},
            *({"Key": k, "Value": v} for k, v in settings.tags),
        ],
    }
    if settings.vpc is not None:
        request["VpcConfig"] = {
            "SecurityGroupIds": list(settings.vpc.security_group_ids),
            "Subnets": list(settings.vpc.subnets),
        }
    request["CompilationJobName"] = job_name(model.name, target, request)
    return request


def placeholders(request: Mapping[str, Any]) -> list[str]:
    """The fields of a request that hold a ``REPLACE-ME`` placeholder (sorted)."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        elif isinstance(value, str) and _PLACEHOLDER_MARK in value:
            found.append(path)

    walk(request, "")
    return sorted(found)


def write_requests(
    manifest: Manifest,
    model: Model,
    archive_sha256: str,
    out_dir: Path,
    *,
    allow_incomplete: bool = False,
    warnings: list[str] | None = None,
) -> dict[str, Path]:
    """Build, pre-flight and write ``<out_dir>/<target.key>.json`` for every target.

    Nothing is written unless every target's request passes. Request files of targets
    no longer declared are removed, so ``out_dir`` holds exactly the current requests.

    Args:
        manifest: The manifest.
        model: The model.
        archive_sha256: The archive's hash (``sha256:<hex>``).
        out_dir: The model's ``requests/`` directory (created).
        allow_incomplete: Write ``REPLACE-ME`` placeholders for a missing
            ``compile.role_arn``/``s3_prefix`` instead of failing.
        warnings: When given, pre-flight warnings and placeholder notices are appended
            to it (they are logged either way).

    Returns:
        ``target.key`` -> path of the written file.

    Raises:
        RequestError: a missing compile setting, or every pre-flight problem of every target.
    """
    requests: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for target in model.targets:
        request = build_request(
            manifest,
            model,
            target,
            archive_sha256=archive_sha256,
            allow_incomplete=allow_incomplete,
        )
        try:
            notes = preflight(
                request, model=model.name, target=target.key, region=model.compile.region
            )
        except RequestError as exc:
            errors.extend(exc.problems)
            notes = []
        marked = placeholders(request)
        if marked:
            notes.append(
                f"model {model.name}, target {target.key}: placeholder values in {', '.join(marked)}; "
                "set them under compile: in neo.yaml before `neobuild compile --submit`"
            )
        if warnings is not None:
            warnings.extend(notes)
        else:
            for note in notes:
                log.warning("%s", note)
        requests[target.key] = request
    if errors:
        raise RequestError(
            f"model {model.name}: {len(errors)} problem{'s' if len(errors) != 1 else ''} in its "
            "CreateCompilationJob requests:\n  " + "\n  ".join(errors),
            problems=errors,
            hint="fix the model's entry in neo.yaml (compile:, targets:, compiler_options:)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key, request in sorted(requests.items()):
        path = out_dir / f"{key}.json"
        atomic_write_bytes(path, request_bytes(request))
        written[key] = path
    for stale in out_dir.glob("*.json"):
        if stale.stem not in written:
            stale.unlink()
    return written
