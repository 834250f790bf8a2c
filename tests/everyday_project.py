"""A tiny ONNX project (one Relu, exported with the test interpreter) for the everyday tests."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import write_tree

EXPORT = """\
def export(out, inputs):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], producer_name="t")
    model.ir_version = 7
    onnx.save(model, str(out / "model.onnx"))
"""

HEADER = """\
version: 1
build_dir: build/neo
defaults:
  compile:
    role_arn: arn:aws:iam::123456789012:role/NeoCompile
    s3_prefix: s3://my-bucket/neo
    region: us-east-1
models:
"""

MODEL = """\
  {name}:
    framework: onnx
    framework_version: "1.7.0"
    export: models/relu/export.py:export
    inputs: {{input: [1, 3, 8, 8]}}
    targets: [ml_c5]
    tags: [vision]
"""


def write_project(root: Path, names: tuple[str, ...] = ("resnet", "bert")) -> None:
    """neo.yaml with one tiny ONNX model per name, and the export they share."""
    manifest = HEADER + "".join(MODEL.format(name=name) for name in names)
    write_tree(root, {"neo.yaml": manifest, "models/relu/export.py": EXPORT})
