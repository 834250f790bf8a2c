"""Smoke tests, for real: tiny models of every framework, exported here, run through the
rendered handlers by smoke.py in a subprocess (the venv's own Python stands in for the
export environment)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import factories
import pytest

from neobuild.errors import RenderError, SmokeTestError
from neobuild.model import (
    Inputs,
    InputSpec,
    Manifest,
    Model,
    Target,
)
from neobuild.render import render_model
from neobuild.smoke import PASSED, smoke_test

pytestmark = pytest.mark.frameworks

PYTHON = Path(sys.executable)

BUILDERS = {
    "torch-one": """
        import torch
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 4, 3)
            def forward(self, x):
                return self.conv(x).mean(dim=(2, 3))
        torch.manual_seed(0)
        traced = torch.jit.trace(Net().eval(), torch.zeros(1, 3, 8, 8))
        torch.jit.save(traced, str(OUT / "model.pth"))
    """,
    "torch-two": """
        import torch
        class Net(torch.nn.Module):
            def forward(self, a, b):
                return a * 2 + b.sum(), b.mean()
        traced = torch.jit.trace(Net().eval(), (torch.zeros(1, 4), torch.zeros(1, 2, 3)))
        torch.jit.save(traced, str(OUT / "model.pt"))
    """,
    "onnx": """
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["input", "w"], ["output"])],
            "mlp",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])],
            [w],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(OUT / "model.onnx"))
    """,
    "onnx-two": """
        import onnx
        from onnx import TensorProto, helper
        graph = helper.make_graph(
            [helper.make_node("Add", ["a", "b"], ["sum"])],
            "add",
            [
                helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3]),
                helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3]),
            ],
            [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [1, 3])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.save(model, str(OUT / "model.onnx"))
    """,
    "tf-two": """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        class M(tf.Module):
            @tf.function(input_signature=[
                tf.TensorSpec([1, 4, 4, 1], tf.float32, name="data1"),
                tf.TensorSpec([1, 4, 4, 1], tf.float32, name="data2"),
            ])
            def serve(self, data1, data2):
                return {"sum": data1 + data2, "diff": data1 - data2}
        m = M()
        tf.saved_model.save(m, str(OUT), signatures={"serving_default": m.serve})
    """,
    "xgboost": """
        import numpy as np
        import xgboost as xgb
        rng = np.random.default_rng(0)
        x = rng.random((32, 5), dtype=np.float32)
        y = (x[:, 0] > 0.5).astype(np.float32)
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), 3)
        booster.save_model(str(OUT / "model.json"))
    """,
    "keras": """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import keras
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3), name="input_1")
        x = keras.layers.Conv2D(2, 3)(inputs)
        outputs = keras.layers.GlobalAveragePooling2D()(x)
        keras.Model(inputs, outputs).save(OUT / "model.h5")
    """,
    "tensorflow": """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        class M(tf.Module):
            def __init__(self):
                self.w = tf.Variable(tf.ones([3, 2]))
            @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="input")])
            def serve(self, input):
                return {"scores": tf.matmul(tf.reduce_mean(input, axis=[1, 2]), self.w)}
        m = M()
        tf.saved_model.save(m, str(OUT), signatures={"serving_default": m.serve})
    """,
    "tflite": """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="input")])
        def f(x):
            return tf.reduce_mean(x, axis=[1, 2]) * 2.0
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
        (OUT / "model.tflite").write_bytes(conv.convert())
    """,
}


def _build(kind: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    code = f"from pathlib import Path\nOUT = Path({str(out)!r})\n" + textwrap.dedent(BUILDERS[kind])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    built = {kind: _build(kind, base / kind) for kind in BUILDERS}
    # A SavedModel one directory down, as some exports lay it out.
    shutil.copytree(built["tensorflow"], base / "tf-nested" / "savedmodel")
    built["tf-nested"] = base / "tf-nested"
    return built


def _model(name: str, framework: str, inputs: Inputs, *targets: Target, **kw: object) -> Model:
    return factories.make_model(
        name,
        framework=framework,
        export="export.py",
        inputs=inputs,
        targets=targets or ("ml_c5",),
        **kw,
    )


def _manifest(root: Path, model: Model, templates_dir: Path | None = None) -> Manifest:
    return factories.make_manifest(
        root, [model], build_dir=root / "build", templates_dir=templates_dir
    )


def _dict(**shapes: tuple[int, ...]) -> Inputs:
    return Inputs(form="dict", items=tuple(InputSpec(n, s) for n, s in shapes.items()))


CASES = {
    "torch-one": ("pytorch", _dict(input0=(1, 3, 8, 8)), (Target(device="ml_c5"),)),
    "torch-two": (
        "pytorch",
        Inputs(form="list", items=(InputSpec(None, (1, 4)), InputSpec(None, (1, 2, 3)))),
        (Target(device="ml_c5"), Target(device="jetson_nano")),
    ),
    "torch-inf1": ("pytorch", _dict(input0=(1, 3, 8, 8)), (Target(device="ml_inf1"),)),
    "torch-mixed": (
        "pytorch",
        _dict(input0=(1, 3, 8, 8)),
        (Target(device="ml_c5"), Target(device="ml_inf1")),
    ),
    "onnx": ("onnx", _dict(input=(1, 4)), (Target(device="ml_c5"),)),
    "onnx-two": (
        "onnx",
        _dict(a=(1, 3), b=(1, 3)),
        (Target(device="ml_c5"), Target(device="rasp4b")),
    ),
    "tf-two": (
        "tensorflow",
        _dict(data1=(1, 4, 4, 1), data2=(1, 4, 4, 1)),
        (Target(device="ml_c5"),),
    ),
    "xgboost": ("xgboost", Inputs(form="none"), (Target(device="ml_c5"),)),
    "keras": ("keras", _dict(input_1=(1, 3, 8, 8)), (Target(device="ml_m5"),)),
    "tensorflow": ("tensorflow", _dict(input=(1, 8, 8, 3)), (Target(device="ml_c5"),)),
    "tf-inf1": ("tensorflow", _dict(input=(1, 8, 8, 3)), (Target(device="ml_inf1"),)),
    "tf-nested": ("tensorflow", _dict(input=(1, 8, 8, 3)), (Target(device="ml_c5"),)),
    "tflite": ("tflite", _dict(input=(1, 8, 8, 3)), (Target(device="rasp4b"),)),
}
EXPORT_OF = {"torch-inf1": "torch-one", "torch-mixed": "torch-one", "tf-inf1": "tensorflow"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_handler_runs_on_the_exported_model(
    case: str, exports: dict[str, Path], tmp_path: Path
) -> None:
    framework, inputs, targets = CASES[case]
    model = _model(case, framework, inputs, *targets)
    manifest = _manifest(tmp_path, model)
    log = tmp_path / "smoke.log"
    export_dir = exports[EXPORT_OF.get(case, case)]
    assert smoke_test(manifest, model, export_dir=export_dir, python=PYTHON, log_path=log) == PASSED
    # The export directory is left exactly as it was.
    assert not (export_dir / "code").exists()


def test_wrong_input_name_fails_with_the_runtime_traceback(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    model = _model("onnx-bad", "onnx", _dict(data=(1, 4)))
    with pytest.raises(SmokeTestError) as info:
        smoke_test(
            _manifest(tmp_path, model),
            model,
            export_dir=exports["onnx"],
            python=PYTHON,
            log_path=tmp_path / "smoke.log",
        )
    text = str(info.value)
    assert "onnx-bad" in text and "code/inference.py" in text
    assert "onnx runtime (stand-in for DLR)" in text
    assert "are not inputs of the ONNX model" in text
    assert "Traceback" in text


def test_wrong_shape_fails_in_the_handler(exports: dict[str, Path], tmp_path: Path) -> None:
    model = _model("torch-bad", "pytorch", _dict(input0=(1, 5, 8, 8)))
    with pytest.raises(SmokeTestError, match="failed in model_fn") as info:
        smoke_test(
            _manifest(tmp_path, model),
            model,
            export_dir=exports["torch-one"],
            python=PYTHON,
            log_path=tmp_path / "smoke.log",
        )
    assert "RuntimeError" in str(info.value)


BROKEN_PREDICT = """\
# a user's override that breaks at predict time
import torch

