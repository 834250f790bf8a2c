"""The local compile check, for real: Apache TVM and Treelite/TL2cgen compile tiny models.

One module-scoped ``package --compile-check`` run of the examples (PyTorch, ONNX, XGBoost,
TFLite, Keras) plus two ONNX models made here: one with an operator TVM's ONNX frontend
has no converter for (``Det``), one where TVM and onnxruntime genuinely compute different
numbers (``Resize`` with a non-integer scale, see ``RESIZE_EXPORT``). The export
environment is the test interpreter (the examples' requirements are dropped), which has
torch, onnxruntime, TensorFlow, ai-edge-litert and xgboost, and the ``tvm`` extra.
"""

from __future__ import annotations

import json
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import factories
import numpy as np
import pytest
import yaml
from e2e_helpers import copy_examples, git, neobuild, report, write_tree
from locations import ROOT
from ruamel.yaml import YAML

from neobuild import checkresult, compilecheck
from neobuild.model import Model

pytestmark = pytest.mark.frameworks

DET_EXPORT = '''
import onnx
from onnx import TensorProto, helper


def export(output_dir, inputs=None):
    """Det: onnxruntime runs it, TVM's Relax ONNX frontend has no converter for it."""
    graph = helper.make_graph(
        [helper.make_node("Det", ["input"], ["det"])],
        "det",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 3])],
        [helper.make_tensor_value_info("det", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(output_dir / "model.onnx"))
'''

# An honest mismatch: nothing is edited after the export. ONNX's Resize, given `scales`,
# maps output pixels back with the given scale (x_in = (x_out + 0.5) / 1.7 - 0.5 under
# half_pixel), which onnxruntime follows; TVM 0.27's Relax frontend resizes to the output
# size floor(4 * 1.7) = 6 and so samples with 6 / 4 = 1.5 instead. Both run the same
# model; the numbers differ by ~0.2. (A model can hit this the same way in real life.)
RESIZE_EXPORT = """
import onnx
from onnx import TensorProto, helper


def export(output_dir, inputs=None):
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 1.7, 1.7])
    node = helper.make_node(
        "Resize", ["input", "", "scales"], ["output"],
        mode="cubic", coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.5,
    )
    graph = helper.make_graph(
        [node],
        "resize",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 6, 6])],
        [scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(output_dir / "model.onnx"))
"""

CHECKED = ["torch-cnn", "onnx-mlp", "xgb-classifier", "tflite-mobile"]
SELECTED = [*CHECKED, "keras-cnn", "onnx-det", "onnx-resize"]


