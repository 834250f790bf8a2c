"""request.py and preflight.py: requests built right, pre-flight of every API rule, botocore agrees."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import factories
import pytest
from botocore.validate import ParamValidator
from locations import ROOT

from neobuild import neo, request
from neobuild.errors import RequestError
from neobuild.model import (
    CompileSettings,
    Inputs,
    InputSpec,
    Manifest,
    Model,
    Platform,
    Target,
    VpcConfig,
)
from neobuild.preflight import _fullmatch, preflight

REPO = ROOT
SHA = "sha256:" + "0123456789abcdef" * 4
ROLE = "arn:aws:iam::123456789012:role/NeoCompile"
PREFIX = "s3://my-bucket/neo"
SETTINGS = CompileSettings(role_arn=ROLE, s3_prefix=PREFIX, region="us-east-1")
NVIDIA = {"gpu-code": "sm_72", "trt-ver": "6.0.1", "cuda-ver": "10.1"}


@pytest.fixture(scope="module")
def input_shape() -> Any:
    service = botocore.session.get_session().get_service_model("sagemaker")
    return service.operation_model("CreateCompilationJob").input_shape


def botocore_errors(req: dict[str, Any], shape: Any) -> str:
    report = ParamValidator().validate(req, shape)
    return report.generate_report() if report.has_errors() else ""


def _dict(**shapes: tuple[int, ...]) -> Inputs:
    return Inputs(form="dict", items=tuple(InputSpec(n, s) for n, s in shapes.items()))


IMG = _dict(input0=(1, 3, 224, 224))
NHWC = _dict(input=(1, 224, 224, 3))
NONE = Inputs(form="none")


def model(
    framework: str,
    target: Target,
    *,
    version: str | None = None,
    inputs: Inputs = IMG,
    name: str = "m1",
    settings: CompileSettings = SETTINGS,
) -> Model:
    return factories.make_model(
        name,
        framework=framework,
        export="export.py",
        inputs=inputs,
        targets=(target,),
        framework_version=version,
        compile=settings,
    )


def manifest_of(*models: Model) -> Manifest:
    root = Path("/repo")
    return factories.make_manifest(root, models, build_dir=root / "build")


def dev(device: str, options: Any = None) -> Target:
    return Target(device=device, compiler_options=options)


def plat(os: str, arch: str, accel: str | None = None, options: Any = None) -> Target:
    return Target(platform=Platform(os, arch, accel), compiler_options=options)


def build(m: Model, **kw: Any) -> dict[str, Any]:
    return request.build_request(manifest_of(m), m, m.targets[0], archive_sha256=SHA, **kw)


# ------------------------------------------------------------------------ good variants

VARIANTS: dict[str, Model] = {
    "pytorch-ml_c5-dtype": model("pytorch", dev("ml_c5", {"dtype": "float32"}), version="2.0.1"),
    "pytorch-ml_m5-list": model(
        "pytorch",
        dev("ml_m5"),
        version="1.13",
        inputs=Inputs(form="list", items=(InputSpec(None, (1, 128)), InputSpec(None, (1, 128)))),
    ),
    "pytorch-ml_p3": model("pytorch", dev("ml_p3"), version="1.8"),
    "pytorch-ml_g4dn": model("pytorch", dev("ml_g4dn"), version="2.0"),
    "pytorch-ml_inf1": model("pytorch", dev("ml_inf1", "--verbose 1 -O2"), version="1.9"),
    "pytorch-jetson_nano": model("pytorch", dev("jetson_nano", NVIDIA), version="1.8"),
    "pytorch-rasp3b": model("pytorch", dev("rasp3b", {"mattr": ["+neon"]}), version="1.8"),
    "pytorch-linux-arm64-nvidia": model(
        "pytorch", plat("LINUX", "ARM64", "NVIDIA", NVIDIA), version="1.8"
    ),
    "pytorch-android-arm64": model(
        "pytorch", plat("ANDROID", "ARM64", None, {"ANDROID_PLATFORM": 29})
    ),
    "pytorch-coreml": model(
        "pytorch", dev("coreml", {"class_labels": "labels.txt"}), version="1.8"
    ),
    "pytorch-ml_inf2": model(
        "pytorch",
        dev("ml_inf2"),
        version="2.0",
        settings=CompileSettings(role_arn=ROLE, s3_prefix=PREFIX, region="us-east-2"),
    ),
    "pytorch-vpc-kms-tags": model(
        "pytorch",
        dev("ml_c5"),
        version="2.0",
        settings=CompileSettings(
            role_arn=ROLE,
            s3_prefix=PREFIX + "/",
            max_runtime=3600,
            kms_key_id="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            vpc=VpcConfig(("sg-0123456789abcdef0",), ("subnet-0a1b2c3d", "subnet-1a2b3c4d")),
            tags=(("team", "vision"), ("cost center", "ml/42")),
        ),
    ),
    "pytorch-long-name": model("pytorch", dev("ml_c5"), version="2.0", name="a" * 60 + "-resnet"),
    "tensorflow-ml_c5": model("tensorflow", dev("ml_c5"), version="2.9", inputs=NHWC),
    "tensorflow-ml_inf1": model("tensorflow", dev("ml_inf1"), version="1.15", inputs=NHWC),
    "tensorflow-ml_trn1": model("tensorflow", dev("ml_trn1"), version="2.9", inputs=NHWC),
    "tensorflow-jetson_xavier": model(
        "tensorflow", dev("jetson_xavier", NVIDIA), version="2.5", inputs=NHWC
    ),
    "tensorflow-linux-x86_64": model(
        "tensorflow", plat("LINUX", "X86_64"), version="2.5", inputs=NHWC
    ),
    "tensorflow-two-inputs": model(
        "tensorflow",
        dev("ml_m5"),
        version="2.9",
        inputs=_dict(data1=(1, 28, 28, 1), data2=(1, 28, 28, 1)),
    ),
    "mxnet-ml_c5": model("mxnet", dev("ml_c5"), version="1.8", inputs=_dict(data=(1, 3, 224, 224))),
    "mxnet-ml_inf1": model(
        "mxnet", dev("ml_inf1"), version="1.8", inputs=_dict(data=(1, 3, 224, 224))
    ),
    "mxnet-rk3399": model("mxnet", dev("rk3399"), inputs=_dict(data=(1, 3, 224, 224))),
    "mxnet-android-arm_eabi": model(
        "mxnet",
        plat("ANDROID", "ARM_EABI", None, {"ANDROID_PLATFORM": 25, "mattr": ["+neon"]}),
        inputs=_dict(data=(1, 3, 224, 224)),
    ),
    "onnx-ml_c5": model("onnx", dev("ml_c5"), inputs=_dict(input=(1, 3, 16, 16))),
    "onnx-linux-arm64-mali": model(
        "onnx", plat("LINUX", "ARM64", "MALI"), inputs=_dict(input=(1, 3, 16, 16))
    ),
    "onnx-imx8qm": model("onnx", dev("imx8qm"), inputs=_dict(input=(1, 3, 16, 16))),
    "keras-ml_c5": model(
        "keras", dev("ml_c5"), version="2.2.4", inputs=_dict(input_1=(1, 3, 28, 28))
    ),
    "keras-jetson_tx2": model(
        "keras",
        dev("jetson_tx2", {"gpu-code": "sm_62", "trt-ver": "6.0.1", "cuda-ver": "10.0"}),
        inputs=_dict(input_1=(1, 3, 28, 28)),
    ),
    "keras-coreml": model("keras", dev("coreml"), inputs=_dict(input_1=(1, 3, 28, 28))),
    "xgboost-ml_c5": model("xgboost", dev("ml_c5"), inputs=NONE),
    "xgboost-ml_m4": model("xgboost", dev("ml_m4"), inputs=NONE),
    "xgboost-rasp4b": model("xgboost", dev("rasp4b"), inputs=NONE),
    "tflite-rasp4b": model("tflite", dev("rasp4b"), version="1.15", inputs=NHWC),
    "tflite-android-arm64": model(
        "tflite", plat("ANDROID", "ARM64", None, {"ANDROID_PLATFORM": 28}), inputs=NHWC
    ),
    "tflite-linux-armhf": model(
        "tflite", plat("LINUX", "ARM_EABIHF", None, {"mattr": ["+neon"]}), inputs=NHWC
    ),
    "darknet-jetson_nano": model(
        "darknet", dev("jetson_nano", NVIDIA), inputs=_dict(data=(1, 3, 416, 416))
    ),
}


def test_at_least_30_variants() -> None:
    assert len(VARIANTS) >= 30


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_variant_passes_preflight_and_botocore(key: str, input_shape: Any) -> None:
    m = VARIANTS[key]
    target = m.targets[0]
    req = build(m)
    preflight(req, model=m.name, target=target.key, region=m.compile.region)
    assert botocore_errors(req, input_shape) == ""
    # The request says what the manifest says.
    name = req["CompilationJobName"]
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name) and len(name) <= 63
    assert re.fullmatch(r"[0-9a-f]{8}", name[-8:])
    config = req["InputConfig"]
    assert config["Framework"] == m.framework.upper()
    if m.inputs.form == "none":
        assert "DataInputConfig" not in config
    else:
        assert isinstance(config["DataInputConfig"], str)
        assert json.loads(config["DataInputConfig"]) == m.inputs.as_json()
        assert list(json.loads(config["DataInputConfig"])) == list(m.inputs.as_json())  # order
    if m.framework_version and neo.sends_framework_version(m.framework, target):
        assert config["FrameworkVersion"] == ".".join(m.framework_version.split(".")[:2])
    else:
        assert "FrameworkVersion" not in config
    out = req["OutputConfig"]
    assert ("TargetDevice" in out) != ("TargetPlatform" in out)
    if target.compiler_options is not None:
        assert json.loads(out["CompilerOptions"]) == target.compiler_options
    else:
        assert "CompilerOptions" not in out
    digest = SHA.removeprefix("sha256:")
    assert config["S3Uri"] == f"{PREFIX}/{m.name}/{digest}/model.tar.gz"
    assert out["S3OutputLocation"] == f"{PREFIX}/{m.name}/compiled/{target.key}/"
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": m.compile.max_runtime}
    tags = {t["Key"]: t["Value"] for t in req["Tags"]}
    assert tags["neobuild:model"] == m.name and tags["neobuild:archive-sha256"] == digest
    assert all(tags[k] == v for k, v in m.compile.tags)


def test_request_details() -> None:
    full = build(VARIANTS["pytorch-vpc-kms-tags"])
    assert full["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a1b2c3d", "subnet-1a2b3c4d"],
    }
    assert full["OutputConfig"]["KmsKeyId"].startswith("arn:aws:kms:")
    assert full["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert full["InputConfig"]["S3Uri"].startswith("s3://my-bucket/neo/m1/")  # no '//'
    inf1 = build(VARIANTS["pytorch-ml_inf1"])
    assert inf1["OutputConfig"]["CompilerOptions"] == '"--verbose 1 -O2"'  # a JSON string
    assert inf1["InputConfig"]["FrameworkVersion"] == "1.9"
    listed = build(VARIANTS["pytorch-ml_m5-list"])
    assert listed["InputConfig"]["DataInputConfig"] == "[[1, 128], [1, 128]]"
    long = build(VARIANTS["pytorch-long-name"])
    assert len(long["CompilationJobName"]) == 63
    platform = build(VARIANTS["pytorch-linux-arm64-nvidia"])
    assert platform["OutputConfig"]["TargetPlatform"] == {
        "Os": "LINUX",
        "Arch": "ARM64",
        "Accelerator": "NVIDIA",
    }
    assert "FrameworkVersion" not in platform["InputConfig"]  # never with TargetPlatform


def test_pytorch_dict_order_is_declaration_order() -> None:
    m = model("pytorch", dev("ml_c5"), inputs=_dict(input1=(1, 2), input0=(1, 3)))
    assert build(m)["InputConfig"]["DataInputConfig"] == '{"input1": [1, 2], "input0": [1, 3]}'


def test_job_name_is_unique_per_content() -> None:
    m = VARIANTS["pytorch-ml_c5-dtype"]
    first = build(m)
    assert build(m) == first  # deterministic
    other = request.build_request(manifest_of(m), m, m.targets[0], archive_sha256="f" * 64)
    assert other["CompilationJobName"] != first["CompilationJobName"]
    assert other["CompilationJobName"].rsplit("-", 1)[0] == "m1-ml-c5"
    changed = model("pytorch", dev("ml_c5", {"dtype": "int64"}), version="2.0.1")
    assert build(changed)["CompilationJobName"] != first["CompilationJobName"]


def test_request_bytes_are_sorted_json() -> None:
    req = build(VARIANTS["onnx-ml_c5"])
    data = request.request_bytes(req)
    assert data.endswith(b"}\n")
    assert json.loads(data) == req
    assert data == (json.dumps(req, sort_keys=True, indent=2) + "\n").encode()


# ------------------------------------------------------------------------ missing settings


def test_missing_role_arn_says_which_key(caplog: pytest.LogCaptureFixture) -> None:
    m = model(
        "onnx", dev("ml_c5"), inputs=_dict(input=(1, 4)), settings=CompileSettings(s3_prefix=PREFIX)
    )
    with pytest.raises(RequestError, match=r"compile\.role_arn is not set") as info:
        build(m)
    assert info.value.hint and "role_arn:" in info.value.hint and "compile:" in info.value.hint


def test_missing_s3_prefix_says_which_key() -> None:
    m = model(
        "onnx", dev("ml_c5"), inputs=_dict(input=(1, 4)), settings=CompileSettings(role_arn=ROLE)
    )
    with pytest.raises(RequestError, match=r"compile\.s3_prefix is not set") as info:
        build(m)
    assert info.value.hint and "s3_prefix:" in info.value.hint


def test_allow_incomplete_writes_marked_placeholders(input_shape: Any) -> None:
    m = model("onnx", dev("ml_c5"), inputs=_dict(input=(1, 4)), settings=CompileSettings())
    req = build(m, allow_incomplete=True)
    assert req["RoleArn"] == request.PLACEHOLDER_ROLE_ARN
    assert req["InputConfig"]["S3Uri"].startswith("s3://REPLACE-ME/")
    assert request.placeholders(req) == [
        "InputConfig.S3Uri",
        "OutputConfig.S3OutputLocation",
        "RoleArn",
    ]
    preflight(req, model="m1", target="ml_c5")  # a placeholder is still a valid shape
    assert botocore_errors(req, input_shape) == ""
    assert request.placeholders(build(VARIANTS["onnx-ml_c5"])) == []


# ------------------------------------------------------------------------ hostile variants


def refused(m: Model) -> str:
    req = build(m)
    with pytest.raises(RequestError) as info:
        preflight(req, model=m.name, target=m.targets[0].key, region=m.compile.region)
    text = str(info.value)
    assert all(
        p.startswith(f"model {m.name}, target {m.targets[0].key}: ") for p in info.value.problems
    )
    return text


def with_settings(**kw: Any) -> Model:
    settings = CompileSettings(**{"role_arn": ROLE, "s3_prefix": PREFIX, **kw})
    return model("onnx", dev("ml_c5"), inputs=_dict(input=(1, 4)), settings=settings)


HOSTILE_MODELS: dict[str, tuple[Callable[[], Model], str]] = {
    "model name too long for a tag": (
        lambda: model("onnx", dev("ml_c5"), inputs=_dict(input=(1, 4)), name="n" * 300),
        "Tags[0].Value: longer than the maximum of 256 characters (300)",
    ),
    "bad role arn account": (
        lambda: with_settings(role_arn="arn:aws:iam::12345:role/Neo"),
        "RoleArn: does not match the pattern",
    ),
    "role arn too short": (
        lambda: with_settings(role_arn="arn:x"),
        "RoleArn: shorter than the minimum of 20",
    ),
    "role arn of a user": (
        lambda: with_settings(role_arn="arn:aws:iam::123456789012:user/bob"),
        "RoleArn: does not match the pattern",
    ),
    "http s3 prefix": (
        lambda: with_settings(s3_prefix="http://bucket/x"),
        "InputConfig.S3Uri: does not match",
    ),
    "s3 prefix too long": (
        lambda: with_settings(s3_prefix="s3://b/" + "k" * 1100),
        "InputConfig.S3Uri: longer than the maximum of 1024",
    ),
    "compiler options too long": (
        lambda: model("onnx", dev("ml_c5", {"mcpu": "x" * 1100}), inputs=_dict(input=(1, 4))),
        "OutputConfig.CompilerOptions: longer than the maximum of 1024",
    ),
    "nvidia without options": (
        lambda: model("pytorch", plat("LINUX", "ARM64", "NVIDIA")),
        "OutputConfig: accelerator NVIDIA needs compiler_options gpu-code, trt-ver and cuda-ver",
    ),
    "nvidia with gpu-code only": (
        lambda: model("pytorch", plat("LINUX", "ARM64", "NVIDIA", {"gpu-code": "sm_72"})),
        "missing trt-ver, cuda-ver",
    ),
    "51 tags": (
        lambda: with_settings(tags=tuple((f"k{i:02d}", "v") for i in range(49))),
        "Tags: at most 50 tags are allowed (51 given)",
    ),
    "aws: tag key": (
        lambda: with_settings(tags=(("aws:cost", "x"),)),
        "the aws: prefix is reserved",
    ),
    "tag value with !": (
        lambda: with_settings(tags=(("team", "vision!"),)),
        "Tags[2].Value: does not match",
    ),
    "empty tag key": (
        lambda: with_settings(tags=(("", "x"),)),
        "Tags[2].Key: shorter than the minimum of 1",
    ),
    "tag key too long": (
        lambda: with_settings(tags=(("k" * 129, "x"),)),
        "Tags[2].Key: longer than the maximum of 128",
    ),
    "duplicate neobuild tag": (
        lambda: with_settings(tags=(("neobuild:model", "x"),)),
        "duplicate tag key",
    ),
    "max runtime 0": (
        lambda: with_settings(max_runtime=0),
        "MaxRuntimeInSeconds: must be an integer of at least 1",
    ),
    "bad kms key": (
        lambda: with_settings(kms_key_id="bad key!"),
        "OutputConfig.KmsKeyId: does not match",
    ),
    "6 security groups": (
        lambda: with_settings(vpc=VpcConfig(tuple(f"sg-{i}" for i in range(6)), ("subnet-1",))),
        "VpcConfig.SecurityGroupIds: must hold 1 to 5 items (6 given)",
    ),
    "no security group": (
        lambda: with_settings(vpc=VpcConfig((), ("subnet-1",))),
        "VpcConfig.SecurityGroupIds: must hold 1 to 5 items (0 given)",
    ),
    "17 subnets": (
        lambda: with_settings(vpc=VpcConfig(("sg-1",), tuple(f"subnet-{i}" for i in range(17)))),
        "VpcConfig.Subnets: must hold 1 to 16 items (17 given)",
    ),
    "bad subnet id": (
        lambda: with_settings(vpc=VpcConfig(("sg-1",), ("subnet_1!",))),
        "VpcConfig.Subnets[0]: does not match",
    ),
    "security group id too long": (
        lambda: with_settings(vpc=VpcConfig(("sg-" + "a" * 30,), ("subnet-1",))),
        "VpcConfig.SecurityGroupIds[0]: longer than the maximum of 32",
    ),
    "tflite on a cloud instance": (
        lambda: model("tflite", dev("ml_c5"), inputs=NHWC),
        "tflite compiles only for edge targets",
    ),
    "keras on ml_inf1": (lambda: model("keras", dev("ml_inf1")), "ml_inf1 accepts only"),
    "pytorch 2.0 on ml_inf1": (
        lambda: model("pytorch", dev("ml_inf1"), version="2.0"),
        "pytorch 2.0 is not supported on ml_inf1",
    ),
    "linux x86 platform": (
        lambda: model("onnx", plat("LINUX", "X86")),
        "Neo does not support LINUX / X86",
    ),
    "android api level 35": (
        lambda: model("onnx", plat("ANDROID", "ARM64", None, {"ANDROID_PLATFORM": 35})),
        "ANDROID_PLATFORM must be an Android API level from 21 to 29",
    ),
    "inf1 with an options object": (
        lambda: model("pytorch", dev("ml_inf1", {"dtype": "int64"}), version="1.9"),
        "ml_inf1 takes compiler_options as one string",
    ),
}


@pytest.mark.parametrize("key", sorted(HOSTILE_MODELS))
def test_hostile_manifest_is_refused(key: str) -> None:
    make, expected = HOSTILE_MODELS[key]
    assert expected in refused(make())


def _good() -> dict[str, Any]:
    return build(VARIANTS["pytorch-ml_c5-dtype"])


def _mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def apply(req: dict[str, Any]) -> None:
        node = req
        for key in parents:
            node = node.setdefault(key, {})
        if value is _DELETE:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)

    return apply


_DELETE = object()

HOSTILE_REQUESTS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "device in upper case": (
        _mutate("OutputConfig.TargetDevice", "ML_C5"),
        "OutputConfig.TargetDevice: not one of the API's values (did you mean 'ml_c5'?)",
    ),
    "unknown device": (
        _mutate("OutputConfig.TargetDevice", "ml_bogus"),
        "OutputConfig.TargetDevice: not one of",
    ),
    "framework in lower case": (
        _mutate("InputConfig.Framework", "pytorch"),
        "InputConfig.Framework: not one of the API's values (did you mean 'PYTORCH'?)",
    ),
    "undocumented framework": (
        _mutate("InputConfig.Framework", "SKLEARN"),
        "Neo documents no support",
    ),
    "device and platform": (
        _mutate("OutputConfig.TargetPlatform", {"Os": "LINUX", "Arch": "ARM64"}),
        "give exactly one of TargetDevice and TargetPlatform",
    ),
    "neither device nor platform": (
        _mutate("OutputConfig.TargetDevice", _DELETE),
        "give exactly one of TargetDevice and TargetPlatform",
    ),
    "os in lower case": (
        lambda r: (
            r["OutputConfig"].pop("TargetDevice"),
            r["OutputConfig"].update(TargetPlatform={"Os": "linux", "Arch": "ARM64"}),
        ),
        "TargetPlatform.Os: not one of the API's values (did you mean 'LINUX'?)",
    ),
    "unknown arch": (
        lambda r: (
            r["OutputConfig"].pop("TargetDevice"),
            r["OutputConfig"].update(TargetPlatform={"Os": "LINUX", "Arch": "AARCH64"}),
        ),
        "TargetPlatform.Arch: not one of",
    ),
    "accelerator in lower case": (
        lambda r: (
            r["OutputConfig"].pop("TargetDevice"),
            r["OutputConfig"].update(
                TargetPlatform={"Os": "LINUX", "Arch": "ARM64", "Accelerator": "nvidia"}
            ),
        ),
        "did you mean 'NVIDIA'?",
    ),
    "job name of 64 characters": (
        _mutate("CompilationJobName", "a" * 64),
        "CompilationJobName: longer than the maximum of 63",
    ),
    "job name with _ and !": (
        _mutate("CompilationJobName", "bad_name!"),
        "CompilationJobName: does not match",
    ),
    "job name starting with -": (
        _mutate("CompilationJobName", "-start"),
        "CompilationJobName: does not match",
    ),
    "empty job name": (
        _mutate("CompilationJobName", ""),
        "CompilationJobName: shorter than the minimum of 1",
    ),
    "python repr DataInputConfig": (
        _mutate("InputConfig.DataInputConfig", "{'input0': [1, 3, 224, 224]}"),
        "InputConfig.DataInputConfig: must be a strict JSON string",
    ),
    "DataInputConfig as an object": (
        _mutate("InputConfig.DataInputConfig", {"input0": [1, 3, 224, 224]}),
        "InputConfig.DataInputConfig: must be a string, not dict",
    ),
    "empty DataInputConfig": (
        _mutate("InputConfig.DataInputConfig", ""),
        "DataInputConfig: shorter than the minimum of 1",
    ),
    "zero dimension": (
        _mutate("InputConfig.DataInputConfig", '{"input0": [1, 3, 0, 224]}'),
        "input input0: a shape is a non-empty list of positive integers",
    ),
    "dynamic dimension": (
        _mutate("InputConfig.DataInputConfig", '{"input0": [1, 3, null, null]}'),
        "a shape is a non-empty list of positive integers",
    ),
    "DataInputConfig too long": (
        _mutate(
            "InputConfig.DataInputConfig", json.dumps({f"in{i}": [1, 2, 3] for i in range(1500)})
        ),
        "DataInputConfig: longer than the maximum of 16384",
    ),
    "CompilerOptions {}": (
        _mutate("OutputConfig.CompilerOptions", "{}"),
        "OutputConfig.CompilerOptions: shorter than the minimum of 3",
    ),
    "python repr CompilerOptions": (
        _mutate("OutputConfig.CompilerOptions", "{'dtype': 'float32'}"),
        "OutputConfig.CompilerOptions: must be a strict JSON string",
    ),
    "FrameworkVersion 2": (
        _mutate("InputConfig.FrameworkVersion", "2"),
        "InputConfig.FrameworkVersion: shorter than the minimum of 3",
    ),
    "FrameworkVersion v2.0": (
        _mutate("InputConfig.FrameworkVersion", "v2.0"),
        "InputConfig.FrameworkVersion: does not match the pattern",
    ),
    "FrameworkVersion too long": (
        _mutate("InputConfig.FrameworkVersion", "2.0.1.2.3.4"),
        "InputConfig.FrameworkVersion: longer than the maximum of 10",
    ),
    "input and model package": (
        _mutate(
            "ModelPackageVersionArn",
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/pkg/1",
        ),
        "give exactly one of InputConfig and ModelPackageVersionArn",
    ),
    "no input at all": (
        _mutate("InputConfig", _DELETE),
        "give exactly one of InputConfig and ModelPackageVersionArn",
    ),
    "no StoppingCondition": (
        _mutate("StoppingCondition", _DELETE),
        "StoppingCondition: is required",
    ),
    "MaxWaitTimeInSeconds": (
        _mutate("StoppingCondition.MaxWaitTimeInSeconds", 3600),
        "MaxWaitTimeInSeconds: applies to training jobs",
    ),
    "MaxRuntimeInSeconds as a string": (
        _mutate("StoppingCondition.MaxRuntimeInSeconds", "900"),
        "MaxRuntimeInSeconds: must be an integer of at least 1",
    ),
    "unknown OutputConfig key": (
        _mutate("OutputConfig.Foo", "bar"),
        "OutputConfig.Foo: unknown parameter",
    ),
    "zip archive": (
        _mutate("InputConfig.S3Uri", "s3://b/m/model.zip"),
        "InputConfig.S3Uri: must name a single .tar.gz archive",
    ),
    "no RoleArn": (_mutate("RoleArn", _DELETE), "RoleArn: is required"),
    "onnx without DataInputConfig": (
        lambda r: (
            r["InputConfig"].pop("DataInputConfig"),
            r["InputConfig"].update(Framework="ONNX"),
        ),
        "InputConfig.DataInputConfig: is required for ONNX",
    ),
    "bad output location": (
        _mutate("OutputConfig.S3OutputLocation", "bucket/output"),
        "OutputConfig.S3OutputLocation: does not match",
    ),
}


def test_at_least_30_hostile_variants() -> None:
    assert len(HOSTILE_MODELS) + len(HOSTILE_REQUESTS) >= 60


@pytest.mark.parametrize("key", sorted(HOSTILE_REQUESTS))
def test_hostile_request_is_refused(key: str) -> None:
    mutate, expected = HOSTILE_REQUESTS[key]
    req = _good()
    mutate(req)
    with pytest.raises(RequestError) as info:
        preflight(req, model="m1", target="ml_c5")
    assert expected in str(info.value)
    assert "model m1, target ml_c5: " in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    req = _good()
    req["CompilationJobName"] = "bad_name"
    req["OutputConfig"]["TargetDevice"] = "ML_C5"
    req["Tags"].append({"Key": "aws:x", "Value": "y"})
    req["InputConfig"]["DataInputConfig"] = {"input0": [1]}
    with pytest.raises(RequestError) as info:
        preflight(req, model="m1", target="ml_c5")
    fields = [p.split(": ")[1] for p in info.value.problems]
    assert {
        "CompilationJobName",
        "OutputConfig.TargetDevice",
        "Tags[2].Key",
        "InputConfig.DataInputConfig",
    } <= set(fields)
    assert "breaks" in str(info.value) and f"{len(info.value.problems)} rules" in str(info.value)


def test_botocore_verdict_is_included() -> None:
    req = _good()
    req["InputConfig"]["DataInputConfig"] = {"input0": [1, 3, 224, 224]}
    with pytest.raises(RequestError) as info:
        preflight(req, model="m1", target="ml_c5")
    assert any(p.startswith("model m1, target ml_c5: botocore: ") for p in info.value.problems)


def test_warnings_do_not_fail() -> None:
    m = VARIANTS["pytorch-ml_inf2"]
    req = build(m)
    warnings = preflight(req, model=m.name, target="ml_inf2")  # region unknown here
    assert any("ml_inf2" in w and "us-east-2" in w for w in warnings)
    req = _good()
    req["OutputConfig"]["TargetDevice"] = "ml_c6g"  # the SDK sends no version for it
    assert any("FrameworkVersion" in w for w in preflight(req, model="m1", target="ml_c6g"))


def test_tag_pattern_without_the_regex_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("neobuild.preflight._regex_module", None)
    pattern = neo.FIELD_RULES["TagValue"].pattern
    assert pattern is not None
    assert _fullmatch(pattern, "Équipe vision 2 _.:/=+-@")
    assert not _fullmatch(pattern, "vision!")
    assert not _fullmatch(pattern, "a\u0000b")


# ------------------------------------------------------------------------ writing


def _two_target_model() -> Model:
    m = VARIANTS["onnx-ml_c5"]
    return dataclasses.replace(m, targets=(dev("ml_c5"), plat("LINUX", "ARM64")))


def test_write_requests(tmp_path: Path) -> None:
    m = _two_target_model()
    out = tmp_path / "requests"
    out.mkdir()
    (out / "ml_m5.json").write_text("{}")  # a target no longer declared
    written = request.write_requests(manifest_of(m), m, SHA, out)
    assert sorted(written) == ["linux-arm64", "ml_c5"]
    assert sorted(p.name for p in out.iterdir()) == ["linux-arm64.json", "ml_c5.json"]
    first = {k: p.read_bytes() for k, p in written.items()}
    for key, data in first.items():
        assert data == request.request_bytes(
            request.build_request(
                manifest_of(m), m, next(t for t in m.targets if t.key == key), archive_sha256=SHA
            )
        )
    again = request.write_requests(manifest_of(m), m, SHA, tmp_path / "elsewhere")
    assert {k: p.read_bytes() for k, p in again.items()} == first


def test_write_requests_writes_nothing_when_a_target_fails(tmp_path: Path) -> None:
    m = factories.make_model(
        "bad",
        export="export.py",
        inputs=_dict(input=(1, 4)),
        targets=(
            dev("ml_c5"),
            plat("LINUX", "ARM64", "NVIDIA"),
            dev("ml_c5", {"mcpu": "x" * 2000}),
        ),
        compile=SETTINGS,
    )
    out = tmp_path / "requests"
    with pytest.raises(RequestError) as info:
        request.write_requests(manifest_of(m), m, SHA, out)
    text = str(info.value)
    assert "target linux-arm64-nvidia" in text and "gpu-code" in text
    assert "CompilerOptions: longer than the maximum of 1024" in text
    assert not out.exists() or not list(out.iterdir())


def test_examples_manifest_requests_pass(input_shape: Any) -> None:
    from neobuild import manifest

    loaded = manifest.load(REPO / "examples" / "neo.yaml", use_cache=False)
    count = 0
    for m in loaded.models.values():
        for target in m.targets:
            req = request.build_request(loaded, m, target, archive_sha256=SHA)
            preflight(req, model=m.name, target=target.key, region=m.compile.region)
            assert botocore_errors(req, input_shape) == ""
            count += 1
    assert count >= len(loaded.models)


def test_write_requests_collects_warnings_and_placeholders(tmp_path: Path) -> None:
    m = factories.make_model(
        "incomplete",
        framework="pytorch",
        export="export.py",
        inputs=IMG,
        targets=(dev("ml_c5"), dev("ml_inf2")),
        framework_version="2.0",
        compile=CompileSettings(region="us-east-1"),
    )
    notes: list[str] = []
    with pytest.raises(RequestError, match=r"compile\.role_arn"):
        request.write_requests(manifest_of(m), m, SHA, tmp_path / "r0", warnings=notes)
    written = request.write_requests(
        manifest_of(m), m, SHA, tmp_path / "r", allow_incomplete=True, warnings=notes
    )
    assert sorted(written) == ["ml_c5", "ml_inf2"]
    assert any("ml_inf2 compiles only in us-east-2" in n for n in notes)
    placeholder_notes = [n for n in notes if "placeholder values in" in n]
    assert len(placeholder_notes) == 2 and all("RoleArn" in n for n in placeholder_notes)
    assert b"REPLACE-ME" in written["ml_c5"].read_bytes()


def test_a_problem_is_reported_once() -> None:
    req = _good()
    del req["RoleArn"]
    with pytest.raises(RequestError) as info:
        preflight(req, model="m1", target="ml_c5")
    mine = [p for p in info.value.problems if "botocore" not in p]
    assert mine == ["model m1, target ml_c5: RoleArn: is required"]
