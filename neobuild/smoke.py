"""Smoke test of the rendered inference handlers against the *exported* model.

The rendered ``code/inference.py`` (and ``code/inference_inf1.py``) runs in the model's
export environment, through :func:`neobuild.runner.run_process`, driven by the
stdlib-only script ``neobuild/_smoke_driver.py`` (see :mod:`neobuild.scripts`): ``model_fn`` -> ``input_fn`` ->
``predict_fn`` -> ``output_fn`` for PyTorch/MXNet, ``input_handler`` -> the SavedModel's
``serving_default`` signature -> ``output_handler`` for TensorFlow Serving, and
``neo_preprocess`` -> the framework's own runtime -> ``neo_postprocess`` for DLR
handlers, on a zeros payload of the declared shapes. The compiled model does not exist
yet, so the framework's runtime stands in for it: the test proves the handler's code,
its input names, shapes and formats, not Neo's compilation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from neobuild import runner, scripts
from neobuild.errors import SmokeTestError
from neobuild.model import Manifest, Model
from neobuild.render import INF1_TEMPLATE, outputs_for, render_model

__all__ = ["PASSED", "SMOKE_FAMILIES", "driver_path", "smoke_test"]

PASSED = "passed"

#: Which driver routine exercises a hosting template.
SMOKE_FAMILIES: Mapping[str, str] = {
    "inference/pytorch.py.j2": "hosting",
    "inference/mxnet.py.j2": "hosting",
    "inference/tensorflow.py.j2": "tensorflow",
    "inference/dlr.py.j2": "dlr",
}
#: Frameworks with no local runtime to stand in for the compiled model.
_NO_RUNTIME = {"darknet": "no local runtime can execute a Darknet .cfg/.weights export"}
_SMOKE_TIMEOUT = 900.0


def driver_path() -> Path:
    """The driver script run in the export environment (``neobuild/_smoke_driver.py``)."""
    return scripts.SMOKE_DRIVER


def _link_export(export_dir: Path, model_dir: Path) -> None:
    """Make ``model_dir`` look like the unpacked archive, without copying large files."""
    model_dir.mkdir()
    for entry in sorted(export_dir.iterdir()):
        if entry.name == "code":  # the rendered scripts go in here: never write through a link
            if entry.is_dir():
                shutil.copytree(entry, model_dir / "code")
            continue
        try:
            os.symlink(entry.resolve(), model_dir / entry.name, target_is_directory=entry.is_dir())
        except OSError:  # no symlinks here (Windows without privilege): copy
            if entry.is_dir():
                shutil.copytree(entry, model_dir / entry.name)
            else:
                shutil.copy2(entry, model_dir / entry.name)


def smoke_test(
    manifest: Manifest,
    model: Model,
    *,
    export_dir: Path,
    python: Path,
    log_path: Path,
    rendered: Mapping[str, bytes] | None = None,
    timeout: float | None = None,
) -> str:
    """Run the model's rendered handler(s) on the exported model.

    Args:
        manifest: The manifest (for template overrides).
        model: The model.
        export_dir: The export directory (the files that go into the archive).
        python: The export environment's interpreter (``envs.export_python``).
        log_path: Where the driver's output is appended.
        rendered: The rendered scripts (``render_model``'s result); rendered anew if None.
        timeout: Seconds per handler (default: the model's ``timeout``).

    Returns:
        ``"passed"``, or ``"skipped: <reason>"`` when no local runtime can stand in for
        the compiled model (Darknet).

    Raises:
        SmokeTestError: a handler step failed; the message names the model, the script,
            the step, and carries the handler's traceback.
    """
    if model.framework in _NO_RUNTIME:
        return f"skipped: {_NO_RUNTIME[model.framework]}"
    scripts = dict(rendered) if rendered is not None else render_model(manifest, model)
    handlers = {
        path: template
        for path, template in outputs_for(model).items()
        if path.startswith("code/") and path in scripts
    }
    with tempfile.TemporaryDirectory(prefix=f"neobuild-smoke-{model.name}-") as tmp:
        model_dir = Path(tmp) / "model"
        _link_export(export_dir, model_dir)
        code = model_dir / "code"
        code.mkdir(exist_ok=True)
        for path in sorted(scripts):
            if path.startswith("code/"):
                (model_dir / path).write_bytes(scripts[path])
        for path, template in sorted(handlers.items()):
            family = "dlr" if template == INF1_TEMPLATE else SMOKE_FAMILIES[template]
            _run_one(
                model,
                family=family,
                handler=model_dir / path,
                script=path,
                model_dir=model_dir,
                work=Path(tmp),
                python=python,
                log_path=log_path,
                timeout=timeout if timeout is not None else float(model.timeout or _SMOKE_TIMEOUT),
            )
    return PASSED


def _run_one(
    model: Model,
    *,
    family: str,
    handler: Path,
    script: str,
    model_dir: Path,
    work: Path,
    python: Path,
    log_path: Path,
    timeout: float,
) -> None:
    result_path = work / f"result-{handler.stem}.json"
    config = {
        "model": model.name,
        "framework": model.framework,
        "family": family,
        "handler": str(handler),
        "model_dir": str(model_dir),
        "names": list(model.inputs.names),
        "shapes": [list(s) for s in model.inputs.shapes],
        "dtype": "float32",
        "result": str(result_path),
    }
    env = runner.scrubbed_env(model.env_dict)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    outcome, process = scripts.run_script(
        scripts.SMOKE_DRIVER,
        config,
        config_path=work / f"config-{handler.stem}.json",
        result_path=result_path,
        python=python,
        env=env,
        timeout=timeout,
        log_path=log_path,
    )
    if process.ok and outcome.get("ok") is True:
        return
    if process.timed_out:
        why = f"timed out after {timeout:g} s"
    elif process.signal is not None:
        why = f"was killed by {runner.signal_name(process.signal)}"
    else:
        why = f"failed in {outcome.get('step', 'the driver')}"
    trace = str(outcome.get("traceback") or process.tail).rstrip()
    raise SmokeTestError(
        f"smoke test of model {model.name}: the rendered {script} {why}\n"
        + "\n".join(f"    {line}" for line in trace.splitlines())
        + f"\n  (full output in {log_path})",
        hint=(
            "fix the template that rendered it (templates_dir), the export, or the "
            "declared inputs; the test ran the exported model with the framework's own runtime"
        ),
    )
