"""neo.py: the tables and rules, checked against NEO_REFERENCE.md."""

from __future__ import annotations

import re

import pytest

from neobuild import neo
from neobuild.model import FRAMEWORKS, Platform, Target


def dev(name: str, options: object = None) -> Target:
    return Target(device=name, compiler_options=options)


def plat(os: str, arch: str, acc: str | None = None, options: object = None) -> Target:
    return Target(platform=Platform(os, arch, acc), compiler_options=options)


# -- enums and limits (§1.1) ------------------------------------------------------------


def test_target_devices_are_the_37_verbatim_values() -> None:
    assert len(neo.TARGET_DEVICES) == 37
    assert len(set(neo.TARGET_DEVICES)) == 37
    assert neo.TARGET_DEVICES[:3] == ("lambda", "ml_m4", "ml_m5")
    assert neo.TARGET_DEVICES[-1] == "imx8mplus"
    assert {
        "ml_m4", "ml_m5", "ml_m6g", "ml_c4", "ml_c5", "ml_c6g", "ml_p2", "ml_p3",
        "ml_g4dn", "ml_inf1", "ml_inf2", "ml_trn1", "ml_eia2",
    } == neo.CLOUD_DEVICES  # fmt: skip
    assert set(neo.TARGET_DEVICES) == neo.CLOUD_DEVICES | neo.EDGE_DEVICES
    assert not neo.CLOUD_DEVICES & neo.EDGE_DEVICES
    assert "lambda" in neo.EDGE_DEVICES


def test_framework_enum() -> None:
    assert neo.FRAMEWORK_ENUM["pytorch"] == "PYTORCH"
    assert neo.FRAMEWORK_ENUM["tflite"] == "TFLITE"
    assert set(neo.FRAMEWORK_ENUM) == set(FRAMEWORKS)
    assert set(neo.FRAMEWORK_ENUM.values()) <= set(neo.API_FRAMEWORKS)
    assert "SKLEARN" not in neo.FRAMEWORK_ENUM.values()


def test_platform_enums() -> None:
    assert neo.PLATFORM_OS == ("ANDROID", "LINUX")
    assert neo.PLATFORM_ARCH == ("X86_64", "X86", "ARM64", "ARM_EABI", "ARM_EABIHF")
    assert neo.PLATFORM_ACCELERATOR == ("INTEL_GRAPHICS", "MALI", "NVIDIA", "NNA")


@pytest.mark.parametrize(
    ("field", "min_len", "max_len"),
    [
        ("CompilationJobName", 1, 63),
        ("RoleArn", 20, 2048),
        ("S3Uri", 0, 1024),
        ("DataInputConfig", 1, 16384),
        ("CompilerOptions", 3, 1024),
        ("FrameworkVersion", 3, 10),
        ("KmsKeyId", 0, 2048),
        ("SecurityGroupId", None, 32),
        ("Subnet", None, 32),
        ("TagKey", 1, 128),
        ("TagValue", 0, 256),
        ("ModelPackageVersionArn", 1, 2048),
    ],
)
def test_field_rules(field: str, min_len: int | None, max_len: int | None) -> None:
    rule = neo.FIELD_RULES[field]
    assert (rule.min_len, rule.max_len) == (min_len, max_len)
    assert rule.pattern is not None
    re.compile(neo.python_pattern(rule) or "")


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("CompilationJobName", "resnet-ml-c5-0123abcd", True),
        ("CompilationJobName", "bad_name", False),
        ("CompilationJobName", "-starts-with-hyphen", False),
        ("CompilationJobName", "a" * 64, False),
        ("RoleArn", "arn:aws:iam::123456789012:role/NeoCompile", True),
        ("RoleArn", "arn:aws:iam::1234:role/NeoCompileRole", False),
        ("S3Uri", "s3://bucket/prefix", True),
        ("S3Uri", "https://bucket.s3.amazonaws.com/x", True),
        ("S3Uri", "bucket/prefix", False),
        ("FrameworkVersion", "2.0", True),
        ("FrameworkVersion", "1.15.3", True),
        ("FrameworkVersion", "2", False),
        ("FrameworkVersion", "v2.0", False),
        ("FrameworkVersion", "12345.6789012", False),
        ("KmsKeyId", "alias/neo", True),
        ("KmsKeyId", "alias/my key", False),
        ("Subnet", "subnet-0abc", True),
        ("Subnet", "subnet_0abc", False),
        ("TagKey", "team name:ü", True),  # \p{L} and \p{Z} approximated by \w and \s
        ("TagKey", "team#1", False),
        ("TagKey", "", False),
        ("TagValue", "", True),
    ],
)
def test_field_problem(field: str, value: str, ok: bool) -> None:
    assert (neo.field_problem(field, value) is None) is ok


