"""SageMaker Neo's facts: enums, limits and the rules that tie framework, version and target.

Everything here is data or a pure function, written to read like
``NEO_REFERENCE.md``; the section numbers in the comments point there. The manifest
validator (``manifest.py``) and the request pre-flight (``preflight.py``) both use
:func:`target_problems`, so a rule is stated once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from neobuild.errors import Severity
from neobuild.model import FRAMEWORKS, Target

# --------------------------------------------------------------------------------------
# §1.1 Enums, verbatim from botocore 1.43.11 service-2.json
# --------------------------------------------------------------------------------------

#: ``InputConfig.Framework``: every value the API knows (SKLEARN is undocumented, §1.1).
API_FRAMEWORKS = (
    "TENSORFLOW",
    "KERAS",
    "MXNET",
    "ONNX",
    "PYTORCH",
    "XGBOOST",
    "TFLITE",
    "DARKNET",
    "SKLEARN",
)

#: neo.yaml framework name -> API enum. The seven frameworks of the SDK's
#: ``NEO_ALLOWED_FRAMEWORKS`` plus DARKNET (edge table, §2.2); no SKLEARN.
FRAMEWORK_ENUM: dict[str, str] = {name: name.upper() for name in FRAMEWORKS}

#: ``OutputConfig.TargetDevice`` (37 values, in the order of the service model).
TARGET_DEVICES: tuple[str, ...] = (
    "lambda", "ml_m4", "ml_m5", "ml_m6g", "ml_c4", "ml_c5", "ml_c6g", "ml_p2", "ml_p3",
    "ml_g4dn", "ml_inf1", "ml_inf2", "ml_trn1", "ml_eia2", "jetson_tx1", "jetson_tx2",
    "jetson_nano", "jetson_xavier", "rasp3b", "rasp4b", "imx8qm", "deeplens", "rk3399",
    "rk3288", "aisage", "sbe_c", "qcs605", "qcs603", "sitara_am57x", "amba_cv2",
    "amba_cv22", "amba_cv25", "x86_win32", "x86_win64", "coreml", "jacinto_tda4vm",
    "imx8mplus",
)  # fmt: skip

#: SageMaker hosting instances (``ml_*``); everything else compiles for a device at the edge.
CLOUD_DEVICES: frozenset[str] = frozenset(d for d in TARGET_DEVICES if d.startswith("ml_"))
EDGE_DEVICES: frozenset[str] = frozenset(TARGET_DEVICES) - CLOUD_DEVICES

#: ``TargetPlatform`` enums (§1.1), in API case.
PLATFORM_OS = ("ANDROID", "LINUX")
PLATFORM_ARCH = ("X86_64", "X86", "ARM64", "ARM_EABI", "ARM_EABIHF")
PLATFORM_ACCELERATOR = ("INTEL_GRAPHICS", "MALI", "NVIDIA", "NNA")


@dataclass(frozen=True)
class FieldRule:
    """Length and pattern limits of one request field (service-2.json, §1.1).

    Patterns are unanchored in the service model; match them with ``re.fullmatch``.
    """

    min_len: int | None
    max_len: int | None
    pattern: str | None


FIELD_RULES: dict[str, FieldRule] = {
    "CompilationJobName": FieldRule(1, 63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "RoleArn": FieldRule(20, 2048, r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"),
    "S3Uri": FieldRule(0, 1024, r"(https|s3)://([^/]+)/?(.*)"),
    "DataInputConfig": FieldRule(1, 16384, r"[\S\s]+"),
    "CompilerOptions": FieldRule(3, 1024, r".*"),
    "FrameworkVersion": FieldRule(3, 10, r"[0-9]\.[A-Za-z0-9.]+"),
    "KmsKeyId": FieldRule(0, 2048, r"[a-zA-Z0-9:/_-]*"),
    "SecurityGroupId": FieldRule(None, 32, r"[-0-9a-zA-Z]+"),
    "Subnet": FieldRule(None, 32, r"[-0-9a-zA-Z]+"),
    "TagKey": FieldRule(1, 128, r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"),
    "TagValue": FieldRule(0, 256, r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"),
    "ModelPackageVersionArn": FieldRule(
        1, 2048, r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]{9,16}:[0-9]{12}:model-package/[\S]{1,2048}"
    ),
}

#: A model name: an ``EntityName`` like the CompilationJobName itself (§1.1, at most 63 characters), so that any
#: name can lead a job name (``request.job_name`` cuts the stem and keeps the hash) and
#: fits S3 keys, tags and paths whole. The manifest validator and the JSON Schema use this.
MODEL_NAME_MAX = 63
MODEL_NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9])*"

#: PyTorch's CompilerOptions ``dtype`` values (§3, DTYPE) -> the input dtype they declare.
#: Without the option Neo takes float32.
OPTION_DTYPES: dict[str, str] = {
    "float": "float32",
    "float32": "float32",
    "int64": "int64",
    "long": "int64",
}

#: List sizes (§1.1): Tags 0-50, SecurityGroupIds 1-5, Subnets 1-16.
MAX_TAGS = 50
SECURITY_GROUP_IDS = (1, 5)
SUBNETS = (1, 16)


def python_pattern(rule: FieldRule) -> str | None:
    """The rule's pattern in Python ``re`` syntax.

    ``re`` has no ``\\p{..}`` classes (§1.1, Tags): letters and numbers become ``\\w``
    (which also admits ``_``, already allowed) and separators (``\\p{Z}``: spaces, the
    line and paragraph separators) are listed; not ``\\s``, which admits tabs and newlines.
    """
    if rule.pattern is None:
        return None
    return rule.pattern.replace(r"\p{L}\p{Z}\p{N}", r"\w" + _UNICODE_SEPARATORS)


#: Unicode's Z category (Zs, Zl, Zp) as a character-class body for ``re``.
_UNICODE_SEPARATORS = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def field_problem(field: str, value: str) -> str | None:
    """Why ``value`` breaks the limits of request field ``field``, or None."""
    rule = FIELD_RULES[field]
    if rule.min_len is not None and len(value) < rule.min_len:
        return f"{field} must be at least {rule.min_len} characters, got {len(value)}"
    if rule.max_len is not None and len(value) > rule.max_len:
        return f"{field} must be at most {rule.max_len} characters, got {len(value)}"
    pattern = python_pattern(rule)
    if pattern is not None and not re.fullmatch(pattern, value):
        return f"{value!r} does not match the {field} pattern {rule.pattern}"
    return None


# --------------------------------------------------------------------------------------
# §1.3 and §2.5: NVIDIA options, region locks, deprecations
# --------------------------------------------------------------------------------------

#: ``Accelerator=NVIDIA`` "also requires gpu-code, trt-ver, cuda-ver compiler options" (§1.1).
NVIDIA_OPTIONS = ("gpu-code", "trt-ver", "cuda-ver")

#: "ml_trn1 is available only in US East (N. Virginia) Region, and ml_inf2 is available
#: only in US East (Ohio) Region" (TargetDevice doc, §1.1 and §1.3 item 8).
REGION_LOCKED: dict[str, str] = {"ml_trn1": "us-east-1", "ml_inf2": "us-east-2"}

DEPRECATED_DEVICES: dict[str, str] = {
    "ml_eia2": "Elastic Inference: AWS stopped onboarding new customers on 2023-04-15",
}

#: Android API levels Neo accepts in ``ANDROID_PLATFORM`` (§2.5).
ANDROID_API_LEVELS = range(21, 30)

# --------------------------------------------------------------------------------------
# §1.3 item 4: when the SDK sends FrameworkVersion (sagemaker-python-sdk v2.257.6)
# --------------------------------------------------------------------------------------

NEO_IOC_TARGET_DEVICES = frozenset(
    {"ml_c4", "ml_c5", "ml_m4", "ml_m5", "ml_p2", "ml_p3", "ml_g4dn"}
)
NEO_MULTIVERSION_UNSUPPORTED = frozenset(
    {
        "imx8mplus",
        "jacinto_tda4vm",
        "coreml",
        "sitara_am57x",
        "amba_cv2",
        "amba_cv22",
        "amba_cv25",
        "lambda",
    }
)


def sends_framework_version(framework: str, target: Target) -> bool:
    """Whether a request for ``target`` should carry ``FrameworkVersion`` (§1.3 item 4).

    The SDK's ``multi_version_compilation_supported``: never with a TargetPlatform;
    PyTorch and TensorFlow on the IOC cloud instances, ``ml_inf2``, ``ml_trn1`` and the
    multi-version edge devices; PyTorch, TensorFlow and MXNet on ``ml_inf1``.
    """
    device = target.device
    if device is None:
        return False
    if device == "ml_inf1":
        return framework in {"pytorch", "tensorflow", "mxnet"}
    if framework not in {"pytorch", "tensorflow"}:
        return False
    if device in NEO_IOC_TARGET_DEVICES or device in {"ml_inf2", "ml_trn1"}:
        return True
    return device in EDGE_DEVICES and device not in NEO_MULTIVERSION_UNSUPPORTED


def short_version(version: str) -> str:
    """``x.y`` of a version, as the SDK's ``utils.get_short_version``: "2.0.1" -> "2.0"."""
    return ".".join(version.split(".")[:2])


