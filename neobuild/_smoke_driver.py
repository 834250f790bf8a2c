"""neobuild's smoke-test driver: run a rendered inference handler on an exported model.

Run by path in the model's export environment: ``python _smoke_driver.py CONFIG.json``. It uses
only the standard library at import time (the export environment need not have neobuild);
numpy and the framework are imported when needed. It writes ``{"ok": bool, "step": ...,
"traceback": ...}`` to the result file named in the config and exits 0 or 1.

What stands in for what (also in docs/templates.md):

* PyTorch/MXNet hosting handlers: SageMaker's container is the driver itself, calling
  ``model_fn`` -> ``input_fn`` -> ``predict_fn`` -> ``output_fn`` like the container
  does, with JSON and (for one input) ``application/x-npy`` payloads of zeros. The
  handler loads the *uncompiled* export with the framework itself.
* TensorFlow Serving handlers: ``input_handler`` -> a stand-in for TF Serving's REST
  predict API (the SavedModel's ``serving_default`` signature, called through
  ``tf.saved_model.load``) -> ``output_handler``. This checks the handler's request and
  response formats against the model's real signature, not TF Serving itself.
* DLR handlers (ONNX, Keras, XGBoost, TFLite, and ``ml_inf1``): ``neo_preprocess`` ->
  the framework's own runtime in place of the compiled model (onnxruntime, xgboost,
  keras, ai_edge_litert/tf.lite, torch.jit, the SavedModel) -> ``neo_postprocess``.
  Keras takes NCHW (the layout Neo compiles for) in the request; the stand-in feeds the
  channels-last ``.h5`` model the transposed array, as the compiled model would not need.
"""

# ruff: noqa: B905 - runs in any export interpreter (zip(strict=) needs 3.10)
import importlib.util
import io
import json
import os
import sys
import traceback
import types

JSON = "application/json"
NPY = "application/x-npy"


def _zeros(shape):
    if not shape:
        return 0.0
    return [_zeros(shape[1:]) for _ in range(shape[0])]


def _one(kinds, model_dir):
    found = sorted(
        p
        for p in os.listdir(model_dir)
        if p.endswith(kinds) and os.path.isfile(os.path.join(model_dir, p))
    )
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected one {'/'.join(kinds)} file in {model_dir}, found {found!r}"
        )
    return os.path.join(model_dir, found[0])


def load_handler(path):
    spec = importlib.util.spec_from_file_location("inference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- runtimes


class Runtime:
    """The framework's own runtime standing in for the compiled model (DLR's ``run``)."""

    n_features = None

    def __init__(self, model_dir, names, shapes):
        self.model_dir = model_dir
        self.names = names
        self.shapes = shapes

    def ordered(self, inputs):
        """DLR inputs (one array or a dict) as a list in declaration order."""
        if isinstance(inputs, dict):
            missing = [n for n in self.names if n not in inputs]
            if missing:
                raise KeyError(f"neo_preprocess returned no array for inputs {missing!r}")
            return [inputs[n] for n in self.names]
        return [inputs]


class OnnxRuntime(Runtime):
    def __init__(self, *args):
        super().__init__(*args)
        import onnxruntime

        path = _one((".onnx",), self.model_dir)
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(self, inputs):
        model_inputs = [i.name for i in self.session.get_inputs()]
        declared = sorted(set(self.names) - set(model_inputs))
        if declared:  # Neo matches DataInputConfig's names against the graph's inputs
            raise KeyError(
                f"declared inputs {declared!r} are not inputs of the ONNX model {model_inputs!r}"
            )
        feed = dict(inputs) if isinstance(inputs, dict) else {model_inputs[0]: inputs}
        unknown = sorted(set(feed) - set(model_inputs))
        if unknown:
            raise KeyError(f"inputs {unknown!r} are not inputs of the ONNX model {model_inputs!r}")
        return self.session.run(None, feed)


class XGBoostRuntime(Runtime):
    def __init__(self, *args):
        super().__init__(*args)
        import xgboost

        self.xgboost = xgboost
        path = _one((".model", ".json", ".ubj", ".bst", ".bin"), self.model_dir)
        self.booster = xgboost.Booster()
        self.booster.load_model(path)
        self.n_features = self.booster.num_features()

    def run(self, inputs):
        (array,) = self.ordered(inputs)
        return [self.booster.predict(self.xgboost.DMatrix(array))]


class KerasRuntime(Runtime):
    def __init__(self, *args):
        super().__init__(*args)
        import keras

        path = _one((".h5", ".keras"), self.model_dir)
        self.model = keras.models.load_model(path, compile=False)

    def run(self, inputs):
        import numpy as np

        arrays = self.ordered(inputs)
        fed = []
        for array, model_input in zip(arrays, self.model.inputs):
            expected = tuple(model_input.shape[1:])
            if array.ndim == 4 and tuple(array.shape[1:]) != expected:
                array = np.transpose(array, (0, 2, 3, 1))  # NCHW request -> NHWC .h5 model
            fed.append(array)
        outputs = self.model.predict(fed if len(fed) > 1 else fed[0], verbose=0)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


class TFLiteRuntime(Runtime):
    def __init__(self, *args):
        super().__init__(*args)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf  # noqa: TID251

            Interpreter = tf.lite.Interpreter
        self.interpreter = Interpreter(model_path=_one((".tflite",), self.model_dir))
        self.interpreter.allocate_tensors()

    def run(self, inputs):
        details = self.interpreter.get_input_details()
        arrays = self.ordered(inputs)
        if len(arrays) != len(details):
            raise ValueError(
                f"the TFLite model has {len(details)} inputs, the request {len(arrays)}"
            )
        by_name = {d["name"]: d for d in details}
        for i, (name, array) in enumerate(zip(self.names or [None], arrays)):
            detail = by_name.get(name, details[i])
            self.interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
        self.interpreter.invoke()
        return [
            self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()
        ]


class TorchRuntime(Runtime):
    def __init__(self, *args):
        super().__init__(*args)
        import torch  # noqa: TID251

        self.torch = torch
        self.model = torch.jit.load(
            _one((".pt", ".pth"), self.model_dir), map_location="cpu"
        ).eval()

    def run(self, inputs):
        with self.torch.no_grad():
            out = self.model(*[self.torch.from_numpy(a) for a in self.ordered(inputs)])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.numpy() for o in outs]


