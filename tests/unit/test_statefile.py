"""statefile: every .neobuild/ file has one header, one checksum, and is never trusted blindly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neobuild import statefile
from neobuild.gitignore import IGNORE_ALL
from neobuild.statefile import ABSENT, StateFile

MARSHAL = StateFile("testcache", 4, "test cache")
JSON = StateFile("testcache.json", 1, "json test cache", codec="json")


@pytest.mark.parametrize("state", [MARSHAL, JSON], ids=["marshal", "json"])
def test_round_trip_creates_a_self_ignoring_state_dir(tmp_path: Path, state: StateFile) -> None:
    value = {"a": [1, 2, "x"], "b": None}
    assert state.read(tmp_path) == (None, ABSENT)
    assert state.write(tmp_path, value, key=b"input")
    assert state.path(tmp_path) == tmp_path / ".neobuild" / state.name
    assert (tmp_path / ".neobuild" / ".gitignore").read_text() == IGNORE_ALL
    assert state.read(tmp_path, key=b"input") == (value, "")


def test_every_mismatch_is_a_reason_not_an_exception(tmp_path: Path) -> None:
    MARSHAL.write(tmp_path, {"k": "v" * 100}, key=b"one")
    path = MARSHAL.path(tmp_path)
    good = path.read_bytes()
    assert MARSHAL.read(tmp_path, key=b"two") == (None, "made from other input")
    assert (
        StateFile("testcache", 5, "test cache")
        .read(tmp_path, key=b"one")[1]
        .startswith("format 4/")
    )
    assert StateFile("othercache", 4, "test cache").decode(good, key=b"one") == (
        None,
        "holds a testcache, not a othercache",
    )
    for data, why in [
        (b"", "truncated"),
        (good[:50], "truncated"),
        (b"x" * 200, "not a neobuild test cache"),
        (good[:-10] + bytes(10), "checksum mismatch"),
    ]:
        path.write_bytes(data)
        assert MARSHAL.read(tmp_path, key=b"one") == (None, why)
    # Another neobuild (an edited checkout): the code stamp differs.
    header = statefile._HEADER
    fields = list(header.unpack_from(good))
    fields[4] = bytes(32)
    path.write_bytes(header.pack(*fields) + good[header.size :])
    assert MARSHAL.read(tmp_path, key=b"one") == (None, "written by another version of neobuild")
    # A payload that passes its checksum but is not marshal data.
    payload = b"\xff not marshal"
    fields = list(header.unpack_from(good))
    fields[6] = statefile.hashlib.sha256(payload).digest()
    path.write_bytes(header.pack(*fields) + payload)
    assert MARSHAL.read(tmp_path, key=b"one") == (None, "undecodable payload")


def test_writes_that_cannot_happen_are_skipped(tmp_path: Path) -> None:
    assert not MARSHAL.write(tmp_path, {1: 2}, create=False)  # no .neobuild/: not created
    assert not (tmp_path / ".neobuild").exists()
    assert not MARSHAL.write(tmp_path, {1: object()})  # not marshal-able
    assert not JSON.write(tmp_path, {"x": object()})  # not JSON
    assert not (tmp_path / ".neobuild").exists()  # nothing created for nothing
    (tmp_path / ".neobuild").write_text("a file where the directory should be")
    assert not MARSHAL.write(tmp_path, {1: 2})
    assert MARSHAL.read(tmp_path)[0] is None


def test_a_killed_writers_old_temp_files_are_removed(tmp_path: Path) -> None:
    MARSHAL.write(tmp_path, 1)
    old = tmp_path / ".neobuild" / f".{MARSHAL.name}.dead.tmp"
    fresh = tmp_path / ".neobuild" / f".{MARSHAL.name}.busy.tmp"
    for temp in (old, fresh):
        temp.write_bytes(b"half")
    os.utime(old, (1, 1))
    assert MARSHAL.write(tmp_path, 2)
    assert not old.exists()
    assert fresh.exists()  # maybe another process's write in progress
    assert MARSHAL.read(tmp_path) == (2, "")


def test_names_longer_than_the_header_field_are_refused() -> None:
    with pytest.raises(ValueError, match="over 24 bytes"):
        StateFile("x" * 25, 1, "too long")
