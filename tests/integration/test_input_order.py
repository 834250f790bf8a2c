"""Inputs keep their declared order from neo.yaml to the export, handlers and requests.

Every model here declares its inputs in an order that is not alphabetical, so an input
list sorted anywhere on the way shows up as a failure. One real ``neobuild package`` run
builds four models with the real frameworks: a randomly initialised BERT (a real
third-party architecture, built from its config, nothing downloaded) traced with
``input_ids, attention_mask, token_type_ids``, and PyTorch, ONNX and TensorFlow models
whose inputs have different shapes. Each archive is then loaded and run with inputs in
the declared order, and compared with the original model fed by name. The fast tests
below cover the export spec, the manifest (defaults, the validated-manifest cache) and
the fingerprint without a framework.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from e2e_helpers import init_repo, neobuild, report, write_tree
from ruamel.yaml import YAML

from neobuild import fingerprint as fingerprint_mod
from neobuild import manifest as manifest_mod
from neobuild.export import run_export
from neobuild.manifest import cache as manifest_cache
from neobuild.render import render_model

COMPILE = """\
  compile:
    role_arn: "arn:aws:iam::123456789012:role/Neo"
    s3_prefix: "s3://neobuild-tests/neo"
"""

BERT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
SEQ = 8

BERT_EXPORT = '''
"""A tiny BERT from its config (random weights, fixed seed), traced with TorchScript.

The traced module takes the declared inputs positionally, in the order neobuild passes
them, and feeds them to BertModel by name: the archive's positional order is the
declared order only if ``inputs`` arrives in declared order.
"""
import warnings

import torch
from transformers import BertConfig, BertModel

VOCAB = 64


def build_model():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=32, return_dict=False,
    )
    return BertModel(config).eval()


class ByName(torch.nn.Module):
    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, *tensors):
        return self.model(**dict(zip(self.names, tensors)))


def example(name, shape):
    if name == "input_ids":
        return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(0))
    if name == "attention_mask":
        return torch.ones(shape, dtype=torch.long)
    return torch.zeros(shape, dtype=torch.long)


def export(output_dir, inputs):
    wrapper = ByName(build_model(), inputs).eval()
    tensors = tuple(example(name, shape) for name, shape in inputs.items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from transformers' mask code
        traced = torch.jit.trace(wrapper, tensors)
    torch.jit.save(traced, str(output_dir / "model.pth"))
'''

# pixels then bias: not alphabetical, and the shapes differ, so a swap fails the trace.
TORCH_EXPORT = """
import torch


class Scorer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[0.5, -1.0, 2.0]]))

    def forward(self, pixels, bias):
        return pixels.mean(dim=(2, 3)) * self.weight + bias


def export(output_dir, inputs):
    tensors = tuple(torch.rand(shape) for shape in inputs.values())
    traced = torch.jit.trace(Scorer().eval(), tensors)
    torch.jit.save(traced, str(output_dir / "model.pth"))
"""

# The graph's inputs follow ``inputs``, as an exporter that names them from it does.
ONNX_EXPORT = """
import onnx
from onnx import TensorProto, helper


def export(output_dir, inputs):
    graph_inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        for name, shape in inputs.items()
    ]
    nodes = [
        helper.make_node("ReduceMean", ["pixels"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["pooled", "weight"], ["weighted"]),
        helper.make_node("Add", ["weighted", "bias"], ["scores"]),
    ]
    weight = helper.make_tensor("weight", TensorProto.FLOAT, [1, 3], [0.5, -1.0, 2.0])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(nodes, "order", graph_inputs, [scores], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(output_dir / "model.onnx"))
"""

TF_EXPORT = """
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf


class Scorer(tf.Module):
    def __init__(self):
        super().__init__(name="scorer")
        self.weight = tf.Variable([[0.5, -1.0, 2.0]], name="weight")

    def __call__(self, pixels, bias):
        return {"scores": tf.reduce_mean(pixels, axis=[1, 2]) * self.weight + bias}


def export(output_dir, inputs):
    module = Scorer()
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in inputs.items()]
    serve = tf.function(module.__call__, input_signature=specs)
    tf.saved_model.save(
        module, str(output_dir), signatures={"serving_default": serve.get_concrete_function()}
    )
