"""The rendered PyTorch handler under SageMaker's real serving stack.

The model is exported here (the smoke tests' builders), packed by neobuild into
``model.tar.gz`` with ``code/inference.py`` and extracted into ``<base>/model`` as the
container does. TorchServe's Python worker (``ts/model_service_worker.py``) then loads it
through ``ts.model_loader`` with the container's handler service, which loads
``code/inference.py`` through the toolkit's ``Transformer``; requests travel in
TorchServe's own protocol (tests/torchserve_frontend.py plays the Java frontend).

Two handler services: sagemaker-pytorch-inference's (the PyTorch container's), and
sagemaker-inference's generic ``DefaultHandlerService`` (the toolkit's default, which the
MXNet container extends).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import factories
import numpy as np
import pytest
from test_smoke import _build
from torchserve_frontend import Response, Worker

from neobuild.archive import pack
from neobuild.model import Inputs, InputSpec, Model
from neobuild.render import archive_extras, render_model

pytestmark = pytest.mark.frameworks

JSON = "application/json"
NPY = "application/x-npy"
HANDLER_SERVICES = {
    "pytorch-container": "sagemaker_pytorch_serving_container.handler_service:handle",
    "generic-toolkit": "sagemaker_inference.default_handler_service:handle",
}
# torch-one: x (1, 3, 8, 8) -> (1, 4). torch-two: a (1, 4), b (1, 2, 3) -> two outputs.
INPUTS = {
    "torch-one": Inputs("dict", (InputSpec("image", (1, 3, 8, 8)),)),
    "torch-two": Inputs("dict", (InputSpec("a", (1, 4)), InputSpec("b", (1, 2, 3)))),
}


def _model(name: str) -> Model:
    return factories.make_model(
        name,
        framework="pytorch",
        framework_version="2.0",
        export="export.py",
        inputs=INPUTS[name],
    )


def _container_layout(name: str, export_dir: Path, base: Path) -> Path:
    """Pack the export as neobuild does and extract it where the container reads it."""
    model = _model(name)
    manifest = factories.make_manifest(base, [model], build_dir=base / "build")
    rendered = render_model(manifest, model)
    files = sorted(p.name for p in export_dir.iterdir())
    archive = pack(export_dir, files, base / "model.tar.gz", extra=archive_extras(model, rendered))
    model_dir = base / "opt" / "ml" / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(archive.path) as tar:
        tar.extractall(model_dir, filter="data")
    assert (model_dir / "code" / "inference.py").read_bytes() == rendered["code/inference.py"]
    return model_dir


def _container_env(model_dir: Path) -> dict[str, str]:
    """The environment SageMaker's PyTorch container gives TorchServe's worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "TS_"))}
    code_dir = str(model_dir / "code")
    env.update(
        SAGEMAKER_BASE_DIR=str(model_dir.parent),  # the container's /opt/ml
        SAGEMAKER_PROGRAM="inference.py",
        SAGEMAKER_SUBMIT_DIRECTORY=code_dir,
        SAGEMAKER_CONTAINER_LOG_LEVEL="20",
        # torchserve.py puts code/ first on PYTHONPATH; default-ts.properties has
        # decode_input_request=false, which the frontend hands the worker as this:
        PYTHONPATH=code_dir,
        TS_DECODE_INPUT_REQUEST="false",
    )
    return env


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("serving-exports")
    return {name: _build(name, base / name) for name in INPUTS}


@pytest.fixture(scope="module", params=sorted(HANDLER_SERVICES))
def service(request: pytest.FixtureRequest) -> str:
    return HANDLER_SERVICES[request.param]


