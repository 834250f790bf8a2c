"""The XGBoost adapter on a real trained booster, in every save format, and broken exports."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import factories
import pytest
from example_exports import load_example

from neobuild.errors import ArtifactError
from neobuild.frameworks.xgboost import ADAPTER
from neobuild.model import Inputs, Model

pytestmark = pytest.mark.frameworks


def make_model(framework_version: str | None = None) -> Model:
    return factories.make_model(
        "xgb-classifier",
        framework="xgboost",
        export="examples/models/xgb-classifier/export.py",
        inputs=Inputs("none"),
        framework_version=framework_version,
    )


def rejection(export_dir: Path) -> ArtifactError:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export_dir, make_model())
    return info.value


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example("xgb-classifier")


@pytest.fixture(scope="module")
def booster(example: ModuleType) -> Any:
    return example.train()


@pytest.fixture(scope="module")
def exported(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xgb-export")
    example.export(out, None)
    return out / "model.json"


def test_accepts_the_json_export(exported: Path) -> None:
    artifacts = ADAPTER.check(exported.parent, make_model())
    assert artifacts.files == ("model.json",)
    assert artifacts.warnings == ()
    model = json.loads(exported.read_text())
    assert len(model["learner"]["gradient_booster"]["model"]["trees"]) == 10


def test_the_export_is_byte_stable(example: ModuleType, exported: Path, tmp_path: Path) -> None:
    example.export(tmp_path, None)
    assert (tmp_path / "model.json").read_bytes() == exported.read_bytes()


def test_newer_xgboost_than_framework_version_warns(exported: Path) -> None:
    import xgboost

    (warning,) = ADAPTER.check(exported.parent, make_model("1.3")).warnings
    assert warning == (
        f"model.json: written by XGBoost {xgboost.__version__}, newer than framework_version"
        " 1.3; Neo's XGBoost may not read it"
    )


@pytest.mark.filterwarnings("ignore:.*Saving model in the UBJSON format")
@pytest.mark.parametrize("name", ["model.ubj", "model.model", "model.bin", "model"])
def test_accepts_the_other_save_formats(booster: Any, tmp_path: Path, name: str) -> None:
    booster.save_model(str(tmp_path / name))  # UBJSON in every case since XGBoost 2.1
    assert ADAPTER.check(tmp_path, make_model()).files == (name,)
    assert ADAPTER.check(tmp_path, make_model("1.3")).warnings == (
        f"{name} is UBJSON, which XGBoost reads only since 1.6 (framework_version is 1.3);"
        " save it as .json instead",
    )


def test_two_files_are_rejected(booster: Any, tmp_path: Path) -> None:
    booster.save_model(str(tmp_path / "model.json"))
    booster.save_model(str(tmp_path / "model.ubj"))
    assert rejection(tmp_path).problems == [
        "export: expected exactly one XGBoost model file (.json, .ubj, .model or no extension),"
        " found 2: model.json, model.ubj"
    ]


def test_nothing_written_is_rejected(tmp_path: Path) -> None:
    error = rejection(tmp_path)
    assert error.problems == [
        "export: expected exactly one XGBoost model file (.json, .ubj, .model or no extension),"
        " found none"
    ]
    assert error.hint is not None and "save_model" in error.hint


def test_json_without_learner_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"version": [3, 2, 0]}')
    assert rejection(tmp_path).problems == [
        "model.json: expected an XGBoost JSON model, found no 'learner' object"
    ]


def test_invalid_json_is_rejected(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "model.json").write_bytes(exported.read_bytes()[:100])
    (problem,) = rejection(tmp_path).problems
    assert problem.startswith("model.json: expected valid JSON, found a parse error: ")


def test_a_pickle_is_rejected(booster: Any, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(booster))
    assert rejection(tmp_path).problems == [
        "model.pkl: expected an XGBoost model file (.json, .ubj, .model or no extension),"
        " found a .pkl file"
    ]


def test_symlink_to_a_file_outside_is_rejected(exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "model.json").symlink_to(exported)
    assert rejection(out).problems == [
        f"model.json: expected a regular file, found a symlink to {str(exported)!r}"
        " (archives must not contain links; write the file itself)",
        "export: expected exactly one XGBoost model file (.json, .ubj, .model or no extension),"
        " found none",
    ]


def test_a_copy_of_the_model_loads_back_in_xgboost(exported: Path, tmp_path: Path) -> None:
    """What the adapter accepts is what XGBoost itself loads."""
    import xgboost

    shutil.copy2(exported, tmp_path / "model.json")
    ADAPTER.check(tmp_path, make_model())
    booster = xgboost.Booster()
    booster.load_model(str(tmp_path / "model.json"))
    assert booster.num_boosted_rounds() == 10


def test_model_in_a_subdirectory_is_rejected(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    shutil.copy2(exported, tmp_path / "models" / "model.json")
    assert rejection(tmp_path).problems == [
        "models/model.json: expected model.json at the top of the export directory,"
        " found models/model.json"
    ]
