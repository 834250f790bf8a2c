"""Valid manifests, includes, defaults, normalisation, warnings and the validated-manifest cache."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from neobuild import manifest
from neobuild.errors import ManifestError, UsageError
from neobuild.gitignore import IGNORE_ALL
from neobuild.model import (
    CacheSettings,
    CompileSettings,
    ExportRef,
    Inputs,
    InputSpec,
    Platform,
    Position,
    Target,
    VpcConfig,
)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "models/a/export.py": "def export(output_dir, inputs):\n    pass\n",
            "models/a/requirements.txt": "numpy\n",
            "models/b/export.py": "def export(output_dir, inputs):\n    pass\n",
        },
    )
    return tmp_path


FULL = """\
version: 1
build_dir: out/neo
templates_dir: tpl
cache: {url: "s3://cache-bucket/neo", read_only: true}
defaults:
  timeout: 600
  tags: [all]
  targets: [ml_c5]
  compiler_options: {dtype: float32}
  compile:
    role_arn: arn:aws:iam::123456789012:role/NeoCompile
    s3_prefix: s3://bucket/neo
    region: us-east-1
    tags: {team: vision}
models:
  a:
    framework: PyTorch
    framework_version: "1.8.1"
    export: models/a/export.py:export
    inputs: [[1, 3, 8, 8], [1, 3, 8, 8]]
    requirements: models/a/requirements.txt
    env: {HF_HUB_OFFLINE: "1", A: b}
    smoke: true
    compile:
      max_runtime: 1200
      kms_key_id: alias/neo
      vpc: {security_group_ids: [sg-1], subnets: [subnet-1, subnet-2]}
      tags: {cost: "42"}
    targets:
      - ML_C5
      - device: ml_m5
        compiler_options: {mcpu: skylake-avx512}
      - platform: {os: linux, arch: x86_64, accelerator: Nvidia}
        compiler_options: {gpu-code: sm_70, trt-ver: 6.0.1, cuda-ver: "10.0"}
  b:
    framework: onnx
    export: models/b/export.py:export
    inputs: {input: [1, 3, 16, 16]}
    sources: [models/b/**, common/*.py]
    requirements: [onnx==1.16.0, numpy]
    tags: [tabular]
    templates_dir: models/b/tpl
  c:
    framework: pytorch
    framework_version: "2.0"
    export: mypkg.exporters:export_c
"""


def test_full_manifest_loads_into_dataclasses(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": FULL,
            "mypkg/exporters.py": "def export_c(o, i): pass\n",
            "common/util.py": "",  # models.b.sources names common/*.py
        },
    )
    (repo / "tpl").mkdir()
    (repo / "models/b/tpl").mkdir()

    m = manifest.load(repo / "neo.yaml", use_cache=False)

    assert m.root == repo
    assert m.path == repo / "neo.yaml"
    assert m.build_dir == repo / "out/neo"
    assert m.templates_dir == repo / "tpl"
    assert m.cache == CacheSettings(url="s3://cache-bucket/neo", read_only=True)
    assert m.files == (repo / "neo.yaml",)
    assert m.warnings == ()
    assert list(m.models) == ["a", "b", "c"]

    a = m.models["a"]
    assert a.framework == "pytorch"  # normalised from PyTorch
    assert a.framework_version == "1.8.1"
    assert a.export == ExportRef(function="export", path="models/a/export.py")
    assert a.inputs == Inputs(
        form="list", items=(InputSpec(None, (1, 3, 8, 8)), InputSpec(None, (1, 3, 8, 8)))
    )
    assert a.sources == ("models/a/**",)  # default: the export file's directory
    assert a.requirements_file == "models/a/requirements.txt"
    assert a.requirements == ()
    assert a.env == (("A", "b"), ("HF_HUB_OFFLINE", "1"))
    assert a.timeout == 600  # from defaults
    assert a.tags == ("all",)  # lists replace: a declares none, so the default stays
    assert a.smoke is True
    assert a.compiler_options == {"dtype": "float32"}
    assert a.targets == (
        Target(device="ml_c5", compiler_options={"dtype": "float32"}),
        Target(device="ml_m5", compiler_options={"dtype": "float32", "mcpu": "skylake-avx512"}),
        Target(
            platform=Platform(os="LINUX", arch="X86_64", accelerator="NVIDIA"),
            compiler_options={
                "dtype": "float32",
                "gpu-code": "sm_70",
                "trt-ver": "6.0.1",
                "cuda-ver": "10.0",
            },
        ),
    )
    # mappings merge: the model's compile keys over the defaults' ones
    assert a.compile == CompileSettings(
        role_arn="arn:aws:iam::123456789012:role/NeoCompile",
        s3_prefix="s3://bucket/neo",
        region="us-east-1",
        max_runtime=1200,
        kms_key_id="alias/neo",
        vpc=VpcConfig(security_group_ids=("sg-1",), subnets=("subnet-1", "subnet-2")),
        tags=(("cost", "42"), ("team", "vision")),
    )
    assert a.position == Position(repo / "neo.yaml", 16, 3)
    assert [t.position for t in a.targets] == [
        Position(repo / "neo.yaml", 30, 9),
        Position(repo / "neo.yaml", 31, 9),
        Position(repo / "neo.yaml", 33, 9),
    ]

    b = m.models["b"]
    assert b.inputs == Inputs(form="dict", items=(InputSpec("input", (1, 3, 16, 16)),))
    assert b.sources == ("models/b/**", "common/*.py")
    assert b.requirements == ("onnx==1.16.0", "numpy")
    assert b.requirements_file is None
    assert b.tags == ("tabular",)  # lists replace
    assert b.templates_dir == "models/b/tpl"
    assert b.framework_version is None
    assert b.compile.max_runtime == 900
    assert b.targets[0].position == Position(repo / "neo.yaml", 8, 13)  # from defaults

    c = m.models["c"]
    assert c.export == ExportRef(function="export_c", module="mypkg.exporters")
    assert c.sources == ("mypkg/**",)
    assert c.inputs == Inputs(form="none")  # PyTorch 2.0 on cloud targets only


def test_minimal_manifest_gets_the_defaults(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            models:
              a:
                framework: xgboost
                export: models/a/export.py:export
                targets: [ml_c5]
            """
        },
    )
    m = manifest.load(repo / "neo.yaml", use_cache=False)
    a = m.models["a"]
    assert m.build_dir == repo / "build/neo"
    assert m.cache is None and m.templates_dir is None
    assert a.inputs == Inputs(form="none")
    assert a.timeout == 900
    assert a.compile == CompileSettings()
    assert a.compile.max_runtime == 900
    assert a.smoke is False
    assert a.targets == (Target(device="ml_c5"),)
    assert a.has_own_env is False


def test_root_level_export_sources_default_to_the_file(repo: Path) -> None:
    write(
        repo,
        {
            "export.py": "def export(o, i): pass\n",
            "neo.yaml": """\
            version: 1
            models:
              a: {framework: xgboost, export: "export.py:export", targets: [ml_c5]}
            """,
        },
    )
    assert manifest.load(repo / "neo.yaml", use_cache=False).models["a"].sources == ("export.py",)


def test_example_manifest_validates(repo_root: Path) -> None:
    m, problems = manifest.check(repo_root / "examples" / "neo.yaml", use_cache=False)
    missing = [p for p in problems if "does not exist" in p.message]
    if missing:  # the export files land with the framework engineers' work
        pytest.skip(f"example export files not there yet: {missing[0].message}")
    assert problems == []
    assert m is not None
    assert sorted(m.models) == sorted(
        [
            "torch-cnn",
            "onnx-mlp",
            "xgb-classifier",
            "keras-cnn",
            "tf-savedmodel",
            "tflite-mobile",
            "mxnet-mlp",
        ]
    )
    assert {m.framework for m in m.models.values()} == {
        "pytorch",
        "onnx",
        "xgboost",
        "keras",
        "tensorflow",
        "tflite",
        "mxnet",
    }
    tflite = m.models["tflite-mobile"]
    assert [t.key for t in tflite.targets] == ["rasp4b", "jetson_nano", "android-arm64"]
    assert any(t.platform is not None for t in m.models["onnx-mlp"].targets)
    assert all(m.compile.region == "us-east-1" for m in m.models.values())


# -- includes ------------------------------------------------------------------------


def test_includes_resolve_paths_relative_to_the_included_file(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            include: [teams/*/neo.yaml]
            defaults:
              targets: [ml_c5]
              timeout: 100
            models:
              a: {framework: xgboost, export: "models/a/export.py:export"}
            """,
            "teams/vision/neo.yaml": """\
            defaults:
              timeout: 200
            models:
              v1:
                framework: onnx
                export: v1/export.py:export
                inputs: {x: [1, 3, 8, 8]}
                requirements: v1/requirements.txt
            """,
            "teams/vision/v1/export.py": "def export(o, i): pass\n",
            "teams/vision/v1/requirements.txt": "onnx\n",
        },
    )
    m = manifest.load(repo / "neo.yaml", use_cache=False)
    assert list(m.models) == ["a", "v1"]
    assert m.files == (repo / "neo.yaml", repo / "teams/vision/neo.yaml")
    v1 = m.models["v1"]
    assert v1.export.path == "teams/vision/v1/export.py"
    assert v1.requirements_file == "teams/vision/v1/requirements.txt"
    assert v1.sources == ("teams/vision/v1/**",)
    assert v1.timeout == 200  # the included file's defaults over the top-level ones
    assert v1.targets == (Target(device="ml_c5"),)  # top-level defaults still apply
    assert m.models["a"].timeout == 100  # an include's defaults stay in its file
    assert v1.position == Position(repo / "teams/vision/neo.yaml", 4, 3)


def test_duplicate_model_across_files_names_both_places(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            include: [teams/*.yaml]
            models:
              a: {framework: xgboost, export: "models/a/export.py:export", targets: [ml_c5]}
            """,
            "teams/x.yaml": """\
            models:
              b: {framework: xgboost, export: "../models/b/export.py:export", targets: [ml_c5]}
              a: {framework: xgboost, export: "../models/a/export.py:export", targets: [ml_c5]}
            """,
        },
    )
    loaded, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert loaded is None
    assert [p.render() for p in problems] == [
        f"{repo / 'teams/x.yaml'}:3:3: models.a: model 'a' is already declared at "
        f"{repo / 'neo.yaml'}:4:3\n"
        "    hint: model names must be unique across neo.yaml and its includes"
    ]


