"""The PyTorch adapter on real TorchScript exports (and real broken ones)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import factories
import pytest
import torch
from example_exports import load_example
from locations import EXAMPLES

from neobuild.errors import ArtifactError
from neobuild.frameworks import pytorch
from neobuild.frameworks.pytorch import ADAPTER
from neobuild.model import Inputs, InputSpec, Model, Target

pytestmark = pytest.mark.frameworks

EXAMPLE = EXAMPLES / "models" / "torch-cnn"
SHAPE = (1, 3, 32, 32)


def make_model(
    shapes: tuple[tuple[int, ...], ...] = (SHAPE,),
    *,
    form: str = "dict",
    framework_version: str | None = None,
) -> Model:
    items = tuple(
        InputSpec(None if form == "list" else f"input{i}", s) for i, s in enumerate(shapes)
    )
    return factories.make_model(
        "torch-cnn",
        framework="pytorch",
        export="examples/models/torch-cnn/export.py",
        inputs=Inputs(form, items if form != "none" else ()),  # type: ignore[arg-type]
        framework_version=framework_version,
    )


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("torch-cnn")


@pytest.fixture(scope="module")
def exported(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("torch-export")
    example.export(out, {"input0": list(SHAPE)})
    return out / "model.pth"


@pytest.fixture
def export_dir(exported: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    out.mkdir()
    shutil.copy2(exported, out / "model.pth")
    return out


def rejection(export_dir: Path, model: Model | None = None) -> ArtifactError:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export_dir, model or make_model())
    return info.value


def test_accepts_traced_export(export_dir: Path) -> None:
    artifacts = ADAPTER.check(export_dir, make_model())
    assert artifacts.files == ("model.pth",)
    assert artifacts.inputs == {"input0": SHAPE}
    assert artifacts.warnings == ()


def test_reads_the_traced_graph(exported: Path) -> None:
    info, reason = pytorch.classify(exported)
    assert reason is None and info is not None
    assert info.root == "model"
    assert info.forward_args == 1
    assert info.traced_inputs == (pytorch.TracedInput(SHAPE, "float32"),)
    assert info.root_class is not None and info.root_class.endswith(".TinyCnn")


def test_state_dict_is_rejected_with_reason_and_fix(example: ModuleType, tmp_path: Path) -> None:
    torch.save(example.build_model().state_dict(), tmp_path / "model.pth")
    error = rejection(tmp_path)
    assert error.problems == [
        "model.pth: expected a TorchScript archive, found a state_dict saved with torch.save"
        " (weights only, no TorchScript code/)"
    ]
    assert error.hint is not None and "torch.jit.trace(model.eval()" in error.hint
    assert "torch.jit.save" in error.hint


def test_pickled_module_is_rejected(example: ModuleType, tmp_path: Path) -> None:
    torch.save(example.build_model(), tmp_path / "model.pt")
    (problem,) = rejection(tmp_path).problems
    assert "a pickled example_torch_cnn.TinyCnn saved with torch.save" in problem


def test_legacy_pickle_is_rejected(example: ModuleType, tmp_path: Path) -> None:
    model = example.build_model()
    torch.save(model.state_dict(), tmp_path / "model.pth", _use_new_zipfile_serialization=False)
    (problem,) = rejection(tmp_path).problems
    assert "a legacy (non-zip) torch.save pickle" in problem


def test_two_model_files_are_rejected(export_dir: Path) -> None:
    shutil.copy2(export_dir / "model.pth", export_dir / "other.pt")
    assert rejection(export_dir).problems == [
        "export: expected exactly one TorchScript file (.pt/.pth), found 2: model.pth, other.pt"
    ]


def test_nothing_written_is_rejected(tmp_path: Path) -> None:
    assert rejection(tmp_path).problems == [
        "export: expected exactly one TorchScript file (.pt/.pth), found none"
    ]


def test_symlink_to_a_file_outside_is_rejected(exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "model.pth").symlink_to(exported)
    problems = rejection(out).problems
    assert problems[0] == (
        f"model.pth: expected a regular file, found a symlink to {str(exported)!r}"
        " (archives must not contain links; write the file itself)"
    )
    ADAPTER.normalize(out)  # never follows the link
    assert (out / "model.pth").is_symlink()


def test_input_count_and_shape_disagreements_warn(export_dir: Path) -> None:
    artifacts = ADAPTER.check(export_dir, make_model((SHAPE, SHAPE)))
    assert "model.pth: forward() inputs: expected 2 (from the manifest), found 1" in (
        artifacts.warnings
    )
    artifacts = ADAPTER.check(export_dir, make_model(((1, 3, 64, 64),)))
    assert artifacts.warnings == (
        "model.pth: traced input 'input0' shape: expected [1, 3, 64, 64] (from the manifest),"
        " found [1, 3, 32, 32]",
    )


@pytest.fixture(scope="module")
def int64_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A traced embedding model: its one input is int64 token ids."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Embedding(16, 4), torch.nn.Flatten()).eval()
    out = tmp_path_factory.mktemp("torch-int64") / "export"
    out.mkdir()
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros((1, 6), dtype=torch.int64))
    torch.jit.save(traced, str(out / "model.pth"))
    return out


def _with_targets(*targets: Target) -> Model:
    return dataclasses.replace(make_model(((1, 6),)), targets=targets)


def test_int64_input_warns_only_where_dtype_is_not_set(int64_export: Path) -> None:
    unset = ADAPTER.check(int64_export, _with_targets(Target(device="ml_c5"))).warnings
    assert unset == (
        "model.pth: traced input 'input0' is int64, but Neo takes it as float32 on ml_c5; "
        'set compiler_options "dtype" to "int64"',
    )
    for value in ("int64", "long", "LONG"):
        target = Target(device="ml_c5", compiler_options={"dtype": value})
        assert ADAPTER.check(int64_export, _with_targets(target)).warnings == ()
    neuron = Target(device="ml_inf1", compiler_options="--dtype int64 -O2")
    assert ADAPTER.check(int64_export, _with_targets(neuron)).warnings == ()
    mixed = _with_targets(
        Target(device="ml_c5", compiler_options={"dtype": "int64"}),
        Target(device="ml_m5"),
        Target(device="ml_g4dn", compiler_options={"dtype": "float32"}),
    )
    assert ADAPTER.check(int64_export, mixed).warnings == (
        "model.pth: traced input 'input0' is int64, but Neo takes it as float32 on "
        'ml_m5, ml_g4dn; set compiler_options "dtype" to "int64"',
    )


def test_float_input_warns_when_dtype_says_int64(export_dir: Path) -> None:
    assert ADAPTER.check(export_dir, make_model()).warnings == ()
    target = Target(device="ml_c5", compiler_options={"dtype": "long"})
    model = dataclasses.replace(make_model(), targets=(target,))
    assert ADAPTER.check(export_dir, model).warnings == (
        "model.pth: traced input 'input0' is float32, but Neo takes it as int64 on ml_c5; "
        'set compiler_options "dtype" to "float32"',
    )


def test_list_form_inputs_take_generated_names(export_dir: Path) -> None:
    artifacts = ADAPTER.check(export_dir, make_model(form="list"))
    assert artifacts.inputs == {"input0": SHAPE}
    assert artifacts.warnings == ()


def test_newer_torch_than_framework_version_warns(export_dir: Path) -> None:
    (warning,) = ADAPTER.check(export_dir, make_model(framework_version="2.0")).warnings
    assert warning.startswith(
        "model.pth: written by torch 2.1 or newer (it has a .data/serialization_id record),"
        " newer than framework_version 2.0"
    )
    assert ADAPTER.check(export_dir, make_model(framework_version="2.1")).warnings == ()


# --- normalisation ---------------------------------------------------------------------


def export_from(directory: Path, out: Path) -> Path:
    """Export the example from a copy of it in ``directory``, in a fresh interpreter."""
    directory.mkdir(parents=True)
    shutil.copy2(EXAMPLE / "export.py", directory / "export.py")
    out.mkdir(parents=True)
    code = (
        "import sys, pathlib; sys.path.insert(0, sys.argv[1]); import export; "
        "export.export(pathlib.Path(sys.argv[2]), None)"
    )
    subprocess.run([sys.executable, "-c", code, str(directory), str(out)], check=True)
    return out / "model.pth"


def test_exports_from_two_directories_are_identical_after_normalize(tmp_path: Path) -> None:
    first = export_from(tmp_path / "a", tmp_path / "out-a")
    second = export_from(tmp_path / "checkout" / "deeper" / "b", tmp_path / "out-b")
    assert first.read_bytes() != second.read_bytes()  # the debug records hold the paths
    ADAPTER.normalize(first.parent)
    ADAPTER.normalize(second.parent)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_normalized_file_loads_and_computes_the_same(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.pth"
    shutil.copy2(exported, copy)
    assert pytorch.normalize_torchscript(copy) is True
    names = zipfile.ZipFile(copy).namelist()
    assert not [n for n in names if n.endswith(".debug_pkl")]
    assert names[-1] == "model/.data/serialization_id"
    assert names[:-1] == sorted(names[:-1])
    original, normalized = torch.jit.load(str(exported)), torch.jit.load(str(copy))
    example = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(original(example), normalized(example))


def test_normalized_records_are_aligned_stored_and_dated(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.pth"
    shutil.copy2(exported, copy)
    pytorch.normalize_torchscript(copy)
    offsets = pytorch.data_offsets(copy)
    assert offsets and all(offset % pytorch.ALIGNMENT == 0 for offset in offsets.values())
    for info in zipfile.ZipFile(copy).infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
    assert zipfile.ZipFile(copy).testzip() is None


def test_normalize_is_idempotent_and_keeps_the_id_content_derived(
    exported: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model.pth"
    shutil.copy2(exported, copy)
    pytorch.normalize_torchscript(copy)
    once = copy.read_bytes()
    pytorch.normalize_torchscript(copy)
    assert copy.read_bytes() == once
    ident = zipfile.ZipFile(copy).read("model/.data/serialization_id")
    assert len(ident) == 40 and ident.isdigit()


def test_normalize_leaves_other_files_alone(example: ModuleType, tmp_path: Path) -> None:
    torch.save(example.build_model().state_dict(), tmp_path / "model.pth")
    before = (tmp_path / "model.pth").read_bytes()
    ADAPTER.normalize(tmp_path)
    assert (tmp_path / "model.pth").read_bytes() == before


def test_adapters_never_import_the_frameworks(tmp_path: Path, exported: Path) -> None:
    """neobuild's process inspects exports without torch, onnx, xgboost or mxnet."""
    code = f"""
import sys, pathlib
from neobuild.frameworks import get_adapter
for name in ("pytorch", "onnx", "xgboost", "mxnet", "darknet"):
    get_adapter(name).describe_layout()
from neobuild.frameworks import pytorch
info, _ = pytorch.classify(pathlib.Path({str(exported)!r}))
assert info is not None and info.traced_inputs
banned = {{"torch", "onnx", "xgboost", "mxnet", "tensorflow"}} & set(sys.modules)
assert not banned, banned
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)


def test_model_in_a_subdirectory_is_rejected(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy2(exported, tmp_path / "sub" / "model.pth")
    assert rejection(tmp_path).problems == [
        "sub/model.pth: expected model.pth at the top of the export directory, found sub/model.pth"
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_normalize_streams_records_bigger_than_a_chunk(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(1024, 768).eval()  # a 3 MiB weight: several copy chunks
    example = torch.randn(2, 1024)
    torch.jit.save(torch.jit.trace(layer, example), str(tmp_path / "big.pt"))
    assert pytorch.normalize_torchscript(tmp_path / "big.pt")
    sizes = [i.file_size for i in zipfile.ZipFile(tmp_path / "big.pt").infolist()]
    assert max(sizes) > 2 * pytorch._CHUNK
    assert all(
        o % pytorch.ALIGNMENT == 0 for o in pytorch.data_offsets(tmp_path / "big.pt").values()
    )
    with torch.no_grad():
        assert torch.equal(torch.jit.load(str(tmp_path / "big.pt"))(example), layer(example))


def test_truncated_archive_is_rejected(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(exported.read_bytes()[:2000])
    ADAPTER.normalize(tmp_path)  # leaves what it cannot read to check()
    (problem,) = rejection(tmp_path).problems
    assert problem.startswith(
        "model.pth: expected a TorchScript archive, found a damaged or truncated zip archive ("
    )


def test_normalize_refuses_a_damaged_record_and_keeps_the_file(
    exported: Path, tmp_path: Path
) -> None:
    data = bytearray(exported.read_bytes())
    data[pytorch.data_offsets(exported)["model/data/0"]] ^= 0xFF  # breaks the record's CRC
    (tmp_path / "model.pth").write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as info:
        ADAPTER.normalize(tmp_path)
    assert info.value.problems[0].startswith(
        "model.pth: expected a readable TorchScript archive, found a damaged one ("
    )
    assert (tmp_path / "model.pth").read_bytes() == bytes(data)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]  # no temp file left