def _saved_model_dir(model_dir):
    """The directory holding saved_model.pb/.pbtxt: the root, or one subdirectory."""
    found = sorted(
        root
        for root, dirs, files in os.walk(model_dir, followlinks=True)
        if "saved_model.pb" in files or "saved_model.pbtxt" in files
    )
    if len(found) != 1:
        raise FileNotFoundError(f"expected one saved_model.pb in {model_dir}, found {found!r}")
    return found[0]


class SavedModelRuntime(Runtime):
    """The SavedModel's ``serving_default`` signature (a stand-in for TF Serving or DLR)."""

    def __init__(self, *args):
        super().__init__(*args)
        import tensorflow as tf  # noqa: TID251

        self.tf = tf
        self.loaded = tf.saved_model.load(_saved_model_dir(self.model_dir))
        if "serving_default" not in self.loaded.signatures:
            raise KeyError(
                f"the SavedModel has no serving_default signature (has {list(self.loaded.signatures)!r})"
            )
        self.signature = self.loaded.signatures["serving_default"]
        self.specs = self.signature.structured_input_signature[1]

    def call(self, named):
        """Call the signature with name -> array (a sole input may go by any name)."""
        if set(named) != set(self.specs):
            if len(named) == 1 and len(self.specs) == 1:
                named = {next(iter(self.specs)): next(iter(named.values()))}
            else:
                raise KeyError(
                    f"inputs {sorted(named)!r} do not match the signature's inputs {sorted(self.specs)!r}"
                )
        feed = {k: self.tf.constant(v, dtype=self.specs[k].dtype) for k, v in named.items()}
        return {k: v.numpy() for k, v in self.signature(**feed).items()}

    def run(self, inputs):
        named = dict(inputs) if isinstance(inputs, dict) else {(self.names or ["input"])[0]: inputs}
        outputs = self.call(named)
        return [outputs[k] for k in sorted(outputs)]


class MXNetRuntime(Runtime):
    def __init__(self, *args):
        super().__init__(*args)
        import mxnet as mx

        self.mx = mx
        symbol = _one(("-symbol.json",), self.model_dir)
        params = _one((".params",), self.model_dir)
        self.model = mx.gluon.nn.SymbolBlock.imports(symbol, list(self.names), params, ctx=mx.cpu())

    def run(self, inputs):
        out = self.model(*[self.mx.nd.array(a) for a in self.ordered(inputs)])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.asnumpy() for o in outs]


RUNTIMES = {
    "onnx": OnnxRuntime,
    "xgboost": XGBoostRuntime,
    "keras": KerasRuntime,
    "tflite": TFLiteRuntime,
    "pytorch": TorchRuntime,
    "tensorflow": SavedModelRuntime,
    "mxnet": MXNetRuntime,
}


# ----------------------------------------------------------------------------- families


def _payload(names, shapes, n_features):
    if not names:
        if not n_features:
            raise ValueError(
                "the model declares no inputs and the runtime reports no feature count"
            )
        return [_zeros([n_features])]
    if len(names) == 1:
        return _zeros(shapes[0])
    return {name: _zeros(shape) for name, shape in zip(names, shapes)}