"""

MANIFEST = (
    "version: 1\ndefaults:\n  targets: [ml_c5]\n"
    + COMPILE
    + f"""models:
  bert:
    framework: pytorch
    framework_version: "2.0"
    export: models/bert/export.py:export
    env: {{HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1"}}
    inputs:
      input_ids: [1, {SEQ}]
      attention_mask: [1, {SEQ}]
      token_type_ids: [1, {SEQ}]
  torch-scorer:
    framework: pytorch
    framework_version: "2.0"
    export: models/torch-scorer/export.py:export
    smoke: true
    inputs:
      pixels: [1, 3, 4, 4]
      bias: [1, 3]
  onnx-scorer:
    framework: onnx
    export: models/onnx-scorer/export.py:export
    smoke: true
    inputs:
      pixels: [1, 3, 4, 4]
      bias: [1, 3]
    targets: [ml_c5, {{platform: {{os: LINUX, arch: ARM64}}}}]
  tf-scorer:
    framework: tensorflow
    framework_version: "2.9"
    export: models/tf-scorer/export.py:export
    smoke: true
    inputs:
      pixels: [1, 4, 4, 3]
      bias: [1, 3]
"""
)

DECLARED = {
    "bert": BERT_NAMES,
    "torch-scorer": ["pixels", "bias"],
    "onnx-scorer": ["pixels", "bias"],
    "tf-scorer": ["pixels", "bias"],
}


def _pixels_and_bias(nhwc: bool) -> tuple[Any, Any, Any]:
    """Inputs that tell the slots apart, and the expected scores (weights as exported)."""
    import numpy as np

    rng = np.random.default_rng(7)
    pixels = rng.normal(size=(1, 4, 4, 3) if nhwc else (1, 3, 4, 4)).astype("float32")
    bias = np.array([[10.0, 20.0, 30.0]], dtype="float32")
    pooled = pixels.mean(axis=(1, 2) if nhwc else (2, 3))
    return pixels, bias, pooled * np.array([[0.5, -1.0, 2.0]], dtype="float32") + bias


def _extract(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def _handler_names(path: Path) -> list[str]:
    """The INPUT_NAMES literal of a rendered script."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INPUT_NAMES":
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return value
    raise AssertionError(f"no INPUT_NAMES in {path}")


def _request_names(path: Path) -> list[str]:
    request = json.loads(path.read_text())
    return list(json.loads(request["InputConfig"]["DataInputConfig"]))


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- one real package run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    repo = tmp_path_factory.mktemp("order") / "repo"
    write_tree(
        repo,
        {
            "neo.yaml": MANIFEST,
            "models/bert/export.py": BERT_EXPORT,
            "models/torch-scorer/export.py": TORCH_EXPORT,
            "models/onnx-scorer/export.py": ONNX_EXPORT,
            "models/tf-scorer/export.py": TF_EXPORT,
        },
    )
    init_repo(repo)
    result = neobuild(
        "package", "--all", "-j", "2", "--json", cwd=repo, env={"HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr
    return repo, report(result)


@pytest.mark.frameworks
@pytest.mark.slow
def test_every_model_is_built_and_smoke_tested(built: tuple[Path, dict[str, Any]]) -> None:
    repo, data = built
    assert {m["name"]: m["status"] for m in data["models"]} == dict.fromkeys(DECLARED, "built")
    lock = YAML(typ="safe").load((repo / "neo.lock").read_text())
    smoke = {name: entry.get("smoke") for name, entry in lock["models"].items()}
    assert smoke == {"bert": None, "torch-scorer": "passed", "onnx-scorer": "passed",
                     "tf-scorer": "passed"}  # fmt: skip


@pytest.mark.frameworks
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DECLARED))
def test_handlers_and_requests_keep_the_declared_order(
    built: tuple[Path, dict[str, Any]], name: str
) -> None:
    repo, _ = built
    base = repo / "build" / "neo" / name
    assert _handler_names(base / "code" / "inference.py") == DECLARED[name]
    requests = sorted((base / "requests").iterdir())
    assert requests, "no request rendered"
    for path in requests:
        assert _request_names(path) == DECLARED[name], path.name
    if name == "onnx-scorer":
        assert [p.name for p in requests] == ["linux-arm64.json", "ml_c5.json"]
        assert _handler_names(base / "edge" / "run_dlr.py") == DECLARED[name]


@pytest.mark.frameworks
@pytest.mark.slow
def test_bert_archive_matches_the_model_fed_by_name(
    built: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing is downloaded: built from a config
    import torch

    repo, _ = built
    unpacked = _extract(repo / "build/neo/bert/model.tar.gz", tmp_path / "bert")
    archived = torch.jit.load(str(unpacked / "model.pth"))
    original = _load_module(repo / "models/bert/export.py", "_order_bert").build_model()

    generator = torch.Generator().manual_seed(1)
    by_name = {
        "input_ids": torch.randint(0, 64, (1, SEQ), generator=generator),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]]),
        "token_type_ids": torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]]),
    }
    with torch.no_grad():
        expected = original(**by_name)
        # Neo and the rendered handler pass the inputs positionally, in declared order.
        got = archived(*(by_name[n] for n in BERT_NAMES))
    assert len(got) == len(expected) == 2
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
    # The comparison can fail: the same tensors in another order give other outputs.
    with torch.no_grad():
        swapped = archived(
            by_name["attention_mask"], by_name["input_ids"], by_name["token_type_ids"]
        )
    assert not torch.allclose(swapped[0], expected[0], atol=1e-3)


