"""The local compile check: compile a packed model with open-source TVM (or Treelite) and compare.

SageMaker Neo is built on the TVM compiler. Before a compilation job spends minutes
failing on an operator its compiler cannot handle, neobuild can compile the exported
model for the host CPU with Apache TVM (``target="llvm"``), run it on a seeded random
input of the declared shapes, and compare its outputs with the framework's own runtime
on the same input. XGBoost models are compiled with Treelite + TL2cgen instead.

It is a hint, not Neo's verdict: Neo runs its own (older, patched) TVM with its own
frontends, so a model that passes here may still fail there, and the reverse. It says
nothing about speed (untuned TVM code is much slower than the framework's runtime).

Two processes per model, both started through :func:`neobuild.runner.run_process` and
driven by the stdlib-only script ``neobuild/_compile_worker.py`` (see :mod:`neobuild.scripts`):

* ``reference``, in the model's export environment (where its framework is): the input,
  the framework's outputs, and for PyTorch the ONNX conversion
  (``torch.onnx.export(..., dynamo=False)``);
* ``compile``, in neobuild's own interpreter (the ``neobuild[tvm]`` extra), under a
  timeout and an address-space limit (``RLIMIT_AS``): the compiled model's outputs.

This module runs the check; what it finds (:class:`~neobuild.checkresult.CheckResult`,
:class:`~neobuild.checkresult.CheckReport`) and how outputs are compared live in
:mod:`neobuild.checkresult`.

See docs/compile-check.md.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neobuild import runner, scripts
from neobuild.checkresult import NOT_CHECKED, UNSUPPORTED, CheckResult, compare
from neobuild.errors import UsageError
from neobuild.model import Manifest, Model

__all__ = [
    "MEMORY_MB",
    "TIMEOUT",
    "check_model",
    "check_packed",
    "parse_ops",
    "require_extra",
]

#: Seconds each of the two steps may take (the model's ``timeout`` when larger).
TIMEOUT = 600.0
#: The compile step's address-space limit (``RLIMIT_AS``), in MiB; LLVM works under it.
MEMORY_MB = 4096
#: Rows of the random input of an XGBoost model.
XGBOOST_ROWS = 64
SEED = 0

EXTRA_HINT = "install the extra: pip install 'neobuild[tvm]' (apache-tvm, treelite, tl2cgen)"
NEO_DIFFERS = (
    "a hint, not Neo's verdict: Neo's compiler differs from open-source TVM and may "
    "accept or refuse these"
)

#: Frameworks with no reliable local path into TVM: why, per framework.
NOT_CHECKED_WHY: Mapping[str, str] = {
    "keras": "TVM has no Keras frontend (Relax: ONNX, TFLite and PyTorch FX only)",
    "tensorflow": "TVM has no TensorFlow frontend (Relax: ONNX, TFLite and PyTorch FX only)",
    "mxnet": "TVM has no MXNet frontend since Relay was removed",
    "darknet": "TVM has no Darknet frontend since Relay was removed",
}
#: What the compile step compiles, per framework.
_SOURCE = {"onnx": "onnx", "pytorch": "onnx", "tflite": "tflite", "xgboost": "xgboost"}

_OPS_RE = re.compile(r"operators are not supported for frontend \w+:\s*(.+)", re.S)


def worker_path() -> Path:
    """The worker script (``neobuild/_compile_worker.py``, run by path)."""
    return scripts.COMPILE_WORKER


# --------------------------------------------------------------------------- the extra


def require_extra(frameworks: Iterable[str], *, timeout: float = 120.0) -> None:
    """Fail early, as a usage error, when the ``tvm`` extra is not importable.

    Imports what the selected frameworks' compile step needs in a subprocess of
    neobuild's own interpreter (importing TVM here would cost seconds and memory).

    Raises:
        UsageError: something is missing; the message names it and ``neobuild[tvm]``.
    """
    wanted = sorted({f for f in frameworks if f in _SOURCE})
    if not wanted:
        return
    with tempfile.TemporaryDirectory(prefix="neobuild-compilecheck-probe-") as tmp:
        work = Path(tmp)
        outcome, process = _run_worker(
            "probe", {"frameworks": wanted}, work=work, timeout=timeout, log_path=work / "probe.log"
        )
        if outcome.get("ok") is True:
            return
        why = str(outcome.get("message") or process.tail or "the import probe failed").strip()
    raise UsageError(
        f"--compile-check needs the neobuild[tvm] extra, which is not usable here: {why}",
        hint=EXTRA_HINT,
    )


# --------------------------------------------------------------------------- one model


def check_model(
    model: Model,
    *,
    export_dir: Path,
    python: Path,
    log_path: Path,
    timeout: float | None = None,
    memory_mb: int | None = MEMORY_MB,
) -> CheckResult:
    """Compile one exported model locally and compare it with its framework's output.

    Never raises for what it finds: an unsupported operator, a mismatch, a missing
    package or a timeout are results. Call :func:`require_extra` first.

    Args:
        model: the model.
        export_dir: its export directory (the files that go into the archive).
        python: the export environment's interpreter (the reference runs there).
        log_path: where both steps' output is appended.
        timeout: seconds per step (default: the larger of :data:`TIMEOUT` and the
            model's ``timeout``).
        memory_mb: the compile step's address-space limit, or None for none.
    """
    started = time.monotonic()
    if model.framework in NOT_CHECKED_WHY:
        return CheckResult(model.name, NOT_CHECKED, NOT_CHECKED_WHY[model.framework])
    if model.framework not in _SOURCE:
        return CheckResult(model.name, NOT_CHECKED, f"no local compiler for {model.framework}")
    limit = timeout if timeout is not None else max(TIMEOUT, float(model.timeout or 0))
    with tempfile.TemporaryDirectory(prefix=f"neobuild-compilecheck-{model.name}-") as tmp:
        work = Path(tmp)
        result = _check_in(model, work, export_dir, python, log_path, limit, memory_mb)
    return _with_time(result, time.monotonic() - started)


def _check_in(
    model: Model,
    work: Path,
    export_dir: Path,
    python: Path,
    log_path: Path,
    timeout: float,
    memory_mb: int | None,
) -> CheckResult:
    name = model.name
    config: dict[str, Any] = {
        "framework": model.framework,
        "model_dir": str(export_dir),
        "names": list(model.inputs.names),
        "shapes": [list(s) for s in model.inputs.shapes],
        "seed": SEED,
        "rows": XGBOOST_ROWS,
    }
    export_env = runner.scrubbed_env(model.env_dict)
    export_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ref, process = _run_worker(
        "reference",
        config,
        work=work,
        python=python,
        env=export_env,
        timeout=timeout,
        log_path=log_path,
    )
    own = Path(sys.executable)
    if ref.get("kind") == "missing" and python.resolve() != own.resolve():
        # The framework's runtime (e.g. onnxruntime) is not in the export environment:
        # neobuild's own environment may have it.
        ref, process = _run_worker(
            "reference", config, work=work, timeout=timeout, log_path=log_path
        )
    if ref.get("ok") is not True:
        return CheckResult(
            name, NOT_CHECKED, "the framework's own run failed: " + _why(ref, process, timeout)
        )
    timings = {"reference": float(ref.get("seconds", 0.0))}
    if "convert_seconds" in ref:
        timings["to_onnx"] = float(ref["convert_seconds"])
    source = _SOURCE[model.framework]
    model_path = ref.get("onnx") or ref.get("tflite") or ref.get("xgboost")
    config.update(
        source=source,
        model_path=model_path,
        input_order=list(ref.get("input_names") or []),
        memory_mb=memory_mb,
    )
    out, process = _run_worker("compile", config, work=work, timeout=timeout, log_path=log_path)
    compiler = str(out["compiler"]) if out.get("compiler") else None
    if out.get("ok") is not True:
        kind = out.get("kind")
        message = str(out.get("message") or "")
        if kind == "unsupported":
            ops = parse_ops(message)
            return CheckResult(
                name,
                UNSUPPORTED,
                f"TVM's {source} frontend has no converter for {', '.join(ops) or message}; "
                + NEO_DIFFERS,
                ops=ops,
                timings=timings,
            )
        if kind == "error" and out.get("stage") == "setup":
            why = _why(out, process, timeout, memory_mb)
            limit_note = f" (under the {memory_mb} MiB address-space limit)" if memory_mb else ""
            return CheckResult(
                name,
                NOT_CHECKED,
                f"the compiler could not start{limit_note}: {why}",
                timings=timings,
            )
        if kind == "error":
            verb = "run" if out.get("stage") == "run" else "compile"
            first = next((line for line in message.splitlines() if line.strip()), message)
            return CheckResult(
                name,
                UNSUPPORTED,
                f"{_compiler_name(source)} could not {verb} it "
                f"({out.get('error')}: {first.strip()[:300]}); " + NEO_DIFFERS,
                timings=timings,
            )
        return CheckResult(
            name, NOT_CHECKED, _why(out, process, timeout, memory_mb), timings=timings
        )
    for step, seconds in dict(out.get("timings") or {}).items():
        timings[str(step)] = float(seconds)
    timings["compile_process"] = float(out.get("seconds", 0.0))
    import numpy as np

    with np.load(work / "reference.npz") as r, np.load(work / "compiled.npz") as c:
        reference = [r[k] for k in sorted(r.files, key=_arr_index)]
        compiled = [c[k] for k in sorted(c.files, key=_arr_index)]
    status, detail, worst = compare(reference, compiled)
    return CheckResult(
        name,
        status,
        detail,
        compiler=compiler,
        max_abs=worst[0],
        max_rel=worst[1],
        where=worst[2],
        timings=timings,
    )


def _compiler_name(source: str) -> str:
    return "Treelite/TL2cgen" if source == "xgboost" else "TVM"


def _arr_index(key: str) -> int:
    return int(key.rsplit("_", 1)[-1])


def _with_time(result: CheckResult, seconds: float) -> CheckResult:
    from dataclasses import replace

    return replace(result, seconds=seconds)


def _own_env() -> dict[str, str]:
    """neobuild's own environment for its own interpreter: its import path included."""
    env = runner.scrubbed_env()
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _run_worker(
    step: str,
    config: dict[str, Any],
    *,
    work: Path,
    python: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float,
    log_path: Path,
) -> tuple[dict[str, Any], runner.ProcessResult]:
    """One worker step; ``python``/``env`` default to neobuild's own (see :func:`_own_env`)."""
    return scripts.run_script(
        scripts.COMPILE_WORKER,
        {**config, "work": str(work)},
        config_path=work / f"{step}.json",
        result_path=work / "result.json",
        python=python or Path(sys.executable),
        env={**(env if env is not None else _own_env()), "TVM_FFI_DISABLE_TORCH_C_DLPACK": "1"},
        timeout=timeout,
        log_path=log_path,
        args=[step],
    )


def _why(
    outcome: Mapping[str, Any],
    process: runner.ProcessResult,
    timeout: float,
    memory_mb: int | None = None,
) -> str:
    if process.timed_out:
        return f"timed out after {timeout:g} s"
    if outcome.get("kind") == "memory" or (
        memory_mb and process.signal is None and not outcome and "MemoryError" in process.tail
    ):
        return f"ran out of memory under the {memory_mb} MiB limit"
    if process.signal is not None:
        return f"killed by {runner.signal_name(process.signal)}"
    if outcome:
        message = str(outcome.get("message") or outcome.get("error") or "failed")
        first = next((line for line in message.splitlines() if line.strip()), message)
        return first.strip()[:300]
    tail = process.tail.strip().splitlines()
    return (tail[-1] if tail else f"exit code {process.returncode}")[:300]


def parse_ops(message: str) -> tuple[str, ...]:
    """The operator names of a ``tvm.error.OpNotImplemented`` message, sorted."""
    found = _OPS_RE.search(message)
    if not found:
        return ()
    text = found.group(1).strip().splitlines()[0]
    return tuple(sorted({op.strip() for op in text.split(",") if op.strip()}))


# --------------------------------------------------------------------------- neobuild check


def check_packed(manifest: Manifest, models: Sequence[Model], on_result: Any) -> list[CheckResult]:
    """``neobuild check``: run the compile check on models already packed.

    Each model's export as kept in ``<build_dir>/<model>/export`` is checked, its output
    appended to that directory's ``export.log``, and the result recorded in its
    neo.lock entry. The caller holds the build lock.

    Raises:
        UsageError: a model never packed, or the extra missing.
    """
    from dataclasses import replace

    from neobuild import envs, lockfile

    lock_path = manifest.root / lockfile.LOCK_NAME
    lock = lockfile.read_lock(lock_path)
    never = [
        m.name
        for m in models
        if m.name not in lock.models or not (manifest.build_dir / m.name / "export").is_dir()
    ]
    if never:
        raise UsageError(
            f"not packed yet, nothing to check: {', '.join(never)}",
            hint=f"run `neobuild package --compile-check {' '.join(never)}` instead",
        )
    require_extra(m.framework for m in models)
    results = []
    for model in models:
        directory = manifest.build_dir / model.name
        log_path = directory / "export.log"
        python = envs.export_python(model, root=manifest.root, log_path=log_path)
        result = check_model(
            model, export_dir=directory / "export", python=python, log_path=log_path
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    recorded = {r.model: r.summary() for r in results}

    def change(current: lockfile.Lock) -> dict[str, lockfile.LockEntry | None]:
        return {
            name: replace(current.models[name], compile_check=summary)
            for name, summary in recorded.items()
            if name in current.models
        }

    lockfile.modify_lock(lock_path, change)
    return results