def _worker(
    name: str, service: str, exports: dict[str, Path], factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    base = factory.mktemp(f"serve-{name}")
    model_dir = _container_layout(name, exports[name], base)
    with Worker(model_dir, service, _container_env(model_dir), base / "worker.log") as worker:
        yield worker


@pytest.fixture(scope="module")
def one(
    service: str, exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    yield from _worker("torch-one", service, exports, tmp_path_factory)


@pytest.fixture(scope="module")
def two(
    service: str, exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    yield from _worker("torch-two", service, exports, tmp_path_factory)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype == object)  # a pickle the handler refuses
    return buffer.getvalue()


def _reference(name: str, exports: dict[str, Path], *arrays: np.ndarray) -> list[np.ndarray]:
    """The exported TorchScript model's outputs, run here without any handler."""
    import torch

    path = next(p for p in exports[name].iterdir() if p.suffix in (".pt", ".pth"))
    model = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        out = model(*(torch.from_numpy(a) for a in arrays))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _client_error(response: Response, status: int, *words: str) -> None:
    text = response.body.decode(errors="replace")
    assert response.status == status, (response, text)
    for word in words:
        assert word in text, text


IMAGE = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)


def test_json_request_answers_like_the_model(one: Worker, exports: dict[str, Path]) -> None:
    response = one.invoke(json.dumps(IMAGE.tolist()).encode(), {"Content-Type": JSON})
    assert (response.status, response.content_type) == (200, JSON), response
    (expected,) = _reference("torch-one", exports, IMAGE)
    np.testing.assert_allclose(np.asarray(json.loads(response.body)), expected, rtol=1e-5)


def test_json_object_by_name_and_content_type_parameters(
    one: Worker, exports: dict[str, Path]
) -> None:
    body = json.dumps({"image": IMAGE.tolist()}).encode()
    for content_type in ("application/json; charset=utf-8", "Application/JSON ;charset=UTF-8"):
        response = one.invoke(body, {"Content-Type": content_type, "Accept": JSON})
        assert (response.status, response.content_type) == (200, JSON), response
        (expected,) = _reference("torch-one", exports, IMAGE)
        np.testing.assert_allclose(np.asarray(json.loads(response.body)), expected, rtol=1e-5)


def test_npy_request_and_npy_response(one: Worker, exports: dict[str, Path]) -> None:
    response = one.invoke(_npy(IMAGE), {"Content-Type": NPY, "Accept": NPY})
    assert (response.status, response.content_type) == (200, NPY), response
    (expected,) = _reference("torch-one", exports, IMAGE)
    answer = np.load(io.BytesIO(response.body), allow_pickle=False)
    np.testing.assert_allclose(answer, expected, rtol=1e-5)


def test_a_batch_of_two_is_taken(one: Worker) -> None:
    batch = np.concatenate([IMAGE, IMAGE])
    response = one.invoke(_npy(batch), {"Content-Type": NPY, "Accept": NPY})
    assert response.status == 200, response
    assert np.load(io.BytesIO(response.body)).shape == (2, 4)


ACCEPT = {
    "application/x-npy, application/json": NPY,
    "application/json, application/x-npy": JSON,
    "application/json;q=0.5, application/x-npy": NPY,
    "application/x-npy; q=0.9 , application/json; q=0.1": NPY,
    "application/x-npy;q=0, */*": JSON,
    "text/html, application/*;q=0.8": JSON,
    "text/html,application/x-npy;version=1": NPY,
    "*/*": JSON,
    "*/*;q=0.1, application/x-npy": NPY,
    "": JSON,
}


@pytest.mark.parametrize("accept", sorted(ACCEPT))
def test_accept_header_picks_the_response_type(one: Worker, accept: str) -> None:
    headers = {"Content-Type": JSON}
    if accept:
        headers["Accept"] = accept
    response = one.invoke(json.dumps(IMAGE.tolist()).encode(), headers)
    assert (response.status, response.content_type) == (200, ACCEPT[accept]), response
    if response.content_type == NPY:
        assert np.load(io.BytesIO(response.body)).shape == (1, 4)
    else:
        assert np.asarray(json.loads(response.body)).shape == (1, 4)


@pytest.mark.parametrize("accept", ["text/csv", "application/x-npy;q=0, application/json;q=0"])
def test_an_accept_header_the_handler_cannot_meet_is_406(one: Worker, accept: str) -> None:
    response = one.invoke(
        json.dumps(IMAGE.tolist()).encode(), {"Content-Type": JSON, "Accept": accept}
    )
    _client_error(response, 406, "cannot answer in", "application/json or application/x-npy")


def test_two_inputs_by_name_in_any_key_order(two: Worker, exports: dict[str, Path]) -> None:
    rng = np.random.default_rng(1)
    a = rng.random((1, 4), dtype=np.float32)
    b = rng.random((1, 2, 3), dtype=np.float32)
    body = json.dumps({"b": b.tolist(), "a": a.tolist()}).encode()
    response = two.invoke(body, {"Content-Type": JSON, "Accept": "*/*"})
    assert (response.status, response.content_type) == (200, JSON), response
    first, second = json.loads(response.body)
    expected = _reference("torch-two", exports, a, b)
    np.testing.assert_allclose(np.asarray(first), expected[0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(second), expected[1], rtol=1e-5)
    # Two outputs have no .npy form: asking only for it is refused, not a 500.
    response = two.invoke(body, {"Content-Type": JSON, "Accept": NPY})
    _client_error(response, 406, "application/json")


GOOD_TWO = {"a": np.zeros((1, 4)).tolist(), "b": np.zeros((1, 2, 3)).tolist()}
BAD_TWO = {
    "npy-for-two-inputs": (_npy(np.zeros((1, 4), np.float32)), NPY, 415, "carries one array"),
    "wrong-shape": (
        json.dumps({"a": np.zeros((1, 5)).tolist(), "b": GOOD_TWO["b"]}).encode(),
        JSON,
        400,
        "input 'a' has shape [1, 5]; expected [1, 4]",
    ),
    "wrong-rank": (
        json.dumps({"a": GOOD_TWO["a"], "b": np.zeros((2, 3)).tolist()}).encode(),
        JSON,
        400,
        "input 'b' has shape [2, 3]",
    ),
    "bad-json": (b'{"a": [[0, 0, 0, 0]], "b": ', JSON, 400, "not valid JSON"),
    # With a bare "application/json" the toolkit decodes the body itself, before the
    # handler runs: see test_the_toolkit_decodes_bare_json_itself.
    "not-utf8": (b"\xff\xfe[1]", JSON + "; charset=utf-8", 400, "not UTF-8"),
    "missing-input": (json.dumps({"a": GOOD_TWO["a"]}).encode(), JSON, 400, "missing ['b']"),
    "unknown-input": (
        json.dumps({**GOOD_TWO, "c": [1]}).encode(),
        JSON,
        400,
        "unknown ['c']",
    ),
    "list-for-two-inputs": (json.dumps([[0, 0, 0, 0]]).encode(), JSON, 400, "has 2 inputs"),
    "ragged": (
        json.dumps({"a": [[0, 0], [0]], "b": GOOD_TWO["b"]}).encode(),
        JSON,
        400,
        "not a numeric array",
    ),
    "strings": (
        json.dumps({"a": [["x", "y", "z", "w"]], "b": GOOD_TWO["b"]}).encode(),
        JSON,
        400,
        "not a numeric array",
    ),
    "unsupported-type": (b"1,2,3,4", "text/csv", 415, "unsupported content type 'text/csv'"),
}


@pytest.mark.parametrize("case", sorted(BAD_TWO))
def test_a_body_the_model_cannot_take_is_a_client_error(two: Worker, case: str) -> None:
    body, content_type, status, words = BAD_TWO[case]
    response = two.invoke(body, {"Content-Type": content_type})
    _client_error(response, status, words)
    assert words in response.phrase, response.phrase  # the HTTP reason phrase says it too
    # The worker is still serving afterwards.
    ok = two.invoke(json.dumps(GOOD_TWO).encode(), {"Content-Type": JSON})
    assert ok.status == 200, ok


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (_npy(np.zeros((1, 3, 9, 8), np.float32)), 400, "input 'image' has shape [1, 3, 9, 8]"),
        (b"not an npy file", 400, "not a .npy array"),
        (_npy(np.array([{"x": 1}], dtype=object)), 400, "not a .npy array"),
    ],
)
def test_a_bad_npy_body_is_a_client_error(
    one: Worker, body: bytes, status: int, words: str
) -> None:
    _client_error(one.invoke(body, {"Content-Type": NPY}), status, words)


