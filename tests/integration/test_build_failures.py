"""Broken exports: each fails with its own clear message, the others still build.

Real subprocess exports with the real frameworks through the real CLI; one
repository holds every kind of breakage and one good model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import init_repo, neobuild, report, write_tree

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]

GOOD_XGB = """
import numpy as np
import xgboost as xgb

def export(output_dir, inputs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    booster = xgb.train({"nthread": 1, "max_depth": 2}, xgb.DMatrix(x, label=x[:, 0] > 0), 2)
    booster.save_model(str(output_dir / "model.json"))
"""

EXPORTS = {
    "models/good/export.py": GOOD_XGB,
    "models/raises/export.py": "def export(output_dir, inputs):\n"
    "    raise ValueError('weights file is corrupt')\n",
    "models/hangs/export.py": "import time\n\ndef export(output_dir, inputs):\n    time.sleep(600)\n",
    "models/empty/export.py": "def export(output_dir, inputs):\n    print('forgot to save')\n",
    "models/two-h5/export.py": """
import h5py

def export(output_dir, inputs):
    for name in ("a.h5", "b.h5"):
        with h5py.File(output_dir / name, "w") as fh:
            fh.attrs["keras_version"] = "2.2.4"
""",
    "models/state-dict/export.py": """
import torch

def export(output_dir, inputs):
    model = torch.nn.Linear(4, 2)
    torch.save(model.state_dict(), output_dir / "model.pth")
""",
    "models/onnx-shape/export.py": """
import onnx
from onnx import TensorProto, helper

def export(output_dir, inputs):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    onnx.save(model, str(output_dir / "model.onnx"))
""",
    "models/symlink/export.py": """
import os

def export(output_dir, inputs):
    os.symlink("/etc/hostname", output_dir / "model.json")
""",
    # A module-level __getattr__ hides the typo from validate's static check: the export's
    # own lookup must still say what is missing.
    "models/no-function/export.py": (
        "def export(output_dir, inputs):\n    pass\n\n\n"
        "def __getattr__(name):\n    raise AttributeError(name)\n"
    ),
    "models/bad-req/export.py": "def export(output_dir, inputs):\n    pass\n",
}

MANIFEST = """
version: 1
defaults:
  targets: [ml_c5]
  compile: {role_arn: "arn:aws:iam::123456789012:role/Neo", s3_prefix: "s3://neobuild-tests/neo"}
models:
  good:
    framework: xgboost
    export: models/good/export.py:export
  raises:
    framework: xgboost
    export: models/raises/export.py:export
  hangs:
    framework: xgboost
    export: models/hangs/export.py:export
    timeout: 3
  empty:
    framework: xgboost
    export: models/empty/export.py:export
  two-h5:
    framework: keras
    export: models/two-h5/export.py:export
    inputs: {input_1: [1, 3, 8, 8]}
  state-dict:
    framework: pytorch
    export: models/state-dict/export.py:export
    inputs: {input0: [1, 4]}
  onnx-shape:
    framework: onnx
    export: models/onnx-shape/export.py:export
    inputs: {input: [1, 8]}
  symlink:
    framework: xgboost
    export: models/symlink/export.py:export
  no-function:
    framework: xgboost
    export: models/no-function/export.py:exprt
  bad-req:
    framework: xgboost
    export: models/bad-req/export.py:export
    requirements: [neobuild-no-such-package-xyz==1.0]
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    repo = tmp_path_factory.mktemp("broken") / "repo"
    write_tree(repo, {"neo.yaml": MANIFEST, **EXPORTS})
    init_repo(repo)
    cache = tmp_path_factory.mktemp("cache")
    result = neobuild(
        "package",
        "--all",
        "--keep-going",
        "-j",
        "2",
        "--json",
        cwd=repo,
        env={"NEOBUILD_CACHE_DIR": str(cache)},
    )
    data = report(result)
    return repo, result, {m["name"]: m for m in data["models"]}


def test_exit_1_with_the_good_model_built(outcome: tuple[Path, Any, dict[str, Any]]) -> None:
    repo, result, models = outcome
    assert result.returncode == 1
    assert models["good"]["status"] == "built"
    assert (repo / "build/neo/good/model.tar.gz").is_file()
    failed = sorted(n for n, m in models.items() if m["status"] == "failed")
    assert failed == sorted(set(models) - {"good"})
    assert "1 built, 9 failed" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr.split("error:")[0]
    lock = (repo / "neo.lock").read_text()
    assert "good:" in lock and "raises:" not in lock


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("raises", ["ValueError: weights file is corrupt"]),
        ("hangs", ["timed out after 3"]),
        ("empty", ["wrote nothing"]),
        ("two-h5", ["Multiple h5 files", "a.h5", "b.h5"]),
        ("state-dict", ["state_dict", "torch.jit"]),
        ("onnx-shape", ["input", "[1, 8]", "[1, 4]"]),
        ("symlink", ["symlink", "model.json"]),
        ("no-function", ["exprt", "did you mean 'export'"]),
        ("bad-req", ["neobuild-no-such-package-xyz"]),
    ],
)
def test_each_failure_says_what_went_wrong(
    outcome: tuple[Path, Any, dict[str, Any]], name: str, expected: list[str]
) -> None:
    repo, _, models = outcome
    model = models[name]
    text = model["message"] + "\n" + (model["hint"] or "")
    for fragment in expected:
        assert fragment in text, f"{name}: {fragment!r} not in:\n{text}"
    # The log is kept where the message says, even though the build failed.
    log = repo / "build" / "neo" / name / "export.log"
    assert log.is_file()
    assert model["log"] == str(log)