def _body(value, step):
    """A handler's response: str/bytes, or a (body, content type) pair."""
    if isinstance(value, tuple) and len(value) == 2:
        value = value[0]
    if not isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"{step} returned {type(value).__name__}; a response body is str or bytes")
    return value


def run_hosting(handler, config, state):
    import numpy as np

    names, shapes = config["names"], config["shapes"]
    state["step"] = "model_fn"
    model = handler.model_fn(config["model_dir"])
    payload = json.dumps(_payload(names, shapes, None))
    state["step"] = "input_fn"
    data = handler.input_fn(payload, JSON)
    state["step"] = "predict_fn"
    prediction = handler.predict_fn(data, model)
    state["step"] = "output_fn"
    json.loads(_body(handler.output_fn(prediction, JSON), "output_fn"))
    if len(names) == 1:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(shapes[0], dtype=config["dtype"]), allow_pickle=False)
        state["step"] = "input_fn (application/x-npy)"
        data = handler.input_fn(buffer.getvalue(), NPY)
        state["step"] = "predict_fn (application/x-npy)"
        prediction = handler.predict_fn(data, model)
        state["step"] = "output_fn (application/x-npy)"
        np.load(
            io.BytesIO(_body(handler.output_fn(prediction, NPY), "output_fn")), allow_pickle=False
        )


def run_tensorflow(handler, config, state):
    names, shapes = config["names"], config["shapes"]
    state["step"] = "loading the SavedModel (stand-in for TF Serving)"
    runtime = SavedModelRuntime(config["model_dir"], names, shapes)
    context = types.SimpleNamespace(
        model_name=config["model"],
        model_version="1",
        method="predict",
        rest_uri=f"http://localhost:8501/v1/models/{config['model']}:predict",
        grpc_uri="localhost:8500",
        custom_attributes=None,
        request_content_type=JSON,
        accept_header=JSON,
        content_length=0,
    )
    payload = json.dumps(_payload(names, shapes, None)).encode()
    context.content_length = len(payload)
    state["step"] = "input_handler"
    request = handler.input_handler(io.BytesIO(payload), context)
    state["step"] = "TF Serving stand-in (serving_default)"
    body = json.loads(request)
    import numpy as np

    if "inputs" in body:
        named = body["inputs"] if isinstance(body["inputs"], dict) else {names[0]: body["inputs"]}
        outputs = runtime.call({k: np.asarray(v) for k, v in named.items()})
        key = "outputs"
    elif "instances" in body:
        rows = body["instances"]
        if rows and isinstance(rows[0], dict):
            named = {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
        else:
            named = {names[0]: np.asarray(rows)}
        outputs = runtime.call(named)
        key = "predictions"
    else:
        raise ValueError(
            f"input_handler must return a TF Serving body with 'inputs' or 'instances': {request[:200]}"
        )
    values = {k: v.tolist() for k, v in outputs.items()}
    answer = values[next(iter(values))] if len(values) == 1 else values
    content = json.dumps({key: answer}).encode()
    response = types.SimpleNamespace(
        status_code=200, content=content, text=content.decode(), headers={}
    )
    state["step"] = "output_handler"
    _body(handler.output_handler(response, context), "output_handler")


def run_dlr(handler, config, state):
    names, shapes = config["names"], config["shapes"]
    framework = config["framework"]
    state["step"] = f"loading the model with {framework}'s runtime (stand-in for DLR)"
    runtime = RUNTIMES[framework](config["model_dir"], names, shapes)
    payload = json.dumps(_payload(names, shapes, runtime.n_features)).encode()
    state["step"] = "neo_preprocess"
    inputs = handler.neo_preprocess(payload, JSON)
    state["step"] = f"{framework} runtime (stand-in for DLR)"
    outputs = runtime.run(inputs)
    state["step"] = "neo_postprocess"
    _body(handler.neo_postprocess(outputs), "neo_postprocess")


FAMILIES = {"hosting": run_hosting, "tensorflow": run_tensorflow, "dlr": run_dlr}


def main(argv):
    # This script's own directory (neobuild/) must not shadow the frameworks' modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    with open(argv[1], encoding="utf-8") as f:
        config = json.load(f)
    state = {"step": "importing the handler"}
    result = {"ok": False, "handler": config["handler"]}
    try:
        sys.path.insert(0, os.path.dirname(config["handler"]))
        handler = load_handler(config["handler"])
        FAMILIES[config["family"]](handler, config, state)
        result["ok"] = True
    except BaseException:  # the handler's failure, whatever it is, is the result
        result["traceback"] = traceback.format_exc()
        sys.stderr.write(result["traceback"])
    result["step"] = state["step"]
    with open(config["result"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
