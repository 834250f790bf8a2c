"""MXNet 1.9.1 in a virtual environment of its own (it needs ``numpy<1.24``).

Made once per machine from ``examples/models/mxnet-mlp/requirements.txt``, under a file
lock, and rebuilt when the requirements change or ``import mxnet`` stops working.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "models" / "mxnet-mlp"
SHAPE = (1, 3, 16, 16)


def _works(python: Path, marker: Path, requirements: str) -> bool:
    if not python.exists() or not marker.exists() or marker.read_text() != requirements:
        return False
    probe = subprocess.run([python, "-c", "import mxnet"], capture_output=True, check=False)
    return probe.returncode == 0


def mxnet_venv_python(venv: Path) -> Path:
    """The python of the MXNet venv at ``venv``, creating or repairing it first."""
    python = venv / "bin" / "python"
    marker = venv / "neobuild-requirements.txt"
    requirements = (EXAMPLE / "requirements.txt").read_text()
    with FileLock(str(venv) + ".lock", timeout=1800):
        if not _works(python, marker, requirements):
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--no-input",
                    "-q",
                    "-r",
                    EXAMPLE / "requirements.txt",
                ],
                check=True,
                timeout=1500,
            )
            marker.write_text(requirements)
    return python


def export_example(python: Path, out: Path, inputs: dict[str, list[int]] | None = None) -> Path:
    """Run the example's ``export()`` in the MXNet venv, writing into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    code = (
        "import json, pathlib, sys; sys.path.insert(0, sys.argv[1]); import export; "
        "export.export(pathlib.Path(sys.argv[2]), json.loads(sys.argv[3]))"
    )
    args = [str(EXAMPLE), str(out), json.dumps(inputs or {"data": list(SHAPE)})]
    subprocess.run([python, "-c", code, *args], check=True, timeout=300)
    return out
