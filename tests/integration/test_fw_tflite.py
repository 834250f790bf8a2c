"""The TFLite adapter against a real converted model (examples/models/tflite-mobile) and broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import factories
import pytest
from example_exports import export_example

from neobuild.errors import ArtifactError
from neobuild.frameworks import get_adapter
from neobuild.frameworks.tflite import ADAPTER, read_tflite
from neobuild.model import Model

pytestmark = pytest.mark.frameworks


def _model(inputs: dict[str, list[int]]) -> Model:
    return factories.make_model(
        "tflite-mobile",
        framework="tflite",
        export="examples/models/tflite-mobile/export.py",
        inputs=inputs,
        targets=("rasp4b",),
        framework_version="1.15",
    )


GOOD = _model({"input": [1, 28, 28, 3]})


def _export(out: Path) -> Path:
    return export_example("tflite-mobile", out, {"input": [1, 28, 28, 3]})


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export of the example (freeze, convert, LiteRT finite check), shared."""
    return _export(tmp_path_factory.mktemp("tflite-export"))


@pytest.fixture(scope="module")
def dynamic_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model whose input has an unknown batch dimension."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def double(x: tf.Tensor) -> tf.Tensor:
        return x * 2.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()])
    out = tmp_path_factory.mktemp("tflite-dynamic")
    (out / "model.tflite").write_bytes(converter.convert())
    return out


@pytest.fixture(scope="module")
def variable_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model converted with its resource variables kept (not frozen)."""
    import tensorflow as tf

    holder = tf.Module()
    holder.state = tf.Variable(tf.ones([1, 3]))

    @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="input")])
    def step(x: tf.Tensor) -> tf.Tensor:
        holder.state.assign_add(x)
        return holder.state * 2.0

    holder.step = step
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [step.get_concrete_function()], holder
    )
    converter.experimental_enable_resource_variables = True
    out = tmp_path_factory.mktemp("tflite-variables")
    (out / "model.tflite").write_bytes(converter.convert())
    return out


@pytest.fixture
def copy(export_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(export_dir, tmp_path / "export"))


def _problems(export: Path, model: Model = GOOD) -> list[str]:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export, model)
    assert info.value.hint
    return info.value.problems


def test_registered_under_its_name() -> None:
    assert get_adapter("tflite") is ADAPTER
    assert ".tflite" in ADAPTER.describe_layout()


def test_real_export_is_accepted(export_dir: Path) -> None:
    data = (export_dir / "model.tflite").read_bytes()
    assert data[4:8] == b"TFL3"
    ADAPTER.normalize(export_dir)
    assert (export_dir / "model.tflite").read_bytes() == data

    artifacts = ADAPTER.check(export_dir, GOOD)

    assert artifacts.files == ("model.tflite",)
    assert artifacts.inputs == {"input": (1, 28, 28, 3)}
    assert artifacts.warnings == ()  # frozen before conversion: no variable ops


def test_example_export_is_deterministic(export_dir: Path, tmp_path: Path) -> None:
    again = _export(tmp_path)
    assert (again / "model.tflite").read_bytes() == (export_dir / "model.tflite").read_bytes()


def test_unknown_batch_dimension_accepts_the_declared_one(dynamic_batch: Path) -> None:
    artifacts = ADAPTER.check(dynamic_batch, _model({"x": [1, 3]}))
    assert artifacts.inputs == {"x": (-1, 3)}
    (problem,) = _problems(dynamic_batch, _model({"x": [1, 4]}))
    assert (
        problem
        == "model.tflite: input 'x' shape: expected [1, 4] (from the manifest), found [?, 3]"
    )


def test_bad_identifier_is_rejected(copy: Path) -> None:
    data = bytearray((copy / "model.tflite").read_bytes())
    data[4:8] = b"NOPE"
    (copy / "model.tflite").write_bytes(bytes(data))
    (problem,) = _problems(copy)
    assert problem.startswith(
        "model.tflite: expected a TFLite model, found not a TFLite flatbuffer"
    )
    assert "b'NOPE'" in problem and "b'TFL3'" in problem


def test_truncated_flatbuffer_is_rejected(copy: Path) -> None:
    data = (copy / "model.tflite").read_bytes()
    (copy / "model.tflite").write_bytes(data[:64])
    (problem,) = _problems(copy)
    assert "an unreadable TFLite flatbuffer" in problem


def test_two_tflite_files_are_rejected(copy: Path) -> None:
    shutil.copy(copy / "model.tflite", copy / "other.tflite")
    (problem,) = _problems(copy)
    assert (
        problem == "export: expected exactly one .tflite file, found 2: model.tflite, other.tflite"
    )


def test_no_tflite_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.pb").write_bytes(b"")
    (problem,) = _problems(tmp_path)
    assert problem == "export: expected exactly one .tflite file, found none"


def test_wrong_input_name_is_rejected(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"image": [1, 28, 28, 3]}))
    assert (
        problem
        == "model.tflite: input names: expected ['image'] (from the manifest), found ['input']"
    )


def test_wrong_shape_is_rejected(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"input": [1, 3, 28, 28]}))
    assert problem.startswith(
        "model.tflite: input 'input' shape: expected [1, 3, 28, 28] (from the manifest),"
        " found [1, 28, 28, 3]"
    )
    assert "Neo wants TFLite inputs in NHWC: write [1, 28, 28, 3]" in problem


def test_symlink_out_of_export_dir_is_rejected(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.tflite"
    shutil.move(copy / "model.tflite", outside)
    (copy / "model.tflite").symlink_to(outside)
    problems = _problems(copy)
    assert any("model.tflite: expected a regular file, found a symlink" in p for p in problems)


def test_variable_ops_give_a_warning(variable_model: Path) -> None:
    info = read_tflite(variable_model / "model.tflite")
    assert set(info.variable_ops) >= {"READ_VARIABLE", "VAR_HANDLE"}
    tensor = info.signature_inputs["input"]
    artifacts = ADAPTER.check(variable_model, _model({tensor: [1, 3]}))
    (warning,) = artifacts.warnings
    assert "READ_VARIABLE" in warning and "convert_variables_to_constants_v2" in warning


def test_signature_key_instead_of_tensor_name_is_rejected(variable_model: Path) -> None:
    info = read_tflite(variable_model / "model.tflite")
    tensor = info.signature_inputs["input"]
    assert tensor != "input"
    problems = _problems(variable_model, _model({"input": [1, 3]}))
    assert any(f"the input tensor names ['{tensor}'] that Neo reads" in p for p in problems)
