"""The stat cache compares the ctime too: an edit that restores the mtime is seen."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from neobuild import statcache
from neobuild.statcache import StatCache, hash_file


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Files written by the test are racy by ctime (nothing sets a ctime back): trust
    # whatever changed before the cache was opened.
    monkeypatch.setattr(statcache, "RACY_WINDOW_NS", 0)
    root = tmp_path / "repo"
    root.mkdir()
    return root


def _warm(root: Path, rel: str) -> str:
    cache = StatCache.load(root)
    digest = cache.hash(rel)
    cache.save()
    again = StatCache.load(root)
    assert again.hash(rel) == digest and again.reads == 0  # the entry was persisted
    return digest


def test_edit_with_mtime_restored_is_rehashed(root: Path) -> None:
    path = root / "weights.txt"
    path.write_text("AAAA\n")
    st = path.stat()
    before = _warm(root, "weights.txt")

    time.sleep(0.01)  # a later ctime tick than the one cached
    path.write_text("BBBB\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # `touch -r`, `cp -p`, `tar x`
    after_st = path.stat()
    assert (after_st.st_size, after_st.st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    cache = StatCache.load(root)
    assert cache.hash("weights.txt") == hash_file(path) != before
    assert cache.reads == 1


def test_mode_change_rereads_the_file_as_git_does(root: Path) -> None:
    path = root / "export.py"
    path.write_text("print('hi')\n")
    digest = _warm(root, "export.py")
    time.sleep(0.01)
    os.chmod(path, 0o600)
    cache = StatCache.load(root)
    assert cache.hash("export.py") == digest
    assert cache.reads == 1


def test_racy_by_ctime_is_not_persisted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "RACY_WINDOW_NS", 2_000_000_000)
    path = root / "data.bin"
    path.write_bytes(b"x" * 10)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3_600_000_000_000))  # old mtime
    cache = StatCache.load(root)
    cache.hash("data.bin")
    cache.save()
    # The mtime is an hour old but the ctime is now: not trusted next time.
    again = StatCache.load(root)
    again.hash("data.bin")
    assert again.reads == 1


def test_old_format_cache_is_ignored(root: Path) -> None:
    (root / "a.txt").write_text("a\n")
    _warm(root, "a.txt")
    path = root / ".neobuild" / "statcache"
    data = bytearray(path.read_bytes())
    data[8:12] = (1).to_bytes(4, "little")  # a format-1 cache (no ctime in its entries)
    path.write_bytes(bytes(data))
    cache = StatCache.load(root)
    assert (cache.ignored or "").startswith("format 1/")
    assert statcache.FORMAT_VERSION >= 2
