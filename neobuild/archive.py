"""Deterministic, streamed ``model.tar.gz`` archives: packing them, or keeping the last one.

The archive is what SageMaker Neo reads, and its sha256 is what ``neo.lock`` records, so the
same files must give the same bytes on any machine, on any day:

* members sorted by path, directories included (``variables/``) before their files;
* uid/gid 0, empty user and group names, mtime 0, modes normalised to 0o644 for files and
  0o755 for directories and executables;
* POSIX (pax) tar format; a pax header appears only for a path longer than 100 bytes, a
  non-ASCII path or a file over 8 GiB, and never carries a time;
* gzip header with mtime 0, no file name, OS byte 255 ("unknown").

The tar headers are written by :mod:`neobuild.tarformat`, not by ``tarfile`` (whose output
has changed between releases), so the bytes do not depend on the Python version. Reading
and checking an existing archive is :mod:`neobuild.archivecheck`.

Packing is one streaming pass: tar -> deflate -> a writer that hashes the compressed bytes
and writes them to a temporary file beside the destination, renamed into place at the end
(:mod:`neobuild.atomic`). Memory stays flat whatever the size of the weights.

The pass is a three-stage pipeline over threads joined by small bounded queues, so that
two cores work at once: the caller's thread reads the files and hashes them, a deflate
thread compresses, a writer thread hashes the compressed bytes and writes them (the
latter two are :class:`neobuild.gzipstream.GzipHashWriter`). hashlib
and ISA-L release the GIL on large buffers. The deflate stream sees exactly the calls a
single-threaded writer would make, in the same order, so the bytes do not change
(a threaded deflate that splits the stream, like ``isal.igzip_threaded``, would).

Deflate comes from ISA-L (``isal``) at :data:`COMPRESS_LEVEL`, several times faster than
zlib. When ``isal`` is missing the standard library's zlib is used instead; the archive is
just as valid and deterministic, but its bytes (and hash) differ from an isal-built one.
:data:`COMPRESSOR` names the implementation in use.

Links, devices, absolute paths and ``..`` never go in: Neo's hosting cannot extract links,
and an archive must not write outside the directory it is extracted in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from neobuild import hashing
from neobuild.atomic import atomic_writer
from neobuild.errors import PackageError
from neobuild.filekind import file_kind
from neobuild.gzipstream import (
    COMPRESS_LEVEL,
    COMPRESSOR,
    THREADED_MIN_BYTES,
    GzipHashWriter,
)
from neobuild.hashing import BLOCK_SIZE, hash_bytes
from neobuild.tarformat import (
    BLOCK,
    EXEC_MODE,
    FILE_MODE,
    RECORD,
    is_drive_path,
    member_header,
    padding,
)

__all__ = [
    "COMPRESSOR",
    "COMPRESS_LEVEL",
    "ArchiveInfo",
    "hash_bytes",
    "hash_file",
    "keep",
    "pack",
]

_HINT_EXPORT = "make the export write plain regular files inside its output directory"


@dataclass(frozen=True)
class ArchiveInfo:
    """A written archive: where it is, its ``sha256:`` hash, size in bytes, and members.

    ``members`` are the archive paths in archive order; directories end with ``/``.
    ``file_hashes`` and ``file_sizes`` describe every regular file member (exported files and
    extras) by archive path, hashed in the same pass that packed it, so they describe exactly
    the bytes that went into the archive and no file is read twice.
    """

    path: Path
    sha256: str
    size: int
    members: tuple[str, ...]
    file_hashes: dict[str, str] = field(default_factory=dict, hash=False)
    file_sizes: dict[str, int] = field(default_factory=dict, hash=False)


# --------------------------------------------------------------------------- hashing


def hash_file(path: Path) -> str:
    """The ``sha256:<hex>`` digest of a file (:func:`neobuild.hashing.hash_file`).

    Raises:
        PackageError: the file cannot be read.
    """
    try:
        return hashing.hash_file(path)
    except OSError as exc:
        raise PackageError(f"cannot read {path}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- writing


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from the file system (surrogates)
        return False
    return True


def _check_member_path(name: str, *, what: str) -> str:
    """Return ``name`` if it is a clean relative posix path, else raise PackageError."""
    if not name or name != name.strip() or "\\" in name or "\x00" in name or not _utf8(name):
        raise PackageError(f"{what} {name!r}: not a usable archive path", hint=_HINT_EXPORT)
    if name.startswith("/") or is_drive_path(name):
        raise PackageError(
            f"{what} {name!r}: absolute paths cannot go into an archive", hint=_HINT_EXPORT
        )
    parts = name.split("/")
    if ".." in parts:
        raise PackageError(
            f"{what} {name!r}: '..' would point outside the archive", hint=_HINT_EXPORT
        )
    normal = posixpath.normpath(name)
    if normal != name.rstrip("/") or normal in (".", ""):
        raise PackageError(
            f"{what} {name!r}: not a normalised relative path (expected {normal!r})",
            hint=_HINT_EXPORT,
        )
    return normal


def _check_parents(export_dir: Path, name: str) -> None:
    """Refuse a path whose directories (below export_dir) are symlinks or not directories."""
    parts = name.split("/")[:-1]
    current = export_dir
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError as exc:
            raise PackageError(
                f"{export_dir / name}: missing (directory {current} does not exist)",
                hint=_HINT_EXPORT,
            ) from exc
        if not stat.S_ISDIR(mode):
            raise PackageError(
                f"{export_dir / name}: {current} is {file_kind(mode)}, not a directory; "
                "links cannot go into an archive",
                hint=_HINT_EXPORT,
            )


@dataclass(frozen=True)
class _Entry:
    name: str  # archive path, without trailing slash
    is_dir: bool = False
    source: Path | None = None  # a file under export_dir
    data: bytes | None = None  # extra content

    @property
    def member(self) -> str:
        return self.name + "/" if self.is_dir else self.name


def _entries(export_dir: Path, files: Sequence[str], extra: Mapping[str, bytes]) -> list[_Entry]:
    """Every archive member, checked and sorted, with the directories the files need."""
    entries: dict[str, _Entry] = {}
    for raw in files:
        name = _check_member_path(raw, what=f"{export_dir / raw}:")
        path = export_dir / name
        _check_parents(export_dir, name)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise PackageError(f"{path}: missing", hint="the export did not write it") from None
        except OSError as exc:
            raise PackageError(f"{path}: {exc.strerror or exc}", hint=_HINT_EXPORT) from exc
        if stat.S_ISDIR(mode):
            entries[name] = _Entry(name, is_dir=True)
        else:
            entries[name] = _Entry(name, source=path)
    for raw, data in extra.items():
        name = _check_member_path(raw, what="extra file")
        if name in entries:
            raise PackageError(
                f"extra file {name!r} collides with an exported file of the same path",
                hint="rename the exported file or the extra file",
            )
        entries[name] = _Entry(name, data=bytes(data))
    for name in list(entries):
        parent = posixpath.dirname(name)
        while parent:
            existing = entries.get(parent)
            if existing is not None and not existing.is_dir:
                raise PackageError(
                    f"{parent!r} is both a file and the directory of {name!r}",
                    hint=_HINT_EXPORT,
                )
            entries.setdefault(parent, _Entry(parent, is_dir=True))
            parent = posixpath.dirname(parent)
    return sorted(entries.values(), key=lambda e: e.member)


def _input_bytes(entries: Sequence[_Entry]) -> int:
    """About how many bytes the archive packs (a file that cannot be stat'ed counts 0:
    :func:`_add_file` reports it)."""
    total = 0
    for entry in entries:
        if entry.data is not None:
            total += len(entry.data)
        elif entry.source is not None:
            with contextlib.suppress(OSError):
                total += os.lstat(entry.source).st_size
    return total


def _add_file(out: GzipHashWriter, entry: _Entry) -> tuple[int, str]:
    """Add one exported file (checked again on the open descriptor); its size and hash."""
    assert entry.source is not None
    path = entry.source
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = stat.S_IFREG  # gone since it was listed
        if stat.S_ISREG(mode):  # unreadable (permissions) or gone: say why
            raise PackageError(
                f"{path}: cannot be read: {exc.strerror or exc}", hint=_HINT_EXPORT
            ) from exc
        raise PackageError(
            f"{path}: {file_kind(mode)}; only regular files go into an archive", hint=_HINT_EXPORT
        ) from exc
    with os.fdopen(fd, "rb") as stream:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PackageError(
                f"{path}: {file_kind(st.st_mode)}; only regular files go into an archive",
                hint=_HINT_EXPORT,
            )
        if st.st_nlink > 1:
            raise PackageError(
                f"{path}: a hardlink ({st.st_nlink} names for one file); "
                "only plain files go into an archive",
                hint="write a copy instead of a link",
            )
        os.set_blocking(fd, True)
        size = st.st_size
        mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
        out.write(member_header(entry.name, size=size, mode=mode))
        digest = hashlib.sha256()
        left = size
        while left:
            block = stream.read(min(BLOCK_SIZE, left))
            if not block:  # the file shrank since fstat
                raise PackageError(
                    f"{path}: ended {left} bytes early; was it modified while packing?",
                    hint="run the build again",
                )
            digest.update(block)
            out.write(block)
            left -= len(block)
        out.write(padding(size))
    return size, "sha256:" + digest.hexdigest()


def pack(
    export_dir: Path,
    files: Sequence[str],
    dest: Path,
    *,
    extra: Mapping[str, bytes] | None = None,
    use_isal: bool = True,
) -> ArchiveInfo:
    """Write a deterministic ``model.tar.gz`` of ``files`` (and ``extra``) to ``dest``.

    Args:
        export_dir: The directory the files are relative to.
        files: Posix paths relative to ``export_dir``; they go to the archive root under the
            same relative path. A directory listed here is added as an (empty) directory.
        dest: The archive to write (atomically; its directory is created if needed).
        extra: Archive path -> content of generated files, e.g. ``{"code/inference.py": b"..."}``.
        use_isal: Deflate with ISA-L when installed (the default); ``False`` forces zlib,
            whose bytes differ.

    Returns:
        The archive's path, ``sha256:`` hash, size and member list, and the size and hash
        of every file in it (as read while packing).

    Raises:
        PackageError: a file is missing, is a link, device or FIFO, a path is absolute or
            has ``..``, or the archive cannot be written. The message names the file.
    """
    export_dir = Path(export_dir)
    dest = Path(dest)
    entries = _entries(export_dir, files, extra or {})
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(dest) as sink:
            threads = _input_bytes(entries) >= THREADED_MIN_BYTES
            writer = GzipHashWriter(sink, use_isal=use_isal, threads=threads)
            try:
                for entry in entries:
                    if entry.is_dir:
                        writer.write(member_header(entry.name, is_dir=True))
                    elif entry.data is not None:
                        writer.write(member_header(entry.name, size=len(entry.data)))
                        writer.write(entry.data + padding(len(entry.data)))
                        sizes[entry.name] = len(entry.data)
                        hashes[entry.name] = hash_bytes(entry.data)
                    else:
                        sizes[entry.name], hashes[entry.name] = _add_file(writer, entry)
                writer.write(b"\0" * (2 * BLOCK))  # end-of-archive marker
                writer.write(b"\0" * (-writer.tell() % RECORD))
                writer.finish()
            finally:
                writer.close()  # on an error: stop the stages before the temp file goes
    except PackageError:
        raise
    except OSError as exc:
        raise PackageError(
            f"cannot write {dest}: {exc.strerror or exc}",
            hint="check the build directory is writable and the disk is not full",
        ) from exc
    return ArchiveInfo(
        path=dest,
        sha256="sha256:" + writer.digest.hexdigest(),
        size=writer.compressed_size,
        members=tuple(e.member for e in entries),
        file_hashes=hashes,
        file_sizes=sizes,
    )


def keep(
    previous: Path,
    dest: Path,
    export_dir: Path,
    files: Mapping[str, tuple[int, str]],
    *,
    sha256: str,
    size: int,
    extra: Mapping[str, bytes] | None = None,
) -> ArchiveInfo | None:
    """Reuse ``previous`` as ``dest`` when it is intact; ``None`` when it must be re-packed.

    For a rebuild whose archive content is known to be unchanged (the caller has checked
    that the exported files and the ``extra`` members hash as when ``previous`` was packed):
    the archive is not compressed again, so its bytes, and every hash of it recorded
    elsewhere, stay exactly as they were, and a 1 GiB archive costs a read instead of a
    re-pack. ``previous`` must still have the recorded ``size`` and ``sha256``. It is
    hard-linked to ``dest`` (copied where links are not possible).

    Args:
        previous: The archive written by the previous build.
        dest: Where the kept archive goes (the staging directory's ``model.tar.gz``).
        export_dir: The exported files the archive holds (for its member list).
        files: Export-relative path -> (size, ``sha256:`` hash) of every exported file.
        sha256: The ``sha256:`` hash the previous build recorded for the archive.
        size: Its recorded size in bytes.
        extra: The generated members, as for :func:`pack`.
    """
    extra = extra or {}
    try:
        if previous.stat().st_size != size or hash_file(previous) != sha256:
            return None
    except (OSError, PackageError):
        return None
    entries = _entries(Path(export_dir), sorted(files), extra)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(previous, dest)
    except OSError:
        with open(previous, "rb") as source, atomic_writer(dest) as sink:
            shutil.copyfileobj(source, sink, BLOCK_SIZE)
    sizes = {rel: record[0] for rel, record in files.items()}
    hashes = {rel: record[1] for rel, record in files.items()}
    for name, data in extra.items():
        sizes[name], hashes[name] = len(data), hash_bytes(data)
    return ArchiveInfo(
        path=dest,
        sha256=sha256,
        size=size,
        members=tuple(e.member for e in entries),
        file_hashes=hashes,
        file_sizes=sizes,
    )