# --------------------------------------------------------------------------------------
# §2.1 / §2.2 Supported framework versions per target class
# --------------------------------------------------------------------------------------

TargetClass = Literal["cloud", "ml_inf1", "ml_eia2", "edge"]


def target_class(target: Target) -> TargetClass:
    """Which version table applies: cloud ``ml_*``, Inferentia, Elastic Inference, or edge.

    TargetPlatform targets compile for a device you run yourself: they use the edge table.
    """
    if target.device in ("ml_inf1", "ml_eia2"):
        return target.device  # type: ignore[return-value]
    return "cloud" if target.is_cloud else "edge"


#: Frameworks each target class accepts. TFLite and DARKNET are edge-only (§1.3 item 6);
#: ``ml_inf1`` takes MXNet, PyTorch and TensorFlow (§2.1); ``ml_eia2`` TensorFlow only.
ALLOWED_FRAMEWORKS: dict[TargetClass, frozenset[str]] = {
    "cloud": frozenset({"keras", "mxnet", "onnx", "pytorch", "tensorflow", "xgboost"}),
    "ml_inf1": frozenset({"mxnet", "pytorch", "tensorflow"}),
    "ml_eia2": frozenset({"tensorflow"}),
    "edge": frozenset(FRAMEWORKS),
}

#: The documented versions, per class and framework. A version matches a listed one when
#: it is equal, when their ``x.y`` agree (the SDK's aliases "2.0.1"->"2.0",
#: "1.13.1"->"1.13", "2.9"->"2.9.2"), or through :data:`VERSION_ALIASES`.
SUPPORTED_VERSIONS: dict[TargetClass, dict[str, tuple[str, ...]]] = {
    # §2.1 neo-supported-cloud.md (+ the docs.amazonaws.cn PyTorch row)
    "cloud": {
        "mxnet": ("1.8.0",),
        "onnx": ("1.7.0",),
        "keras": ("2.2.4",),
        "pytorch": ("1.4", "1.5", "1.6", "1.7", "1.8", "1.12", "1.13", "2.0"),
        "tensorflow": ("1.15.3", "2.9"),
        "xgboost": ("1.3.3",),
    },
    # §2.1 AWS Inferentia
    "ml_inf1": {
        "mxnet": ("1.5", "1.8"),
        "pytorch": ("1.7", "1.8", "1.9"),
        "tensorflow": ("1.15", "2.5"),
    },
    # §2.1 Elastic Inference
    "ml_eia2": {"tensorflow": ("2.3.2",)},
    # §2.2 neo-supported-devices-edge-frameworks.md
    "edge": {
        "mxnet": ("1.8",),
        "onnx": ("1.7",),
        "keras": ("2.2",),
        "pytorch": ("1.7", "1.8"),
        "tensorflow": ("1.15", "2.4", "2.5"),
        "tflite": ("1.15",),
        "xgboost": ("1.3",),
        "darknet": (),  # no versions documented
    },
}