def test_failed_rebuild_keeps_the_previous_outputs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_tree(
        repo,
        {
            "neo.yaml": "version: 1\nmodels:\n  m:\n    framework: xgboost\n"
            "    export: models/m/export.py:export\n    targets: [ml_c5]\n"
            "    compile: {role_arn: 'arn:aws:iam::123456789012:role/Neo',"
            " s3_prefix: 's3://neobuild-tests/neo'}\n",
            "models/m/export.py": GOOD_XGB,
        },
    )
    init_repo(repo)
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    archive = repo / "build/neo/m/model.tar.gz"
    before = archive.read_bytes()
    lock_before = (repo / "neo.lock").read_bytes()
    (repo / "models/m/export.py").write_text(GOOD_XGB + "\n    raise RuntimeError('broke')\n")
    failed = neobuild("package", "--all", cwd=repo)
    assert failed.returncode == 1
    assert "RuntimeError: broke" in failed.stderr
    assert archive.read_bytes() == before
    assert (repo / "neo.lock").read_bytes() == lock_before
    assert not (repo / "build/neo/.staging").exists()  # swept, not left empty
    plan = neobuild("plan", "--json", cwd=repo)
    assert json.loads(plan.stdout)["models"][0]["status"] == "stale"


def test_two_jobs_really_run_two_exports_at_once(tmp_path: Path) -> None:
    """Each export waits for the other to start: serial runs would time out."""
    repo = tmp_path / "repo"
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    body = """
import os, time
from pathlib import Path

def export(output_dir, inputs):
    here = Path(os.environ["RENDEZVOUS"])
    me, other = os.environ["ME"], os.environ["OTHER"]
    (here / me).touch()
    deadline = time.monotonic() + 60
    while not (here / other).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{other} never started while {me} ran")
        time.sleep(0.05)
    (output_dir / "model.json").write_text('{"learner": {}}')
"""
    write_tree(
        repo,
        {
            "neo.yaml": f"""
version: 1
defaults:
  targets: [ml_c5]
  timeout: 120
  compile: {{role_arn: "arn:aws:iam::123456789012:role/Neo", s3_prefix: "s3://neobuild-tests/neo"}}
models:
  left:
    framework: xgboost
    export: models/m/export.py:export
    env: {{RENDEZVOUS: "{rendezvous}", ME: left, OTHER: right}}
  right:
    framework: xgboost
    export: models/m/export.py:export
    env: {{RENDEZVOUS: "{rendezvous}", ME: right, OTHER: left}}
""",
            "models/m/export.py": body,
        },
    )
    init_repo(repo)
    result = neobuild("package", "--all", "-j", "2", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert report(result)["summary"]["built"] == 2
    assert sorted(os.listdir(rendezvous)) == ["left", "right"]


COMPILE = "  compile: {role_arn: 'arn:aws:iam::123456789012:role/Neo', s3_prefix: 's3://neobuild-tests/neo'}\n"


def _repo(tmp_path: Path, manifest: str, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    write_tree(repo, {"neo.yaml": manifest, **files})
    init_repo(repo)
    return repo


def test_build_dir_holding_sources_is_refused_and_sources_survive(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\nbuild_dir: models\ndefaults:\n  targets: [ml_c5]\n"
        + COMPILE
        + "models:\n  x:\n    framework: xgboost\n    export: models/x/export.py:export\n",
        {"models/x/export.py": GOOD_XGB},
    )
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 2
    assert (
        "neo.yaml:9:13: models.x.export: models/x/export.py is inside build_dir models, "
        "which neobuild replaces"
    ) in result.stderr
    assert (repo / "models/x/export.py").read_text() == GOOD_XGB


def test_a_directory_neobuild_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n"
        + COMPILE
        + "models:\n  x:\n    framework: xgboost\n    export: src/export.py:export\n",
        {"src/export.py": GOOD_XGB, "build/neo/x/notes.txt": "mine"},
    )
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 1
    assert "refusing to replace" in result.stderr
    assert (repo / "build/neo/x/notes.txt").read_text() == "mine"


def test_half_set_compile_settings_fail_before_the_export_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    model = "version: 1\nmodels:\n  x:\n    framework: xgboost\n    export: src/export.py:export\n"
    repo = _repo(
        tmp_path,
        model + "    targets: [ml_c5]\n    compile: {s3_prefix: 's3://bucket/neo'}\n",
        {
            "src/export.py": f"def export(output_dir, inputs):\n    open({str(ran)!r}, 'w').close()\n"
        },
    )
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 2
    assert "compile.role_arn is not set" in result.stderr
    assert not ran.exists()
    # Without any compile settings, --allow-incomplete writes placeholder requests.
    (repo / "neo.yaml").write_text(model + "    targets: [ml_c5]\n")
    incomplete = neobuild("package", "--all", "--allow-incomplete", cwd=repo)
    assert incomplete.returncode == 1  # the export above writes no model file
    assert ran.exists()


def test_package_needs_names_or_all(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n"
        + COMPILE
        + "models:\n  x:\n    framework: xgboost\n    export: src/export.py:export\n",
        {"src/export.py": GOOD_XGB},
    )
    result = neobuild("package", cwd=repo)
    assert result.returncode == 2
    assert "--all" in result.stderr
    assert neobuild("compile", cwd=repo).returncode == 2


def test_models_removed_from_the_manifest_leave_the_lock(tmp_path: Path) -> None:
    two = (
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  keep:\n    framework: xgboost\n    export: src/export.py:export\n"
        "  drop:\n    framework: xgboost\n    export: src/export.py:export\n"
    )
    repo = _repo(tmp_path, two, {"src/export.py": GOOD_XGB})
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    (repo / "neo.yaml").write_text(two.split("  drop:")[0])
    assert neobuild("verify", cwd=repo).returncode == 1  # orphaned until the next --all
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "no longer in the manifest: drop" in result.stderr
    assert "drop:" not in (repo / "neo.lock").read_text()
    assert not (repo / "build/neo/drop").exists()
    verified = neobuild("verify", cwd=repo)
    assert verified.returncode == 0, verified.stderr


def test_compile_refuses_models_changed_since_packaging(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n"
        + COMPILE
        + "models:\n  x:\n    framework: xgboost\n    export: src/export.py:export\n",
        {"src/export.py": GOOD_XGB},
    )
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    assert neobuild("compile", "--all", cwd=repo).returncode == 0
    bad_endpoint = neobuild(
        "compile",
        "--all",
        "--submit",
        cwd=repo,
        env={
            "AWS_ENDPOINT_URL": "notaurl",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
        },
    )
    assert bad_endpoint.returncode == 1
    assert "must be a URL like https://host:port" in bad_endpoint.stderr
    assert "Traceback" not in bad_endpoint.stderr
    (repo / "neo.yaml").write_text(
        (repo / "neo.yaml").read_text().replace("s3://neobuild-tests/neo", "s3://other/neo")
    )
    result = neobuild("compile", "--all", cwd=repo)
    assert result.returncode == 1
    assert "changed since they were packaged" in result.stderr
    assert "neobuild package x" in result.stderr


def test_interrupt_stops_running_exports_and_keeps_nothing_half_done(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    started = tmp_path / "started"
    slow = (
        "import os, time\n\ndef export(output_dir, inputs):\n"
        f"    open({str(started)!r}, 'w').write(str(os.getpid()))\n    time.sleep(120)\n"
    )
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n"
        + COMPILE
        + "models:\n  slow:\n    framework: xgboost\n    export: src/slow.py:export\n",
        {"src/slow.py": slow},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "neobuild", "package", "--all"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), "the export never started"
    time.sleep(0.5)
    export_pid = int(started.read_text())
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # what CI sends on cancel; Ctrl-C takes the same path
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 30  # did not wait for the 120 s export
    assert "interrupted" in err
    with pytest.raises(ProcessLookupError):
        os.kill(export_pid, 0)
    assert not (repo / "neo.lock").exists() or "slow:" not in (repo / "neo.lock").read_text()
    assert not (repo / "build/neo/slow/model.tar.gz").exists()


def test_secrets_are_masked_in_messages_and_json(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n"
        + COMPILE
        + "models:\n  x:\n    framework: xgboost\n    export: src/export.py:export\n"
        "    env: {SECRET_TOKEN: '${SECRET_TOKEN}'}\n",
        {
            "src/export.py": "import os\n\ndef export(output_dir, inputs):\n"
            "    raise RuntimeError('bad token ' + os.environ['SECRET_TOKEN'])\n"
        },
    )
    result = neobuild(
        "package", "--all", "--json", cwd=repo, env={"SECRET_TOKEN": "supersecretvalue123"}
    )
    assert result.returncode == 1
    assert "bad token ***" in result.stderr
    assert "supersecretvalue123" not in result.stderr
    assert "supersecretvalue123" not in result.stdout


def test_plan_check_fails_while_the_lock_lists_an_undeclared_model(tmp_path: Path) -> None:
    two = (
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  keep:\n    framework: xgboost\n    export: src/export.py:export\n"
        "  drop:\n    framework: xgboost\n    export: src/export.py:export\n"
    )
    repo = _repo(tmp_path, two, {"src/export.py": GOOD_XGB})
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    (repo / "neo.yaml").write_text(two.split("  drop:")[0])
    check = neobuild("plan", "--check", cwd=repo)
    assert check.returncode == 1
    assert "drop: in neo.lock but no longer declared" in check.stdout
    assert json.loads(neobuild("plan", "--json", cwd=repo).stdout)["removed"] == ["drop"]


def test_unusable_build_dir_is_one_error_before_any_work(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  a:\n    framework: xgboost\n    export: src/export.py:export\n"
        "  b:\n    framework: xgboost\n    export: src/export.py:export\n",
        {
            "src/export.py": f"def export(output_dir, inputs):\n    open({str(ran)!r}, 'w').close()\n"
        },
    )
    (repo / "build").write_text("a file where build/neo should go")
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 2
    assert result.stderr.count("build_dir build/neo is not usable") == 1
    assert not ran.exists()


def test_log_tail_is_bounded(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  loud:\n    framework: xgboost\n    export: src/export.py:export\n",
        {
            "src/export.py": "import sys\n\ndef export(output_dir, inputs):\n"
            "    sys.stdout.write('z' * 5_000_000)\n    raise RuntimeError('after the noise')\n"
        },
    )
    junit = tmp_path / "junit.xml"
    result = neobuild("package", "--all", "--json", "--junit", str(junit), cwd=repo)
    assert result.returncode == 1
    assert junit.stat().st_size < 200_000
    assert len(result.stdout) < 200_000


def test_export_writing_into_its_sources_is_named(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  b:\n    framework: xgboost\n    export: models/b/export.py:export\n",
        {
            "models/b/export.py": GOOD_XGB.replace(
                "def export(output_dir, inputs):\n",
                "def export(output_dir, inputs):\n"
                "    open('models/b/weights_cache.bin', 'wb').write(b'cached')\n",
            )
        },
    )
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "the export changed files its own sources match (models/b/weights_cache.bin)" in (
        result.stderr
    )


def test_render_only_changes_repack_without_re_exporting(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    counting = GOOD_XGB.replace(
        "def export(output_dir, inputs):\n",
        f"def export(output_dir, inputs):\n    open({str(runs)!r}, 'a').write('x')\n",
    )
    manifest = (
        "version: 1\ndefaults:\n  targets: [ml_c5]\n" + COMPILE + "models:\n"
        "  m:\n    framework: xgboost\n    export: src/export.py:export\n    tags: [a]\n"
    )
    repo = _repo(tmp_path, manifest, {"src/export.py": counting})
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    assert runs.read_text() == "x"
    archive = (repo / "build/neo/m/model.tar.gz").read_bytes()
    request_before = (repo / "build/neo/m/requests/ml_c5.json").read_text()

    # compile settings and tags shape only the requests: the export is not run again
    (repo / "neo.yaml").write_text(
        manifest.replace("s3://neobuild-tests/neo", "s3://other-bucket/neo").replace(
            "[a]", "[a, b]"
        )
    )
    plan = neobuild("plan", cwd=repo)
    assert "manifest field changed" in plan.stdout
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "export reused" in result.stderr and "archive unchanged" in result.stderr
    assert runs.read_text() == "x"
    assert (repo / "build/neo/m/model.tar.gz").read_bytes() == archive
    request_after = (repo / "build/neo/m/requests/ml_c5.json").read_text()
    assert request_after != request_before and "s3://other-bucket/neo" in request_after
    assert neobuild("verify", cwd=repo).returncode == 0
    assert neobuild("plan", "--check", cwd=repo).returncode == 0

    # an archive changed since it was built is packed again from the reused export
    tampered = bytearray(archive)
    tampered[len(tampered) // 2] ^= 1
    (repo / "build/neo/m/model.tar.gz").write_bytes(bytes(tampered))
    (repo / "neo.yaml").write_text((repo / "neo.yaml").read_text().replace("[a, b]", "[b]"))
    result = neobuild("package", "--all", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "export reused" in result.stderr and "archive unchanged" not in result.stderr
    assert runs.read_text() == "x"
    assert neobuild("verify", cwd=repo).returncode == 0
    (repo / "neo.yaml").write_text((repo / "neo.yaml").read_text().replace("[b]", "[a, b]"))

    # a tampered export is never reused
    (repo / "build/neo/m/export/model.json").write_text('{"learner": {}}')
    (repo / "neo.yaml").write_text((repo / "neo.yaml").read_text().replace("[a, b]", "[a]"))
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    assert runs.read_text() == "xx"

    # a source change re-runs the export
    (repo / "src/export.py").write_text(counting + "\n# changed\n")
    assert neobuild("package", "--all", cwd=repo).returncode == 0
    assert runs.read_text() == "xxx"
