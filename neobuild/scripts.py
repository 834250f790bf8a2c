"""neobuild's own scripts that run by path in another interpreter, and how to run one.

Three files beside this one are never imported by neobuild's process (they use only the
standard library at import time, so they run where neobuild is not installed):

* ``_bootstrap.py``: calls a model's export entrypoint (:func:`neobuild.export.run_export`);
* ``_smoke_driver.py``: runs a rendered inference handler on the export (:mod:`neobuild.smoke`);
* ``_compile_worker.py``: the compile check's two steps (:mod:`neobuild.compilecheck`).

The last two take a JSON config and write a JSON result; :func:`run_script` is that
round trip. They are excluded from mypy (untyped: they must run on any interpreter).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neobuild import runner

__all__ = ["COMPILE_WORKER", "SMOKE_DRIVER", "run_script"]

_HERE = Path(__file__).resolve().parent
COMPILE_WORKER = _HERE / "_compile_worker.py"
SMOKE_DRIVER = _HERE / "_smoke_driver.py"


def run_script(
    script: Path,
    config: Mapping[str, Any],
    *,
    config_path: Path,
    result_path: Path,
    python: Path,
    env: Mapping[str, str],
    timeout: float,
    log_path: Path,
    args: Sequence[str] = (),
) -> tuple[dict[str, Any], runner.ProcessResult]:
    """Run ``python script *args config_path`` in ``config_path``'s directory; read its result.

    Args:
        script: :data:`COMPILE_WORKER` or :data:`SMOKE_DRIVER`.
        config: written as JSON to ``config_path`` for the script to read.
        config_path: where the config goes (its directory is the working directory).
        result_path: where the script writes its JSON result (removed first).
        python: the interpreter.
        env: the environment (``PYTHONDONTWRITEBYTECODE=1`` is added).
        timeout: seconds before the process group is ended.
        log_path: where the output is appended.
        args: arguments before the config path.

    Returns:
        The result (empty when the script wrote none, or no JSON object) and how the
        process ended.
    """
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    process = runner.run_process(
        [str(python), str(script), *args, str(config_path)],
        cwd=config_path.parent,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=timeout,
        log_path=log_path,
    )
    outcome: dict[str, Any] = {}
    if result_path.is_file():
        try:
            loaded = json.loads(result_path.read_text(encoding="utf-8"))
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            outcome = loaded
    return outcome, process
