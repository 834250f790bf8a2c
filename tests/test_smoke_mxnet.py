"""The MXNet hosting handler, for real, in MXNet's own virtual environment.

MXNet 1.9.1 needs ``numpy<1.24``, which the dev environment cannot hold. The venv is the
one tests/test_fw_mxnet.py makes (same place, same marker, same lock), created once per
machine from ``examples/models/mxnet-mlp/requirements.txt``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from neobuild.errors import SmokeTestError
from neobuild.model import ExportRef, Inputs, InputSpec, Manifest, Model, Target
from neobuild.smoke import PASSED, smoke_test

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "models" / "mxnet-mlp"
SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="session")
def mxnet_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = Path(tmp_path_factory.getbasetemp()).parent / "neobuild-mxnet-venv"
    python = venv / "bin" / "python"
    marker = venv / "neobuild-requirements.txt"
    requirements = (EXAMPLE / "requirements.txt").read_text()
    with FileLock(str(venv) + ".lock", timeout=1800):
        ok = python.exists() and marker.exists() and marker.read_text() == requirements
        if ok:
            ok = subprocess.run([python, "-c", "import mxnet"], capture_output=True).returncode == 0
        if not ok:
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


@pytest.fixture(scope="module")
def exported(mxnet_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mxnet-export")
    code = (
        "import json, pathlib, sys; sys.path.insert(0, sys.argv[1]); import export; "
        "export.export(pathlib.Path(sys.argv[2]), json.loads(sys.argv[3]))"
    )
    args = [str(EXAMPLE), str(out), json.dumps({"data": list(SHAPE)})]
    subprocess.run([mxnet_python, "-c", code, *args], check=True, timeout=300)
    return out


def _model(*targets: Target, name: str = "data") -> Model:
    return Model(
        name="mxnet-mlp",
        framework="mxnet",
        export=ExportRef(function="export", path="examples/models/mxnet-mlp/export.py"),
        inputs=Inputs("dict", (InputSpec(name, SHAPE),)),
        targets=targets or (Target(device="ml_c5"),),
        framework_version="1.8",
    )


def _manifest(root: Path, model: Model) -> Manifest:
    return Manifest(
        path=root / "neo.yaml", root=root, build_dir=root / "b", models={model.name: model}
    )


@pytest.mark.parametrize(
    "targets",
    [(Target(device="ml_c5"),), (Target(device="ml_c5"), Target(device="ml_inf1"))],
    ids=["hosting", "hosting+inf1"],
)
def test_mxnet_handler_runs(
    targets: tuple[Target, ...], mxnet_python: Path, exported: Path, tmp_path: Path
) -> None:
    model = _model(*targets)
    result = smoke_test(
        _manifest(tmp_path, model),
        model,
        export_dir=exported,
        python=mxnet_python,
        log_path=tmp_path / "log",
    )
    assert result == PASSED


def test_mxnet_wrong_input_name_fails_in_model_fn(
    mxnet_python: Path, exported: Path, tmp_path: Path
) -> None:
    model = _model(name="image")
    with pytest.raises(SmokeTestError, match="failed in model_fn"):
        smoke_test(
            _manifest(tmp_path, model),
            model,
            export_dir=exported,
            python=mxnet_python,
            log_path=tmp_path / "log",
        )
