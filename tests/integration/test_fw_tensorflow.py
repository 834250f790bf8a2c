"""The TensorFlow adapter against a real SavedModel (examples/models/tf-savedmodel), a real
frozen graph, and broken variants; plus the protobuf reader it uses."""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import factories
import pytest
from example_exports import export_example
from locations import EXAMPLES

from neobuild.errors import ArtifactError
from neobuild.export import run_export
from neobuild.frameworks import get_adapter
from neobuild.frameworks._protowire import (
    WireError,
    decode,
    fields,
    graph_placeholders,
    parse_text,
)
from neobuild.frameworks.tensorflow import ADAPTER, read_frozen_graph, read_saved_model
from neobuild.model import ExportRef, Model, Target

pytestmark = pytest.mark.frameworks

EXAMPLE = EXAMPLES / "models" / "tf-savedmodel"


def _model(inputs: dict[str, list[int]], *, compiler_options: object = None) -> Model:
    return factories.make_model(
        "tf-savedmodel",
        framework="tensorflow",
        export="examples/models/tf-savedmodel/export.py",
        inputs=inputs,
        targets=(Target(device="ml_c5", compiler_options=compiler_options),),
        framework_version="2.9",
    )


GOOD = _model({"input": [1, 28, 28, 3]})


def _export(out: Path) -> Path:
    return export_example("tf-savedmodel", out, {"input": [1, 28, 28, 3]})


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export of the example SavedModel, shared by the module."""
    return _export(tmp_path_factory.mktemp("tf-export"))


@pytest.fixture(scope="module")
def frozen_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real frozen graph with a dynamic batch input ``x`` and an unknown-rank input ``y``,
    written both as binary ``graph.pb`` and as text ``graph.pbtxt`` (in two directories)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    weights = tf.Variable(tf.ones([3, 2]))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="x"),
            tf.TensorSpec(None, tf.int32, name="y"),
        ]
    )
    def predict(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, weights) * tf.cast(tf.reduce_sum(y), tf.float32)

    graph_def = convert_variables_to_constants_v2(
        predict.get_concrete_function()
    ).graph.as_graph_def()
    base = tmp_path_factory.mktemp("frozen")
    (base / "binary").mkdir()
    (base / "binary" / "graph.pb").write_bytes(graph_def.SerializeToString())
    tf.io.write_graph(graph_def, str(base / "text"), "graph.pbtxt", as_text=True)
    return base


@pytest.fixture
def copy(saved_model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_model, tmp_path / "export"))


def _problems(export: Path, model: Model = GOOD) -> list[str]:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export, model)
    assert info.value.hint
    return info.value.problems


def test_registered_under_its_name() -> None:
    assert get_adapter("tensorflow") is ADAPTER
    assert "variables/" in ADAPTER.describe_layout()


def test_real_saved_model_is_accepted(copy: Path) -> None:
    assert (copy / "fingerprint.pb").is_file()  # TF writes it; it holds a random UUID
    ADAPTER.normalize(copy)
    assert not (copy / "fingerprint.pb").exists()

    artifacts = ADAPTER.check(copy, GOOD)

    assert artifacts.files == (
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    )
    assert artifacts.inputs == {"input": (1, 28, 28, 3)}
    (warning,) = artifacts.warnings  # written by TF 2.21, compiled by Neo's TF 2.9
    assert "TensorFlow 2.21" in warning and "2.9" in warning


def test_fingerprint_is_left_out_even_without_normalize(copy: Path) -> None:
    (copy / "assets").mkdir(exist_ok=True)
    (copy / "assets" / "vocab.txt").write_text("a\nb\n")
    (copy / "README.md").write_text("tiny cnn")
    artifacts = ADAPTER.check(copy, GOOD)
    assert "fingerprint.pb" not in artifacts.files
    assert {"assets/vocab.txt", "README.md"} <= set(artifacts.files)
    assert any(
        w.startswith("README.md: not part of the TensorFlow SavedModel") for w in artifacts.warnings
    )
    assert not any(w.startswith("assets/") for w in artifacts.warnings)


def test_example_export_is_deterministic_after_normalize(tmp_path: Path) -> None:
    """Two fresh export processes (as neobuild runs them) give the same archived bytes.

    Within one process they would not: TensorFlow numbers traced functions with a
    process-wide counter that ends up in saved_model.pb.
    """
    model = replace(GOOD, export=ExportRef(function="export", path="export.py"))
    outs = [tmp_path / "first", tmp_path / "again"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(
            pool.map(
                lambda out: run_export(
                    model,
                    root=EXAMPLE,
                    output_dir=out,
                    log_path=out.with_suffix(".log"),
                    python=Path(sys.executable),
                ),
                outs,
            )
        )
    for export in outs:
        ADAPTER.normalize(export)
    files = ADAPTER.check(outs[0], GOOD).files
    assert ADAPTER.check(outs[1], GOOD).files == files
    for name in files:
        assert (outs[1] / name).read_bytes() == (outs[0] / name).read_bytes(), name


def test_saved_model_as_text_is_accepted(saved_model: Path, tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    export = Path(shutil.copytree(saved_model, tmp_path / "export"))
    message = saved_model_pb2.SavedModel()
    message.ParseFromString((export / "saved_model.pb").read_bytes())
    (export / "saved_model.pb").unlink()
    (export / "saved_model.pbtxt").write_text(text_format.MessageToString(message))

    artifacts = ADAPTER.check(export, GOOD)
    assert artifacts.files[0] == "saved_model.pbtxt"
    assert artifacts.inputs == {"input": (1, 28, 28, 3)}


def test_reads_signature_and_writer_version(saved_model: Path) -> None:
    read = read_saved_model(saved_model / "saved_model.pb")
    assert read.tensorflow_version is not None and read.tensorflow_version.startswith("2.21")
    (sig,) = read.inputs.values()
    assert sig.name == "serving_default_input:0"
    assert sig.dtype == "float32"
    assert sig.shape == (1, 28, 28, 3)


def test_saved_model_without_variables_is_rejected(copy: Path) -> None:
    shutil.rmtree(copy / "variables")
    (problem,) = _problems(copy)
    assert problem.startswith("saved_model.pb: expected a variables/ directory next to it")
    assert "found no variables/" in problem


def test_two_pb_files_are_rejected(copy: Path) -> None:
    shutil.copy(copy / "saved_model.pb", copy / "other.pb")
    (problem,) = _problems(copy)
    assert problem.startswith("Exactly one .pb or .pbtxt file is allowed for TensorFlow models")
    assert "other.pb" in problem and "saved_model.pb" in problem


def test_no_graph_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.h5").write_bytes(b"x")
    (problem,) = _problems(tmp_path)
    assert "Exactly one .pb or .pbtxt file is allowed" in problem and "found none" in problem


def test_wrong_input_name_is_rejected(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"image": [1, 28, 28, 3]}))
    assert problem == (
        "saved_model.pb: input names: expected ['image'] (from the manifest), found ['input']"
    )


def test_wrong_shape_is_rejected(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"input": [1, 32, 32, 3]}))
    assert problem == (
        "saved_model.pb: input 'input' shape: expected [1, 32, 32, 3] (from the manifest),"
        " found [1, 28, 28, 3]"
    )


def test_nchw_shape_gets_a_layout_note(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"input": [1, 3, 28, 28]}))
    assert "Neo wants TensorFlow inputs in NHWC: write [1, 28, 28, 3]" in problem


def test_symlink_out_of_export_dir_is_rejected(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (copy / "variables" / "extra").symlink_to(outside)
    problems = _problems(copy)
    assert any("variables/extra: expected a regular file, found a symlink" in p for p in problems)


def test_signature_named_in_compiler_options(copy: Path) -> None:
    model = _model({"input": [1, 28, 28, 3]}, compiler_options={"signature_def_key": "custom"})
    (problem,) = _problems(copy, model)
    assert "no signature 'custom' (signatures: 'serving_default')" in problem


def test_saved_model_in_a_subdirectory_is_rejected(saved_model: Path, tmp_path: Path) -> None:
    # the TF Serving layout <dir>/1/saved_model.pb: Neo wants the files at the archive root
    shutil.copytree(saved_model, tmp_path / "export" / "1")
    (problem,) = _problems(tmp_path / "export")
    assert problem.startswith("1/saved_model.pb: expected the SavedModel at the top")


def test_saved_model_graph_must_be_named_saved_model(copy: Path) -> None:
    (copy / "saved_model.pb").rename(copy / "model.pb")
    problems = _problems(copy)
    assert any("named saved_model.pb" in p for p in problems)


def test_frozen_graph_is_accepted_with_either_name_form(frozen_graph: Path) -> None:
    for export in (frozen_graph / "binary", frozen_graph / "text"):
        artifacts = ADAPTER.check(export, _model({"x": [1, 3], "y:0": [4]}))
        assert artifacts.files == (next(export.iterdir()).name,)
        # the dynamic batch dimension is read as unknown (-1) and accepts 1
        assert artifacts.inputs == {"x": (-1, 3)}
        assert artifacts.warnings == ()


def test_frozen_graph_placeholders(frozen_graph: Path) -> None:
    binary = read_frozen_graph(frozen_graph / "binary" / "graph.pb").inputs
    text = read_frozen_graph(frozen_graph / "text" / "graph.pbtxt").inputs
    assert binary == text
    assert {n: (s.dtype, s.shape) for n, s in binary.items()} == {
        "x": ("float32", (None, 3)),
        "y": ("int32", None),
    }


def test_frozen_graph_rank_mismatch_is_rejected(frozen_graph: Path) -> None:
    (problem,) = _problems(frozen_graph / "binary", _model({"x": [1, 1, 3], "y": [4]}))
    assert problem == (
        "graph.pb: input 'x' shape: expected [1, 1, 3] (from the manifest), found [?, 3]"
    )


def test_frozen_graph_known_dim_mismatch_is_rejected(frozen_graph: Path) -> None:
    (problem,) = _problems(frozen_graph / "binary", _model({"x": [1, 4], "y": [4]}))
    assert "expected [1, 4]" in problem and "found [?, 3]" in problem


def test_frozen_graph_missing_input_is_rejected(frozen_graph: Path) -> None:
    (problem,) = _problems(frozen_graph / "text", _model({"x": [1, 3]}))
    assert (
        problem == "graph.pbtxt: input names: expected ['x'] (from the manifest), found ['x', 'y']"
    )


def test_garbage_pb_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "graph.pb").write_bytes(b"\xff\xff\xff")
    (problem,) = _problems(tmp_path, _model({"x": [1]}))
    assert problem.startswith("graph.pb: expected a TensorFlow frozen graph, found")


# --- the protobuf reader -----------------------------------------------------------


def test_wire_fields_and_negative_int64() -> None:
    # field 1 varint 150; field 2 bytes "hi"; field 3 fixed64 (skipped); field 4 varint -1
    data = b"\x08\x96\x01" + b"\x12\x02hi" + b"\x19" + bytes(8) + b"\x20" + b"\xff" * 9 + b"\x01"
    assert list(fields(data)) == [(1, 0, 150), (2, 2, b"hi"), (4, 0, (1 << 64) - 1)]
    dim = decode(b"\x08" + b"\xff" * 9 + b"\x01", "Dim")
    assert dim == {"size": [-1]}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _node(name: str, op: str, attrs: dict[str, bytes]) -> bytes:
    entries = b"".join(_field(5, _field(1, k.encode()) + _field(2, v)) for k, v in attrs.items())
    return _field(1, _field(1, name.encode()) + _field(2, op.encode()) + entries)


def test_frozen_graph_with_large_constants(tmp_path: Path) -> None:
    """A hand-written GraphDef: a Placeholder, then a Const holding 8 MB of weights."""
    dims = _field(2, b"\x08" + _varint(1)) + _field(2, b"\x08" + _varint(3))
    placeholder = _node("x", "Placeholder", {"dtype": b"\x30\x01", "shape": _field(7, dims)})
    weights = _node("w", "Const", {"value": _field(8, _field(4, bytes(8 << 20)))})
    (tmp_path / "graph.pb").write_bytes(weights + placeholder)

    read = read_frozen_graph(tmp_path / "graph.pb")
    assert {n: (s.dtype, s.shape) for n, s in read.inputs.items()} == {"x": ("float32", (1, 3))}
    assert ADAPTER.check(tmp_path, _model({"x:0": [1, 3]})).files == ("graph.pb",)


@pytest.mark.parametrize("data", [b"\x08", b"\x12\x05hi", b"\x08\xff\xff", b"\x00\x01"])
def test_wire_rejects_malformed(data: bytes) -> None:
    with pytest.raises(WireError):
        list(fields(data))


def test_text_format_parser() -> None:
    text = r"""
    # a comment
    node { name: "in\"put" op: 'Placeholder'
      attr { key: "dtype" value { type: DT_HALF } }
      attr < key: "shape" value: < shape { dim { size: -1 } dim: { size: 0x10 } } > >
    }
    node { name: "c" "at" op: "Const" }
    versions: [1, 2]
    any_info { [type.googleapis.com/x.Y] { a: 1.5 } }
    """
    graph = parse_text(text)
    assert [n["name"] for n in graph["node"]] == [['in"put'], ["cat"]]
    assert graph["versions"] == [1, 2]
    (placeholder,) = graph_placeholders(graph)
    assert (placeholder.name, placeholder.dtype, placeholder.shape) == (
        'in"put',
        "float16",
        (None, 16),
    )


@pytest.mark.parametrize(
    "text", ['node { name: "x"', "node { : }", 'name: "x" }', 'a: "unterminated']
)
def test_text_format_rejects_malformed(text: str) -> None:
    with pytest.raises(WireError):
        parse_text(text)