def test_problems_in_included_files_are_positioned_there(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": "version: 1\ninclude: [sub/neo.yaml, none/*.yaml]\nmodels: {}\n",
            "sub/neo.yaml": "include: [x.yaml]\nmodels:\n  s: {framework: onnx}\n",
        },
    )
    _, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    sub = repo / "sub/neo.yaml"
    assert [(p.file, p.line, p.col, p.path, p.message, p.severity) for p in problems] == [
        (
            repo / "neo.yaml",
            2,
            25,
            "include[1]",
            "include 'none/*.yaml' matches no file",
            "warning",
        ),
        (sub, 1, 1, "include", "unknown key 'include'", "error"),
        (sub, 3, 3, "models.s", "missing required key 'export'", "error"),
        (sub, 3, 3, "models.s", "missing required key 'targets'", "error"),
        (sub, 3, 3, "models.s.inputs", "onnx needs inputs (name -> shape)", "error"),
    ]


# -- normalisation and warnings --------------------------------------------------------


def test_enum_values_are_accepted_in_any_case_and_normalised(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            models:
              a:
                framework: TFLite
                framework_version: "1.15"
                export: models/a/export.py:export
                inputs: {x: [1, 8, 8, 3]}
                targets:
                  - RASP4B
                  - Jetson_Nano
                  - platform: {os: Android, arch: arm_eabi, accelerator: mali}
            """
        },
    )
    m = manifest.load(repo / "neo.yaml", use_cache=False)
    assert m.warnings == ()
    assert m.models["a"].framework == "tflite"
    assert [t.device for t in m.models["a"].targets[:2]] == ["rasp4b", "jetson_nano"]
    assert m.models["a"].targets[2].platform == Platform("ANDROID", "ARM_EABI", "MALI")


def test_warnings_do_not_fail_the_load(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            models:
              a:
                framework: tensorflow
                framework_version: "2.3.2"
                export: models/a/export.py:export
                inputs: {x: [1, 3, 224, 224]}
                targets: [ml_eia2]
              b:
                framework: pytorch
                framework_version: "1.8"
                export: models/b/export.py:export
                inputs: {x: [1, 3, 8, 8]}
                targets: [ml_trn1]
                compile: {region: eu-west-1}
            """
        },
    )
    m = manifest.load(repo / "neo.yaml", use_cache=False)
    assert [(w.line, w.col, w.path, w.message, w.severity) for w in m.warnings] == [
        (
            7,
            17,
            "models.a.inputs.x",
            "[1, 3, 224, 224] looks like NCHW (channels first); Neo expects tensorflow "
            "inputs in NHWC, e.g. [1, 224, 224, 3]",
            "warning",
        ),
        (
            8,
            15,
            "models.a.targets[0]",
            "ml_eia2 is deprecated (Elastic Inference: AWS stopped onboarding new "
            "customers on 2023-04-15)",
            "warning",
        ),
        (
            14,
            15,
            "models.b.targets[0]",
            "ml_trn1 compiles only in us-east-1, but compile.region is eu-west-1",
            "warning",
        ),
    ]
    assert list(m.models) == ["a", "b"]


def test_pytorch_2_may_omit_inputs_only_for_cloud_targets(repo: Path) -> None:
    body = """\
    version: 1
    models:
      a:
        framework: pytorch
        framework_version: "2.0"
        export: models/a/export.py:export
        targets: {targets}
    """
    write(repo, {"neo.yaml": body.format(targets="[ml_c5, ml_g4dn]")})
    assert manifest.load(repo / "neo.yaml", use_cache=False).models["a"].inputs.form == "none"
    write(repo, {"neo.yaml": body.format(targets="[ml_c5, {platform: {os: LINUX, arch: ARM64}}]")})
    _, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert [p.message for p in problems] == [
        "pytorch needs inputs (name -> shape)",
        "pytorch 2.0 is not supported on platform linux-arm64 (supported: 1.7, 1.8)",
    ]


def test_one_problem_in_defaults_is_reported_once(repo: Path) -> None:
    models = "".join(
        f"  m{i}: {{framework: xgboost, export: 'models/a/export.py:export'}}\n" for i in range(6)
    )
    write(repo, {"neo.yaml": f"version: 1\ndefaults:\n  targets: [ml_c55]\nmodels:\n{models}"})
    _, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert [(p.line, p.col, p.path, p.message) for p in problems] == [
        (
            3,
            13,
            "models.m0.targets[0]",
            "unknown target device 'ml_c55' (also in models m1, m2, m3 and 2 more)",
        ),
    ]


def test_a_rule_broken_by_one_model_names_it(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": """\
            version: 1
            defaults:
              targets: [ml_c5]
            models:
              a: {framework: xgboost, export: 'models/a/export.py:export'}
              b: {framework: tflite, export: 'models/a/export.py:export', inputs: {x: [1, 8, 8, 3]}}
              c: {framework: darknet, export: 'models/a/export.py:export', inputs: {x: [1, 3, 8, 8]}}
            """
        },
    )
    _, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert [(p.line, p.col, p.path, p.message) for p in problems] == [
        (
            3,
            13,
            "models.b.targets[0]",
            "tflite compiles only for edge targets; ml_c5 is a cloud instance",
        ),
        (
            3,
            13,
            "models.c.targets[0]",
            "darknet compiles only for edge targets; ml_c5 is a cloud instance",
        ),
    ]


def test_load_raises_with_every_problem(repo: Path) -> None:
    write(repo, {"neo.yaml": "version: 1\nmodels:\n  a: {framework: nope, export: x}\n"})
    with pytest.raises(ManifestError) as info:
        manifest.load(repo / "neo.yaml", use_cache=False)
    assert info.value.exit_code == 2
    assert len(info.value.problems) == 3
    assert "3 error(s)" in info.value.message


def test_unreadable_manifest_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    loaded, problems = manifest.check(tmp_path / "neo.yaml", use_cache=False)
    assert loaded is None
    assert problems[0].file == tmp_path / "neo.yaml"
    assert problems[0].message.startswith("cannot read the manifest")


def test_non_utf8_manifest(tmp_path: Path) -> None:
    (tmp_path / "neo.yaml").write_bytes(b"version: 1\nmodels: {}\n# \xff\n")
    _, problems = manifest.check(tmp_path / "neo.yaml", use_cache=False)
    assert problems[0].message.startswith("not UTF-8 text")


def test_cache_settings_come_from_the_manifest_only(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NEOBUILD_CACHE_URL is applied by cache.cache_settings(), not baked into the Manifest
    write(repo, {"neo.yaml": "version: 1\ncache: {url: 's3://a/b', read_only: true}\nmodels: {}\n"})
    monkeypatch.setenv("NEOBUILD_CACHE_URL", "s3://other/c")
    assert manifest.load(repo / "neo.yaml").cache == CacheSettings("s3://a/b", True)


# -- discovery -------------------------------------------------------------------------


def test_find_manifest_walks_up_to_the_git_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "neo.yaml").write_text("version: 1\nmodels: {}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert manifest.find_manifest(deep) == tmp_path / "neo.yaml"
    (tmp_path / "a" / "neo.yaml").write_text("version: 1\nmodels: {}\n")
    assert manifest.find_manifest(deep) == tmp_path / "a" / "neo.yaml"


def test_find_manifest_stops_at_the_git_root(tmp_path: Path) -> None:
    (tmp_path / "neo.yaml").write_text("version: 1\nmodels: {}\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    with pytest.raises(UsageError) as info:
        manifest.find_manifest(repo)
    assert "no neo.yaml" in info.value.message
    assert info.value.hint is not None and "neobuild init" in info.value.hint


def test_find_manifest_explicit(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    with pytest.raises(UsageError):
        manifest.find_manifest(tmp_path, other)
    other.write_text("version: 1\nmodels: {}\n")
    assert manifest.find_manifest(tmp_path, other) == other


# -- the validated-manifest cache ------------------------------------------------------

CACHED = """\
version: 1
include: [teams/*.yaml]
models:
  a: {framework: xgboost, export: "models/a/export.py:export", targets: [ml_c5], timeout: 10}
"""


def _cache_file(root: Path) -> Path:
    return manifest.CACHE_FILE.path(root)


def _tamper(root: Path, timeout: int) -> None:
    """Change the cached result so a load that uses the cache is recognisable."""
    key = (root / "neo.yaml").read_bytes()
    record, why = manifest.CACHE_FILE.read(root, key=key)
    assert record is not None, why
    record["result"]["models"][0]["timeout"] = timeout
    assert manifest.CACHE_FILE.write(root, record, key=key)


def test_cache_is_written_and_used(repo: Path) -> None:
    write(repo, {"neo.yaml": CACHED})
    first = manifest.load(repo / "neo.yaml")
    assert _cache_file(repo).is_file()
    assert (repo / ".neobuild" / ".gitignore").read_text() == IGNORE_ALL
    again = manifest.load(repo / "neo.yaml")
    assert again == first
    assert again.models["a"].position == first.models["a"].position
    _tamper(repo, 77)
    assert manifest.load(repo / "neo.yaml").models["a"].timeout == 77  # served from the cache
    assert manifest.load(repo / "neo.yaml", use_cache=False).models["a"].timeout == 10


def test_cache_keeps_warnings_and_positions(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": "version: 1\nmodels:\n  a: {framework: tensorflow, "
            'export: "models/a/export.py:export", inputs: {x: [1, 3, 8, 8]}, targets: [ml_eia2]}\n'
        },
    )
    first, first_problems = manifest.check(repo / "neo.yaml")
    second, second_problems = manifest.check(repo / "neo.yaml")
    assert first_problems == second_problems and len(second_problems) == 2
    assert second is not None and first is not None
    assert second.warnings == first.warnings
    assert second.models["a"].targets[0].position == first.models["a"].targets[0].position


def test_editing_a_manifest_invalidates_the_cache(repo: Path) -> None:
    write(repo, {"neo.yaml": CACHED})
    manifest.load(repo / "neo.yaml")
    _tamper(repo, 77)
    write(repo, {"neo.yaml": CACHED.replace("timeout: 10", "timeout: 11")})
    assert manifest.load(repo / "neo.yaml").models["a"].timeout == 11


def test_a_new_or_edited_include_invalidates_the_cache(repo: Path) -> None:
    write(repo, {"neo.yaml": CACHED})
    manifest.load(repo / "neo.yaml")
    _tamper(repo, 77)
    include = "models:\n  b: {framework: xgboost, export: '../models/b/export.py:export', targets: [ml_c5]}\n"
    write(repo, {"teams/t.yaml": include})  # a new file matching the glob
    assert list(manifest.load(repo / "neo.yaml").models) == ["a", "b"]
    _tamper(repo, 77)
    write(repo, {"teams/t.yaml": include.replace("ml_c5", "ml_m5")})  # an edited include
    m = manifest.load(repo / "neo.yaml")
    assert m.models["a"].timeout == 10
    assert m.models["b"].targets == (Target(device="ml_m5"),)


def test_a_deleted_export_file_is_noticed_after_a_cache_hit(repo: Path) -> None:
    write(repo, {"neo.yaml": CACHED})
    manifest.load(repo / "neo.yaml")
    (repo / "models/a/export.py").unlink()
    _, problems = manifest.check(repo / "neo.yaml")
    assert [(p.line, p.path, p.message) for p in problems] == [
        (2, "include[0]", "include 'teams/*.yaml' matches no file"),
        (4, "models.a.export", "export file models/a/export.py does not exist"),
    ]


def test_a_created_module_file_is_noticed_after_a_cache_hit(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": "version: 1\nmodels:\n  a: {framework: xgboost, export: 'pkg.mod:f', targets: [ml_c5]}\n"
        },
    )
    assert manifest.load(repo / "neo.yaml").models["a"].sources == ()
    write(repo, {"pkg/mod.py": "def f(o, i): pass\n"})
    assert manifest.load(repo / "neo.yaml").models["a"].sources == ("pkg/**",)


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"format": 1}', b"\x00\xff", json.dumps({"format": 999}).encode()],
)
def test_corrupt_or_foreign_cache_is_ignored(repo: Path, content: bytes) -> None:
    write(repo, {"neo.yaml": CACHED})
    expected = manifest.load(repo / "neo.yaml", use_cache=False)
    _cache_file(repo).parent.mkdir(exist_ok=True)
    _cache_file(repo).write_bytes(content)
    assert manifest.load(repo / "neo.yaml") == expected
    assert (
        manifest.CACHE_FILE.read(repo, key=(repo / "neo.yaml").read_bytes())[1] == ""
    )  # rewritten


def test_cache_of_a_moved_repository_is_not_reused(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    write(repo, {"neo.yaml": CACHED})
    manifest.load(repo / "neo.yaml")
    moved = tmp_path_factory.mktemp("moved")
    for path in sorted(repo.rglob("*")):
        target = moved / path.relative_to(repo)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    m = manifest.load(moved / "neo.yaml")
    assert m.root == moved
    assert m.models["a"].position == Position(moved / "neo.yaml", 4, 3)


def test_invalid_manifest_is_not_cached(repo: Path) -> None:
    write(repo, {"neo.yaml": "version: 1\nmodels:\n  a: {framework: nope}\n"})
    manifest.check(repo / "neo.yaml")
    assert not _cache_file(repo).exists()


def test_a_read_only_state_dir_only_costs_the_cache(repo: Path) -> None:
    write(repo, {"neo.yaml": CACHED})
    (repo / ".neobuild").write_text("a file where the directory should be")
    assert manifest.load(repo / "neo.yaml").models["a"].timeout == 10


def test_yaml_errors_in_included_files_are_positioned_there(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": "version: 1\ninclude: [t/*.yaml]\nmodels: {}\n",
            "t/a.yaml": "models:\n  a: {framework: onnx\n",
            "t/b.yaml": "models:\n  b: {}\n  b: {}\n",
            "t/c.yaml": "- not a mapping\n",
        },
    )
    loaded, problems = manifest.check(repo / "neo.yaml")
    assert loaded is None
    assert [(p.file, p.line, p.col, p.message.split(" (")[0]) for p in problems] == [
        (repo / "t/a.yaml", 3, 1, "invalid YAML: did not find expected ',' or '}'"),
        (
            repo / "t/b.yaml",
            3,
            3,
            'invalid YAML: found duplicate key "b" with value "{}"',
        ),
        (repo / "t/c.yaml", 1, 1, "the manifest must be a mapping, got a list"),
    ]


def test_a_glob_that_matches_the_top_level_file_still_caches(repo: Path) -> None:
    write(
        repo,
        {
            "neo.yaml": "version: 1\ninclude: ['**/neo.yaml']\nmodels: {}\n",
            "teams/t/neo.yaml": "models:\n  b: {framework: xgboost, export: "
            "'../../models/b/export.py:export', targets: [ml_c5]}\n",
        },
    )
    first = manifest.load(repo / "neo.yaml")
    assert first.files == (repo / "neo.yaml", repo / "teams/t/neo.yaml")
    _tamper(repo, 77)
    assert manifest.load(repo / "neo.yaml").models["b"].timeout == 77


def test_an_export_symlinked_out_of_the_repository_is_an_error(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "export.py").write_text("def export(o, i): pass\n")
    (repo / "models/c").mkdir()
    (repo / "models/c/export.py").symlink_to(outside / "export.py")
    write(
        repo,
        {
            "neo.yaml": "version: 1\nmodels:\n  c: {framework: xgboost, "
            "export: 'models/c/export.py:export', targets: [ml_c5]}\n"
        },
    )
    _, problems = manifest.check(repo / "neo.yaml")
    assert [(p.line, p.col, p.message) for p in problems] == [
        (3, 35, "export file models/c/export.py is a symlink that leads outside the repository")
    ]
    # a symlink inside the repository is fine, and the cache notices the change
    (repo / "models/c/export.py").unlink()
    (repo / "models/c/export.py").symlink_to(repo / "models/a/export.py")
    assert manifest.check(repo / "neo.yaml")[1] == []
    (repo / "models/c/export.py").unlink()
    (repo / "models/c/export.py").symlink_to(outside / "export.py")
    assert len(manifest.check(repo / "neo.yaml")[1]) == 1
