"""The ONNX adapter on real exports (torch.onnx and onnx.helper) and broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import factories
import numpy as np
import onnx
import pytest
from example_exports import load_example
from onnx import TensorProto, helper, numpy_helper

from neobuild.errors import ArtifactError
from neobuild.frameworks import _protowire
from neobuild.frameworks import onnx as onnx_adapter
from neobuild.frameworks.onnx import ADAPTER
from neobuild.model import Model

pytestmark = pytest.mark.frameworks

SHAPE = (1, 3, 16, 16)


def make_model(
    inputs: dict[str, tuple[int, ...]] | None = None, framework_version: str | None = None
) -> Model:
    return factories.make_model(
        "onnx-mlp",
        export="examples/models/onnx-mlp/export.py",
        inputs=inputs or {"input": SHAPE},
        framework_version=framework_version,
    )


def rejection(export_dir: Path, model: Model | None = None) -> ArtifactError:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export_dir, model or make_model())
    return info.value


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("onnx-mlp")


@pytest.fixture(scope="module")
def exported(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx-export")
    example.export(out, {"input": list(SHAPE)})
    return out / "model.onnx"


@pytest.fixture
def export_dir(exported: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    out.mkdir()
    shutil.copy2(exported, out / "model.onnx")
    return out


def small_graph(
    path: Path, *, dims: list[int | str] | None = None, opset: int = 12, op: str = "Relu"
) -> Path:
    """A one-node model built with onnx.helper: input ``input`` -> op -> ``output``."""
    shape: list[int | str] = dims if dims is not None else list(SHAPE)
    graph = helper.make_graph(
        [helper.make_node(op, ["input"], ["output"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def test_accepts_the_torch_export(export_dir: Path) -> None:
    artifacts = ADAPTER.check(export_dir, make_model(framework_version="1.7"))
    assert artifacts.files == ("model.onnx",)
    assert artifacts.inputs == {"input": SHAPE}
    assert artifacts.warnings == ()


def test_the_export_is_byte_stable(example: ModuleType, exported: Path, tmp_path: Path) -> None:
    example.export(tmp_path, None)
    assert (tmp_path / "model.onnx").read_bytes() == exported.read_bytes()


def test_wire_reader_agrees_with_onnx(exported: Path) -> None:
    info = onnx_adapter.read_onnx(exported)
    proto = onnx.load(str(exported), load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    expected = {
        i.name: tuple(d.dim_value for d in i.type.tensor_type.shape.dim)
        for i in proto.graph.input
        if i.name not in initializers
    }
    assert info.inputs == expected
    assert info.ir_version == proto.ir_version
    assert info.opset == proto.opset_import[0].version == 12
    assert info.external == ()


def test_shape_differing_from_the_manifest_is_rejected(export_dir: Path) -> None:
    error = rejection(export_dir, make_model({"input": (1, 3, 32, 32)}))
    assert error.problems == [
        "model.onnx: input 'input' shape: expected [1, 3, 32, 32] (from the manifest),"
        " found [1, 3, 16, 16]"
    ]
    assert "onnx-mlp" in str(error) and str(export_dir) in str(error)


def test_name_differing_from_the_manifest_is_rejected(export_dir: Path) -> None:
    assert rejection(export_dir, make_model({"data": SHAPE})).problems == [
        "model.onnx: input names: expected ['data'] (from the manifest), found ['input']"
    ]


def test_external_data_is_rejected(exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    onnx.save_model(
        proto,
        str(tmp_path / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    problems = rejection(tmp_path).problems
    assert problems[:-1] == [
        f"model.onnx: initializer '{name}' -> 'model.onnx.data': expected weights stored"
        " inside the .onnx, found external data"
        for name in ("1.weight", "1.bias", "3.weight", "3.bias")
    ]
    assert problems[-1] == (
        "export: expected only model.onnx (Neo receives one self-contained .onnx),"
        " found also model.onnx.data"
    )


def test_two_onnx_files_are_rejected(export_dir: Path) -> None:
    shutil.copy2(export_dir / "model.onnx", export_dir / "b.onnx")
    assert rejection(export_dir).problems == [
        "export: expected exactly one ONNX file (.onnx), found 2: b.onnx, model.onnx"
    ]


def test_nothing_written_is_rejected(tmp_path: Path) -> None:
    assert rejection(tmp_path).problems == [
        "export: expected exactly one ONNX file (.onnx), found none"
    ]


def test_garbage_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\xff\xff\xff\xff not protobuf")
    (problem,) = rejection(tmp_path).problems
    assert problem.startswith("model.onnx: expected an ONNX ModelProto, found ")


def test_the_wire_format_is_read_by_the_shared_protowire_reader(tmp_path: Path) -> None:
    """One protobuf decoder for ONNX and TensorFlow: its error type is the one raised here."""
    (tmp_path / "model.onnx").write_bytes(b"\x0a\x05abc")  # field 1, 5 bytes, only 3 follow
    with pytest.raises(_protowire.WireError, match="runs past the end"):
        onnx_adapter.read_onnx(tmp_path / "model.onnx")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")  # ir_version 7, no graph
    with pytest.raises(_protowire.WireError, match="no graph"):
        onnx_adapter.read_onnx(tmp_path / "model.onnx")


def test_symlink_to_a_file_outside_is_rejected(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").symlink_to(exported)
    assert (
        rejection(tmp_path)
        .problems[0]
        .startswith("model.onnx: expected a regular file, found a symlink to ")
    )


def test_dynamic_dimensions_accept_the_declared_size(tmp_path: Path) -> None:
    small_graph(tmp_path / "model.onnx", dims=["batch", 3, 16, 16])
    assert onnx_adapter.read_onnx(tmp_path / "model.onnx").inputs == {"input": (None, 3, 16, 16)}
    for batch in (1, 8):
        artifacts = ADAPTER.check(tmp_path, make_model({"input": (batch, 3, 16, 16)}))
        assert artifacts.inputs == {"input": (-1, 3, 16, 16)}  # -1: dynamic
    assert rejection(tmp_path, make_model({"input": (1, 3, 16)})).problems == [
        "model.onnx: input 'input' shape: expected [1, 3, 16] (from the manifest),"
        " found [?, 3, 16, 16]"
    ]


def test_initializers_are_not_inputs(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.ones((1,), dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "w"], ["output"])],
        "g",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, list(SHAPE)),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]),  # IR < 4 style
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(SHAPE))],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    onnx.save(model, tmp_path / "model.onnx")
    assert ADAPTER.check(tmp_path, make_model()).inputs == {"input": SHAPE}


def test_newer_opset_than_framework_version_warns(tmp_path: Path) -> None:
    small_graph(tmp_path / "model.onnx", opset=13)
    assert ADAPTER.check(tmp_path, make_model(framework_version="1.7")).warnings == (
        "model.onnx: opset 13 is newer than ONNX 1.7 supports (opset 12);"
        " export with opset_version=12 so Neo can convert it",
    )
    assert ADAPTER.check(tmp_path, make_model(framework_version="1.8")).warnings == ()


def test_onnx_checker_runs(tmp_path: Path) -> None:
    small_graph(tmp_path / "model.onnx", op="NoSuchOperator")
    (problem,) = rejection(tmp_path).problems
    assert problem.startswith("model.onnx: onnx.checker: expected no error, found ")
    assert "NoSuchOperator" in problem


def test_the_export_processs_checker_result_is_used_for_the_same_file(tmp_path: Path) -> None:
    path = small_graph(tmp_path / "model.onnx")  # valid: the checker here would pass it
    st = path.stat()
    reported = {"error": "boom from the export process", "size": st.st_size}
    reported |= {"mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
    checks = {"onnx.checker": {"model.onnx": reported}}
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(tmp_path, make_model(), export_checks=checks)
    (problem,) = info.value.problems
    assert (
        problem == "model.onnx: onnx.checker: expected no error, found boom from the export process"
    )
    # a result about another state of the file is not trusted: the checker runs here
    reported["mtime_ns"] += 1
    assert ADAPTER.check(tmp_path, make_model(), export_checks=checks).files == ("model.onnx",)
