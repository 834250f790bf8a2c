"""The example models' own export.py, run in this interpreter: one helper for the framework tests.

``examples/models/<name>/export.py`` is what ``neobuild package`` runs in a subprocess; the
adapter tests call the same function directly so they check a real export of the example.
MXNet's example runs in its own venv instead (see ``mxnet_env.export_example``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from locations import EXAMPLES


def load_example(name: str, directory: Path | None = None) -> ModuleType:
    """``<directory or examples/models/name>/export.py`` as a module named ``example_<name>``.

    The module is registered in ``sys.modules`` so pickle can name the classes it defines.
    """
    module_name = "example_" + name.replace("-", "_")
    path = (directory or EXAMPLES / "models" / name) / "export.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def export_example(name: str, out: Path, inputs: Mapping[str, Sequence[int]] | None = None) -> Path:
    """Run the example's ``export(out, inputs)`` as ``package`` would; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    load_example(name).export(
        out, None if inputs is None else {k: list(v) for k, v in inputs.items()}
    )
    return out