# -- FrameworkVersion: the SDK rule (§1.3 item 4) ------------------------------------------


@pytest.mark.parametrize(
    ("framework", "target", "sent"),
    [
        ("pytorch", dev("ml_c5"), True),
        ("tensorflow", dev("ml_g4dn"), True),
        ("mxnet", dev("ml_c5"), False),
        ("onnx", dev("ml_c5"), False),
        ("xgboost", dev("ml_c5"), False),
        ("mxnet", dev("ml_inf1"), True),
        ("pytorch", dev("ml_inf1"), True),
        ("onnx", dev("ml_inf1"), False),
        ("pytorch", dev("ml_inf2"), True),
        ("tensorflow", dev("ml_trn1"), True),
        ("mxnet", dev("ml_inf2"), False),
        ("pytorch", dev("ml_m6g"), False),  # a cloud device outside NEO_IOC_TARGET_DEVICES
        ("pytorch", dev("jetson_nano"), True),
        ("tensorflow", dev("rasp3b"), True),
        ("tflite", dev("rasp3b"), False),
        ("pytorch", dev("coreml"), False),
        ("pytorch", dev("lambda"), False),
        ("tensorflow", dev("imx8mplus"), False),
        ("pytorch", plat("LINUX", "ARM64"), False),  # never with TargetPlatform
    ],
)
def test_sends_framework_version(framework: str, target: Target, sent: bool) -> None:
    assert neo.sends_framework_version(framework, target) is sent


@pytest.mark.parametrize(
    ("version", "short"),
    [("2.0.1", "2.0"), ("1.13.1", "1.13"), ("2.0", "2.0"), ("1.15", "1.15"), ("2", "2")],
)
def test_short_version(version: str, short: str) -> None:
    assert neo.short_version(version) == short


# -- version tables (§2.1, §2.2) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("framework", "version", "target", "documented"),
    [
        ("pytorch", "2.0", dev("ml_c5"), "2.0"),
        ("pytorch", "2.0.1", dev("ml_c5"), "2.0"),  # SDK alias
        ("pytorch", "1.13.1", dev("ml_m5"), "1.13"),
        ("pytorch", "1.9", dev("ml_c5"), None),
        ("pytorch", "1.10", dev("ml_c5"), None),
        ("pytorch", "1.9", dev("ml_inf1"), "1.9"),
        ("pytorch", "2.0", dev("ml_inf1"), None),
        ("pytorch", "1.8", dev("jetson_nano"), "1.8"),
        ("pytorch", "2.0", dev("jetson_nano"), None),
        ("pytorch", "1.8", plat("LINUX", "ARM64"), "1.8"),  # platforms use the edge table
        ("tensorflow", "2.9", dev("ml_c5"), "2.9"),
        ("tensorflow", "2.9.2", dev("ml_c5"), "2.9"),
        ("tensorflow", "1.15", dev("ml_c5"), "1.15.3"),
        ("tensorflow", "2.4.1", dev("ml_c5"), "2.9"),  # neo-tensorflow.json: 2.4* -> 2.9.2
        ("tensorflow", "1.14", dev("ml_c5"), "1.15.3"),  # 1.4-1.14 -> 1.15.3
        ("tensorflow", "2.10", dev("ml_c5"), None),
        ("tensorflow", "2.5", dev("ml_inf1"), "2.5"),
        ("tensorflow", "2.3.2", dev("ml_eia2"), "2.3.2"),
        ("tensorflow", "2.9", dev("ml_eia2"), None),
        ("tensorflow", "2.4", dev("rasp4b"), "2.4"),
        ("tensorflow", "2.9", dev("rasp4b"), None),
        ("mxnet", "1.8", dev("ml_c5"), "1.8.0"),
        ("mxnet", "1.5", dev("ml_inf1"), "1.5"),
        ("mxnet", "1.5", dev("ml_c5"), None),
        ("onnx", "1.7", dev("ml_c5"), "1.7.0"),
        ("keras", "2.2.4", dev("ml_c5"), "2.2.4"),
        ("keras", "2.2", dev("rasp3b"), "2.2"),
        ("keras", "2.3", dev("ml_c5"), None),
        ("xgboost", "1.3.3", dev("ml_c5"), "1.3.3"),
        ("tflite", "1.15", dev("rasp4b"), "1.15"),
        ("tflite", "2.0", dev("rasp4b"), None),
    ],
)
def test_resolve_version(
    framework: str, version: str, target: Target, documented: str | None
) -> None:
    assert neo.resolve_version(framework, version, neo.target_class(target)) == documented


