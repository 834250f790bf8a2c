"""archive.py: deterministic archives, refusals, the read side, streaming."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import socket
import stat
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from neobuild.archive import (
    ArchiveInfo,
    hash_bytes,
    hash_file,
    keep,
    pack,
)
from neobuild.archivecheck import check_archive, read_members
from neobuild.errors import PackageError

FILES = [
    "model.pth",
    "saved_model.pb",
    "run.sh",
    "variables/variables.data-00000-of-00001",
    "variables/variables.index",
]
EXTRA = {"code/inference.py": b"def model_fn(d):\n    pass\n", "code/requirements.txt": b"numpy\n"}
EXPECTED_MEMBERS = (
    "code/",
    "code/inference.py",
    "code/requirements.txt",
    "model.pth",
    "run.sh",
    "saved_model.pb",
    "variables/",
    "variables/variables.data-00000-of-00001",
    "variables/variables.index",
)


def content(name: str) -> bytes:
    rng = random.Random(name)
    return rng.randbytes(1000 + 37 * len(name)) + name.encode()


def make_export(root: Path, *, private: bool, mtime: int, order: list[str]) -> Path:
    """An export dir; ``private`` gives 0o600/0o700 modes instead of 0o644/0o755."""
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(name))
        if name == "run.sh":
            path.chmod(0o700 if private else 0o755)
        else:
            path.chmod(0o600 if private else 0o644)
        os.utime(path, (mtime, mtime))
    for directory in (root / "variables", root):
        os.utime(directory, (mtime, mtime))
    return root


PACK_IN_SUBPROCESS = textwrap.dedent(
    """
    import os, sys, json
    from pathlib import Path
    os.umask(0o077)
    sys.path.insert(0, sys.argv[1])
    from tests.integration.test_package import make_export, FILES, EXTRA
    from neobuild.archive import pack
    export = make_export(Path(sys.argv[2]), private=True, mtime=2_000_000_000,
                         order=list(reversed(FILES)))
    info = pack(export, list(reversed(FILES)), Path(sys.argv[3]), extra=dict(reversed(EXTRA.items())))
    print(json.dumps({"sha256": info.sha256, "size": info.size}))
    """
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> ArchiveInfo:
    base = tmp_path_factory.mktemp("pack")
    export = make_export(base / "export", private=False, mtime=1_000_000_000, order=FILES)
    return pack(export, FILES, base / "out" / "model.tar.gz", extra=EXTRA)


def test_same_files_from_different_dirs_times_umasks_and_modes_give_same_bytes(
    archive: ArchiveInfo, tmp_path: Path, repo_root: Path
) -> None:
    other = tmp_path / "elsewhere" / "deeper" / "model.tar.gz"
    result = subprocess.run(
        [sys.executable, "-c", PACK_IN_SUBPROCESS, str(repo_root), str(tmp_path / "x"), str(other)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "x" / "model.pth").stat().st_mode & 0o777 == 0o600  # really different
    assert other.read_bytes() == archive.path.read_bytes()
    assert result.stdout.strip() == f'{{"sha256": "{archive.sha256}", "size": {archive.size}}}'
    # The archive itself is readable by others even under umask 077 (atomic.py's default).
    assert other.stat().st_mode & 0o777 == 0o644


def test_info_hash_and_size_describe_the_written_file(archive: ArchiveInfo) -> None:
    data = archive.path.read_bytes()
    assert archive.sha256 == "sha256:" + hashlib.sha256(data).hexdigest()
    assert archive.sha256 == hash_file(archive.path) == hash_bytes(data)
    assert archive.size == len(data)
    assert archive.members == EXPECTED_MEMBERS
    # Every file member's size and hash, computed while packing.
    expected = {name: content(name) for name in FILES} | EXTRA
    assert archive.file_hashes == {name: hash_bytes(b) for name, b in expected.items()}
    assert archive.file_sizes == {name: len(b) for name, b in expected.items()}


def test_members_are_sorted_with_normalised_metadata(archive: ArchiveInfo) -> None:
    with tarfile.open(archive.path, "r:gz") as tar:
        infos = tar.getmembers()
        names = [i.name + "/" if i.isdir() else i.name for i in infos]
        assert tuple(names) == EXPECTED_MEMBERS
        assert read_members(archive.path) == list(EXPECTED_MEMBERS)
        for info in infos:
            assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0)
            assert info.pax_headers == {}
            if info.isdir() or info.name == "run.sh":
                assert info.mode == 0o755
            else:
                assert info.isreg() and info.mode == 0o644
        for name in FILES:
            member = tar.extractfile(name)
            assert member is not None and member.read() == content(name)
        for name, data in EXTRA.items():
            member = tar.extractfile(name)
            assert member is not None and member.read() == data


def test_gzip_header_has_no_time_and_no_name(archive: ArchiveInfo) -> None:
    header = archive.path.read_bytes()[:10]
    # magic, deflate, FLG=0 (no FNAME), MTIME=0, XFL=0, OS=255
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    with gzip.open(archive.path) as stream:  # the trailer (crc, size) is valid
        stream.read()


def test_tar_is_readable_by_gnu_tar(archive: ArchiveInfo) -> None:
    listing = subprocess.run(
        ["tar", "-tvzf", str(archive.path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split()[-1] for line in listing] == list(EXPECTED_MEMBERS)
    assert all(" 0/0 " in line for line in listing)


def test_check_archive_accepts_what_pack_writes(archive: ArchiveInfo) -> None:
    assert check_archive(archive.path) == []


def test_zlib_fallback_is_valid_and_deterministic(tmp_path: Path) -> None:
    export = make_export(tmp_path / "e", private=False, mtime=0, order=FILES)
    one = pack(export, FILES, tmp_path / "1.tar.gz", extra=EXTRA, use_isal=False)
    os.utime(export / "model.pth", (5, 5))
    two = pack(export, FILES, tmp_path / "2.tar.gz", extra=EXTRA, use_isal=False)
    assert one.sha256 == two.sha256
    assert check_archive(one.path) == []
    assert read_members(one.path) == list(EXPECTED_MEMBERS)


def test_a_listed_directory_becomes_a_directory_member(tmp_path: Path) -> None:
    (tmp_path / "e" / "assets").mkdir(parents=True)
    (tmp_path / "e" / "m.onnx").write_bytes(b"x")
    info = pack(tmp_path / "e", ["m.onnx", "assets"], tmp_path / "a.tar.gz")
    assert info.members == ("assets/", "m.onnx")
    assert read_members(info.path) == ["assets/", "m.onnx"]


def test_files_at_the_root_have_no_directory_prefix(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "model.pth").write_bytes(b"x")
    info = pack(tmp_path / "e", ["model.pth"], tmp_path / "m.tar.gz")
    assert read_members(info.path) == ["model.pth"]


# --------------------------------------------------------------------------- refusals


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.pth").write_bytes(b"weights")
    return export


def refused(export: Path, files: list[str], *, extra: dict[str, bytes] | None = None) -> str:
    dest = export.parent / "out" / "model.tar.gz"
    with pytest.raises(PackageError) as caught:
        pack(export, files, dest, extra=extra)
    assert not dest.exists()
    leftovers = list(dest.parent.iterdir()) if dest.parent.exists() else []
    assert leftovers == []  # no temp file left behind
    assert caught.value.hint
    return str(caught.value)


def test_refuses_a_symlink_to_a_file_outside(export_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("outside")
    (export_dir / "link.pth").symlink_to(tmp_path / "secret")
    message = refused(export_dir, ["link.pth", "model.pth"])
    assert str(export_dir / "link.pth") in message and "symlink" in message


def test_refuses_a_file_under_a_symlinked_directory(export_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "v.data").write_text("x")
    (export_dir / "variables").symlink_to(tmp_path / "real")
    message = refused(export_dir, ["variables/v.data"])
    assert "variables" in message and "symlink" in message


def test_refuses_a_hardlink(export_dir: Path) -> None:
    os.link(export_dir / "model.pth", export_dir / "copy.pth")
    message = refused(export_dir, ["model.pth"])
    assert str(export_dir / "model.pth") in message and "hardlink" in message


def test_refuses_a_fifo_without_blocking(export_dir: Path) -> None:
    os.mkfifo(export_dir / "pipe")
    message = refused(export_dir, ["model.pth", "pipe"])
    assert str(export_dir / "pipe") in message and "FIFO" in message


def test_refuses_a_socket(export_dir: Path) -> None:
    path = export_dir / "s"
    if len(str(path)) > 100:
        pytest.skip("socket path too long for AF_UNIX")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        message = refused(export_dir, ["s"])
    finally:
        sock.close()
    assert "socket" in message


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../model.pth", "'..'"),
        ("sub/../../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("./model.pth", "normalised"),
        ("a//b", "normalised"),
        ("", "usable"),
        ("dir\\file", "usable"),
    ],
)
def test_refuses_unsafe_paths(export_dir: Path, name: str, words: str) -> None:
    message = refused(export_dir, [name])
    assert words in message and repr(name) in message


def test_refuses_unsafe_extra_paths(export_dir: Path) -> None:
    message = refused(export_dir, ["model.pth"], extra={"../code/x.py": b""})
    assert "extra file" in message and "'..'" in message


def test_refuses_an_extra_that_collides_with_a_file(export_dir: Path) -> None:
    message = refused(export_dir, ["model.pth"], extra={"model.pth": b""})
    assert "collides" in message


def test_refuses_a_missing_file(export_dir: Path) -> None:
    message = refused(export_dir, ["model.pth", "nope.bin"])
    assert str(export_dir / "nope.bin") in message and "missing" in message


def test_a_failed_pack_keeps_the_previous_archive(export_dir: Path) -> None:
    dest = export_dir.parent / "out" / "model.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"previous")
    os.mkfifo(export_dir / "pipe")
    with pytest.raises(PackageError):
        pack(export_dir, ["model.pth", "pipe"], dest)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.tar.gz"]


# --------------------------------------------------------------------------- read side


def tar_gz(path: Path, members: list[tarfile.TarInfo], *, compress: bool = True) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in members:
            data = b"x" * info.size if info.isreg() else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(buffer.getvalue()) if compress else buffer.getvalue())
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 3 if kind == tarfile.REGTYPE else 0
    return info


def test_check_archive_on_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.pth", b"x")
    assert check_archive(path) == [f"{path}: a zip archive, not a gzip-compressed tar"]
    with pytest.raises(PackageError, match="not a readable gzip-compressed tar"):
        read_members(path)


def test_check_archive_on_a_plain_tar(tmp_path: Path) -> None:
    path = tar_gz(tmp_path / "model.tar.gz", [member("model.pth")], compress=False)
    assert check_archive(path) == [f"{path}: not gzip-compressed (Neo needs a .tar.gz)"]


def test_check_archive_on_gzip_that_is_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(gzip.compress(b"hello, not a tar" * 100))
    [problem] = check_archive(path)
    assert "not a valid gzip-compressed tar" in problem


def test_check_archive_on_a_truncated_archive(archive: ArchiveInfo, tmp_path: Path) -> None:
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(archive.path.read_bytes()[: archive.size // 2])
    [problem] = check_archive(path)
    assert "not a valid gzip-compressed tar" in problem


def test_check_archive_finds_links_and_escaping_paths(tmp_path: Path) -> None:
    path = tar_gz(
        tmp_path / "model.tar.gz",
        [
            member("model.pth"),
            member("weights", tarfile.SYMTYPE, "/etc/passwd"),
            member("again.pth", tarfile.LNKTYPE, "model.pth"),
            member("../evil.py"),
            member("/abs.py"),
            member("dev", tarfile.CHRTYPE),
        ],
    )
    problems = check_archive(path)
    assert problems == [
        f"{path}: member weights: a symlink (to '/etc/passwd'); Neo cannot extract links",
        f"{path}: member again.pth: a hardlink (to 'model.pth'); Neo cannot extract links",
        f"{path}: member ../evil.py: a '..' path that points outside the archive",
        f"{path}: member /abs.py: an absolute path",
        f"{path}: member dev: not a regular file or directory (a device or FIFO)",
    ]


def test_check_archive_on_a_missing_file(tmp_path: Path) -> None:
    [problem] = check_archive(tmp_path / "nope.tar.gz")
    assert "cannot be read" in problem


def test_hash_file_streams_and_names_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)
    assert hash_file(path) == "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(PackageError, match="nope"):
        hash_file(tmp_path / "nope")


# --------------------------------------------------------------------------- streaming

STREAMING_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys, json, hashlib, tarfile
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from neobuild.archive import pack, hash_file
    work = Path(sys.argv[2])
    export = work / "export"
    export.mkdir()
    big = export / "weights.bin"
    size = 200 * 1024 * 1024
    with open(big, "wb") as f:          # sparse, with random blocks every 16 MiB
        f.truncate(size)
        for offset in range(0, size, 16 * 1024 * 1024):
            f.seek(offset)
            f.write(os.urandom(1024 * 1024))
    hash_file(big)                      # warm up imports and the code path
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = pack(export, ["weights.bin"], work / "model.tar.gz")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Read the member back, streamed, and compare its hash with the source file.
    digest = hashlib.sha256()
    with tarfile.open(info.path, "r|gz") as tar:
        for m in tar:
            stream = tar.extractfile(m)
            while block := stream.read(1 << 20):
                digest.update(block)
    print(json.dumps({"growth_kib": after - before, "member": "sha256:" + digest.hexdigest(),
                      "source": hash_file(big), "size": m.size,
                      "packed": info.file_hashes["weights.bin"]}))
    """
)