def test_the_toolkit_decodes_bare_json_itself(two: Worker) -> None:
    """A known limit, outside the handler: Transformer.transform decodes a body sent as
    exactly ``application/json`` (or ``text/csv``) as UTF-8 before calling input_fn, so
    bytes that are not UTF-8 get the toolkit's 500. If this starts failing, the toolkit
    has changed: make the case above a bare ``application/json`` one."""
    response = two.invoke(b"\xff\xfe[1]", {"Content-Type": JSON})
    assert response.status == 500 and "codec can't decode" in response.phrase, response


# --------------------------------------------------------- Accept parsing without toolkit


HEADERS = [
    "application/json",
    "application/json, application/x-npy",
    " application/json ; q=0.5 ,application/x-npy",
    "*/*",
    "text/*;q=0.3, text/html;q=0.7, text/html;level=1, */*;q=0.5",
    "",
    ",,",
    "application/x-npy;q=0",
]


def _load_handler(path: Path, name: str, *, toolkit: bool) -> ModuleType:
    """Import a rendered handler, with or without the toolkit importable."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if toolkit:
        spec.loader.exec_module(module)
        return module
    hidden = ("sagemaker_inference", "sagemaker_inference.errors", "sagemaker_inference.utils")
    saved = {key: sys.modules.pop(key) for key in hidden if key in sys.modules}
    for key in hidden:
        sys.modules[key] = None  # type: ignore[assignment]  # importing it raises ImportError
    try:
        spec.loader.exec_module(module)
    finally:
        for key in hidden:
            del sys.modules[key]
        sys.modules.update(saved)
    return module


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    base = tmp_path_factory.mktemp("handler")
    model = _model("torch-one")
    manifest = factories.make_manifest(base, [model], build_dir=base / "b")
    path = base / "inference.py"
    path.write_bytes(render_model(manifest, model)["code/inference.py"])
    return (
        _load_handler(path, "inference_toolkit", toolkit=True),
        _load_handler(path, "inference_stdlib", toolkit=False),
    )


def test_the_stdlib_fallback_splits_accept_like_the_toolkit(
    handlers: tuple[ModuleType, ModuleType],
) -> None:
    from sagemaker_inference import utils

    with_toolkit, without = handlers
    assert with_toolkit.parse_accept is utils.parse_accept
    assert without.parse_accept is not utils.parse_accept
    for header in HEADERS + list(ACCEPT):
        assert without.parse_accept(header) == utils.parse_accept(header), header
        for offered in ((JSON, NPY), (JSON,)):
            outcomes = []
            for module in handlers:
                try:
                    outcomes.append(module._accepted(header, offered))
                except module.ClientError as exc:
                    outcomes.append(exc.status_code)
            assert outcomes[0] == outcomes[1], (header, offered, outcomes)


def test_client_errors_carry_a_4xx_status_with_or_without_the_toolkit(
    handlers: tuple[ModuleType, ModuleType],
) -> None:
    from sagemaker_inference.errors import BaseInferenceToolkitError

    with_toolkit, without = handlers
    for module, toolkit_error in ((with_toolkit, True), (without, False)):
        with pytest.raises(module.ClientError) as info:
            module.input_fn(b"[[1, 2]]", "application/json")
        error = info.value
        assert isinstance(error, ValueError)
        assert isinstance(error, BaseInferenceToolkitError) is toolkit_error
        assert error.status_code == 400
        assert str(error) == error.message == error.phrase
        assert "input 'image' has shape [1, 2]; expected [1, 3, 8, 8]" in str(error)
        with pytest.raises(module.ClientError) as info:
            module.input_fn(b"1,2", "text/csv")
        assert info.value.status_code == 415


# ------------------------------------- the TF Serving and DLR hooks: same rules, no stack


def _rendered(tmp_path: Path, framework: str, inputs: Inputs, name: str) -> ModuleType:
    model = factories.make_model(name, framework=framework, export="export.py", inputs=inputs)
    manifest = factories.make_manifest(tmp_path, [model], build_dir=tmp_path / "b")
    path = tmp_path / f"{name}.py"
    path.write_bytes(render_model(manifest, model)["code/inference.py"])
    return _load_handler(path, name, toolkit=False)


def test_tensorflow_hooks_follow_the_same_rules(tmp_path: Path) -> None:
    from types import SimpleNamespace

    inputs = Inputs("dict", (InputSpec("image", (1, 4, 4, 3)), InputSpec("mask", (1, 4))))
    handler = _rendered(tmp_path, "tensorflow", inputs, "tf_hooks")
    body = json.dumps({"mask": [[0] * 4], "image": np.zeros((2, 4, 4, 3)).tolist()})
    context = SimpleNamespace(request_content_type="application/json; charset=utf-8")
    sent = json.loads(handler.input_handler(io.BytesIO(body.encode()), context))
    assert list(sent["inputs"]) == ["image", "mask"]
    assert np.asarray(sent["inputs"]["image"]).shape == (2, 4, 4, 3)
    for bad, content_type, status in [
        (_npy(np.zeros((1, 4), np.float32)), NPY, 415),
        (b'{"image": [[1]], "mask": [[0, 0, 0, 0]]}', JSON, 400),
        (b"{", JSON, 400),
        (b"x", "text/plain", 415),
    ]:
        context = SimpleNamespace(request_content_type=content_type)
        with pytest.raises(handler.ClientError) as info:
            handler.input_handler(io.BytesIO(bad), context)
        assert info.value.status_code == status, info.value
    answer = SimpleNamespace(status_code=200, content=b'{"outputs": [[1.0, 2.0]]}')
    body, media = handler.output_handler(answer, SimpleNamespace(accept_header="*/*;q=0.1, " + NPY))
    assert media == NPY and np.load(io.BytesIO(body)).tolist() == [[1.0, 2.0]]
    several = SimpleNamespace(status_code=200, content=b'{"outputs": {"a": [1], "b": [2]}}')
    assert handler.output_handler(several, SimpleNamespace(accept_header=None))[1] == JSON
    with pytest.raises(handler.ClientError) as info:
        handler.output_handler(several, SimpleNamespace(accept_header=NPY))
    assert info.value.status_code == 406


def test_dlr_hooks_follow_the_same_rules(tmp_path: Path) -> None:
    two = _rendered(
        tmp_path,
        "onnx",
        Inputs("dict", (InputSpec("b", (1, 3)), InputSpec("a", (1, 2)))),
        "dlr_two",
    )
    arrays = two.neo_preprocess(b'{"a": [[1, 2]], "b": [[1, 2, 3]]}', "Application/JSON; x=1")
    assert list(arrays) == ["b", "a"] and arrays["a"].dtype == np.float32
    with pytest.raises(two.ClientError, match="carries one array") as info:
        two.neo_preprocess(_npy(np.zeros((1, 3), np.float32)), NPY)
    assert info.value.status_code == 415
    with pytest.raises(two.ClientError, match=r"input 'b' has shape \[1, 2\]") as info:
        two.neo_preprocess(b'{"a": [[1, 2]], "b": [[1, 2]]}', JSON)
    assert info.value.status_code == 400
    rows = _rendered(tmp_path, "xgboost", Inputs("none"), "dlr_rows")
    assert rows.neo_preprocess(b"1,2\n3,4\n", "text/csv; charset=utf-8").shape == (2, 2)
    for bad, content_type, status in [
        (b"1,x\n", "text/csv", 400),
        (b'{"f": [1]}', JSON, 400),
        (b"[[[1]]]", JSON, 400),
        (b"\x00", "image/png", 415),
    ]:
        with pytest.raises(rows.ClientError) as info:
            rows.neo_preprocess(bad, content_type)
        assert info.value.status_code == status, info.value