def _add_models(repo: Path) -> None:
    write_tree(
        repo,
        {
            "models/onnx-det/export.py": textwrap.dedent(DET_EXPORT),
            "models/onnx-resize/export.py": textwrap.dedent(RESIZE_EXPORT),
        },
    )
    ryaml = YAML()
    manifest = repo / "neo.yaml"
    data = ryaml.load(manifest)
    data["models"]["onnx-det"] = {
        "framework": "onnx",
        "export": "models/onnx-det/export.py:export",
        "inputs": {"input": [2, 3, 3]},
        "targets": ["ml_c5"],
    }
    data["models"]["onnx-resize"] = {
        "framework": "onnx",
        "export": "models/onnx-resize/export.py:export",
        "inputs": {"input": [1, 1, 4, 4]},
        "targets": ["ml_c5"],
        "compile_check": True,  # the manifest key: checked without --compile-check
    }
    with manifest.open("w") as fh:
        ryaml.dump(data, fh)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "two more models", cwd=repo)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    repo = copy_examples(tmp_path_factory.mktemp("cc") / "repo")
    _add_models(repo)
    junit = repo / "junit.xml"
    result = neobuild(
        "package",
        *SELECTED,
        "-j",
        "2",
        "--compile-check",
        "--json",
        "--junit",
        str(junit),
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr
    return repo, report(result), result.stderr


def _check_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    (model,) = [m for m in data["models"] if m["name"] == name]
    assert model["status"] == "built", model
    result: dict[str, Any] = model["compile_check"]
    return result


@pytest.mark.parametrize("name", CHECKED)
def test_examples_pass_where_a_frontend_exists(
    checked: tuple[Path, dict[str, Any], str], name: str
) -> None:
    _repo, data, _ = checked
    check = _check_of(data, name)
    assert check["status"] == "passed", check
    assert check["max_abs"] is not None
    assert check["max_abs"] <= checkresult.ATOL
    expected = "treelite" if name == "xgb-classifier" else "apache-tvm 0.27"
    assert expected in check["compiler"]
    if name == "torch-cnn":
        assert check["timings"]["to_onnx"] > 0  # converted in the export environment


def test_keras_is_not_checked_with_the_reason(checked: tuple[Path, dict[str, Any], str]) -> None:
    _repo, data, _ = checked
    check = _check_of(data, "keras-cnn")
    assert check["status"] == "not-checked"
    assert "no Keras frontend" in check["detail"]


def test_unsupported_operator_is_named(checked: tuple[Path, dict[str, Any], str]) -> None:
    _repo, data, _ = checked
    check = _check_of(data, "onnx-det")
    assert check["status"] == "unsupported"
    assert check["ops"] == ["Det"]
    assert "Neo's compiler differs" in check["detail"]


def test_mismatch_says_how_much_and_where(checked: tuple[Path, dict[str, Any], str]) -> None:
    _repo, data, _ = checked
    check = _check_of(data, "onnx-resize")  # checked through its manifest key
    assert check["status"] == "mismatch"
    assert check["max_abs"] > 0.01
    assert check["where"].startswith("output 0 [0, 0, ")
    assert check["where"] in check["detail"]


def test_results_reach_lock_junit_and_summary(checked: tuple[Path, dict[str, Any], str]) -> None:
    repo, _data, stderr = checked
    lock = yaml.safe_load((repo / "neo.lock").read_text())["models"]
    assert lock["onnx-mlp"]["compile_check"].startswith("passed: max abs diff")
    assert lock["onnx-det"]["compile_check"].startswith("unsupported: ")
    assert lock["keras-cnn"]["compile_check"].startswith("not-checked: ")
    cases = {c.get("name"): c for c in ET.parse(repo / "junit.xml").getroot().iter("testcase")}
    assert cases["onnx-mlp [compile check]"].find("failure") is None
    assert cases["onnx-mlp [compile check]"].find("skipped") is None
    # Not --strict: a mismatch is shown, not failed.
    assert cases["onnx-resize [compile check]"].find("skipped") is not None
    assert cases["onnx-resize [compile check]"].find("failure") is None
    assert "onnx-resize: compile check mismatch:" in stderr
    assert "onnx-det: compile check unsupported:" in stderr


def test_check_command_on_packed_models(checked: tuple[Path, dict[str, Any], str]) -> None:
    repo, _data, _ = checked
    junit = repo / "reports" / "check.xml"
    result = neobuild(
        "check", "onnx-mlp", "onnx-det", "--strict", "--json", "--junit", str(junit), cwd=repo
    )
    assert result.returncode == 1, result.stderr  # --strict: onnx-det is unsupported
    data = json.loads(result.stdout)
    statuses = {m["name"]: m["status"] for m in data["models"]}
    assert statuses == {"onnx-mlp": "passed", "onnx-det": "unsupported"}
    assert data["ok"] is False
    lock = yaml.safe_load((repo / "neo.lock").read_text())["models"]
    assert lock["onnx-det"]["compile_check"].startswith("unsupported: ")
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"onnx-mlp", "onnx-det"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "0")
    failure = cases["onnx-det"].find("failure")
    assert failure is not None and "Det" in (failure.get("message") or "")
    assert cases["onnx-mlp"].find("failure") is None
    # Without --strict the same result is a hint: the testcase is skipped, not failed.
    result = neobuild("check", "onnx-det", "--junit", str(junit), cwd=repo)
    assert result.returncode == 0, result.stderr
    (case,) = ET.parse(junit).getroot().iter("testcase")
    assert case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None and (skipped.get("message") or "").startswith("unsupported: ")


def test_strict_fails_the_build(checked: tuple[Path, dict[str, Any], str]) -> None:
    repo, _data, _ = checked
    junit = repo / "strict.xml"
    result = neobuild(
        "package",
        "onnx-det",
        "--force",
        "--compile-check",
        "--strict",
        "--json",
        "--junit",
        str(junit),
        cwd=repo,
    )
    assert result.returncode == 1, result.stderr
    (model,) = report(result)["models"]
    assert model["status"] == "failed"
    assert "compile check unsupported" in model["message"]
    assert "Det" in model["message"]
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["onnx-det [compile check]"].find("failure") is not None