@pytest.mark.frameworks
@pytest.mark.slow
def test_torch_archive_takes_the_declared_order(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import torch

    repo, _ = built
    unpacked = _extract(repo / "build/neo/torch-scorer/model.tar.gz", tmp_path / "torch")
    archived = torch.jit.load(str(unpacked / "model.pth"))
    original = _load_module(repo / "models/torch-scorer/export.py", "_order_torch").Scorer()
    pixels, bias, expected = _pixels_and_bias(nhwc=False)
    inputs = {"pixels": torch.from_numpy(pixels), "bias": torch.from_numpy(bias)}
    with torch.no_grad():
        got = archived(*inputs.values()).numpy()
        torch.testing.assert_close(torch.from_numpy(got), original(**inputs))
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.frameworks
@pytest.mark.slow
def test_onnx_archive_lists_the_inputs_in_declared_order(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import onnx
    import onnxruntime

    repo, _ = built
    unpacked = _extract(repo / "build/neo/onnx-scorer/model.tar.gz", tmp_path / "onnx")
    graph = onnx.load(str(unpacked / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["pixels", "bias"]
    session = onnxruntime.InferenceSession(str(unpacked / "model.onnx"))
    pixels, bias, expected = _pixels_and_bias(nhwc=False)
    (got,) = session.run(None, {"pixels": pixels, "bias": bias})
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.frameworks
@pytest.mark.slow
def test_tensorflow_archive_matches_the_inputs_fed_by_name(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import tensorflow as tf

    repo, _ = built
    unpacked = _extract(repo / "build/neo/tf-scorer/model.tar.gz", tmp_path / "tf")
    serve = tf.saved_model.load(str(unpacked)).signatures["serving_default"]
    pixels, bias, expected = _pixels_and_bias(nhwc=True)
    got = serve(pixels=tf.constant(pixels), bias=tf.constant(bias))["scores"].numpy()
    assert got == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------- a reorder


@pytest.mark.frameworks
def test_swapping_two_inputs_makes_the_model_stale_and_reorders_its_request(
    tmp_path: Path,
) -> None:
    pytest.importorskip("onnx")
    repo = tmp_path / "repo"
    manifest = (
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  onnx-scorer:\n    framework: onnx\n    export: models/onnx-scorer/export.py:export\n"
        "    inputs:\n      pixels: [1, 3, 4, 4]\n      bias: [1, 3]\n"
    )
    write_tree(repo, {"neo.yaml": manifest, "models/onnx-scorer/export.py": ONNX_EXPORT})
    init_repo(repo)
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    request = repo / "build/neo/onnx-scorer/requests/ml_c5.json"
    handler = repo / "build/neo/onnx-scorer/code/inference.py"
    assert _request_names(request) == ["pixels", "bias"]
    fresh = report(neobuild("plan", "--json", "--all", cwd=repo))
    assert fresh["summary"]["stale"] == 0

    swapped = "      bias: [1, 3]\n      pixels: [1, 3, 4, 4]\n"
    (repo / "neo.yaml").write_text(
        manifest.replace("      pixels: [1, 3, 4, 4]\n      bias: [1, 3]\n", swapped)
    )
    plan = report(neobuild("plan", "--json", "--all", cwd=repo))
    (model,) = plan["models"]
    assert model["status"] == "stale"
    assert {"kind": "manifest-changed", "detail": "inputs"} in [
        {"kind": r["kind"], "detail": r["detail"]} for r in model["reasons"]
    ]

    result = neobuild("package", "--all", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert _request_names(request) == ["bias", "pixels"]
    assert _handler_names(handler) == ["bias", "pixels"]
    body = json.loads(request.read_text())
    assert body["InputConfig"]["DataInputConfig"] == '{"bias": [1, 3], "pixels": [1, 3, 4, 4]}'
    import onnx

    graph = onnx.load(str(repo / "build/neo/onnx-scorer/export/model.onnx")).graph
    assert [i.name for i in graph.input] == ["bias", "pixels"]
    after = report(neobuild("plan", "--json", "--all", cwd=repo))
    assert after["summary"]["stale"] == 0


# ----------------------------------------------------------------- no framework needed

ORDER_MANIFEST = """\
version: 1
defaults:
  targets: [ml_c5]
  inputs:
    zeta: [1, 2]
    alpha: [1, 3]
models:
  own:
    framework: onnx
    export: src/export.py:export
    inputs:
      second: [1, 5]
      first: [1, 4]
      alpha: [1, 3]
  inherited:
    framework: onnx
    export: src/export.py:export
  listed:
    framework: pytorch
    export: src/export.py:export
    inputs: [[1, 9], [1, 8]]
"""

RECORDING_EXPORT = """
import json

def export(output_dir, inputs):
    (output_dir / "seen.json").write_text(json.dumps(inputs))
"""


@pytest.fixture
def order_repo(tmp_path: Path) -> Path:
    write_tree(tmp_path, {"neo.yaml": ORDER_MANIFEST, "src/export.py": RECORDING_EXPORT})
    return tmp_path


def _names(m: manifest_mod.Manifest) -> dict[str, tuple[str, ...]]:
    return {name: model.inputs.names for name, model in m.models.items()}


def test_manifest_keeps_declared_order_and_a_models_inputs_replace_the_defaults(
    order_repo: Path,
) -> None:
    loaded = manifest_mod.load(order_repo / "neo.yaml", use_cache=False)
    assert _names(loaded) == {
        "own": ("second", "first", "alpha"),  # not merged with defaults' zeta
        "inherited": ("zeta", "alpha"),
        "listed": ("input0", "input1"),
    }
    assert loaded.models["listed"].inputs.shapes == ((1, 9), (1, 8))
    own = loaded.models["own"].inputs.as_json()
    assert json.dumps(own) == '{"second": [1, 5], "first": [1, 4], "alpha": [1, 3]}'


def test_the_validated_manifest_cache_keeps_the_order(order_repo: Path) -> None:
    first = manifest_mod.load(order_repo / "neo.yaml")
    assert (order_repo / ".neobuild").is_dir()
    data = (order_repo / "neo.yaml").read_bytes()
    cached = manifest_cache.lookup(order_repo / "neo.yaml", order_repo, data)
    assert cached is not None, "the second load did not come from the cache"
    assert _names(cached) == _names(first)
    assert cached.models == first.models
    assert manifest_mod.load(order_repo / "neo.yaml").models == first.models


def test_the_export_receives_inputs_in_declared_order(order_repo: Path, tmp_path: Path) -> None:
    loaded = manifest_mod.load(order_repo / "neo.yaml", use_cache=False)
    for name, expected in (
        ("own", '{"second": [1, 5], "first": [1, 4], "alpha": [1, 3]}'),
        ("listed", "[[1, 9], [1, 8]]"),
    ):
        out = tmp_path / "out" / name
        run_export(
            loaded.models[name],
            root=order_repo,
            output_dir=out,
            log_path=tmp_path / f"{name}.log",
            python=Path(sys.executable),
        )
        assert (out / "seen.json").read_text() == expected


def test_rendered_scripts_keep_the_order(order_repo: Path) -> None:
    loaded = manifest_mod.load(order_repo / "neo.yaml", use_cache=False)
    rendered = render_model(loaded, loaded.models["own"])
    source = rendered["code/inference.py"].decode()
    assert "INPUT_NAMES = ['second', 'first', 'alpha']" in source
    assert "INPUT_SHAPES = [[1, 5], [1, 4], [1, 3]]" in source


def test_tojson_keeps_a_mappings_order(order_repo: Path) -> None:
    templates = order_repo / "templates" / "inference"
    templates.mkdir(parents=True)
    (templates / "dlr.py.j2").write_text(
        "{% set shapes = {} %}{% for i in model.inputs %}"
        "{% set _ = shapes.update({i.name: i.shape}) %}{% endfor %}"
        "SHAPES = {{ shapes|tojson }}\n"
    )
    text = (order_repo / "neo.yaml").read_text()
    (order_repo / "neo.yaml").write_text(
        text.replace("version: 1\n", "version: 1\ntemplates_dir: templates\n")
    )
    loaded = manifest_mod.load(order_repo / "neo.yaml", use_cache=False)
    model = loaded.models["own"]
    # an ONNX model on ml_c5 renders the DLR handler, overridden here
    source = render_model(loaded, model)["code/inference.py"].decode()
    assert source == 'SHAPES = {"second": [1, 5], "first": [1, 4], "alpha": [1, 3]}\n'


def test_a_reorder_changes_the_fingerprint_but_key_order_elsewhere_does_not(
    order_repo: Path,
) -> None:
    def fingerprint(text: str) -> dict[str, str]:
        (order_repo / "neo.yaml").write_text(text)
        loaded = manifest_mod.load(order_repo / "neo.yaml", use_cache=False)
        return fingerprint_mod.fingerprint(loaded, loaded.models["own"], templates_hash="t").parts

    before = fingerprint(ORDER_MANIFEST)
    reordered = fingerprint(
        ORDER_MANIFEST.replace(
            "      second: [1, 5]\n      first: [1, 4]\n",
            "      first: [1, 4]\n      second: [1, 5]\n",
        )
    )
    assert reordered["manifest"] != before["manifest"]
    changed = {
        k for k, v in before.items() if k.startswith("source") is False and reordered[k] != v
    }
    assert changed == {"manifest", "fields"}
    # compiler options have no order: writing their keys the other way round is no change
    with_options = ORDER_MANIFEST.replace(
        "    framework: onnx\n    export: src/export.py:export\n    inputs:\n",
        "    framework: onnx\n    export: src/export.py:export\n"
        "    compiler_options: {a: 1, b: 2}\n    inputs:\n",
        1,
    )
    assert fingerprint(with_options) == fingerprint(
        with_options.replace("{a: 1, b: 2}", "{b: 2, a: 1}")
    )


def test_json_documents_keep_the_order_they_were_built_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from neobuild.console import print_json

    print_json({"model": "bert", "inputs": {"input_ids": [1, 8], "attention_mask": [1, 8]}})
    out = capsys.readouterr().out
    assert out.index('"model"') < out.index('"inputs"')
    assert out.index('"input_ids"') < out.index('"attention_mask"')
    assert json.loads(out)["inputs"] == {"input_ids": [1, 8], "attention_mask": [1, 8]}
