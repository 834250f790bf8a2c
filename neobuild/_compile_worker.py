"""The compile check's worker: run by path, ``python _compile_worker.py STEP CONFIG.json``.

Two steps, each in its own process (started by ``neobuild/compilecheck.py`` through
``neobuild.scripts.run_script``):

``reference``  runs in the model's export environment, where its framework is: makes the
               check's input (seeded random numbers of the declared shapes), runs the
               framework's own runtime on it (onnxruntime, the TFLite interpreter, the
               TorchScript module, xgboost) and saves both; for PyTorch it also converts the
               TorchScript module to ONNX with ``torch.onnx.export(..., dynamo=False)``.
``compile``    runs in neobuild's own environment (the ``neobuild[tvm]`` extra): compiles
               the model for the host CPU with Apache TVM (ONNX, TFLite: Relax frontends,
               ``target="llvm"``) or Treelite + TL2cgen (XGBoost: a C shared library built
               with the host's C compiler), runs it on the same input and saves the outputs.

Both write ``result.json`` in the work directory: ``{"ok": true, ...}`` or
``{"ok": false, "kind": ..., "message": ..., "traceback": ...}``. Only the standard
library and numpy are imported at module level: the frameworks are imported inside the
functions that need them. neobuild compares the outputs itself.
"""

import json
import os
import sys
import time
import traceback


