"""The MXNet hosting handler, for real, in MXNet's own virtual environment.

MXNet 1.9.1 needs ``numpy<1.24``, which the dev environment cannot hold. The venv is the
shared one from tests/mxnet_env.py (the ``mxnet_python`` fixture), created once per
machine from ``examples/models/mxnet-mlp/requirements.txt``.
"""

from __future__ import annotations

from pathlib import Path

import factories
import pytest
from mxnet_env import SHAPE, export_example

from neobuild.errors import SmokeTestError
from neobuild.model import Manifest, Model, Target
from neobuild.smoke import PASSED, smoke_test

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported(mxnet_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_example(mxnet_python, tmp_path_factory.mktemp("mxnet-export"))


def _model(*targets: Target, name: str = "data") -> Model:
    return factories.make_model(
        "mxnet-mlp",
        framework="mxnet",
        export="examples/models/mxnet-mlp/export.py",
        inputs={name: SHAPE},
        targets=targets or ("ml_c5",),
        framework_version="1.8",
    )


def _manifest(root: Path, model: Model) -> Manifest:
    return factories.make_manifest(root, [model], build_dir=root / "b")


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