def test_without_the_extra_it_is_a_usage_error(
    checked: tuple[Path, dict[str, Any], str], tmp_path: Path
) -> None:
    """A ``tvm`` module that fails to import, first on the path: the extra is "missing"."""
    repo, _data, _ = checked
    shadow = tmp_path / "shadow" / "tvm"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named tvm (shadowed)')\n")
    before = (repo / "neo.lock").read_bytes()
    pythonpath = f"{tmp_path / 'shadow'}:{ROOT}"
    result = neobuild(
        "package",
        "onnx-mlp",
        "--force",
        "--compile-check",
        cwd=repo,
        env={"PYTHONPATH": pythonpath},
    )
    assert result.returncode == 2, result.stderr
    assert "neobuild[tvm]" in result.stderr
    assert (repo / "neo.lock").read_bytes() == before  # nothing was exported or rebuilt
    checked_cmd = neobuild("check", "onnx-mlp", cwd=repo, env={"PYTHONPATH": pythonpath})
    assert checked_cmd.returncode == 2
    assert "neobuild[tvm]" in checked_cmd.stderr


def test_check_refuses_a_model_never_packed(checked: tuple[Path, dict[str, Any], str]) -> None:
    repo, _data, _ = checked
    result = neobuild("check", "tf-savedmodel", cwd=repo)
    assert result.returncode == 2
    assert "not packed yet" in result.stderr


def test_memory_limit_is_applied_and_reported(
    checked: tuple[Path, dict[str, Any], str], tmp_path: Path
) -> None:
    """Under a 400 MiB address-space limit TVM cannot even load: not-checked, saying so."""
    repo, _data, _ = checked
    ryaml = YAML(typ="safe")
    spec = ryaml.load(repo / "neo.yaml")["models"]["onnx-mlp"]
    model = _model("onnx", inputs=spec["inputs"])
    result = compilecheck.check_model(
        model,
        export_dir=repo / "build" / "neo" / "onnx-mlp" / "export",
        python=Path(sys.executable),
        log_path=tmp_path / "log",
        memory_mb=400,
    )
    assert result.status == "not-checked", result
    assert "400 MiB address-space limit" in result.detail


# --------------------------------------------------------------------------- pure parts


def _model(framework: str, inputs: dict[str, list[int]] | None = None) -> Model:
    return factories.make_model(
        framework=framework, export="x.py", inputs=inputs or {"input": [1, 3, 8, 8]}
    )


@pytest.mark.parametrize("framework", ["keras", "tensorflow", "mxnet", "darknet"])
def test_frameworks_without_a_frontend_are_not_checked(framework: str, tmp_path: Path) -> None:
    result = compilecheck.check_model(
        _model(framework), export_dir=tmp_path, python=Path("/nonexistent"), log_path=tmp_path / "l"
    )
    assert result.status == "not-checked"
    assert "frontend" in result.detail
    assert not (tmp_path / "l").exists()  # nothing was started


def test_compare_squeezes_unit_axes_and_finds_the_worst_element() -> None:
    ref = [np.array([0.5, 0.25, 0.75], dtype=np.float32)]
    status, _detail, (max_abs, _rel, where) = checkresult.compare(
        ref, [np.array([[[0.5]], [[0.25]], [[0.75]]], dtype=np.float32)]
    )
    assert (status, max_abs) == ("passed", 0.0)
    status, detail, (max_abs, max_rel, where) = checkresult.compare(
        ref, [np.array([0.5, 0.35, 0.75], dtype=np.float32)]
    )
    assert status == "mismatch"
    assert where == "output 0 [1]"
    assert max_abs == pytest.approx(0.1, rel=1e-5)
    assert max_rel == pytest.approx(0.4, rel=1e-5)
    assert "rtol=0.0001" in detail


def test_compare_integers_exactly_and_counts_outputs() -> None:
    assert checkresult.compare([np.array([1, 2])], [np.array([1, 3])])[0] == "mismatch"
    status, detail, _ = checkresult.compare([np.zeros(2)], [np.zeros(2), np.zeros(2)])
    assert status == "mismatch"
    assert "2 output(s) from the compiled model, 1 from the framework" in detail
    status, detail, _ = checkresult.compare([np.zeros(4)], [np.zeros(3)])
    assert (status, detail.split(":")[0]) == ("mismatch", "output 0")


def test_parse_ops_reads_tvms_message() -> None:
    message = "The following operators are not supported for frontend ONNX: STFT, Det, LSTM"
    assert compilecheck.parse_ops(message) == ("Det", "LSTM", "STFT")
    assert compilecheck.parse_ops("something else") == ()