#: SDK image-config aliases that change the ``x.y`` (§2.1, ``neo-tensorflow.json``):
#: TensorFlow 2.4* -> 2.9.2 and 1.4-1.14 -> 1.15.3 on cloud instances.
VERSION_ALIASES: dict[TargetClass, dict[str, dict[str, str]]] = {
    "cloud": {
        "tensorflow": {"2.4": "2.9", **{f"1.{minor}": "1.15.3" for minor in range(4, 15)}},
    },
}


def resolve_version(framework: str, version: str, cls: TargetClass) -> str | None:
    """The documented version ``version`` stands for on ``cls`` targets, or None."""
    listed = SUPPORTED_VERSIONS[cls].get(framework, ())
    if version in listed:
        return version
    short = short_version(version)
    for candidate in listed:
        if short_version(candidate) == short:
            return candidate
    alias = VERSION_ALIASES.get(cls, {}).get(framework, {}).get(short)
    return alias


def supported_versions(framework: str, cls: TargetClass) -> tuple[str, ...]:
    """The documented framework versions for ``cls`` targets (empty when none)."""
    return SUPPORTED_VERSIONS[cls].get(framework, ())


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numeric parts of a version: "2.0.1" -> (2, 0, 1), "1.15rc" -> (1,)."""
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


# --------------------------------------------------------------------------------------
# §2.2 TargetPlatform support matrix
# --------------------------------------------------------------------------------------

#: (Os, Accelerator or None for CPU) -> the Arch values supported. Windows is reached
#: only through the ``x86_win32``/``x86_win64`` devices; NNA appears in no row.
PLATFORM_MATRIX: dict[tuple[str, str | None], frozenset[str]] = {
    ("LINUX", None): frozenset({"X86_64", "ARM64", "ARM_EABIHF", "ARM_EABI"}),
    ("LINUX", "NVIDIA"): frozenset({"X86_64", "ARM64"}),
    ("LINUX", "INTEL_GRAPHICS"): frozenset({"X86_64"}),
    ("LINUX", "MALI"): frozenset({"ARM64", "ARM_EABIHF", "ARM_EABI"}),
    ("ANDROID", None): frozenset({"X86_64", "X86", "ARM64", "ARM_EABI"}),
    ("ANDROID", "INTEL_GRAPHICS"): frozenset({"X86_64", "X86"}),
    ("ANDROID", "MALI"): frozenset({"ARM64", "ARM_EABI"}),
}


def platform_supported(os: str, arch: str, accelerator: str | None) -> bool:
    """Whether the support matrix lists this TargetPlatform combination (§2.2)."""
    return arch in PLATFORM_MATRIX.get((os, accelerator), frozenset())


def platform_alternatives(os: str, accelerator: str | None) -> tuple[str, ...]:
    """The Arch values supported with this Os and Accelerator, in enum order."""
    allowed = PLATFORM_MATRIX.get((os, accelerator), frozenset())
    return tuple(a for a in PLATFORM_ARCH if a in allowed)


# --------------------------------------------------------------------------------------
# §2.3 Input shapes: form and layout per framework
# --------------------------------------------------------------------------------------

InputFormName = Literal["dict", "list", "none"]

#: The DataInputConfig forms each framework accepts; PyTorch also takes a list of shapes.
INPUT_FORMS: dict[str, tuple[InputFormName, ...]] = {
    "tensorflow": ("dict",),
    "tflite": ("dict",),
    "keras": ("dict",),
    "mxnet": ("dict",),
    "onnx": ("dict",),
    "darknet": ("dict",),
    "pytorch": ("dict", "list"),
    "xgboost": ("none",),
}

#: The layout Neo expects for 4-D image inputs. Keras is NCHW in DataInputConfig even
#: though the ``.h5`` itself is channels-last (§2.3, examples#2036).
INPUT_LAYOUT: dict[str, str] = {
    "tensorflow": "NHWC",
    "tflite": "NHWC",
    "keras": "NCHW",
    "mxnet": "NCHW",
    "onnx": "NCHW",
    "darknet": "NCHW",
    "pytorch": "NCHW",
}

_CHANNELS = frozenset({1, 3, 4})  # grey, RGB, RGBA (heuristic, §3)


def layout_problem(framework: str, shape: tuple[int, ...]) -> str | None:
    """A warning when a 4-D shape's channel axis looks like the other layout (heuristic)."""
    layout = INPUT_LAYOUT.get(framework)
    if layout is None or len(shape) != 4:
        return None
    nchw_channels, nhwc_channels = shape[1], shape[3]
    if layout == "NCHW" and nchw_channels not in _CHANNELS and nhwc_channels in _CHANNELS:
        return (
            f"{list(shape)} looks like NHWC (channels last); "
            f"Neo expects {framework} inputs in NCHW, e.g. {[shape[0], shape[3], shape[1], shape[2]]}"
        )
    if layout == "NHWC" and nhwc_channels not in _CHANNELS and nchw_channels in _CHANNELS:
        return (
            f"{list(shape)} looks like NCHW (channels first); "
            f"Neo expects {framework} inputs in NHWC, e.g. {[shape[0], shape[2], shape[3], shape[1]]}"
        )
    return None


