"""What keeps `plan` fast: adapter versions without adapter imports, lean imports, the lock cache."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neobuild import lockfile
from neobuild.fingerprint import adapter_version
from neobuild.frameworks import _MODULES, ADAPTER_VERSIONS
from neobuild.lockfile import FileRecord, Lock, LockEntry


@pytest.mark.parametrize("framework", sorted(_MODULES))
def test_adapter_version_table_matches_the_adapter(framework: str) -> None:
    module = importlib.import_module(_MODULES[framework])
    assert ADAPTER_VERSIONS[framework] == module.ADAPTER.version
    assert module.ADAPTER.name == framework
    assert adapter_version(framework) == f"{framework}@{module.ADAPTER.version}"


def test_table_lists_exactly_the_adapters() -> None:
    assert set(ADAPTER_VERSIONS) == set(_MODULES)


HEAVY = ("h5py", "numpy", "tflite", "onnx", "jinja2", "pydantic", "rich")


def test_fingerprinting_every_framework_imports_nothing_heavy(tmp_path: Path) -> None:
    # A fresh interpreter: the test process has imported everything already.
    code = f"""
import json, sys
from neobuild import fingerprint, lockfile, plan, render, statcache, manifest
for name in {sorted(_MODULES)!r}:
    fingerprint.adapter_version(name)
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def _entry(n: int) -> LockEntry:
    rec = FileRecord(size=n, sha256="sha256:" + f"{n:064x}")
    return LockEntry(
        fingerprint=f"sha256:{n:064x}",
        framework="onnx",
        framework_version=None,
        exported_with={"onnx": "1.17"},
        files={"model.onnx": rec},
        archive=rec,
        archive_path=f"build/neo/m{n}/model.tar.gz",
        outputs={"code/inference.py": rec},
        requests={},
        smoke=None,
        fingerprint_parts={"manifest": "x"},
        jobs={},
        git_commit=None,
        git_dirty=None,
    )


def test_lock_cache_is_used_and_follows_every_change(tmp_path: Path) -> None:
    (tmp_path / ".neobuild").mkdir()
    path = tmp_path / lockfile.LOCK_NAME
    lockfile.write_lock(path, Lock(models={"a": _entry(1), "b": _entry(2)}))
    cache = tmp_path / ".neobuild" / lockfile.CACHE_NAME
    assert cache.is_file()
    first = lockfile.read_lock(path)
    assert first == lockfile.read_lock(path, use_cache=False)

    # An edit that keeps the size and the mtime is still seen: the key is the content.
    text = path.read_text()
    edited = text.replace(f"fingerprint: sha256:{1:064x}", f"fingerprint: sha256:{9:064x}", 1)
    assert len(edited) == len(text)
    stat = path.stat()
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert lockfile.read_lock(path).models["a"].fingerprint == f"sha256:{9:064x}"

    # A corrupt cache is ignored, then replaced.
    cache.write_bytes(b"garbage")
    assert lockfile.read_lock(path) == lockfile.read_lock(path, use_cache=False)
    assert cache.read_bytes() != b"garbage"


def test_lock_cache_never_hides_an_invalid_lock(tmp_path: Path) -> None:
    (tmp_path / ".neobuild").mkdir()
    path = tmp_path / lockfile.LOCK_NAME
    lockfile.write_lock(path, Lock(models={"a": _entry(1)}))
    path.write_text(path.read_text().replace("framework: onnx", "framework: []"))
    with pytest.raises(lockfile.InvalidLockError):
        lockfile.read_lock(path)


def test_no_cache_directory_is_created_beside_a_lock(tmp_path: Path) -> None:
    path = tmp_path / lockfile.LOCK_NAME
    lockfile.write_lock(path, Lock(models={"a": _entry(1)}))
    # Writing keeps its file lock in .neobuild/; reading must not create the directory.
    shutil.rmtree(tmp_path / ".neobuild")
    assert lockfile.read_lock(path).models["a"] == _entry(1)
    assert not (tmp_path / ".neobuild").exists()


def test_manifest_realpaths_agree_with_os_realpath(tmp_path: Path) -> None:
    from neobuild.paths import RealPaths

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.py").write_text("")
    (tmp_path / "out").mkdir()
    (tmp_path / "a" / "link.py").symlink_to(tmp_path / "out" / "x.py")
    (tmp_path / "a" / "dirlink").symlink_to(tmp_path / "out", target_is_directory=True)
    (tmp_path / "a" / "up.py").symlink_to("../out/y.py")
    (tmp_path / "out" / "deep").mkdir()
    (tmp_path / "a" / "b" / "c").symlink_to("../dirlink/deep", target_is_directory=True)
    (tmp_path / "loop").symlink_to("loop")
    realpath = RealPaths()
    for rel in (
        "a/b/f.py",
        "a/link.py",
        "a/up.py",
        "a/dirlink/z.py",
        "a/b/../link.py",
        "a/missing/q.py",
        "a/b/..",
        "a/./b/f.py",
        "../outside.py",
        "a/b/c/g.py",
        "a/b/c/../h.py",
        "a/dirlink/deep/../x.py",
        "loop/z.py",
        "a//b/f.py",
        "a/b/f.py/",
    ):
        path = os.path.join(tmp_path, rel)
        assert realpath(path) == os.path.realpath(path), rel
        assert realpath(path) == os.path.realpath(path), rel  # memoised directories


def test_lock_cache_temps_left_by_a_killed_writer_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".neobuild").mkdir()
    path = tmp_path / lockfile.LOCK_NAME
    old = tmp_path / ".neobuild" / f".{lockfile.CACHE_NAME}.dead.tmp"
    fresh = tmp_path / ".neobuild" / f".{lockfile.CACHE_NAME}.busy.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (1, 1))
    lockfile.write_lock(path, Lock(models={"a": _entry(1)}))
    assert not old.exists()
    assert fresh.exists()  # maybe another process's write in progress


# What the CLI must not import before a command needs it (issue 14: start-up cost).
CLI_HEAVY = (
    "pydantic",
    "rich",
    "jinja2",
    "boto3",
    "botocore",
    "torch",
    "tensorflow",
    "onnx",
    "onnxruntime",
    "xgboost",
    "mxnet",
    "keras",
    "numpy",
)


def _loaded_after(code: str, tmp_path: Path) -> list[str]:
    probe = f"""
import json, sys
{code}
print(json.dumps(sorted(m for m in {CLI_HEAVY!r} if m in sys.modules)))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORCE_COLOR", "TYPER_"))}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    ).stdout
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    assert _loaded_after("import neobuild.cli", tmp_path) == []


@pytest.mark.parametrize("argv", [["--help"], ["plan", "--help"], ["--version"]])
def test_help_and_version_load_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    # typer >= 0.29 imports pydantic while parsing options, and typer's rich help imports
    # rich and markdown-it: neither may come back with an upgrade.
    code = f"""
import contextlib, io, sys
sys.argv = ["neobuild", *{argv!r}]
from neobuild.cli import main
with contextlib.redirect_stdout(io.StringIO()) as text:
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
assert "neobuild" in text.getvalue() or "Usage" in text.getvalue(), text.getvalue()
"""
    assert _loaded_after(code, tmp_path) == []


def test_plan_of_an_empty_project_loads_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "neo.yaml").write_text("version: 1\nmodels: {}\n")
    code = """
import contextlib, io, sys
sys.argv = ["neobuild", "plan", "--json"]
from neobuild.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
"""
    assert _loaded_after(code, tmp_path) == []