# --------------------------------------------------------------------------- CLI layer


@pytest.fixture
def cli_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from neobuild import api

    path = tmp_path / "neo.yaml"
    path.write_text("version: 1\nmodels: {}\n")
    monkeypatch.setattr(api, "locate_manifest", lambda **kw: path)
    return path


def test_package_compile_check_options_become_api_keywords(
    cli_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from neobuild import api, cli
    from neobuild.results import BuildReport, ModelReport

    seen: list[dict[str, Any]] = []

    def fake_package(**kwargs: Any) -> BuildReport:
        seen.append(kwargs)
        return BuildReport(manifest=cli_manifest, models=[ModelReport("a", "built")], duration=0)

    monkeypatch.setattr(api, "package", fake_package)
    runner = CliRunner()
    assert runner.invoke(cli.app, ["package", "a", "--compile-check", "--strict"]).exit_code == 0
    assert runner.invoke(cli.app, ["package", "a", "--no-compile-check"]).exit_code == 0
    assert runner.invoke(cli.app, ["package", "a"]).exit_code == 0
    assert [(k["compile_check"], k["strict"]) for k in seen] == [
        (True, True),
        (False, False),
        (None, False),  # None: each model's `compile_check` key decides
    ]


def test_check_command_options_become_api_keywords(
    cli_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from neobuild import api, cli

    seen: dict[str, Any] = {}
    failed = checkresult.CheckResult("b", "mismatch", "max abs diff 0.5")

    def fake_check(**kwargs: Any) -> checkresult.CheckReport:
        seen.update(kwargs)
        return checkresult.CheckReport(results=(failed,), strict=kwargs["strict"])

    monkeypatch.setattr(api, "check", fake_check)
    result = CliRunner().invoke(cli.app, ["check", "b", "--strict", "--json", "--junit", "j.xml"])
    assert result.exit_code == 1
    assert (seen["patterns"], seen["all_models"], seen["strict"]) == (["b"], False, True)
    assert seen["junit"] == Path("j.xml")
    assert json.loads(result.stdout)["models"][0]["status"] == "mismatch"
    result = CliRunner().invoke(cli.app, ["check", "--all"])
    assert result.exit_code == 0  # without --strict a mismatch is reported, not failed
    assert "b: mismatch: max abs diff 0.5" in result.stderr


def test_manifest_key_from_defaults_and_its_validation(tmp_path: Path) -> None:
    from neobuild import manifest as manifest_mod

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "export.py").write_text("def export(output_dir, inputs=None): pass\n")
    body = textwrap.dedent(
        """\
        version: 1
        defaults:
          compile_check: true
        models:
          a: {framework: xgboost, export: "m/export.py:export", targets: [ml_c5]}
          b: {framework: xgboost, export: "m/export.py:export", targets: [ml_c5], compile_check: false}
        """
    )
    (tmp_path / "neo.yaml").write_text(body)
    loaded, problems = manifest_mod.check(tmp_path / "neo.yaml")
    assert loaded is not None, problems
    assert (loaded.models["a"].compile_check, loaded.models["b"].compile_check) == (True, False)
    (tmp_path / "neo.yaml").write_text(body.replace("compile_check: true", "compile_check: yes"))
    loaded, problems = manifest_mod.check(tmp_path / "neo.yaml")
    assert any("compile_check" in p.render() and p.severity == "error" for p in problems), problems


def test_check_junit_is_written_on_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the first of two models: the JUnit report holds the one that finished."""
    from neobuild import api

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "export.py").write_text("def export(output_dir, inputs=None): pass\n")
    model = "    framework: xgboost\n    export: m/export.py:export\n    targets: [ml_c5]\n"
    (tmp_path / "neo.yaml").write_text(f"version: 1\nmodels:\n  a:\n{model}  b:\n{model}")

    def interrupted_after_one(manifest: Any, models: Any, on_result: Any) -> Any:
        on_result(checkresult.CheckResult(models[0].name, "passed", "max abs diff 0"))
        raise KeyboardInterrupt

    monkeypatch.setattr(compilecheck, "check_packed", interrupted_after_one)
    junit = tmp_path / "reports" / "check.xml"
    with pytest.raises(KeyboardInterrupt):
        api.check(manifest_path=tmp_path / "neo.yaml", all_models=True, junit=junit)
    (case,) = ET.parse(junit).getroot().iter("testcase")
    assert case.get("name") == "a" and case.find("failure") is None
