"""envs.py: per-model export venvs, created once (real venvs, real pip), reused, rebuilt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import factories
import pytest

from neobuild import envs, runner
from neobuild.errors import EnvironmentSetupError
from neobuild.export import run_export
from neobuild.model import Inputs, Model

SIX = "six==1.16.0"

SIX_EXPORT = """
    import json, shutil, sys
    import six

    def export(output_dir, inputs):
        try:
            import numpy
            has_numpy = True
        except ImportError:
            has_numpy = False
        (output_dir / "model.json").write_text(json.dumps({
            "six": six.__version__,
            "six_file": six.__file__,
            "prefix": sys.prefix,
            "has_numpy": has_numpy,
            "which_python": shutil.which("python"),
        }))
"""


def make_model(
    *, requirements: tuple[str, ...] = (), requirements_file: str | None = None, name: str = "m"
) -> Model:
    return factories.make_model(
        name,
        export="m/export.py",
        inputs=Inputs("none"),
        targets=(),
        requirements=requirements,
        requirements_file=requirements_file,
        timeout=300,
    )


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- keys (fast)


def test_model_without_requirements_uses_the_current_interpreter(tmp_path: Path) -> None:
    model = make_model()
    assert envs.env_key(model, tmp_path) is None
    assert envs.env_dir(model, tmp_path) is None
    assert envs.export_python(model, root=tmp_path) == Path(sys.executable)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEOBUILD_CACHE_DIR", str(tmp_path / "c"))
    assert envs.cache_dir() == (tmp_path / "c").resolve()
    monkeypatch.delenv("NEOBUILD_CACHE_DIR")
    assert envs.cache_dir().name == "neobuild"


def test_key_depends_on_requirement_content_not_on_the_model(tmp_path: Path) -> None:
    a = envs.env_key(make_model(requirements=(SIX,), name="a"), tmp_path)
    b = envs.env_key(make_model(requirements=(SIX,), name="b"), tmp_path)
    c = envs.env_key(make_model(requirements=("six==1.15.0",)), tmp_path)
    assert a is not None and a == b
    assert c != a


def test_key_follows_the_requirements_file_and_its_includes(tmp_path: Path) -> None:
    write(tmp_path, "m/requirements.txt", "-r base.txt\n--constraint=constraints.txt\nsix\n")
    write(tmp_path, "m/base.txt", "packaging\n")
    write(tmp_path, "m/constraints.txt", "six==1.16.0\n")
    model = make_model(requirements_file="m/requirements.txt")
    first = envs.env_key(model, tmp_path)
    assert first == envs.env_key(model, tmp_path)
    write(tmp_path, "m/base.txt", "packaging==24.0\n")
    second = envs.env_key(model, tmp_path)
    write(tmp_path, "m/constraints.txt", "six==1.15.0\n")
    third = envs.env_key(model, tmp_path)
    assert len({first, second, third}) == 3


def test_two_spellings_of_one_interpreter_share_the_env_key(tmp_path: Path) -> None:
    """`python` and `python3` (symlinks) of the test venv: one key, so one env on disk."""
    (tmp_path / "requirements.txt").write_text(f"{SIX}\n")
    probe = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from neobuild import envs
        from neobuild.model import ExportRef, Inputs, Model
        model = Model(
            name="m", framework="onnx", export=ExportRef(function="export", path="m/export.py"),
            inputs=Inputs("none"), targets=(), requirements_file="requirements.txt",
        )
        print(sys.executable)
        print(envs.env_key(model, Path({str(tmp_path)!r})))
        """
    )
    bindir = Path(sys.executable).parent
    spellings = [bindir / "python", bindir / "python3"]
    assert all(p.exists() for p in spellings)
    assert len({os.path.realpath(p) for p in spellings}) == 1
    seen = []
    for python in spellings:
        out = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=120
        ).stdout.split()
        seen.append(out)
    assert [exe for exe, _ in seen] == [str(p) for p in spellings]  # typed differently
    keys = {key for _, key in seen}
    assert len(keys) == 1 and None not in keys


def test_missing_requirements_file(tmp_path: Path) -> None:
    model = make_model(requirements_file="m/requirements.txt")
    with pytest.raises(EnvironmentSetupError, match=r"m/requirements.txt of model 'm' does not"):
        envs.export_python(model, root=tmp_path)


# --------------------------------------------------------------------------- real venvs (slow)


@pytest.fixture(scope="module")
def six_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """One venv with six, built in a cache of this module's own: (cache, root, log)."""
    cache = tmp_path_factory.mktemp("envcache")
    root = tmp_path_factory.mktemp("repo")
    write(root, "m/export.py", SIX_EXPORT)
    log = root / "create.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEOBUILD_CACHE_DIR", str(cache))
        envs.export_python(make_model(requirements=(SIX,)), root=root, log_path=log)
    yield cache, root, log


