"""The MXNet adapter on a real Gluon export, made in MXNet's own virtual environment.

MXNet 1.9.1 (the last release) needs ``numpy<1.24``, which the dev environment cannot
hold, so the example exports in a venv created once per machine under pytest's temp
root (``/tmp/pytest-of-<user>/neobuild-mxnet-venv``), guarded by a file lock and
rebuilt when it does not import mxnet.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import factories
import pytest
from mxnet_env import SHAPE, export_example

from neobuild.errors import ArtifactError
from neobuild.frameworks import mxnet
from neobuild.frameworks.mxnet import ADAPTER
from neobuild.model import Model

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]

SYMBOL, PARAMS = "mxnet-mlp-symbol.json", "mxnet-mlp-0000.params"


def make_model(name: str = "data", framework_version: str = "1.9") -> Model:
    return factories.make_model(
        "mxnet-mlp",
        framework="mxnet",
        export="examples/models/mxnet-mlp/export.py",
        inputs={name: SHAPE},
        framework_version=framework_version,
    )


def rejection(export_dir: Path, model: Model | None = None) -> ArtifactError:
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(export_dir, model or make_model())
    return info.value


@pytest.fixture(scope="module")
def exported(mxnet_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_example(mxnet_python, tmp_path_factory.mktemp("mxnet-export"))


@pytest.fixture
def export_dir(exported: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(exported, out)
    return out


def test_accepts_the_gluon_export(export_dir: Path) -> None:
    artifacts = ADAPTER.check(export_dir, make_model())
    assert artifacts.files == (PARAMS, SYMBOL)
    assert artifacts.warnings == ()


def test_newer_mxnet_than_framework_version_warns(export_dir: Path) -> None:
    assert ADAPTER.check(export_dir, make_model(framework_version="1.8")).warnings == (
        f"{SYMBOL}: written by MXNet 1.9.1, newer than framework_version 1.8;"
        " Neo's MXNet may not load it",
    )


def test_the_export_is_byte_stable(mxnet_python: Path, exported: Path, tmp_path: Path) -> None:
    again = export_example(mxnet_python, tmp_path / "again")
    for name in (SYMBOL, PARAMS):
        assert (again / name).read_bytes() == (exported / name).read_bytes()


def test_params_names_are_the_symbols_non_data_variables(exported: Path) -> None:
    names = mxnet.read_param_names(exported / PARAMS)
    assert names == ["mlp_dense0_weight", "mlp_dense0_bias", "mlp_dense1_weight", "mlp_dense1_bias"]
    symbol = json.loads((exported / SYMBOL).read_text())
    variables = [n["name"] for n in symbol["nodes"] if n["op"] == "null"]
    assert sorted(variables) == sorted([*names, "data"])
    assert mxnet.data_inputs(symbol, set(names)) == ["data"]
    assert mxnet.data_inputs(symbol, None) == ["data"]  # the guess agrees


def test_input_name_differing_from_the_manifest_is_rejected(export_dir: Path) -> None:
    error = rejection(export_dir, make_model("input0"))
    assert error.problems == [
        f"{SYMBOL}: input names: expected ['input0'] (from the manifest), found ['data']"
    ]
    assert error.hint is not None and "net.export" in error.hint


def test_two_params_files_are_rejected(export_dir: Path) -> None:
    shutil.copy2(export_dir / PARAMS, export_dir / "mxnet-mlp-0001.params")
    assert rejection(export_dir).problems == [
        "export: expected exactly one <name>-0000.params (Neo allows one parameter file),"
        f" found 2: {PARAMS}, mxnet-mlp-0001.params"
    ]


def test_missing_symbol_is_rejected(export_dir: Path) -> None:
    (export_dir / SYMBOL).unlink()
    assert rejection(export_dir).problems == [
        "export: expected exactly one <name>-symbol.json, found none"
    ]


def test_prefix_and_epoch_mismatches_are_rejected(export_dir: Path) -> None:
    (export_dir / PARAMS).rename(export_dir / "other-0003.params")
    assert rejection(export_dir).problems == [
        "other-0003.params: expected the prefix of mxnet-mlp-symbol.json"
        " (mxnet-mlp-0000.params), found prefix 'other'",
        "other-0003.params: expected epoch 0000, found epoch 0003",
    ]


def test_nothing_written_is_rejected(tmp_path: Path) -> None:
    assert rejection(tmp_path).problems == [
        "export: expected exactly one <name>-symbol.json, found none",
        "export: expected exactly one <name>-0000.params (Neo allows one parameter file),"
        " found none",
    ]


def test_symlink_to_a_file_outside_is_rejected(exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    shutil.copy2(exported / SYMBOL, out / SYMBOL)
    (out / PARAMS).symlink_to(exported / PARAMS)
    assert rejection(out).problems[0] == (
        f"{PARAMS}: expected a regular file, found a symlink to {str(exported / PARAMS)!r}"
        " (archives must not contain links; write the file itself)"
    )


def test_unreadable_params_fall_back_to_name_guessing(export_dir: Path) -> None:
    (export_dir / PARAMS).write_bytes(b"not an ndarray list")
    (warning,) = ADAPTER.check(export_dir, make_model()).warnings
    assert warning.startswith(f"{PARAMS}: could not read the parameter names (")
