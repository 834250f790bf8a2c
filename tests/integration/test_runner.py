"""runner.py and export.py: exports in real subprocesses; failures, timeouts, process groups, environment."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import factories
import numpy
import pytest

from neobuild import runner
from neobuild.errors import ExportError
from neobuild.export import EXIT_CODES, ExportResult, run_export
from neobuild.model import ExportRef, Inputs, InputSpec, Model

PY = Path(sys.executable)


def make_model(
    *,
    function: str = "export",
    path: str | None = "m/export.py",
    module: str | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 120,
    inputs: Inputs | None = None,
) -> Model:
    return factories.make_model(
        export=ExportRef(function=function, path=None if module else path, module=module),
        inputs=inputs or {"data": (1, 3, 8, 8)},
        targets=(),
        env=env,
        timeout=timeout,
    )


def write(root: Path, rel: str, source: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def export(root: Path, model: Model, *, stream: bool = False) -> ExportResult:
    return run_export(
        model,
        root=root,
        output_dir=root / "out",
        log_path=root / "logs" / "export.log",
        python=PY,
        stream=stream,
    )


def export_error(root: Path, model: Model) -> ExportError:
    with pytest.raises(ExportError) as info:
        export(root, model)
    return info.value


def gone(pid: int, within: float = 10.0) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        except OSError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        else:
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return True
        time.sleep(0.05)
    return False


RECORDING_EXPORT = """
    import json, os, sys
    import numpy

    def export(output_dir, inputs):
        print("hello from the export")
        print("to stderr", file=sys.stderr)
        (output_dir / "model.json").write_text(json.dumps({
            "inputs": inputs,
            "cwd": os.getcwd(),
            "output_dir_type": type(output_dir).__name__,
            "output_dir": str(output_dir),
            "module": __name__,
            "sys_path0": sys.path[0],
            "env": dict(os.environ),
        }))
