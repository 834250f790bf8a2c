"""Interrupted runs still report: a real SIGTERM to a real `package --json --junit` run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from e2e_helpers import GIT_ENV, write_tree
from everyday_project import EXPORT, write_project

SLOW = """\
import time
from pathlib import Path


def export(out, inputs):
    Path(__file__).with_name("started").write_text("")
    time.sleep(120)
"""


def test_sigterm_still_writes_json_and_junit(tmp_path: Path) -> None:
    write_project(tmp_path, names=("fast", "slow", "later"))
    manifest = tmp_path / "neo.yaml"
    text = manifest.read_text()
    # "slow" exports with models/slow/export.py, which hangs after saying it started.
    head, slow, later = text.split("  slow:\n")[0], *text.split("  slow:\n")[1].split("  later:\n")
    slow = slow.replace("models/relu/export.py", "models/slow/export.py")
    manifest.write_text(head + "  slow:\n" + slow + "  later:\n" + later)
    write_tree(tmp_path, {"models/slow/export.py": SLOW, "models/relu/export.py": EXPORT})
    env = {**os.environ, **GIT_ENV}
    env.pop("NEOBUILD_DEBUG", None)
    junit = tmp_path / "reports" / "junit.xml"
    with (tmp_path / "out.json").open("wb") as stdout, (tmp_path / "err.txt").open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neobuild",
                "package",
                "--all",
                "-j",
                "1",
                "--json",
                "--junit",
                str(junit),
            ],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=err,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while not (tmp_path / "models" / "slow" / "started").exists():
                assert proc.poll() is None, (tmp_path / "err.txt").read_text()
                assert time.monotonic() < deadline, "the slow export never started"
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGTERM)  # the main process only, as CI does
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    stderr = (tmp_path / "err.txt").read_text()
    assert rc == 130, stderr
    report = json.loads((tmp_path / "out.json").read_text())
    status = {m["name"]: m["status"] for m in report["models"]}
    assert status == {"fast": "built", "slow": "interrupted", "later": "interrupted"}
    assert report["ok"] is False and report["summary"]["interrupted"] == 2
    later = next(m for m in report["models"] if m["name"] == "later")
    assert "not started" in later["message"]
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert {"fast", "slow", "later"} <= set(cases)
    assert cases["fast"].find("failure") is None
    assert cases["slow"].find("failure") is not None
    assert "interrupted" in stderr


#: Sends itself ``SIG`` while code made by ``exec`` of a string runs (as a dataclass's
#: generated ``__init__`` is made), catches the interrupt as neobuild's error boundary
#: does, and exits 130, as ``python -m neobuild`` does.
SIGNAL_IN_EXEC = """
import os, signal, sys, time
from neobuild import cli

cli.install_signal_handlers()
try:
    exec("os.kill(os.getpid(), signal.{sig})\\ntime.sleep(10)")
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_interrupt_inside_generated_code_still_exits_130(tmp_path: Path, sig: str) -> None:
    """Run as a module (``python -m``), CPython exits by SIGINT (-2) once a bare
    KeyboardInterrupt went through an exec'd string, even when it was caught: CI once saw a
    cancelled run report everything and then exit -2. neobuild's handler raises a subclass,
    which CPython exempts."""
    (tmp_path / "interrupt_probe.py").write_text(SIGNAL_IN_EXEC.format(sig=sig))
    proc = subprocess.run(
        [sys.executable, "-m", "interrupt_probe"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 130, proc.stderr
