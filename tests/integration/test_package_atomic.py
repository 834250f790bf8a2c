"""atomic.py: replace-or-nothing writes, modes independent of the umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from neobuild.atomic import atomic_write_bytes, atomic_write_text, atomic_writer


def test_new_file_gets_0644_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "a.txt", "hello ✓\n")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "hello ✓\n"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_existing_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"old")
    path.chmod(0o600)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_file_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"old")
    with open(path, "rb") as reader:  # a reader holding the old file keeps seeing it
        atomic_write_bytes(path, b"new content")
        assert reader.read() == b"old"
    assert path.read_bytes() == b"new content"


def test_an_exception_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(path) as stream:
        stream.write(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_no_temp_file_is_left_after_success(tmp_path: Path) -> None:
    with atomic_writer(tmp_path / "big") as stream:
        for _ in range(4):
            stream.write(b"x" * 1_000_000)
    assert [p.name for p in tmp_path.iterdir()] == ["big"]
    assert (tmp_path / "big").stat().st_size == 4_000_000


def test_missing_directory_is_an_error_not_a_silent_mkdir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "nope" / "a", b"x")


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from neobuild.atomic import atomic_write_bytes
    path = Path(sys.argv[2])
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        size = 200_000 + (i % 7) * 100_000
        atomic_write_bytes(path, bytes([i % 251]) * size)
    """
)


def test_kill_9_never_leaves_a_torn_file(tmp_path: Path, repo_root: Path) -> None:
    """Every file content is one byte repeated: a torn write would mix two bytes or be short."""
    path = tmp_path / "data"
    for trial in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(repo_root), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.01 + 0.013 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not path.exists():
            continue
        data = path.read_bytes()
        assert len(set(data)) == 1, f"trial {trial}: torn content"
        assert (len(data) - 200_000) % 100_000 == 0, f"trial {trial}: short file"