MODEL_NAME = {{ model.name|pyrepr }}


def model_fn(model_dir):
    return torch.jit.load(model_dir + "/model.pth")


def input_fn(body, content_type):
    return [torch.zeros(1, 3, 8, 8)]


def predict_fn(data, model):
    raise RuntimeError("deliberately broken template for " + MODEL_NAME)


def output_fn(prediction, accept):
    return "[]"
"""


def test_broken_user_template_is_caught(exports: dict[str, Path], tmp_path: Path) -> None:
    user = tmp_path / "my-templates"
    (user / "inference").mkdir(parents=True)
    (user / "inference" / "pytorch.py.j2").write_text(BROKEN_PREDICT)
    model = _model(
        "torch-user", "pytorch", _dict(input0=(1, 3, 8, 8)), templates_dir="my-templates"
    )
    manifest = _manifest(tmp_path, model)
    rendered = render_model(manifest, model)
    assert b"deliberately broken" in rendered["code/inference.py"]
    with pytest.raises(SmokeTestError, match="failed in predict_fn") as info:
        smoke_test(
            manifest,
            model,
            export_dir=exports["torch-one"],
            python=PYTHON,
            log_path=tmp_path / "smoke.log",
        )
    assert "deliberately broken template for torch-user" in str(info.value)
    assert "deliberately broken" in (tmp_path / "smoke.log").read_text()


def test_user_template_with_bad_python_is_refused_at_render(tmp_path: Path) -> None:
    user = tmp_path / "t"
    (user / "inference").mkdir(parents=True)
    (user / "inference" / "onnx.py.j2").write_text("unused\n")
    (user / "inference" / "dlr.py.j2").write_text("def neo_preprocess(:\n    pass\n")
    model = _model("onnx-user", "onnx", _dict(input=(1, 4)))
    with pytest.raises(RenderError, match=r"dlr\.py\.j2.*not valid Python"):
        render_model(_manifest(tmp_path, model, templates_dir=user), model)


def test_timeout_is_reported(exports: dict[str, Path], tmp_path: Path) -> None:
    user = tmp_path / "t"
    (user / "inference").mkdir(parents=True)
    (user / "inference" / "dlr.py.j2").write_text("import time\ntime.sleep(60)\n")
    model = _model("onnx-slow", "onnx", _dict(input=(1, 4)), templates_dir="t")
    with pytest.raises(SmokeTestError, match="timed out after 2 s"):
        smoke_test(
            _manifest(tmp_path, model),
            model,
            export_dir=exports["onnx"],
            python=PYTHON,
            log_path=tmp_path / "smoke.log",
            timeout=2,
        )


def test_darknet_is_skipped_with_a_reason(tmp_path: Path) -> None:
    model = _model("yolo", "darknet", _dict(data=(1, 3, 8, 8)), Target(device="rasp4b"))
    result = smoke_test(
        _manifest(tmp_path, model),
        model,
        export_dir=tmp_path,
        python=PYTHON,
        log_path=tmp_path / "smoke.log",
    )
    assert result.startswith("skipped: ") and "Darknet" in result


def test_an_exported_code_dir_is_not_written_through(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    export_dir = tmp_path / "export"
    shutil.copytree(exports["onnx"], export_dir)
    (export_dir / "code").mkdir()
    (export_dir / "code" / "helper.py").write_text("X = 1\n")
    model = _model("onnx-code", "onnx", _dict(input=(1, 4)))
    result = smoke_test(
        _manifest(tmp_path, model),
        model,
        export_dir=export_dir,
        python=PYTHON,
        log_path=tmp_path / "log",
    )
    assert result == PASSED
    assert sorted(p.name for p in (export_dir / "code").iterdir()) == ["helper.py"]