"""


def recorded(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / "out" / "model.json").read_text())
    return data


# --------------------------------------------------------------------------- success


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (Inputs("dict", (InputSpec("data", (1, 3, 8, 8)),)), {"data": [1, 3, 8, 8]}),
        (Inputs("list", (InputSpec(None, (1, 3)), InputSpec(None, (1, 5)))), [[1, 3], [1, 5]]),
        (Inputs("none"), None),
    ],
)
def test_export_gets_output_dir_and_inputs(
    tmp_path: Path, inputs: Inputs, expected: object
) -> None:
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    result = export(tmp_path, make_model(inputs=inputs))

    data = recorded(tmp_path)
    assert data["inputs"] == expected
    assert data["output_dir_type"] in ("PosixPath", "WindowsPath")
    assert data["output_dir"] == str((tmp_path / "out").resolve())
    assert data["cwd"] == str(tmp_path.resolve())
    assert data["sys_path0"] == str(tmp_path.resolve())
    assert data["module"] == "_neobuild_export"
    assert result.files == ("model.json",)
    assert result.framework_versions == {"numpy": numpy.__version__}
    assert result.python == platform.python_version()
    assert result.log_path == tmp_path / "logs" / "export.log"
    log = result.log_path.read_text()
    assert "hello from the export" in log
    assert "to stderr" in log


def test_module_entrypoint(tmp_path: Path) -> None:
    write(tmp_path, "pkg/__init__.py", "")
    write(
        tmp_path,
        "pkg/exporter.py",
        """
        def build(output_dir, inputs):
            (output_dir / "model.onnx").write_bytes(b"x")
            (output_dir / "sub").mkdir()
            (output_dir / "sub" / "weights.bin").write_bytes(b"y")
        """,
    )
    result = export(tmp_path, make_model(module="pkg.exporter", function="build"))
    assert result.files == ("model.onnx", "sub/weights.bin")
    assert result.framework_versions == {}


def test_export_writes_no_bytecode_into_the_repository(tmp_path: Path) -> None:
    write(tmp_path, "m/helper.py", "VALUE = 1\n")
    write(
        tmp_path,
        "m/export.py",
        """
        import sys
        sys.path.insert(0, "m")
        import helper

        def export(output_dir, inputs):
            (output_dir / "model.onnx").write_text(str(helper.VALUE))
        """,
    )
    export(tmp_path, make_model())
    assert not list(tmp_path.rglob("__pycache__"))


# --------------------------------------------------------------------------- failures


def test_entrypoint_raises(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m/export.py",
        """
        def export(output_dir, inputs):
            print("about to fail")
            raise ValueError("weights are missing")
        """,
    )
    error = export_error(tmp_path, make_model())
    text = str(error)
    assert "model 'm'" in text
    assert "m/export.py:export raised ValueError: weights are missing" in text
    assert f"exit code {EXIT_CODES['raised']}" in text
    assert str(tmp_path / "logs" / "export.log") in text
    assert "about to fail" in text  # the tail of the output
    assert 'raise ValueError("weights are missing")' in text  # the user's frame
    assert "_bootstrap.py" not in text  # but not the bootstrap's
    assert error.hint is not None and "export.log" in error.hint


def test_function_missing_suggests_the_closest_name(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", "def export(output_dir, inputs):\n    pass\n")
    error = export_error(tmp_path, make_model(function="exprt"))
    assert "function 'exprt' not found in m/export.py; did you mean 'export'?" in str(error)
    assert f"exit code {EXIT_CODES['function_missing']}" in str(error)
    assert str(error).count("did you mean") == 1  # not repeated by the output's tail
    assert error.hint is not None and "'export'" in error.hint


def test_function_not_callable(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", "export = 3\n")
    error = export_error(tmp_path, make_model())
    assert "'export' in m/export.py is a int, not a function" in str(error)


def test_entrypoint_file_missing(tmp_path: Path) -> None:
    error = export_error(tmp_path, make_model(path="m/nope.py"))
    assert "entrypoint file m/nope.py does not exist" in str(error)
    assert f"exit code {EXIT_CODES['file_missing']}" in str(error)
    assert error.hint is not None and "relative" in error.hint


def test_entrypoint_module_missing(tmp_path: Path) -> None:
    error = export_error(tmp_path, make_model(module="nopkg.exporter"))
    assert "entrypoint module nopkg.exporter not found" in str(error)


def test_import_error_shows_the_traceback(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", "import neobuild_missing_dependency\n")
    error = export_error(tmp_path, make_model())
    text = str(error)
    assert (
        "importing m/export.py failed: ModuleNotFoundError: "
        "No module named 'neobuild_missing_dependency'" in text
    )
    assert f"exit code {EXIT_CODES['import_failed']}" in text
    log = (tmp_path / "logs" / "export.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert 'm/export.py", line 1, in <module>' in log
    assert error.hint is not None and "requirements" in error.hint


def test_export_that_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", "def export(output_dir, inputs):\n    print('done')\n")
    error = export_error(tmp_path, make_model())
    assert "m/export.py:export returned but wrote nothing" in str(error)
    assert error.hint is not None and "first argument" in error.hint


def test_export_calling_sys_exit(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m/export.py",
        "import sys\ndef export(output_dir, inputs):\n    sys.exit(3)\n",
    )
    error = export_error(tmp_path, make_model())
    assert "called sys.exit(3) instead of returning" in str(error)


def test_export_killed_by_a_signal(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m/export.py",
        """
        import os, signal
        def export(output_dir, inputs):
            print("going down", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    error = export_error(tmp_path, make_model())
    assert "m/export.py:export was killed by SIGKILL" in str(error)
    assert "going down" in str(error)
    assert error.hint is not None and "memory" in error.hint


def test_output_dir_must_be_empty(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.onnx").write_bytes(b"old")
    error = export_error(tmp_path, make_model())
    assert "is not empty" in str(error)


def test_missing_interpreter(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    with pytest.raises(ExportError, match="cannot start"):
        run_export(
            make_model(),
            root=tmp_path,
            output_dir=tmp_path / "out",
            log_path=tmp_path / "export.log",
            python=tmp_path / "no-such-python",
        )


def test_output_is_logged_and_the_tail_is_in_the_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m/export.py",
        """
        def export(output_dir, inputs):
            for i in range(40):
                print(f"line {i:02d}")
            raise RuntimeError("late failure")
        """,
    )
    error = export_error(tmp_path, make_model())
    log = (tmp_path / "logs" / "export.log").read_text()
    assert all(f"line {i:02d}" in log for i in range(40))
    text = str(error)
    assert "line 39" in text
    assert "line 10" not in text  # only the last lines
    assert "RuntimeError: late failure" in text


# --------------------------------------------------------------------------- timeouts and process groups

HANGING_EXPORT = """
    import subprocess, sys, time

    def export(output_dir, inputs):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (output_dir.parent / "grandchild.pid").write_text(str(child.pid))
        print("waiting forever", flush=True)
        time.sleep(600)
"""


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    write(tmp_path, "m/export.py", HANGING_EXPORT)
    started = time.monotonic()
    error = export_error(tmp_path, make_model(timeout=3))
    assert time.monotonic() - started < 3 + runner.KILL_GRACE + 5
    text = str(error)
    assert "m/export.py:export timed out after 3 s and was killed" in text
    assert "waiting forever" in text
    assert error.hint is not None and "timeout" in error.hint
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert gone(grandchild)


def test_sigterm_is_followed_by_sigkill(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ignoring SIGTERM', flush=True); time.sleep(600)"
    )
    result = runner.run_process(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=runner.scrubbed_env(),
        timeout=2,
        log_path=tmp_path / "log",
        grace=0.5,
    )
    assert result.timed_out
    assert result.signal == signal.SIGKILL
    assert result.describe(2) == "timed out after 2 s"
    assert "ignoring SIGTERM" in result.tail


def test_processes_left_behind_are_ended(tmp_path: Path) -> None:
    # The command exits at once but leaves a child holding its stdout open.
    script = (
        "import subprocess, sys;"
        " p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        " print(p.pid, flush=True)"
    )
    result = runner.run_process(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=runner.scrubbed_env(),
        timeout=60,
        log_path=None,
        grace=1,
    )
    assert result.returncode == 0 and not result.timed_out
    assert gone(int(result.tail.strip()))


def test_keyboard_interrupt_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    harness = write(
        tmp_path,
        "harness.py",
        f"""
        import sys
        from pathlib import Path
        from neobuild import runner
        script = (
            "import subprocess, sys, time;"
            " p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
            " open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(600)"
        )
        try:
            runner.run_process([sys.executable, "-c", script], cwd=Path("."), env=runner.scrubbed_env(),
                               timeout=600, log_path=None)
        except KeyboardInterrupt:
            print("interrupted")
            raise
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, str(harness)], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "interrupted" in out
    assert proc.returncode != 0
    assert gone(grandchild)


def test_stream_copies_output_to_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    export(tmp_path, make_model(), stream=True)
    err = capfd.readouterr().err
    assert "[m] hello from the export\n" in err
    assert "[m] to stderr\n" in err


def test_no_stream_by_default(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    export(tmp_path, make_model())
    assert "hello from the export" not in capfd.readouterr().err


# --------------------------------------------------------------------------- environment


def test_export_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    export(tmp_path, make_model())
    env = recorded(tmp_path)["env"]
    assert isinstance(env, dict)
    for secret in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "PYTHONPATH"):
        assert secret not in env
    assert env["HOME"] == os.environ["HOME"]
    if (PY.parent.parent / "pyvenv.cfg").is_file():
        # The interpreter's venv comes first on PATH, as activation does.
        assert env["PATH"] == os.pathsep.join([str(PY.parent), os.environ["PATH"]])
        assert env["VIRTUAL_ENV"] == str(PY.parent.parent)
    else:
        assert env["PATH"] == os.environ["PATH"]
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["PYTHONHASHSEED"] == "0"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONNOUSERSITE"] == "1"
    assert env["TZ"] == "UTC"
    assert env["SOURCE_DATE_EPOCH"] == "315532800"


def test_model_env_asks_for_credentials_and_expands_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("TEAM", "vision")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    write(tmp_path, "m/export.py", RECORDING_EXPORT)
    model = make_model(
        env={
            "AWS_SECRET_ACCESS_KEY": "${AWS_SECRET_ACCESS_KEY}",
            "AWS_PROFILE": "${AWS_PROFILE}",
            "GREETING": "hello ${TEAM}, ${NOBODY:-nobody}; cost $$5",
            "TZ": "Europe/Paris",
        }
    )
    export(tmp_path, model)
    env = recorded(tmp_path)["env"]
    assert isinstance(env, dict)
    assert env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert "AWS_PROFILE" not in env  # asked for, but unset in the parent
    assert env["GREETING"] == "hello vision, nobody; cost $5"
    assert env["TZ"] == "Europe/Paris"  # the model may override the fixed values


def test_scrubbed_env_is_an_allowlist() -> None:
    parent = {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LC_CTYPE": "C",
        "https_proxy": "http://proxy:3128",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "PIP_INDEX_URL": "https://mirror/simple",
        "AWS_SESSION_TOKEN": "t",
        "SOME_RANDOM_VAR": "x",
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    env = runner.scrubbed_env({}, parent=parent)
    assert {k: env[k] for k in ("PATH", "HOME", "LC_CTYPE", "https_proxy", "SSL_CERT_FILE")} == {
        k: parent[k] for k in ("PATH", "HOME", "LC_CTYPE", "https_proxy", "SSL_CERT_FILE")
    }
    for name in ("PIP_INDEX_URL", "AWS_SESSION_TOKEN", "SOME_RANDOM_VAR"):
        assert name not in env
    assert env["SOURCE_DATE_EPOCH"] == "315532800"
    pip_env = runner.scrubbed_env({}, parent=parent, pip=True)
    assert pip_env["PIP_INDEX_URL"] == "https://mirror/simple"
    assert pip_env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert "SOURCE_DATE_EPOCH" not in runner.scrubbed_env({}, parent={"PATH": "/bin"}, pip=True)


def test_expand_vars() -> None:
    parent = {"A": "1", "EMPTY": ""}
    assert (
        runner.expand_vars("${A}-${B}-${B:-dflt}-${EMPTY:-e}-$$A-$A", parent) == "1--dflt-e-$A-$A"
    )