def inputs_optional(
    framework: str, framework_version: str | None, targets: tuple[Target, ...]
) -> bool:
    """Whether DataInputConfig may be left out (§1.3 item 5, §2.3).

    Always for XGBoost; for PyTorch 2.0+ when every target is a cloud instance.
    """
    if framework == "xgboost":
        return True
    if framework != "pytorch" or framework_version is None:
        return False
    return version_tuple(framework_version)[:1] >= (2,) and all(t.is_cloud for t in targets)


# --------------------------------------------------------------------------------------
# §2.5 CompilerOptions
# --------------------------------------------------------------------------------------


def compiler_options_json(options: Any) -> str | None:
    """The CompilerOptions string sent for ``options`` (strict JSON), or None when empty.

    Raises:
        ValueError: the value cannot be written as strict JSON.
    """
    if options is None or options == {} or options == "":
        return None
    return json.dumps(options, sort_keys=True, allow_nan=False)


def compiler_options_problems(options: Any, target: Target) -> list[tuple[Severity, str]]:
    """Problems with one target's merged compiler options (§1.1, §2.5)."""
    problems: list[tuple[Severity, str]] = []
    try:
        text = compiler_options_json(options)
    except (TypeError, ValueError) as exc:
        return [("error", f"compiler_options cannot be written as JSON: {exc}")]
    rule = FIELD_RULES["CompilerOptions"]
    if text is not None and rule.max_len is not None and len(text) > rule.max_len:
        problems.append(
            (
                "error",
                f"compiler_options for {target.key} are {len(text)} characters of JSON; "
                f"CompilerOptions allows at most {rule.max_len}",
            )
        )
    if target.device == "ml_inf1":
        # §2.5: a JSON-encoded *string* of Neuron compiler flags, not an object.
        if options is not None and not isinstance(options, str):
            problems.append(
                (
                    "error",
                    "ml_inf1 takes compiler_options as one string of Neuron flags, e.g. '--verbose 1'",
                )
            )
    elif options is not None and not isinstance(options, Mapping):
        problems.append(
            (
                "error",
                f"compiler_options for {target.key} must be a mapping, got {type(options).__name__}",
            )
        )
    platform = target.platform
    if platform is not None and platform.accelerator == "NVIDIA":
        present = set(options) if isinstance(options, Mapping) else set()
        missing = [o for o in NVIDIA_OPTIONS if o not in present]
        if missing:
            needed = "accelerator NVIDIA needs compiler_options gpu-code, trt-ver and cuda-ver"
            if len(missing) < len(NVIDIA_OPTIONS):
                needed += f"; missing {', '.join(missing)}"
            problems.append(("error", needed))
    if platform is not None and platform.os == "ANDROID" and isinstance(options, Mapping):
        level = options.get("ANDROID_PLATFORM")
        if level is not None and (
            isinstance(level, bool) or not isinstance(level, int) or level not in ANDROID_API_LEVELS
        ):
            problems.append(
                (
                    "error",
                    f"ANDROID_PLATFORM must be an Android API level from 21 to 29, got {level!r}",
                )
            )
    return problems