@pytest.mark.slow
def test_export_runs_in_its_own_venv(
    six_env: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, root, log = six_env
    monkeypatch.setenv("NEOBUILD_CACHE_DIR", str(cache))
    model = make_model(requirements=(SIX,))
    python = envs.export_python(model, root=root)
    env_dir = envs.env_dir(model, root)
    assert env_dir is not None and env_dir.parent == cache.resolve() / "envs"
    assert python == env_dir / "bin" / "python"
    assert "Successfully installed six-1.16.0" in log.read_text()

    out = root / "out-own-venv"
    run_export(model, root=root, output_dir=out, log_path=root / "x.log", python=python)
    data = json.loads((out / "model.json").read_text())
    assert data["six"] == "1.16.0"
    assert Path(data["six_file"]).is_relative_to(env_dir)
    assert Path(data["prefix"]) == env_dir
    assert data["has_numpy"] is False  # isolated from neobuild's own environment
    assert data["which_python"] == str(env_dir / "bin" / "python")


@pytest.mark.slow
def test_second_call_reuses_the_env_without_pip(
    six_env: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, root, _ = six_env
    monkeypatch.setenv("NEOBUILD_CACHE_DIR", str(cache))
    model = make_model(requirements=(SIX,), name="other-model-same-requirements")
    env_dir = envs.env_dir(model, root)
    assert env_dir is not None
    marker = env_dir / envs.MARKER
    before = marker.stat().st_mtime_ns
    log = root / "reuse.log"
    assert envs.export_python(model, root=root, log_path=log) == env_dir / "bin" / "python"
    assert marker.stat().st_mtime_ns == before
    assert not log.exists()  # nothing ran: no venv, no pip


CONCURRENT = """
import sys
from pathlib import Path
from neobuild import envs
from neobuild.model import ExportRef, Inputs, Model

model = Model(name="m", framework="onnx", export=ExportRef(function="export", path="m/export.py"),
              inputs=Inputs("none"), targets=(), requirements=({six!r},))
print(envs.export_python(model, root=Path(sys.argv[1]), log_path=Path(sys.argv[2])))
"""


@pytest.mark.slow
def test_concurrent_creation_builds_once(tmp_path: Path) -> None:
    script = tmp_path / "create.py"
    script.write_text(CONCURRENT.format(six=SIX))
    env = dict(os.environ, NEOBUILD_CACHE_DIR=str(tmp_path / "cache"))
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(log)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for log in logs
    ]
    outputs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    texts = [log.read_text() if log.exists() else "" for log in logs]
    assert sum("creating export environment" in t for t in texts) == 1
    assert sum("Successfully installed six" in t for t in texts) == 1
    assert len(list((tmp_path / "cache" / "envs").glob("*/" + envs.MARKER))) == 1


@pytest.mark.slow
def test_broken_env_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEOBUILD_CACHE_DIR", str(tmp_path / "cache"))
    # A requirements file that includes another: pip resolves -r relative to the file.
    write(tmp_path, "m/requirements.txt", "-r ../common/base.txt\n")
    write(tmp_path, "common/base.txt", f"{SIX}\n")
    model = make_model(requirements_file="m/requirements.txt")
    log = tmp_path / "env.log"
    python = envs.export_python(model, root=tmp_path, log_path=log)
    python.unlink()  # the interpreter is gone: the marker alone must not be trusted

    assert envs.export_python(model, root=tmp_path, log_path=log) == python
    assert log.read_text().count("Successfully installed six") == 2
    check = runner.run_process(
        [python, "-c", "import six; print(six.__version__)"],
        cwd=tmp_path,
        env=runner.scrubbed_env(),
        timeout=60,
        log_path=None,
    )
    assert check.ok and check.tail == "1.16.0"

    (python.parent.parent / envs.MARKER).unlink()  # an unfinished build
    envs.export_python(model, root=tmp_path, log_path=log)
    assert log.read_text().count("Successfully installed six") == 3


@pytest.mark.slow
def test_uninstallable_requirement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEOBUILD_CACHE_DIR", str(tmp_path / "cache"))
    bad = "neobuild-no-such-package-xyz==1.0"
    model = make_model(requirements=(SIX, bad))
    log = tmp_path / "env.log"
    with pytest.raises(EnvironmentSetupError) as info:
        envs.export_python(model, root=tmp_path, log_path=log)
    message = str(info.value)
    assert f"export environment of model 'm': could not install {bad}" in message
    assert str(log) in message
    assert info.value.hint is not None and str(log) in info.value.hint
    assert "No matching distribution found" in log.read_text()
    env_dir = envs.env_dir(model, tmp_path)
    assert env_dir is not None and not env_dir.exists()  # no half-built env left behind
