"""forkserver.py: exports forked from a pre-warmed server keep every isolation guarantee.

The runner's own tests (tests/test_runner.py) run again here with a fork server active:
timeouts that kill the whole group, SIGTERM then SIGKILL, processes left behind, Ctrl-C,
the scrubbed environment, output capture and streaming, every failure status. A check
after each test makes sure its exports really went through a fork server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_runner import *  # noqa: F403 - the runner's tests, collected again here
from test_runner import PY, gone, make_model, write

from neobuild import forkserver
from neobuild.export import ExportResult, run_export

pytestmark = pytest.mark.skipif(not forkserver.available(), reason="no fork server here")


@pytest.fixture(autouse=True)
def forked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every export of the test runs inside a fork-server session; record the outcomes."""
    outcomes: list[Any] = []
    real = forkserver.run

    def recording(*args: Any, **kwargs: Any) -> Any:
        active = forkserver._ACTIVE is not None
        result = real(*args, **kwargs)
        outcomes.append((args[0], result, active))
        return result

    monkeypatch.setattr(forkserver, "run", recording)
    with forkserver.session():
        yield outcomes
    for python, result, active in outcomes:
        if active and Path(python).exists():
            assert result is not None, "an export fell back to a plain subprocess"


@pytest.fixture(autouse=True)
def no_prewarm(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner's models say "onnx"; importing onnx in every test's server costs ~1.5 s.
    # Prewarming is tested on its own below.
    monkeypatch.setattr(forkserver, "PREWARM", {})


# --------------------------------------------------------------------------- the server itself

PPID_EXPORT = """
import json, os, sys
def export(output_dir, inputs):
    output_dir.mkdir(exist_ok=True)
    (output_dir / "model.onnx").write_bytes(b"x")
    (output_dir / "who.json").write_text(json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
        "cwd": os.getcwd(), "numpy_loaded": "numpy" in sys.modules,
        "env": dict(os.environ),
    }))
"""


def _who(root: Path, model: Any, out: str) -> tuple[ExportResult, dict[str, Any]]:
    result = run_export(
        model, root=root, output_dir=root / out, log_path=root / "logs" / f"{out}.log", python=PY
    )
    return result, json.loads((root / out / "who.json").read_text())


def test_exports_of_one_environment_are_forked_from_one_server(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", PPID_EXPORT)
    model = make_model()
    _, first = _who(tmp_path, model, "a")
    _, second = _who(tmp_path, model, "b")
    server = first["ppid"]
    assert server == second["ppid"] != os.getpid()  # children of the server, not of us
    assert first["pid"] != second["pid"]
    for who in (first, second):  # each in a session and process group of its own
        assert who["sid"] == who["pgid"] == who["pid"]
        assert who["cwd"] == str(tmp_path.resolve())
        assert "NEOBUILD_PARENT_PID" not in who["env"]  # the bootstrap took it
        assert who["env"]["PYTHONHASHSEED"] == "0"


RANDOM_EXPORT = """
import json
import numpy, random
def export(output_dir, inputs):
    (output_dir / "model.onnx").write_bytes(b"x")
    (output_dir / "draws.json").write_text(json.dumps({
        "numpy": numpy.random.rand(4).tolist(), "python": random.random(),
    }))
"""


def test_forked_exports_draw_their_own_unseeded_random_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server imports numpy.random in advance (xgboost's prewarm does), so its global
    # RandomState exists before the fork; each forked export must still draw numbers of
    # its own, as a fresh process does.
    monkeypatch.setattr(forkserver, "PREWARM", {"onnx": ("numpy.random",)})
    write(tmp_path, "m/export.py", RANDOM_EXPORT)
    model = make_model()
    draws = []
    for out in ("a", "b", "c"):
        run_export(
            model, root=tmp_path, output_dir=tmp_path / out, log_path=tmp_path / "x.log", python=PY
        )
        draws.append(json.loads((tmp_path / out / "draws.json").read_text()))
    assert len({tuple(d["numpy"]) for d in draws}) == 3
    assert len({d["python"] for d in draws}) == 3


def test_another_environment_gets_another_server(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", PPID_EXPORT)
    _, plain = _who(tmp_path, make_model(), "a")
    _, other = _who(tmp_path, make_model(env={"MY_SETTING": "1"}), "b")
    assert plain["ppid"] != other["ppid"]
    assert other["env"]["MY_SETTING"] == "1" and "MY_SETTING" not in plain["env"]


def test_outside_a_session_exports_are_plain_subprocesses(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", PPID_EXPORT)
    with forkserver.session(enabled=False):
        _, who = _who(tmp_path, make_model(), "a")
    assert who["ppid"] == os.getpid()


def test_prewarmed_modules_are_loaded_but_only_imported_ones_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forkserver, "PREWARM", {"onnx": ("numpy",)})
    write(tmp_path, "m/export.py", PPID_EXPORT)
    write(
        tmp_path,
        "n/export.py",
        PPID_EXPORT.replace("import json, os, sys", "import json, os, sys\nimport numpy"),
    )
    result, who = _who(tmp_path, make_model(), "a")
    assert who["numpy_loaded"] is True  # the server imported it in advance
    assert "numpy" not in result.framework_versions  # ... but the export did not
    result, _ = _who(tmp_path, make_model(path="n/export.py"), "b")
    assert result.framework_versions["numpy"] == __import__("numpy").__version__


ONNX_EXPORT = """
import onnx
from onnx import TensorProto, helper
def export(output_dir, inputs):
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("NoSuchOperator", ["data"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(output_dir / "model.onnx"))
"""


def _export_to(root: Path, out: str, path: str = "m/export.py") -> ExportResult:
    return run_export(
        make_model(path=path),
        root=root,
        output_dir=root / out,
        log_path=root / f"{out}.log",
        python=PY,
    )


def test_where_onnx_is_loaded_the_export_process_runs_the_checker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forkserver, "PREWARM", {"onnx": ("onnx",)})
    write(tmp_path, "m/export.py", ONNX_EXPORT)  # a graph with an operator onnx does not know
    write(tmp_path, "n/export.py", PPID_EXPORT)  # writes b"x" as model.onnx, imports no onnx
    ((name, record),) = _export_to(tmp_path, "a").checks["onnx.checker"].items()
    st = (tmp_path / "a" / "model.onnx").stat()
    assert name == "model.onnx" and "NoSuchOperator" in record["error"]
    assert (record["size"], record["mtime_ns"], record["ino"]) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    # the server's prewarm loaded onnx, so even an export that does not import it is checked
    garbage = _export_to(tmp_path, "b", "n/export.py")
    assert garbage.checks["onnx.checker"]["model.onnx"]["error"]


def test_without_onnx_loaded_the_export_process_leaves_the_check_to_neobuild(
    tmp_path: Path,
) -> None:
    write(tmp_path, "n/export.py", PPID_EXPORT)
    with forkserver.session(enabled=False):
        assert _export_to(tmp_path, "b", "n/export.py").checks == {}


PARENT = """
import sys
from pathlib import Path
from neobuild import forkserver
from neobuild.export import run_export
from test_runner import make_model, PY
root = Path(sys.argv[1])
with forkserver.session():
    run_export(make_model(timeout=600), root=root, output_dir=root / "out",
                      log_path=root / "export.log", python=PY)
"""

SLEEPER = """
import os, time
def export(output_dir, inputs):
    (output_dir.parent / "export.pid").write_text(str(os.getpid()))
    (output_dir.parent / "server.pid").write_text(str(os.getppid()))
    time.sleep(600)
"""


def test_a_killed_neobuild_takes_its_forked_exports_and_servers_along(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", SLEEPER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "server.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "server.pid").exists(), "the export never started"
        time.sleep(0.2)
        export_pid = int((tmp_path / "export.pid").read_text())
        server_pid = int((tmp_path / "server.pid").read_text())
        assert server_pid != parent.pid
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert gone(export_pid), "the forked export outlived neobuild"
        assert gone(server_pid), "the fork server outlived neobuild"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_server_ends_with_the_session(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", PPID_EXPORT)
    with forkserver.session():
        _, who = _who(tmp_path, make_model(), "a")
        assert not gone(who["ppid"], within=0.1)
    assert gone(who["ppid"])


def test_where_fork_is_unsafe_the_plain_path_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forkserver, "available", lambda: False)
    write(tmp_path, "m/export.py", PPID_EXPORT)
    with forkserver.session():
        _, who = _who(tmp_path, make_model(), "a")
    assert who["ppid"] == os.getpid()


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-fork-server"], False)])
def test_cli_fork_server_option_becomes_the_api_keyword(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: bool
) -> None:
    from typer.testing import CliRunner

    from neobuild import api, cli
    from neobuild.results import BuildReport

    seen: dict[str, Any] = {}

    def package(**kwargs: Any) -> BuildReport:
        seen.update(kwargs)
        return BuildReport(manifest=tmp_path / "neo.yaml", models=[], duration=0.0)

    monkeypatch.setattr(api, "locate_manifest", lambda **kw: tmp_path / "neo.yaml")
    monkeypatch.setattr(api, "package", package)
    result = CliRunner().invoke(cli.app, ["package", "--all", *flag])
    assert result.exit_code == 0, result.output
    assert seen["fork_server"] is expected


TORCH_EXPORT = """
import torch


def export(out, inputs):
    torch.manual_seed({seed})
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, 8, 8)), str(out / "model.pth"))
"""


@pytest.mark.slow
def test_a_forked_pytorch_build_records_the_same_lock_as_plain_subprocesses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(forkserver, "PREWARM", {"pytorch": ("torch",)})  # as shipped
    from neobuild import api
    from neobuild.lockfile import read_lock

    locks = []
    for fork_server in (True, False):
        root = tmp_path / str(fork_server)
        lines = ["version: 1", "models:"]
        for i in range(2):
            write(root, f"models/t{i}/export.py", TORCH_EXPORT.format(seed=i))
            lines += [
                f"  t{i}:",
                "    framework: pytorch",
                '    framework_version: "2.0"',
                f"    export: models/t{i}/export.py:export",
                "    inputs: {input0: [1, 3, 8, 8]}",
                "    targets: [ml_c5]",
                "    smoke: false",
            ]
        (root / "neo.yaml").write_text("\n".join(lines) + "\n")
        report = api.package(
            manifest_path=root / "neo.yaml",
            all_models=True,
            jobs=2,
            allow_incomplete=True,
            fork_server=fork_server,
        )
        assert report.ok, report.to_json()
        locks.append(read_lock(root / "neo.lock"))
    forked, plain = locks
    for name in ("t0", "t1"):
        assert forked.models[name].archive == plain.models[name].archive
        assert forked.models[name].exported_with == plain.models[name].exported_with
        assert "torch" in forked.models[name].exported_with