# --------------------------------------------------------------------------------------
# The cross-field rules, shared by the validator and the pre-flight
# --------------------------------------------------------------------------------------


def target_problems(
    framework: str,
    framework_version: str | None,
    target: Target,
    *,
    region: str | None = None,
) -> list[tuple[Severity, str]]:
    """Every rule a (framework, version, target) combination breaks, as (severity, message).

    Covers: the framework allowed on the target class (§1.3 item 6, §2.1), the version
    table per class (§2.1, §2.2), the TargetPlatform matrix (§2.2), NVIDIA options and
    CompilerOptions limits (§1.3 item 3, §2.5), region-locked and deprecated devices
    (§1.3 item 8, §1.1). ``region`` sharpens the region-lock warning when known.
    """
    problems: list[tuple[Severity, str]] = []
    cls = target_class(target)
    where = target.device if target.device is not None else f"platform {target.key}"

    if framework not in ALLOWED_FRAMEWORKS[cls]:
        problems.append(("error", _not_allowed(framework, cls, where)))
    elif framework_version is not None:
        problems.extend(_version_problems(framework, framework_version, cls, where))

    if target.platform is not None:
        p = target.platform
        if not platform_supported(p.os, p.arch, p.accelerator):
            arches = platform_alternatives(p.os, p.accelerator)
            kind = p.accelerator or "CPU"
            supported = f"supported: {', '.join(arches)}" if arches else "no Arch is supported"
            problems.append(
                ("error", f"Neo does not support {p.os} / {p.arch} with {kind} ({supported})")
            )

    problems.extend(compiler_options_problems(target.compiler_options, target))

    if target.device in REGION_LOCKED:
        only = REGION_LOCKED[target.device]
        if region is None:
            problems.append(("warning", f"{target.device} compiles only in {only}"))
        elif region != only:
            problems.append(
                (
                    "warning",
                    f"{target.device} compiles only in {only}, but compile.region is {region}",
                )
            )
    if target.device in DEPRECATED_DEVICES:
        problems.append(
            ("warning", f"{target.device} is deprecated ({DEPRECATED_DEVICES[target.device]})")
        )
    return problems


def _not_allowed(framework: str, cls: TargetClass, where: str) -> str:
    if cls == "cloud":
        return f"{framework} compiles only for edge targets; {where} is a cloud instance"
    allowed = ", ".join(sorted(ALLOWED_FRAMEWORKS[cls]))
    return f"{where} accepts only {allowed}, not {framework}"


def _version_problems(
    framework: str, version: str, cls: TargetClass, where: str
) -> list[tuple[Severity, str]]:
    listed = supported_versions(framework, cls)
    if not listed:
        return [("error", f"Neo documents no framework_version for {framework}; remove it")]
    if resolve_version(framework, version, cls) is None:
        return [
            (
                "error",
                f"{framework} {version} is not supported on {where} "
                f"(supported: {', '.join(listed)})",
            )
        ]
    return []
