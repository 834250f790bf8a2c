"""Existing ``.tar.gz`` archives, read back: what Neo would refuse in them, and their members.

:func:`check_archive` lists every problem that would stop SageMaker Neo from using a file
as its input archive (not gzip, not a tar, links, devices, FIFOs, absolute or ``..``
paths); :func:`read_members` lists the member paths. Both stream the archive, so memory
stays flat whatever its size. The gzip layer is read with ISA-L's ``igzip`` when ``isal``
is installed, else with the standard library's ``gzip``; the tar layer with ``tarfile``
(:mod:`neobuild.archive` writes archives without it, :mod:`neobuild.tarformat`).
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, cast

from neobuild.errors import PackageError
from neobuild.gzipstream import isal_zlib
from neobuild.tarformat import is_drive_path

__all__ = ["check_archive", "read_members"]

# What a corrupt archive raises while it is read.
_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, tarfile.TarError, zlib.error)
if isal_zlib is not None:
    _READ_ERRORS += (isal_zlib.error,)


def _open_gzip(path: Path) -> BinaryIO:
    if isal_zlib is not None:
        from isal import igzip

        return cast(BinaryIO, igzip.open(path, "rb"))  # type: ignore[no-untyped-call]
    import gzip

    return cast(BinaryIO, gzip.open(path, "rb"))


def _iter_members(path: Path) -> Iterable[tarfile.TarInfo]:
    """Stream the members of a gzip tar; raises OSError/tarfile errors on a bad archive."""
    with _open_gzip(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        yield from tar


def _magic(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(4)


def _member_name(info: tarfile.TarInfo) -> str:
    return info.name + "/" if info.isdir() else info.name


def _member_problems(info: tarfile.TarInfo) -> list[str]:
    name = info.name
    problems: list[str] = []
    if info.issym():
        problems.append(f"{name}: a symlink (to {info.linkname!r}); Neo cannot extract links")
    elif info.islnk():
        problems.append(f"{name}: a hardlink (to {info.linkname!r}); Neo cannot extract links")
    elif not (info.isreg() or info.isdir()):
        problems.append(f"{name}: not a regular file or directory (a device or FIFO)")
    if name.startswith("/") or is_drive_path(name):
        problems.append(f"{name}: an absolute path")
    if ".." in name.split("/"):
        problems.append(f"{name}: a '..' path that points outside the archive")
    return problems


def check_archive(path: Path) -> list[str]:
    """Every problem that would stop Neo from using ``path`` as its input archive.

    Checks: the file is gzip-compressed, the content is a tar, and every member is a regular
    file or directory with a relative path without ``..`` (no links, devices or FIFOs).

    Args:
        path: The archive to check.

    Returns:
        The problems, one sentence each; empty when the archive is fine.
    """
    path = Path(path)
    try:
        magic = _magic(path)
    except OSError as exc:
        return [f"{path}: cannot be read: {exc.strerror or exc}"]
    if magic[:2] != b"\x1f\x8b":
        if magic == b"PK\x03\x04":
            return [f"{path}: a zip archive, not a gzip-compressed tar"]
        return [f"{path}: not gzip-compressed (Neo needs a .tar.gz)"]
    problems: list[str] = []
    count = 0
    try:
        for info in _iter_members(path):
            count += 1
            problems.extend(f"{path}: member {p}" for p in _member_problems(info))
    except _READ_ERRORS as exc:
        problems.append(f"{path}: not a valid gzip-compressed tar ({exc})")
        return problems
    if count == 0:
        problems.append(f"{path}: an empty archive")
    return problems


def read_members(path: Path) -> list[str]:
    """The member paths of a ``.tar.gz``, in archive order (directories end with ``/``).

    Raises:
        PackageError: the file is missing or not a gzip-compressed tar.
    """
    try:
        return [_member_name(info) for info in _iter_members(Path(path))]
    except _READ_ERRORS as exc:
        raise PackageError(
            f"{path}: not a readable gzip-compressed tar ({exc})",
            hint="delete it and run `neobuild package` again",
        ) from exc
