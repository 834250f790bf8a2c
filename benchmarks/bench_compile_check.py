"""Benchmark: the cost of the local compile check, per model and framework.

Usage::

    .venv/bin/python benchmarks/bench_compile_check.py [--no-write]

Builds a few models here (no downloads), then runs :func:`neobuild.compilecheck.check_model`
on each, in a fresh subprocess so that the peak RSS of the check's own two processes
(``reference`` in the export environment, ``compile`` in neobuild's) is the figure shown
(``RUSAGE_CHILDREN``). The export environment is this interpreter. Columns: the whole
check's wall time, then its steps: the reference run (incl. the ONNX conversion for
PyTorch), importing the model into TVM/Treelite, compiling it, running it once; ``process``
is the compile process's time inside Python, the rest of its wall time being interpreter
start and ``import tvm``.

Models:

* ``onnx tiny``: a 4x2 MatMul (onnx.helper): the fixed cost;
* ``onnx cnn``/``pytorch cnn``: a ResNet-style network (8 conv layers, 64 channels, 1x3x112x112,
  ~0.7 M parameters), exported with ``torch.onnx.export(dynamo=False)`` / traced;
* ``tflite example``: ``examples/models/tflite-mobile``;
* ``xgboost 100 trees``: depth 6, 20 features, binary:logistic; the C library is built with gcc.

Figures are printed and written to ``benchmarks/RESULTS.md`` under ``## Compile check``
(other sections are left alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## Compile check"


def _cnn():  # type: ignore[no-untyped-def]
    import torch

    class Block(torch.nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(channels, channels, 3, padding=1)
            self.b = torch.nn.Conv2d(channels, channels, 3, padding=1)
            self.n = torch.nn.BatchNorm2d(channels)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return torch.relu(x + self.n(self.b(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 7, stride=2, padding=3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        Block(64),
        Block(64),
        Block(64),
        torch.nn.Conv2d(64, 64, 3, stride=2, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    ).eval()


def build(kind: str, out: Path) -> tuple[str, dict[str, list[int]]]:
    """Write the model ``kind`` into ``out``; returns its framework and declared inputs."""
    out.mkdir(parents=True)
    if kind == "onnx tiny":
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
        onnx.save(helper.make_model(graph), str(out / "model.onnx"))
        return "onnx", {"input": [1, 4]}
    if kind in ("onnx cnn", "pytorch cnn"):
        import torch

        model, example = _cnn(), torch.zeros(1, 3, 112, 112)
        if kind == "onnx cnn":
            torch.onnx.export(
                model, (example,), str(out / "model.onnx"), input_names=["input"], dynamo=False
            )
            return "onnx", {"input": [1, 3, 112, 112]}
        torch.jit.save(torch.jit.trace(model, example), str(out / "model.pth"))
        return "pytorch", {"input0": [1, 3, 112, 112]}
    if kind == "tflite example":
        path = ROOT / "examples" / "models" / "tflite-mobile" / "export.py"
        spec = importlib.util.spec_from_file_location("tflite_export", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.export(out)
        return "tflite", {"input": [1, 28, 28, 3]}
    if kind == "xgboost 100 trees":
        import numpy as np
        import xgboost

        rng = np.random.default_rng(0)
        x = rng.random((2000, 20), dtype=np.float32)
        y = (x[:, 0] + x[:, 1] > 1).astype(np.float32)
        params = {"objective": "binary:logistic", "max_depth": 6}
        xgboost.train(params, xgboost.DMatrix(x, label=y), 100).save_model(str(out / "model.json"))
        return "xgboost", {}
    raise ValueError(kind)


KINDS = ["onnx tiny", "onnx cnn", "pytorch cnn", "tflite example", "xgboost 100 trees"]


def one(framework: str, inputs: dict[str, list[int]], export_dir: Path) -> dict[str, object]:
    """Run one check in this process (the benchmark's child); returns its figures."""
    from neobuild import compilecheck
    from neobuild.model import ExportRef, Inputs, InputSpec, Model, Target

    model = Model(
        name="bench",
        framework=framework,
        export=ExportRef(function="export", path="x.py"),
        inputs=Inputs(
            "dict" if inputs else "none",
            tuple(InputSpec(k, tuple(v)) for k, v in inputs.items()),
        ),
        targets=(Target(device="ml_c5"),),
    )
    started = time.monotonic()
    result = compilecheck.check_model(
        model,
        export_dir=export_dir,
        python=Path(sys.executable),
        log_path=export_dir.parent / "log",
    )
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"status": result.status, "wall": wall, "peak_mib": peak, **result.to_json()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--one", nargs=3, metavar=("FRAMEWORK", "INPUTS", "DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        framework, inputs, directory = args.one
        print(json.dumps(one(framework, json.loads(inputs), Path(directory))))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-compile-check-") as tmp:
        for kind in KINDS:
            export_dir = Path(tmp) / kind.replace(" ", "-") / "export"
            framework, inputs = build(kind, export_dir)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = subprocess.run(
                [sys.executable, __file__, "--one", framework, json.dumps(inputs), str(export_dir)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((kind, figures))
            t = figures["timings"]
            print(
                f"{kind:20} {figures['status']:12} {figures['wall']:6.1f} s  "
                f"reference {t.get('reference', 0):5.1f} s  import {t.get('import', 0):5.2f} s  "
                f"compile {t.get('compile', 0):5.2f} s  run {t.get('run', 0):5.2f} s  "
                f"peak {figures['peak_mib']:5.0f} MiB  max abs {figures['max_abs']}",
                flush=True,
            )
    if not args.no_write:
        write_results(rows)
    return 0


def write_results(rows: list[tuple[str, dict[str, object]]]) -> None:
    compilers = sorted({str(f["compiler"]) for _, f in rows if f.get("compiler")})
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        SECTION,
        "",
        f"Generated by `benchmarks/bench_compile_check.py` on {time.strftime('%Y-%m-%d')} "
        f"({platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load} at the end); "
        f"{'; '.join(compilers)}; TVM target `llvm`; one run each. *total* is the whole check: two "
        "processes (the reference in the export environment, the compile step in neobuild's). "
        "*fixed* is what is left of *total* after the reference and TVM's import/compile/run: "
        "interpreter starts and `import tvm` (or treelite), paid once per model whatever its "
        "size. Peak RSS is the larger of the two processes'. Under a high load average every "
        "figure is inflated.",
        "",
        "| model | result | total | fixed | reference | import | compile | run | peak RSS "
        "| max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, f in rows:
        t = f["timings"]
        assert isinstance(t, dict)
        ref = t.get("reference", 0)
        work = t.get("import", 0) + t.get("compile", 0) + t.get("run", 0)
        fixed = float(f["wall"]) - ref - work  # type: ignore[arg-type]
        lines.append(
            f"| {kind} | {f['status']} | {f['wall']:.1f} s | {fixed:.1f} s | {ref:.1f} s | "
            f"{t.get('import', 0):.2f} s | {t.get('compile', 0):.2f} s | {t.get('run', 0):.2f} s "
            f"| {f['peak_mib']:.0f} MiB | {f['max_abs']:.2g} |"
        )
    lines += [
        "",
        "- The check says nothing about speed: *run* is one untuned execution, first call included.",
        "- PyTorch's *reference* includes loading torch and `torch.onnx.export(dynamo=False)` in "
        "the export environment.",
        "- XGBoost's *compile* is TL2cgen writing C and gcc building the shared library.",
        "",
    ]
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = "\n".join(lines) + "\n"
    text = pattern.sub(block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