def test_target_classes() -> None:
    assert neo.target_class(dev("ml_c5")) == "cloud"
    assert neo.target_class(dev("ml_inf2")) == "cloud"
    assert neo.target_class(dev("ml_inf1")) == "ml_inf1"
    assert neo.target_class(dev("ml_eia2")) == "ml_eia2"
    assert neo.target_class(dev("jetson_nano")) == "edge"
    assert neo.target_class(dev("lambda")) == "edge"
    assert neo.target_class(plat("LINUX", "X86_64")) == "edge"


# -- platform matrix (§2.2) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("os", "arch", "acc", "ok"),
    [
        ("LINUX", "X86_64", None, True),
        ("LINUX", "ARM_EABI", None, True),
        ("LINUX", "X86", None, False),
        ("LINUX", "ARM64", "NVIDIA", True),
        ("LINUX", "X86_64", "NVIDIA", True),
        ("LINUX", "ARM_EABIHF", "NVIDIA", False),
        ("LINUX", "X86_64", "INTEL_GRAPHICS", True),
        ("LINUX", "ARM64", "INTEL_GRAPHICS", False),
        ("LINUX", "ARM_EABIHF", "MALI", True),
        ("LINUX", "X86_64", "MALI", False),
        ("ANDROID", "X86", None, True),
        ("ANDROID", "ARM_EABIHF", None, False),
        ("ANDROID", "X86", "INTEL_GRAPHICS", True),
        ("ANDROID", "ARM64", "MALI", True),
        ("ANDROID", "ARM64", "NVIDIA", False),
        ("LINUX", "ARM64", "NNA", False),
    ],
)
def test_platform_matrix(os: str, arch: str, acc: str | None, ok: bool) -> None:
    assert neo.platform_supported(os, arch, acc) is ok


# -- inputs (§2.3) ------------------------------------------------------------------------


def test_input_forms_and_layouts() -> None:
    assert neo.INPUT_FORMS["pytorch"] == ("dict", "list")
    assert neo.INPUT_FORMS["xgboost"] == ("none",)
    assert all(neo.INPUT_FORMS[f] == ("dict",) for f in ("keras", "onnx", "mxnet", "tflite"))
    assert neo.INPUT_LAYOUT["keras"] == "NCHW"
    assert neo.INPUT_LAYOUT["tensorflow"] == neo.INPUT_LAYOUT["tflite"] == "NHWC"
    assert set(neo.INPUT_FORMS) == set(FRAMEWORKS)


@pytest.mark.parametrize(
    ("framework", "shape", "warns"),
    [
        ("pytorch", (1, 3, 224, 224), False),
        ("pytorch", (1, 224, 224, 3), True),
        ("keras", (1, 224, 224, 3), True),
        ("keras", (1, 1, 28, 28), False),
        ("tensorflow", (1, 224, 224, 3), False),
        ("tensorflow", (1, 3, 224, 224), True),
        ("tflite", (1, 3, 224, 224), True),
        ("pytorch", (1, 3, 3, 3), False),  # ambiguous: no warning
        ("pytorch", (1, 16, 16, 16), False),  # not an image-like channel count either way
        ("pytorch", (1, 224, 3), False),  # only 4-D inputs
        ("xgboost", (1, 224, 224, 3), False),
    ],
)
def test_layout_problem(framework: str, shape: tuple[int, ...], warns: bool) -> None:
    assert (neo.layout_problem(framework, shape) is not None) is warns


def test_inputs_optional() -> None:
    assert neo.inputs_optional("xgboost", None, (dev("rasp3b"),))
    assert neo.inputs_optional("pytorch", "2.0", (dev("ml_c5"), dev("ml_inf2")))
    assert not neo.inputs_optional("pytorch", "2.0", (dev("ml_c5"), dev("jetson_nano")))
    assert not neo.inputs_optional("pytorch", "1.13", (dev("ml_c5"),))
    assert not neo.inputs_optional("pytorch", None, (dev("ml_c5"),))
    assert not neo.inputs_optional("onnx", "2.0", (dev("ml_c5"),))


# -- target_problems: the cross-field rules --------------------------------------------------


def problems(
    framework: str, version: str | None, target: Target, **kw: str
) -> list[tuple[str, str]]:
    return [(s, m) for s, m in neo.target_problems(framework, version, target, **kw)]


def test_valid_combinations_have_no_problems() -> None:
    assert problems("pytorch", "2.0", dev("ml_c5")) == []
    assert problems("tflite", "1.15", dev("rasp4b")) == []
    assert problems("onnx", None, plat("LINUX", "ARM64")) == []
    nvidia = {"gpu-code": "sm_72", "trt-ver": "8.0.0", "cuda-ver": "10.2"}
    assert problems("pytorch", "1.8", plat("LINUX", "ARM64", "NVIDIA", nvidia)) == []
    assert problems("pytorch", "1.8", dev("ml_inf1", "--verbose 1")) == []
    assert problems("tflite", None, plat("ANDROID", "ARM64", None, {"ANDROID_PLATFORM": 29})) == []


