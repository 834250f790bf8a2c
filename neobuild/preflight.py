"""Pre-flight checks of CreateCompilationJob requests, before they are written or sent.

:func:`preflight` checks a request against every rule of the API that the client side
can see (NEO_REFERENCE §1.1-§1.3 and §3): enums, ``re.fullmatch`` patterns, lengths,
list sizes, the cross-field rules shared with the manifest validator
(:func:`neobuild.neo.target_problems`), and botocore's own ``ParamValidator``
(through :mod:`neobuild.requestshape`; botocore is a core dependency, boto3 is not needed). All
problems are reported at once, each naming the model, target, field, rule and value.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from neobuild import neo
from neobuild.errors import RequestError, Severity
from neobuild.model import Platform, Target

__all__ = ["check_request", "preflight"]

log = logging.getLogger(__name__)

_MAX_TAGS = neo.MAX_TAGS
_SG_COUNT = neo.SECURITY_GROUP_IDS
_SUBNET_COUNT = neo.SUBNETS

_KEYS: Mapping[str, frozenset[str]] = {
    "": frozenset(
        {
            "CompilationJobName",
            "RoleArn",
            "ModelPackageVersionArn",
            "InputConfig",
            "OutputConfig",
            "VpcConfig",
            "StoppingCondition",
            "Tags",
        }
    ),
    "InputConfig": frozenset({"S3Uri", "DataInputConfig", "Framework", "FrameworkVersion"}),
    "OutputConfig": frozenset(
        {"S3OutputLocation", "TargetDevice", "TargetPlatform", "CompilerOptions", "KmsKeyId"}
    ),
    "OutputConfig.TargetPlatform": frozenset({"Os", "Arch", "Accelerator"}),
    "VpcConfig": frozenset({"SecurityGroupIds", "Subnets"}),
    "StoppingCondition": frozenset(
        {"MaxRuntimeInSeconds", "MaxWaitTimeInSeconds", "MaxPendingTimeInSeconds"}
    ),
}
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "": ("CompilationJobName", "RoleArn", "OutputConfig", "StoppingCondition"),
    "InputConfig": ("S3Uri", "Framework"),
    "OutputConfig": ("S3OutputLocation",),
    "OutputConfig.TargetPlatform": ("Os", "Arch"),
    "VpcConfig": ("SecurityGroupIds", "Subnets"),
}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    if len(text) > 80:
        return f"{text[:60]}…{text[-12:]} ({len(text)} characters)"
    return text


_regex_module: Any
try:  # \p{L} etc. in the Tag patterns need the `regex` package (no stubs: import by name)
    _regex_module = importlib.import_module("regex")
except ImportError:  # pragma: no cover - exercised where regex is absent
    _regex_module = None


def _tag_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@"


def _fullmatch(pattern: str, value: str) -> bool:
    if "\\p{" not in pattern:
        return re.fullmatch(pattern, value) is not None
    if _regex_module is not None:
        return _regex_module.fullmatch(pattern, value) is not None
    # Approximation of ([\p{L}\p{Z}\p{N}_.:/=+\-@]*), the only \p pattern of the API.
    return all(_tag_char(c) for c in value)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[Severity, str]] = []

    def error(self, field: str, rule: str, value: Any = None, *, show: bool = True) -> None:
        text = f"{field}: {rule}" + (f"; value {_show(value)}" if show else "")
        self.add("error", text)

    def warn(self, field: str, rule: str) -> None:
        self.add("warning", f"{field}: {rule}")

    def add(self, severity: Severity, text: str) -> None:
        if (severity, text) not in self.problems:  # e.g. "is required" from two checks
            self.problems.append((severity, text))

    def rule(self, field: str, name: str, value: Any, *, required: bool = True) -> None:
        """Apply ``neo.FIELD_RULES[name]`` (type, length, pattern) to one string field."""
        if value is None:
            if required:
                self.error(field, "is required", show=False)
            return
        if not isinstance(value, str):
            self.error(field, f"must be a string, not {type(value).__name__}", value)
            return
        rule = neo.FIELD_RULES[name]
        if rule.min_len is not None and len(value) < rule.min_len:
            self.error(
                field,
                f"shorter than the minimum of {rule.min_len} characters ({len(value)})",
                value,
            )
        if rule.max_len is not None and len(value) > rule.max_len:
            self.error(
                field, f"longer than the maximum of {rule.max_len} characters ({len(value)})", value
            )
        if rule.pattern is not None and not _fullmatch(rule.pattern, value):
            self.error(field, f"does not match the pattern {rule.pattern}", value)

    def enum(self, field: str, value: Any, allowed: Sequence[str]) -> bool:
        if value in allowed:
            return True
        close = [a for a in allowed if isinstance(value, str) and a.lower() == value.lower()]
        rule = (
            f"not one of the API's values (did you mean {close[0]!r}?)"
            if close
            else (f"not one of the API's values: {', '.join(allowed)}")
        )
        self.error(field, rule, value)
        return False

    def keys(self, section: str, value: Any) -> bool:
        where = section or "the request"
        if not isinstance(value, Mapping):
            self.error(section or "request", "must be an object", value)
            return False
        for key in value:
            if key not in _KEYS[section]:
                self.error(
                    f"{section}.{key}" if section else str(key),
                    f"unknown parameter in {where}; must be one of {', '.join(sorted(_KEYS[section]))}",
                    show=False,
                )
        for key in _REQUIRED.get(section, ()):
            if key not in value:
                self.error(f"{section}.{key}" if section else key, "is required", show=False)
        return True


def _json_field(check: _Checker, field: str, value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        check.error(field, f"must be a strict JSON string ({exc.msg})", value)
        return None


def _check_shapes(check: _Checker, field: str, data: Any) -> None:
    def shape_ok(shape: Any) -> bool:
        if isinstance(shape, Mapping):  # coreml's extended form {"shape": [...], ...}
            return "shape" in shape
        return (
            isinstance(shape, list)
            and bool(shape)
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        )

    if isinstance(data, Mapping):
        bad = [name for name, shape in data.items() if not shape_ok(shape)]
    elif isinstance(data, list):
        bad = [f"#{i}" for i, shape in enumerate(data) if not shape_ok(shape)]
    else:
        check.error(field, "must be a JSON object of name -> shape or a list of shapes", data)
        return
    if not data:
        check.error(field, "declares no inputs", data)
    for name in bad:
        check.error(field, f"input {name}: a shape is a non-empty list of positive integers", data)


def _check_input(check: _Checker, config: Any, device: str | None) -> tuple[str | None, str | None]:
    if not check.keys("InputConfig", config):
        return None, None
    check.rule("InputConfig.S3Uri", "S3Uri", config.get("S3Uri"))
    uri = config.get("S3Uri")
    if isinstance(uri, str) and not uri.endswith(".tar.gz"):
        check.error("InputConfig.S3Uri", "must name a single .tar.gz archive", uri)
    framework = config.get("Framework")
    name: str | None = None
    if framework is not None and check.enum("InputConfig.Framework", framework, neo.API_FRAMEWORKS):
        names = {v: k for k, v in neo.FRAMEWORK_ENUM.items()}
        if framework in names:
            name = names[framework]
        else:
            check.error(
                "InputConfig.Framework", "Neo documents no support for this framework", framework
            )
    version = config.get("FrameworkVersion")
    check.rule("InputConfig.FrameworkVersion", "FrameworkVersion", version, required=False)
    shapes = config.get("DataInputConfig")
    if shapes is not None:
        check.rule("InputConfig.DataInputConfig", "DataInputConfig", shapes)
        data = _json_field(check, "InputConfig.DataInputConfig", shapes)
        if data is not None:
            _check_shapes(check, "InputConfig.DataInputConfig", data)
    elif name is not None and name != "xgboost":
        pytorch_cloud = name == "pytorch" and device is not None and device.startswith("ml_")
        if not pytorch_cloud:
            check.error(
                "InputConfig.DataInputConfig",
                f"is required for {framework} (only XGBoost, and PyTorch 2.0+ on ml_* targets, may leave it out)",
                show=False,
            )
    return name, version if isinstance(version, str) else None


def _check_output(check: _Checker, config: Any) -> Target | None:
    if not check.keys("OutputConfig", config):
        return None
    check.rule("OutputConfig.S3OutputLocation", "S3Uri", config.get("S3OutputLocation"))
    check.rule("OutputConfig.KmsKeyId", "KmsKeyId", config.get("KmsKeyId"), required=False)
    options_text = config.get("CompilerOptions")
    options: Any = None
    if options_text is not None:
        check.rule("OutputConfig.CompilerOptions", "CompilerOptions", options_text)
        options = _json_field(check, "OutputConfig.CompilerOptions", options_text)
    device = config.get("TargetDevice")
    platform = config.get("TargetPlatform")
    if (device is None) == (platform is None):
        check.error(
            "OutputConfig",
            "give exactly one of TargetDevice and TargetPlatform",
            {k: config[k] for k in ("TargetDevice", "TargetPlatform") if k in config},
        )
        return None
    if device is not None:
        if not check.enum("OutputConfig.TargetDevice", device, neo.TARGET_DEVICES):
            return None
        return Target(device=device, compiler_options=options)
    if not check.keys("OutputConfig.TargetPlatform", platform):
        return None
    ok = all(
        [
            platform.get("Os") is None
            or check.enum("OutputConfig.TargetPlatform.Os", platform.get("Os"), neo.PLATFORM_OS),
            platform.get("Arch") is None
            or check.enum(
                "OutputConfig.TargetPlatform.Arch", platform.get("Arch"), neo.PLATFORM_ARCH
            ),
            platform.get("Accelerator") is None
            or check.enum(
                "OutputConfig.TargetPlatform.Accelerator",
                platform.get("Accelerator"),
                neo.PLATFORM_ACCELERATOR,
            ),
        ]
    )
    if not ok or "Os" not in platform or "Arch" not in platform:
        return None
    return Target(
        platform=Platform(
            os=platform["Os"], arch=platform["Arch"], accelerator=platform.get("Accelerator")
        ),
        compiler_options=options,
    )


def _check_stopping(check: _Checker, condition: Any) -> None:
    if not check.keys("StoppingCondition", condition):
        return
    runtime = condition.get("MaxRuntimeInSeconds")
    if runtime is None:
        check.error(
            "StoppingCondition.MaxRuntimeInSeconds",
            "is required by neobuild (Neo's advice: start at 900)",
            show=False,
        )
    elif not isinstance(runtime, int) or isinstance(runtime, bool) or runtime < 1:
        check.error(
            "StoppingCondition.MaxRuntimeInSeconds", "must be an integer of at least 1", runtime
        )
    for key in ("MaxWaitTimeInSeconds", "MaxPendingTimeInSeconds"):
        if key in condition:
            check.error(
                f"StoppingCondition.{key}",
                "applies to training jobs, not compilation jobs",
                condition[key],
            )


def _check_tags(check: _Checker, tags: Any) -> None:
    if not isinstance(tags, list):
        check.error("Tags", "must be a list of {Key, Value}", tags)
        return
    if len(tags) > _MAX_TAGS:
        check.error("Tags", f"at most {_MAX_TAGS} tags are allowed ({len(tags)} given)", show=False)
    seen: set[str] = set()
    for i, tag in enumerate(tags):
        field = f"Tags[{i}]"
        if not isinstance(tag, Mapping) or set(tag) != {"Key", "Value"}:
            check.error(field, "must be an object with exactly Key and Value", tag)
            continue
        check.rule(f"{field}.Key", "TagKey", tag["Key"])
        check.rule(f"{field}.Value", "TagValue", tag["Value"])
        key = tag["Key"]
        if isinstance(key, str):
            if key.lower().startswith("aws:"):
                check.error(f"{field}.Key", "the aws: prefix is reserved for AWS", key)
            if key in seen:
                check.error(f"{field}.Key", "duplicate tag key", key)
            seen.add(key)


def _check_vpc(check: _Checker, vpc: Any) -> None:
    if not check.keys("VpcConfig", vpc):
        return
    for key, rule, (low, high) in (
        ("SecurityGroupIds", "SecurityGroupId", _SG_COUNT),
        ("Subnets", "Subnet", _SUBNET_COUNT),
    ):
        items = vpc.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            check.error(f"VpcConfig.{key}", "must be a list", items)
            continue
        if not low <= len(items) <= high:
            check.error(
                f"VpcConfig.{key}", f"must hold {low} to {high} items ({len(items)} given)", items
            )
        for i, item in enumerate(items):
            check.rule(f"VpcConfig.{key}[{i}]", rule, item)


def check_request(
    request: Mapping[str, Any], *, region: str | None = None
) -> list[tuple[Severity, str]]:
    """Every problem of a request, as ``(severity, "Field: rule; value …")`` pairs.

    Args:
        request: A CreateCompilationJob request in ``--cli-input-json`` form.
        region: The Region the job would run in, when known (for region-locked targets).
    """
    check = _Checker()
    if not check.keys("", request):
        return check.problems
    check.rule("CompilationJobName", "CompilationJobName", request.get("CompilationJobName"))
    check.rule("RoleArn", "RoleArn", request.get("RoleArn"))
    has_input = "InputConfig" in request
    has_package = "ModelPackageVersionArn" in request
    if has_input == has_package:
        check.error(
            "InputConfig", "give exactly one of InputConfig and ModelPackageVersionArn", show=False
        )
    if has_package:
        check.rule(
            "ModelPackageVersionArn", "ModelPackageVersionArn", request["ModelPackageVersionArn"]
        )

    target = _check_output(check, request["OutputConfig"]) if "OutputConfig" in request else None
    framework: str | None = None
    version: str | None = None
    if has_input:
        framework, version = _check_input(
            check, request["InputConfig"], target.device if target else None
        )
    if "StoppingCondition" in request:
        _check_stopping(check, request["StoppingCondition"])
    if "Tags" in request:
        _check_tags(check, request["Tags"])
    if "VpcConfig" in request:
        _check_vpc(check, request["VpcConfig"])

    if framework is not None and target is not None:
        for severity, message in neo.target_problems(framework, version, target, region=region):
            check.add(severity, f"InputConfig+OutputConfig: {message}")
        if version is not None and not neo.sends_framework_version(framework, target):
            check.warn(
                "InputConfig.FrameworkVersion",
                f"the SageMaker SDK does not send a framework version for {framework} on {target.key}; "
                "the service may answer 'Unsupported framework version field for target'",
            )
    for message in _botocore_problems(request):
        check.add("error", f"botocore: {message}")
    return check.problems


_warned_no_botocore = False


def _botocore_problems(request: Mapping[str, Any]) -> list[str]:
    """botocore's ParamValidator verdict against its SageMaker service model.

    botocore is a core dependency, so this always runs in a normal install. An install
    without it (``pip install --no-deps``) still gets every rule above; the skipped check
    is said once in the log instead of crashing.
    """
    global _warned_no_botocore
    from neobuild import requestshape

    try:
        problems: list[str] = requestshape.validate_request_with_botocore(dict(request))
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "botocore":
            raise
        if not _warned_no_botocore:
            _warned_no_botocore = True
            log.warning(
                "botocore is not installed, so requests are not checked against its "
                "SageMaker service model (neobuild's own rules still apply); reinstall "
                "neobuild with its dependencies"
            )
        return []
    return problems


def preflight(
    request: Mapping[str, Any], *, model: str, target: str, region: str | None = None
) -> list[str]:
    """Check a request before it is written or submitted.

    Args:
        request: The request.
        model: The model's name (for messages).
        target: The target key (for messages).
        region: The job's Region, when known (region-locked targets).

    Returns:
        Warnings, each prefixed with the model and target.

    Raises:
        RequestError: listing every error, each naming model, target, field, rule and value.
    """
    where = f"model {model}, target {target}"
    problems = check_request(request, region=region)
    errors = [f"{where}: {text}" for severity, text in problems if severity == "error"]
    if errors:
        raise RequestError(
            f"the CreateCompilationJob request for {where} breaks {len(errors)} "
            f"rule{'s' if len(errors) != 1 else ''} of the API:\n  " + "\n  ".join(errors),
            problems=errors,
            hint="fix the model's entry in neo.yaml (compile:, targets:, compiler_options:)",
        )
    return [f"{where}: {text}" for severity, text in problems if severity == "warning"]