def test_packing_a_large_file_keeps_memory_flat(tmp_path: Path, repo_root: Path) -> None:
    import json

    result = subprocess.run(
        [sys.executable, "-c", STREAMING_SCRIPT, str(repo_root), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["member"] == figures["source"] == figures["packed"]
    assert figures["size"] == 200 * 1024 * 1024
    # A whole-file read would add ~200 MiB of peak RSS; streaming adds a few MiB.
    assert figures["growth_kib"] < 32 * 1024, figures


def test_modes_of_private_files_do_not_leak(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    path = tmp_path / "e" / "model.pth"
    path.write_bytes(b"x")
    path.chmod(0o400)
    info = pack(tmp_path / "e", ["model.pth"], tmp_path / "a.tar.gz")
    with tarfile.open(info.path) as tar:
        assert stat.S_IMODE(tar.getmember("model.pth").mode) == 0o644


def test_long_and_non_ascii_names_get_a_path_header_and_nothing_else(tmp_path: Path) -> None:
    long_dir = "d" * 60 + "/" + "e" * 60
    names = [f"{long_dir}/weights.bin", "modèle.pth"]
    for name in names:
        path = tmp_path / "e" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    info = pack(tmp_path / "e", names, tmp_path / "a.tar.gz")
    again = pack(tmp_path / "e", names, tmp_path / "b.tar.gz")
    assert info.sha256 == again.sha256
    with tarfile.open(info.path) as tar:
        headers = {m.name: m.pax_headers for m in tar.getmembers()}
    assert headers[f"{long_dir}/weights.bin"] == {"path": f"{long_dir}/weights.bin"}
    assert headers["modèle.pth"] == {"path": "modèle.pth"}
    assert read_members(info.path) == sorted(["d" * 60 + "/", long_dir + "/", *names])


def test_sizes_of_8_gib_and_more_go_in_a_pax_size_record() -> None:
    from neobuild.tarformat import member_header

    for size, pax in (
        (8**11 - 1, {}),
        (8**11, {"size": str(8**11)}),
        (2**40, {"size": str(2**40)}),
    ):
        header = member_header("big.bin", size=size)
        with tarfile.open(fileobj=io.BytesIO(header + bytes(1024)), mode="r:") as tar:
            first = tar.firstmember
            assert first is not None
            assert (first.name, first.size, first.pax_headers) == ("big.bin", size, pax)


# The tar stream is neobuild's own code: its bytes must not change unless the format is
# changed on purpose (they did not when tarfile was replaced: same bytes as Python 3.11's
# tarfile). The compressed bytes also depend on the deflate library: a change there means
# every archive hash in every neo.lock changes, which must be a deliberate upgrade.
GOLDEN_TAR = "sha256:98e17120380aed6a91c82aef01583935de1eabf203966cbc70b656fb26ce49d5"
GOLDEN_ISAL = "sha256:566192998e77bbea1b31d22f59be8b70c70b3532dc77eee09cf784acb213d822"


def test_golden_bytes(archive: ArchiveInfo) -> None:
    from neobuild.archive import COMPRESSOR

    with gzip.open(archive.path) as stream:
        assert hash_bytes(stream.read()) == GOLDEN_TAR
    if COMPRESSOR != "isal-1":
        pytest.skip(f"golden archive hash is for isal-1, not {COMPRESSOR}")
    assert archive.sha256 == GOLDEN_ISAL, (
        "the isal deflate output changed: every archive hash in neo.lock files changes with "
        "it; if this is a deliberate isal upgrade, update GOLDEN_ISAL and say so in the changelog"
    )


WITHOUT_ISAL = textwrap.dedent(
    """
    import sys, json
    from pathlib import Path
    sys.modules["isal"] = None  # import isal -> ImportError, as on a platform without it
    sys.path.insert(0, sys.argv[1])
    from neobuild import archive, archivecheck
    from tests.integration.test_package import make_export, FILES, EXTRA
    export = make_export(Path(sys.argv[2]), private=False, mtime=0, order=FILES)
    info = archive.pack(export, FILES, Path(sys.argv[3]), extra=EXTRA)
    print(json.dumps({"compressor": archive.COMPRESSOR, "sha256": info.sha256,
                      "members": archivecheck.read_members(info.path),
                      "problems": archivecheck.check_archive(info.path)}))
    """
)


def test_without_isal_the_zlib_fallback_is_used(tmp_path: Path, repo_root: Path) -> None:
    import json

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_ISAL,
            str(repo_root),
            str(tmp_path / "e"),
            str(tmp_path / "z.tar.gz"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["compressor"] == "zlib-6"
    assert report["members"] == list(EXPECTED_MEMBERS) and report["problems"] == []
    same = pack(tmp_path / "e", FILES, tmp_path / "same.tar.gz", extra=EXTRA, use_isal=False)
    assert report["sha256"] == same.sha256


# --------------------------------------------------------------------------- pipeline


def _pack_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("neobuild-pack")]


def test_a_failure_mid_archive_stops_the_pipeline_and_leaves_no_temp(tmp_path: Path) -> None:
    # The second file is a FIFO: the reader fails after the first file's blocks are queued.
    export = tmp_path / "e"
    export.mkdir()
    (export / "a.bin").write_bytes(os.urandom(5 * 1024 * 1024))  # threaded: over 4 MiB
    os.mkfifo(export / "b.fifo")
    with pytest.raises(PackageError, match="FIFO"):
        pack(export, ["a.bin", "b.fifo"], tmp_path / "out" / "model.tar.gz")
    assert _pack_threads() == []
    assert list((tmp_path / "out").iterdir()) == []


def test_a_multi_block_archive_matches_a_one_shot_deflate(tmp_path: Path) -> None:
    # The pipeline must give the bytes of one deflate stream over the whole tar: inflate
    # the archive and re-deflate its tar stream in one call, with the same library.

    from neobuild.gzipstream import raw_deflate

    export = tmp_path / "e"
    export.mkdir()
    (export / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 3) + bytes(2 * 1024 * 1024))
    (export / "small.txt").write_text("x" * 700)
    info = pack(export, ["big.bin", "small.txt"], tmp_path / "m.tar.gz", use_isal=False)
    data = info.path.read_bytes()
    tar = gzip.decompress(data)
    deflate, _ = raw_deflate(False)
    body = deflate.compress(tar) + deflate.flush()
    assert data[10:-8] == body
    assert _pack_threads() == []


def _records(export: Path) -> dict[str, tuple[int, str]]:
    return {rel: ((export / rel).stat().st_size, hash_file(export / rel)) for rel in FILES}


def test_keep_reuses_an_intact_archive_as_it_is(archive: ArchiveInfo, tmp_path: Path) -> None:
    export = archive.path.parent.parent / "export"
    kept = keep(
        archive.path,
        tmp_path / "staging" / "model.tar.gz",
        export,
        _records(export),
        sha256=archive.sha256,
        size=archive.size,
        extra=EXTRA,
    )
    assert kept is not None
    assert kept.path.read_bytes() == archive.path.read_bytes()
    assert (kept.sha256, kept.size, kept.members) == (
        archive.sha256,
        archive.size,
        EXPECTED_MEMBERS,
    )
    assert kept.file_hashes == archive.file_hashes
    assert kept.file_sizes == archive.file_sizes


def test_keep_refuses_a_changed_or_missing_archive(archive: ArchiveInfo, tmp_path: Path) -> None:
    export = archive.path.parent.parent / "export"
    tampered = tmp_path / "old" / "model.tar.gz"
    tampered.parent.mkdir()
    data = bytearray(archive.path.read_bytes())
    data[len(data) // 2] ^= 1  # same size, other bytes
    tampered.write_bytes(bytes(data))
    dest = tmp_path / "staging" / "model.tar.gz"
    for previous in (tampered, tmp_path / "missing.tar.gz"):
        kept = keep(
            previous,
            dest,
            export,
            _records(export),
            sha256=archive.sha256,
            size=archive.size,
            extra=EXTRA,
        )
        assert kept is None
        assert not dest.exists()


def test_small_archives_are_packed_on_the_callers_thread_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neobuild.archive as archive_mod

    export = make_export(tmp_path / "export", private=False, mtime=1_000_000_000, order=FILES)
    outputs = {}
    for name, threshold in (("threads", 0), ("inline", 1 << 40)):
        monkeypatch.setattr(archive_mod, "THREADED_MIN_BYTES", threshold)
        started = set(_pack_threads())
        outputs[name] = pack(export, FILES, tmp_path / name / "model.tar.gz", extra=EXTRA)
        assert set(_pack_threads()) == started
    assert outputs["threads"].path.read_bytes() == outputs["inline"].path.read_bytes()
    assert outputs["threads"].file_hashes == outputs["inline"].file_hashes
    # a failure on the caller's thread leaves no temp file either
    os.mkfifo(export / "b.fifo")
    with pytest.raises(PackageError, match="FIFO"):
        pack(export, [*FILES, "b.fifo"], tmp_path / "bad" / "model.tar.gz")
    assert list((tmp_path / "bad").iterdir()) == []
