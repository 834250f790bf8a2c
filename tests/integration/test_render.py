"""render.py: golden files per template family, injection safety, errors naming the
template and line, user overrides and the templates hash."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import factories
import pytest
from locations import GOLDEN

from neobuild import render
from neobuild.errors import RenderError
from neobuild.model import Inputs, InputSpec, Manifest, Model, Platform, Target

UPDATE = os.environ.get("NEOBUILD_UPDATE_GOLDEN") == "1"


def _model(name: str, framework: str, inputs: Inputs, *targets: Target, **kw: object) -> Model:
    return factories.make_model(
        name,
        framework=framework,
        export="export.py",
        inputs=inputs,
        targets=targets or ("ml_c5",),
        **kw,
    )


def _manifest(root: Path, *models: Model, templates_dir: Path | None = None) -> Manifest:
    return factories.make_manifest(
        root, models, build_dir=root / "build", templates_dir=templates_dir
    )


def _dict(**shapes: tuple[int, ...]) -> Inputs:
    return Inputs(form="dict", items=tuple(InputSpec(n, s) for n, s in shapes.items()))


def check_golden(name: str, data: bytes) -> None:
    """Compare with tests/golden/<name>; NEOBUILD_UPDATE_GOLDEN=1 rewrites it on purpose."""
    path = GOLDEN / f"{name}.golden"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert path.is_file(), f"{path} is missing; run with NEOBUILD_UPDATE_GOLDEN=1 once"
    assert data == path.read_bytes(), (
        f"{name} differs from its golden file; if the change is intended, "
        "regenerate with NEOBUILD_UPDATE_GOLDEN=1 and review the diff"
    )


GOLDEN_MODELS = {
    "pytorch": _model(
        "resnet18",
        "pytorch",
        _dict(input0=(1, 3, 224, 224)),
        Target(device="ml_c5"),
        Target(device="jetson_nano"),
    ),
    "pytorch-list-inf1": _model(
        "bert",
        "pytorch",
        Inputs(form="list", items=(InputSpec(None, (1, 128)), InputSpec(None, (1, 128)))),
        Target(device="ml_c5"),
        Target(device="ml_inf1"),
        compiler_options={"dtype": "int64"},
    ),
    "mxnet": _model("mlp", "mxnet", _dict(data=(1, 3, 32, 32))),
    "tensorflow": _model("savedmodel", "tensorflow", _dict(input=(1, 28, 28, 3))),
    "onnx": _model(
        "onnx-mlp",
        "onnx",
        _dict(a=(1, 4), b=(1, 4)),
        Target(platform=Platform("LINUX", "ARM64", None)),
    ),
    "xgboost": _model("xgb", "xgboost", Inputs(form="none")),
    "keras": _model("keras-cnn", "keras", _dict(input_1=(1, 3, 28, 28))),
    "tflite": _model("mobile", "tflite", _dict(input=(1, 224, 224, 3)), Target(device="rasp4b")),
}


@pytest.mark.parametrize("key", sorted(GOLDEN_MODELS))
def test_golden(key: str, tmp_path: Path) -> None:
    model = GOLDEN_MODELS[key]
    rendered = render.render_model(_manifest(tmp_path, model), model)
    assert "code/inference.py" in rendered
    for path, data in sorted(rendered.items()):
        check_golden(f"{key}/{path}", data)
        compile(data, path, "exec")


def test_outputs_per_framework_and_targets() -> None:
    assert render.outputs_for(GOLDEN_MODELS["pytorch"]) == {
        "code/inference.py": "inference/pytorch.py.j2",
        "edge/run_dlr.py": "edge/run_dlr.py.j2",
    }
    assert render.outputs_for(GOLDEN_MODELS["pytorch-list-inf1"]) == {
        "code/inference.py": "inference/pytorch.py.j2",
        "code/inference_inf1.py": "inference/dlr.py.j2",
    }
    inf1_only = _model("t", "tensorflow", _dict(input=(1, 2)), Target(device="ml_inf1"))
    assert render.outputs_for(inf1_only) == {"code/inference.py": "inference/dlr.py.j2"}
    assert render.outputs_for(GOLDEN_MODELS["onnx"]) == {
        "code/inference.py": "inference/dlr.py.j2",
        "edge/run_dlr.py": "edge/run_dlr.py.j2",
    }


def test_archive_extras_only_for_pytorch_and_mxnet(tmp_path: Path) -> None:
    for key, expect in (("pytorch", True), ("mxnet", True), ("onnx", False), ("tensorflow", False)):
        model = GOLDEN_MODELS[key]
        rendered = render.render_model(_manifest(tmp_path, model), model)
        extras = render.archive_extras(model, rendered)
        if expect:
            assert extras == {"code/inference.py": rendered["code/inference.py"]}
        else:
            assert extras == {}


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    model = GOLDEN_MODELS["pytorch-list-inf1"]
    first = render.render_model(_manifest(tmp_path, model), model)
    second = render.render_model(_manifest(tmp_path / "elsewhere", model), model)
    assert first == second


HOSTILE = [
    "x'); import os; os.system('echo pwned'); ('",
    'x"""; raise SystemExit; """',
    "line\nbreak = 1",
    "back\\slash'\"",
    "\u2028unicode\u0085sep",
]


@pytest.mark.parametrize("framework", ["pytorch", "mxnet", "tensorflow", "onnx", "tflite"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_injection_renders_to_inert_literals(framework: str, hostile: str, tmp_path: Path) -> None:
    model = _model(
        hostile,
        framework,
        _dict(**{hostile: (1, 3, 8, 8), "ok": (1, 2)}),
        Target(device="ml_c5") if framework != "tflite" else Target(device="rasp4b"),
        Target(device="jetson_nano"),
    )
    rendered = render.render_model(_manifest(tmp_path, model), model)
    for path, data in rendered.items():
        tree = ast.parse(data.decode(), path)  # valid Python
        constants = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("MODEL_NAME", "INPUT_NAMES")
        }
        assert constants == {"MODEL_NAME": hostile, "INPUT_NAMES": [hostile, "ok"]}, path
        # Nothing of the hostile text escaped into code: only the expected statements exist.
        assert "pwned" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not any(
            isinstance(n, ast.Raise) and isinstance(n.exc, ast.Name) and n.exc.id == "SystemExit"
            for n in ast.walk(tree)
        )


def test_pyrepr_literals() -> None:
    value = {"a": [1, 2.5, None, True], "b": (1,), "c": "it's"}
    assert ast.literal_eval(render.pyrepr(value)) == {
        "a": [1, 2.5, None, True],
        "b": (1,),
        "c": "it's",
    }
    with pytest.raises(TypeError):
        render.pyrepr(float("nan"))
    with pytest.raises(TypeError):
        render.pyrepr(object())


def _user_template(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return root


def test_strict_undefined_names_template_and_line(tmp_path: Path) -> None:
    user = _user_template(
        tmp_path / "t", "inference/pytorch.py.j2", "# ok\nX = 1\nY = {{ model.nope|pyrepr }}\n"
    )
    model = GOLDEN_MODELS["pytorch"]
    with pytest.raises(RenderError) as info:
        render.render_model(_manifest(tmp_path, model, templates_dir=user), model)
    message = str(info.value)
    assert f"{user / 'inference' / 'pytorch.py.j2'}:3" in message
    assert "nope" in message
    assert info.value.hint and "variables" in info.value.hint


def test_bare_value_is_refused(tmp_path: Path) -> None:
    user = _user_template(tmp_path / "t", "inference/pytorch.py.j2", "NAME = '{{ model.name }}'\n")
    model = GOLDEN_MODELS["pytorch"]
    with pytest.raises(RenderError, match=r"pytorch\.py\.j2:1.*\|pyrepr"):
        render.render_model(_manifest(tmp_path, model, templates_dir=user), model)


def test_syntax_error_names_template_and_line(tmp_path: Path) -> None:
    user = _user_template(tmp_path / "t", "inference/dlr.py.j2", "a = 1\n\n{% if %}\n")
    model = GOLDEN_MODELS["onnx"]
    with pytest.raises(RenderError, match=r"dlr\.py\.j2:3: template syntax error"):
        render.render_model(_manifest(tmp_path, model, templates_dir=user), model)


def test_missing_templates_dir_is_an_error(tmp_path: Path) -> None:
    model = _model("m", "onnx", _dict(a=(1, 2)), templates_dir="does/not/exist")
    with pytest.raises(RenderError, match="does not exist"):
        render.render_model(_manifest(tmp_path, model), model)


def test_unknown_template_name(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"template nope\.j2 not found"):
        render.render("nope.j2", {})


def test_override_precedence_and_hash(tmp_path: Path) -> None:
    top = _user_template(tmp_path / "top", "edge/run_dlr.py.j2", "TOP = {{ model.name|pyrepr }}\n")
    _user_template(tmp_path / "mine", "edge/run_dlr.py.j2", "MINE = {{ model.name|pyrepr }}\n")
    _user_template(tmp_path / "mine", "inference/mxnet.py.j2", "UNUSED = 1\n")
    base = GOLDEN_MODELS["pytorch"]
    mine = _model(base.name, "pytorch", base.inputs, *base.targets, templates_dir="mine")

    plain = _manifest(tmp_path, base)
    assert b"TOP" not in render.render_model(plain, base)["edge/run_dlr.py"]
    with_top = _manifest(tmp_path, base, templates_dir=top)
    assert render.render_model(with_top, base)["edge/run_dlr.py"] == b"TOP = 'resnet18'\n"
    with_both = _manifest(tmp_path, mine, templates_dir=top)
    assert render.render_model(with_both, mine)["edge/run_dlr.py"] == b"MINE = 'resnet18'\n"
    # The built-in template still serves what no override replaces.
    assert b"def model_fn" in render.render_model(with_both, mine)["code/inference.py"]

    h_plain = render.templates_hash_for(plain, base)
    h_top = render.templates_hash_for(with_top, base)
    h_both = render.templates_hash_for(with_both, mine)
    assert len({h_plain, h_top, h_both}) == 3
    assert h_plain.startswith("sha256:") and len(h_plain) == 71
    # An override of a template the model does not use changes nothing.
    _user_template(tmp_path / "top", "inference/mxnet.py.j2", "X = 1\n")
    assert render.templates_hash_for(with_top, base) == h_top
    # Editing a used override does.
    _user_template(tmp_path / "top", "edge/run_dlr.py.j2", "TOP2 = {{ model.name|pyrepr }}\n")
    assert render.templates_hash_for(with_top, base) != h_top


def test_templates_found_inside_an_installed_package(tmp_path: Path, repo_root: Path) -> None:
    """In a wheel the templates live at neobuild/templates; render.py must find them there."""
    site = tmp_path / "site"
    shutil.copytree(
        repo_root / "neobuild", site / "neobuild", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(repo_root / "templates", site / "neobuild" / "templates")
    code = (
        "import neobuild.render as r, neobuild.templatehash as t; print(t.builtin_templates_dir()); "
        "print(r.render('edge/run_dlr.py.j2', {'model': {'name': 'm', 'input_names': [], "
        "'input_shapes': [], 'dtype': 'float32'}, 'edge_targets': []})[:10])"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.splitlines()[0] == str(site / "neobuild" / "templates")


def test_manifest_templates_hash_covers_every_model(tmp_path: Path) -> None:
    a, b = GOLDEN_MODELS["pytorch"], GOLDEN_MODELS["onnx"]
    both = _manifest(tmp_path, a, b)
    first = render.manifest_templates_hash(both)
    assert first == render.manifest_templates_hash(_manifest(tmp_path, b, a))
    user = _user_template(tmp_path / "t", "inference/dlr.py.j2", "X = {{ model.name|pyrepr }}\n")
    assert render.manifest_templates_hash(_manifest(tmp_path, a, b, templates_dir=user)) != first


STUB_DLR = '''
import numpy as np

class DLRModel:
    """Test double: the real DLR needs a Neo-compiled model; this checks what it is given."""

    def __init__(self, model_dir, dev_type, dev_id):
        assert dev_type == "cpu" and dev_id == 0, (dev_type, dev_id)
        self.model_dir = model_dir

    def run(self, inputs):
        assert isinstance(inputs, dict), type(inputs)
        assert {k: v.shape for k, v in inputs.items()} == {"a": (1, 4), "b": (1, 4)}, inputs
        assert all(not v.any() and v.dtype == np.float32 for v in inputs.values())
        return [np.ones((1, 2), dtype=np.float32)]
'''


def test_run_dlr_script_runs_and_prints_timing(tmp_path: Path) -> None:
    model = GOLDEN_MODELS["onnx"]
    script = tmp_path / "run_dlr.py"
    script.write_bytes(render.render_model(_manifest(tmp_path, model), model)["edge/run_dlr.py"])
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "dlr.py").write_text(STUB_DLR)
    env = {**os.environ, "PYTHONPATH": str(stub)}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "--runs", "3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "model: onnx-mlp"
    assert any(
        re.fullmatch(r"3 runs: median [0-9.]+ ms, min [0-9.]+ ms, max [0-9.]+ ms", x) for x in lines
    )
    assert "output 0: shape [1, 2] dtype float32" in lines