def test_edge_only_frameworks_on_cloud() -> None:
    assert problems("tflite", "1.15", dev("ml_c5")) == [
        ("error", "tflite compiles only for edge targets; ml_c5 is a cloud instance")
    ]
    assert problems("darknet", None, dev("ml_g4dn"))[0][0] == "error"
    assert problems("darknet", None, dev("jetson_tx2")) == []


def test_inf1_and_eia2_frameworks() -> None:
    assert problems("onnx", None, dev("ml_inf1")) == [
        ("error", "ml_inf1 accepts only mxnet, pytorch, tensorflow, not onnx")
    ]
    assert problems("keras", None, dev("ml_inf1"))[0][0] == "error"
    assert problems("pytorch", None, dev("ml_eia2")) == [
        ("error", "ml_eia2 accepts only tensorflow, not pytorch"),
        (
            "warning",
            "ml_eia2 is deprecated (Elastic Inference: AWS stopped onboarding new customers "
            "on 2023-04-15)",
        ),
    ]


def test_version_problems() -> None:
    assert problems("pytorch", "2.0", dev("ml_inf1")) == [
        ("error", "pytorch 2.0 is not supported on ml_inf1 (supported: 1.7, 1.8, 1.9)")
    ]
    assert problems("darknet", "1.0", dev("rasp3b")) == [
        ("error", "Neo documents no framework_version for darknet; remove it")
    ]


def test_platform_problems() -> None:
    assert problems("onnx", None, plat("ANDROID", "ARM_EABIHF")) == [
        (
            "error",
            "Neo does not support ANDROID / ARM_EABIHF with CPU "
            "(supported: X86_64, X86, ARM64, ARM_EABI)",
        )
    ]
    assert problems("onnx", None, plat("LINUX", "ARM64", "NNA")) == [
        ("error", "Neo does not support LINUX / ARM64 with NNA (no Arch is supported)")
    ]


def test_nvidia_options() -> None:
    assert problems("onnx", None, plat("LINUX", "ARM64", "NVIDIA")) == [
        ("error", "accelerator NVIDIA needs compiler_options gpu-code, trt-ver and cuda-ver")
    ]
    partial = {"gpu-code": "sm_72", "trt-ver": "8.0.0"}
    assert problems("onnx", None, plat("LINUX", "ARM64", "NVIDIA", partial)) == [
        (
            "error",
            "accelerator NVIDIA needs compiler_options gpu-code, trt-ver and cuda-ver; "
            "missing cuda-ver",
        )
    ]


def test_compiler_options_rules() -> None:
    long = {"mattr": "x" * 1100}
    assert problems("onnx", None, dev("ml_c5", long))[0][1].endswith(
        "CompilerOptions allows at most 1024"
    )
    assert problems("onnx", None, dev("ml_c5", "--flags")) == [
        ("error", "compiler_options for ml_c5 must be a mapping, got str")
    ]
    assert problems("pytorch", None, dev("ml_inf1", {"dtype": "int64"})) == [
        (
            "error",
            "ml_inf1 takes compiler_options as one string of Neuron flags, e.g. '--verbose 1'",
        )
    ]
    assert problems("onnx", None, dev("ml_c5", {"x": float("nan")}))[0][1].startswith(
        "compiler_options cannot be written as JSON"
    )
    android = plat("ANDROID", "ARM64", None, {"ANDROID_PLATFORM": 30})
    assert problems("onnx", None, android) == [
        ("error", "ANDROID_PLATFORM must be an Android API level from 21 to 29, got 30")
    ]


def test_compiler_options_json_is_strict_and_sorted() -> None:
    assert neo.compiler_options_json({"b": 1, "a": "x"}) == '{"a": "x", "b": 1}'
    assert neo.compiler_options_json("--verbose 1") == '"--verbose 1"'
    assert neo.compiler_options_json({}) is None
    assert neo.compiler_options_json(None) is None
    with pytest.raises(ValueError):
        neo.compiler_options_json({"x": float("inf")})


def test_region_locks() -> None:
    assert problems("pytorch", "2.0", dev("ml_inf2")) == [
        ("warning", "ml_inf2 compiles only in us-east-2")
    ]
    assert problems("pytorch", "2.0", dev("ml_inf2"), region="us-east-2") == []
    assert problems("pytorch", "2.0", dev("ml_trn1"), region="eu-west-1") == [
        ("warning", "ml_trn1 compiles only in us-east-1, but compile.region is eu-west-1")
    ]
    assert neo.REGION_LOCKED == {"ml_trn1": "us-east-1", "ml_inf2": "us-east-2"}