def _write(work, data):
    path = os.path.join(work, "result.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    os.replace(tmp, path)


#: The phase a failure happened in: "setup" (imports, reading inputs) is the machine's
#: problem, "convert"/"compile"/"run" are the compiler's.
STAGE = ["setup"]


class Missing(Exception):
    """A package this step needs is not importable here."""


def _import(name, pip_name=None):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Missing(f"{pip_name or name} is not importable ({exc})") from exc


def _one(model_dir, suffixes):
    found = sorted(
        f for f in os.listdir(model_dir) if f.lower().endswith(suffixes) and not f.startswith(".")
    )
    if not found:
        raise FileNotFoundError(f"no {'/'.join(suffixes)} file in {model_dir}")
    return os.path.join(model_dir, found[0])


def _xgboost_file(model_dir):
    for suffixes in ((".json",), (".ubj",), (".model", ".bin")):
        try:
            return _one(model_dir, suffixes)
        except FileNotFoundError:
            pass
    files = sorted(
        f
        for f in os.listdir(model_dir)
        if os.path.isfile(os.path.join(model_dir, f)) and "." not in f
    )
    if not files:
        raise FileNotFoundError(f"no XGBoost model file in {model_dir}")
    return os.path.join(model_dir, files[0])


def _random(np, shape, dtype, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.random(size=shape).astype(dtype)
    if dtype.kind == "b":
        return np.zeros(shape, dtype=dtype)
    return np.zeros(shape, dtype=dtype)  # integer inputs (ids, indices): zeros stay in range


# --------------------------------------------------------------------------- reference


def reference(config, work):
    np = _import("numpy")
    rng = np.random.default_rng(config["seed"])
    framework = config["framework"]
    model_dir = config["model_dir"]
    names, shapes = config["names"], [tuple(s) for s in config["shapes"]]
    inputs, outputs = {}, []
    info = {}
    if framework == "onnx":
        ort = _import("onnxruntime")
        path = _one(model_dir, (".onnx",))
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        types = {i.name: i.type for i in session.get_inputs()}
        kinds = {
            "tensor(float)": "float32",
            "tensor(double)": "float64",
            "tensor(float16)": "float16",
            "tensor(int64)": "int64",
            "tensor(int32)": "int32",
            "tensor(bool)": "bool",
        }
        for name, shape in zip(names, shapes, strict=True):
            inputs[name] = _random(np, shape, kinds.get(types.get(name, ""), "float32"), rng)
        fed = {k: v for k, v in inputs.items() if k in types}
        outputs = session.run(None, fed)
        info["onnx"] = path
    elif framework == "tflite":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            try:
                tf = _import("tensorflow", "ai-edge-litert or tensorflow")
            except Missing:
                raise
            Interpreter = tf.lite.Interpreter
        path = _one(model_dir, (".tflite",))
        interpreter = Interpreter(model_path=path)
        details = interpreter.get_input_details()
        by_name = {d["name"]: d for d in details}
        order = names if all(n in by_name for n in names) else [d["name"] for d in details]
        for name, shape in zip(order, shapes, strict=False):
            detail = by_name[name]
            if tuple(detail["shape"]) != shape:
                interpreter.resize_tensor_input(detail["index"], shape)
        interpreter.allocate_tensors()
        for name, shape in zip(order, shapes, strict=False):
            array = _random(np, shape, by_name[name]["dtype"], rng)
            inputs[name] = array
            interpreter.set_tensor(by_name[name]["index"], array)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        info["tflite"] = path
    elif framework == "pytorch":
        torch = _import("torch")
        path = _one(model_dir, (".pt", ".pth"))
        module = torch.jit.load(path, map_location="cpu").eval()
        tensors = []
        for name, shape in zip(names, shapes, strict=True):
            inputs[name] = _random(np, shape, "float32", rng)
            tensors.append(torch.from_numpy(inputs[name]))
        with torch.no_grad():
            result = module(*tensors)
        outputs = [t.detach().cpu().numpy() for t in _flatten(torch, result)]
        onnx_path = os.path.join(work, "converted.onnx")
        started = time.monotonic()
        # dynamo=False: the TorchScript exporter takes a ScriptModule; the dynamo exporter
        # cannot trace one. One self-contained file, the declared names.
        torch.onnx.export(
            module,
            tuple(tensors),
            onnx_path,
            input_names=list(names),
            dynamo=False,
            opset_version=17,
        )
        info["onnx"] = onnx_path
        info["convert_seconds"] = round(time.monotonic() - started, 3)
    elif framework == "xgboost":
        xgboost = _import("xgboost")
        path = _xgboost_file(model_dir)
        booster = xgboost.Booster()
        booster.load_model(path)
        features = booster.num_features()
        inputs["data"] = rng.random(size=(config["rows"], features)).astype("float32")
        outputs = [np.asarray(booster.predict(xgboost.DMatrix(inputs["data"])))]
        info["xgboost"] = path
    else:
        raise ValueError(f"no reference runtime for framework {framework}")
    np.savez(os.path.join(work, "inputs.npz"), **inputs)
    np.savez(os.path.join(work, "reference.npz"), *[np.asarray(o) for o in outputs])
    info["input_names"] = list(inputs)
    return info


def _flatten(torch, value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _flatten(torch, value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(torch, v)]
    return []


# --------------------------------------------------------------------------- compile


def _limit_memory(limit_mb):
    if not limit_mb:
        return
    import resource

    limit = int(limit_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _block_torch():
    """tvm_ffi imports torch when it can (~6 s, ~200 MB); the compile step never needs it."""
    sys.modules.setdefault("torch", None)  # `import torch` now raises ImportError


def probe(config, work):
    """Import what the compile step of these frameworks needs; ``missing`` when one fails."""
    _block_torch()
    wanted = ["numpy"]
    for framework in config["frameworks"]:
        if framework in ("onnx", "pytorch"):
            wanted += ["tvm", "tvm.relax.frontend.onnx", "onnx"]
        elif framework == "tflite":
            wanted += ["tvm", "tvm.relax.frontend.tflite", "tflite"]
        elif framework == "xgboost":
            wanted += ["treelite", "tl2cgen"]
    versions = {}
    for name in dict.fromkeys(wanted):
        module = _import(name, "apache-tvm" if name.startswith("tvm") else name)
        if "." not in name:
            versions[name] = str(getattr(module, "__version__", ""))
    return {"versions": versions}


def compile_step(config, work):
    _block_torch()
    _limit_memory(config.get("memory_mb"))
    np = _import("numpy")
    framework = config["framework"]
    with np.load(os.path.join(work, "inputs.npz")) as data:
        inputs = {k: data[k] for k in data.files}
    order = config["input_order"] or list(inputs)
    timings = {}
    if framework == "xgboost":
        outputs, info = _compile_xgboost(np, config, work, inputs, timings)
    else:
        outputs, info = _compile_tvm(np, config, work, inputs, order, timings)
    np.savez(os.path.join(work, "compiled.npz"), *outputs)
    info["timings"] = timings
    return info


def _compile_tvm(np, config, work, inputs, order, timings):
    tvm = _import("tvm", "apache-tvm")
    from tvm import relax

    started = time.monotonic()
    if config["source"] == "tflite":
        tflite = _import("tflite")
        from tvm.relax.frontend.tflite import from_tflite

        with open(config["model_path"], "rb") as stream:
            buf = stream.read()
        model = tflite.Model.GetRootAsModel(buf, 0)
        STAGE[0] = "convert"
        mod = from_tflite(
            model,
            shape_dict={k: list(inputs[k].shape) for k in order},
            dtype_dict={k: str(inputs[k].dtype) for k in order},
        )
    else:
        onnx = _import("onnx")
        from tvm.relax.frontend.onnx import from_onnx

        model = onnx.load(config["model_path"])
        graph_inputs = [i.name for i in model.graph.input]
        initializers = {i.name for i in model.graph.initializer}
        order = [n for n in graph_inputs if n not in initializers and n in inputs]
        STAGE[0] = "convert"
        mod = from_onnx(
            model,
            shape_dict={k: list(inputs[k].shape) for k in order},
            dtype_dict={k: str(inputs[k].dtype) for k in order},
        )
    timings["import"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    STAGE[0] = "compile"
    mod = relax.transform.DecomposeOpsForInference()(mod)
    executable = tvm.compile(mod, target="llvm")
    timings["compile"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    STAGE[0] = "run"
    vm = relax.VirtualMachine(executable, tvm.cpu())
    args = [tvm.runtime.tensor(inputs[k]) for k in order]
    result = vm["main"](*args)
    outputs = [np.asarray(t.numpy()) for t in _tvm_flatten(tvm, result)]
    timings["run"] = round(time.monotonic() - started, 3)
    return outputs, {"compiler": f"apache-tvm {tvm.__version__}", "target": "llvm"}


def _tvm_flatten(tvm, value):
    if hasattr(value, "numpy"):
        return [value]
    try:
        items = list(value)
    except TypeError:
        return []
    return [t for v in items for t in _tvm_flatten(tvm, v)]


def _compile_xgboost(np, config, work, inputs, timings):
    treelite = _import("treelite")
    tl2cgen = _import("tl2cgen")
    started = time.monotonic()
    path = config["model_path"]
    suffix = os.path.splitext(path)[1].lower()
    format_choice = "json" if suffix == ".json" else "ubjson" if suffix == ".ubj" else "use_suffix"
    if format_choice == "use_suffix":
        format_choice = _sniff_xgboost(path)
    STAGE[0] = "convert"
    model = treelite.frontend.load_xgboost_model(path, format_choice=format_choice)
    timings["import"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    STAGE[0] = "compile"
    libpath = os.path.join(work, "predictor.so")
    tl2cgen.export_lib(model, toolchain="gcc", libpath=libpath, params={"parallel_comp": 8})
    timings["compile"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    STAGE[0] = "run"
    predictor = tl2cgen.Predictor(libpath, nthread=1)
    raw = predictor.predict(tl2cgen.DMatrix(inputs["data"]))
    timings["run"] = round(time.monotonic() - started, 3)
    out = np.asarray(raw)
    versions = f"treelite {treelite.__version__}, tl2cgen {tl2cgen.__version__}"
    return [out], {"compiler": versions, "target": "gcc"}


def _sniff_xgboost(path):
    with open(path, "rb") as stream:
        head = stream.read(1)
    if head == b"{":
        return "json"
    if head == b"b":  # the legacy binary format starts with 'binf'
        return "legacy_binary"
    return "ubjson"


# --------------------------------------------------------------------------- main


def main(argv):
    step, config_path = argv[1], argv[2]
    # This script's own directory (neobuild/) must not shadow the frameworks' modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    with open(config_path, encoding="utf-8") as stream:
        config = json.load(stream)
    work = config["work"]
    started = time.monotonic()
    try:
        steps = {"reference": reference, "compile": compile_step, "probe": probe}
        info = steps[step](config, work)
    except (Missing, ImportError) as exc:
        _write(work, {"ok": False, "kind": "missing", "message": str(exc)})
        return 0
    except BaseException as exc:  # every failure is a result the parent reads
        kind, ops = "error", []
        name = type(exc).__name__
        if name == "OpNotImplemented":
            kind = "unsupported"
        elif isinstance(exc, MemoryError):
            kind = "memory"
        _write(
            work,
            {
                "ok": False,
                "kind": kind,
                "error": name,
                "stage": STAGE[0],
                "message": str(exc),
                "ops": ops,
                "traceback": traceback.format_exc(limit=20),
            },
        )
        return 0
    info["seconds"] = round(time.monotonic() - started, 3)
    _write(work, {"ok": True, **info})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
