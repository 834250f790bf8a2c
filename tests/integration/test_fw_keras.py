"""The Keras adapter against a real Keras 3 export (examples/models/keras-cnn) and broken ones."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import factories
import h5py
import pytest
from example_exports import export_example

from neobuild.errors import ArtifactError
from neobuild.export import run_export
from neobuild.frameworks import get_adapter
from neobuild.frameworks.keras import ADAPTER, read_h5, to_nchw
from neobuild.model import Model

pytestmark = [
    pytest.mark.frameworks,
    # Keras 3 on NumPy 2 while saving; not ours to fix
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


def _model(inputs: dict[str, list[int]]) -> Model:
    return factories.make_model(
        "keras-cnn",
        framework="keras",
        export="examples/models/keras-cnn/export.py",
        inputs=inputs,
        framework_version="2.2.4",
    )


GOOD = _model({"input_1": [1, 3, 28, 28]})


def _export(out: Path) -> Path:
    return export_example("keras-cnn", out, {"input_1": [1, 3, 28, 28]})


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export of the example, shared by the module (importing TF is slow)."""
    return _export(tmp_path_factory.mktemp("keras-export"))


@pytest.fixture
def copy(export_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the export for a test to break."""
    return Path(shutil.copytree(export_dir, tmp_path / "export"))


def _problems(export: Path, model: Model = GOOD) -> list[str]:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export, model)
    assert info.value.hint
    assert all(p in str(info.value) for p in info.value.problems)
    return info.value.problems


def _write_h5(path: Path, config: object, keras_version: str = "2.2.4") -> None:
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = keras_version.encode()
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["model_config"] = json.dumps(config).encode()


def test_registered_under_its_name() -> None:
    assert get_adapter("keras") is ADAPTER
    assert ".h5" in ADAPTER.describe_layout()


def test_real_export_is_accepted(export_dir: Path) -> None:
    before = (export_dir / "model.h5").read_bytes()
    ADAPTER.normalize(export_dir)
    assert (export_dir / "model.h5").read_bytes() == before

    artifacts = ADAPTER.check(export_dir, GOOD)

    assert artifacts.files == ("model.h5",)
    assert artifacts.inputs == {"input_1": (-1, 3, 28, 28)}
    # Keras 3 wrote it, newer than Neo's documented 2.2.4: a warning, not an error.
    (warning,) = artifacts.warnings
    assert "Keras 3." in warning and "2.2.4" in warning


def test_example_export_is_deterministic(export_dir: Path, tmp_path: Path) -> None:
    again = _export(tmp_path)
    assert (again / "model.h5").read_bytes() == (export_dir / "model.h5").read_bytes()


def test_reads_keras3_input_layer(export_dir: Path) -> None:
    info = read_h5(export_dir / "model.h5")
    assert info.inputs == {"input_1": (None, 28, 28, 3)}
    assert info.keras_version is not None and info.keras_version.startswith("3.")
    assert not info.channels_first


def test_two_h5_files_are_rejected(copy: Path) -> None:
    shutil.copy(copy / "model.h5", copy / "extra.h5")
    (problem,) = _problems(copy)
    assert problem.startswith("Multiple h5 files provided")
    assert "extra.h5" in problem and "model.h5" in problem
    assert "when only one is allowed" in problem


def test_no_h5_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04")
    (problem,) = _problems(tmp_path)
    assert problem.startswith("No h5 file provided")
    assert "model.keras" in problem and "needs .h5" in problem


def test_empty_export_is_rejected(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path)
    assert "No h5 file provided" in problem and "found none" in problem


def test_nhwc_shape_in_manifest_says_nchw(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"input_1": [1, 28, 28, 3]}))
    assert problem.startswith("model.h5: input 'input_1' shape")
    assert "expected [1, 28, 28, 3] (from the manifest)" in problem
    assert "found [?, 3, 28, 28]" in problem
    assert "Neo wants Keras inputs in NCHW: write [1, 3, 28, 28]" in problem


def test_wrong_shape_is_rejected(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"input_1": [1, 1, 28, 28]}))
    assert "expected [1, 1, 28, 28]" in problem and "found [?, 3, 28, 28]" in problem
    assert "NHWC" not in problem  # not the layout mix-up: no misleading advice


def test_wrong_input_name_is_rejected(copy: Path) -> None:
    (problem,) = _problems(copy, _model({"image": [1, 3, 28, 28]}))
    assert (
        problem
        == "model.h5: input names: expected ['image'] (from the manifest), found ['input_1']"
    )


def test_symlink_out_of_export_dir_is_rejected(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.h5"
    shutil.move(copy / "model.h5", outside)
    (copy / "model.h5").symlink_to(outside)
    problems = _problems(copy)
    assert any("model.h5: expected a regular file, found a symlink" in p for p in problems)


def test_h5_in_a_subdirectory_is_rejected(copy: Path) -> None:
    (copy / "sub").mkdir()
    shutil.move(copy / "model.h5", copy / "sub" / "model.h5")
    (problem,) = _problems(copy)
    assert "sub/model.h5: expected the .h5 file at the top" in problem


def test_file_that_is_not_hdf5_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.h5").write_bytes(b"not hdf5 at all")
    (problem,) = _problems(tmp_path)
    assert problem.startswith("model.h5: expected a Keras model saved by model.save()")
    assert "not an HDF5 file" in problem


def test_weights_only_file_is_rejected(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "model.h5", "w") as h5:
        h5.create_dataset("kernel", data=[1.0, 2.0])
    (problem,) = _problems(tmp_path)
    assert "without a 'model_config' attribute" in problem and "save_weights" in problem


def test_other_files_are_archived_with_a_warning(copy: Path) -> None:
    # e.g. a CoreML class_labels file must reach Neo inside the archive
    (copy / "labels.txt").write_text("cat\ndog\n")
    artifacts = ADAPTER.check(copy, GOOD)
    assert artifacts.files == ("labels.txt", "model.h5")
    assert any(w.startswith("labels.txt: not part of the Keras model") for w in artifacts.warnings)


def test_keras2_functional_config(tmp_path: Path) -> None:
    # Keras 2 writes batch_input_shape and input_layers as a list of [name, 0, 0].
    config = {
        "class_name": "Model",
        "config": {
            "name": "two_inputs",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "b",
                    "config": {"batch_input_shape": [None, 8], "name": "b"},
                },
                {
                    "class_name": "InputLayer",
                    "name": "a",
                    "config": {"batch_input_shape": [None, 32, 32, 1], "name": "a"},
                },
            ],
            "input_layers": [["a", 0, 0], ["b", 0, 0]],
        },
    }
    _write_h5(tmp_path / "model.h5", config)
    assert list(read_h5(tmp_path / "model.h5").inputs) == ["a", "b"]

    model = _model({"a": [1, 1, 32, 32], "b": [1, 8]})
    artifacts = ADAPTER.check(tmp_path, model)
    assert artifacts.inputs == {"a": (-1, 1, 32, 32), "b": (-1, 8)}
    assert artifacts.warnings == ()  # 2.2.4 is what Neo supports

    (problem,) = _problems(tmp_path, _model({"b": [1, 8], "a": [1, 1, 32, 32]}))
    assert problem.startswith("model.h5: input order")


def test_keras2_sequential_without_input_layer(tmp_path: Path) -> None:
    config = {
        "class_name": "Sequential",
        "config": [
            {"class_name": "Dense", "config": {"name": "dense_1", "batch_input_shape": [None, 4]}}
        ],
    }
    _write_h5(tmp_path / "model.h5", config)
    assert read_h5(tmp_path / "model.h5").inputs == {"dense_1_input": (None, 4)}
    ADAPTER.check(tmp_path, _model({"dense_1_input": [1, 4]}))


def test_channels_first_model_is_not_transposed(tmp_path: Path) -> None:
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_shape": [None, 3, 8, 8], "name": "x"},
                },
                {"class_name": "Conv2D", "config": {"name": "c", "data_format": "channels_first"}},
            ],
            "input_layers": ["x", 0, 0],
        },
    }
    _write_h5(tmp_path / "model.h5", config, keras_version="3.0.0")
    artifacts = ADAPTER.check(tmp_path, _model({"x": [1, 3, 8, 8]}))
    assert artifacts.inputs == {"x": (-1, 3, 8, 8)}


def test_to_nchw() -> None:
    assert to_nchw((None, 28, 28, 3)) == (None, 3, 28, 28)
    assert to_nchw((None, 100, 16)) == (None, 16, 100)
    assert to_nchw((None, 8)) == (None, 8)


BROKEN_EXPORT = '''
from pathlib import Path

import keras


def export(output_dir, inputs):
    """Saves a checkpoint next to the final model: two .h5 files."""
    keras.utils.set_random_seed(0)
    image = keras.Input(shape=(8, 8, 1), name="input_1")
    model = keras.Model(image, keras.layers.Dense(2)(keras.layers.Flatten()(image)))
    model.save(Path(output_dir) / "checkpoint.h5")
    model.save(Path(output_dir) / "model.h5")
'''


def test_export_that_writes_two_h5_files_is_rejected(tmp_path: Path) -> None:
    """The whole path of the broken export: a real subprocess export, then the check."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "export.py").write_text(BROKEN_EXPORT)
    model = factories.make_model(
        "broken-keras",
        framework="keras",
        export="broken/export.py",
        inputs={"input_1": (1, 1, 8, 8)},
        timeout=300,
    )
    out = tmp_path / "out"
    run_export(
        model,
        root=tmp_path,
        output_dir=out,
        log_path=tmp_path / "export.log",
        python=Path(sys.executable),
    )
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.h5", "model.h5"]

    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(out, model)
    assert info.value.problems == [
        "Multiple h5 files provided (2: checkpoint.h5, model.h5), when only one is allowed"
    ]
    assert "model 'broken-keras' (keras)" in str(info.value)
