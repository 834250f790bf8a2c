"""The bytes of a tar stream: ustar headers, pax extended headers and padding, fixed.

:mod:`neobuild.archive` writes its tar stream with this module, not with ``tarfile``:
tarfile's header bytes have changed between Python releases (device fields in 3.9,
bpo-18819; zeroed ustar fields, bpo-45863), and an archive hash in neo.lock must not depend
on the Python that built it. The layout is POSIX ustar with pax extended headers (IEEE Std
1003.1-2017, "pax" format), field by field what Python 3.11's tarfile writes in
PAX_FORMAT; ``tarfile`` is only used to read.

Every header has uid/gid 0, empty user and group names, mtime 0 and one of the normalised
modes below; a pax header appears only for a path longer than 100 bytes, a non-ASCII path
or a file over 8 GiB, and never carries a time.

:func:`is_drive_path` is here too: the one rule about member paths that the writer
(:mod:`neobuild.archive`) and the checker (:mod:`neobuild.archivecheck`) share.
"""

from __future__ import annotations

__all__ = [
    "BLOCK",
    "DIR_MODE",
    "EXEC_MODE",
    "FILE_MODE",
    "RECORD",
    "is_drive_path",
    "member_header",
    "padding",
]

FILE_MODE = 0o644
"""Mode of a regular file member."""

EXEC_MODE = 0o755
"""Mode of a file member that is executable by anyone."""

DIR_MODE = 0o755
"""Mode of a directory member."""

BLOCK = 512
"""Tar block size: headers are one block, file data is padded to whole blocks."""

RECORD = 20 * BLOCK
"""Archives are padded to a whole record, like tar and tarfile."""

_USTAR_MAGIC = b"ustar\x0000"
_PAX_NAME = "././@PaxHeader"
_MAX_SIZE = 8**11 - 1  # the largest size the 12-byte octal field holds (8 GiB - 1)


def is_drive_path(name: str) -> bool:
    """True for Windows-style drive paths (``C:/x``), which are absolute somewhere."""
    return len(name) >= 2 and name[1] == ":" and name[0].isalpha()


def _field(text: str, length: int) -> bytes:
    data = text.encode("ascii", "replace")[:length]
    return data + b"\0" * (length - len(data))


def _octal(value: int, length: int) -> bytes:
    return b"%0*o\0" % (length - 1, value)


def _header(name: str, *, size: int, mode: int, kind: bytes) -> bytes:
    """One 512-byte ustar header; uid/gid 0, no user or group names, mtime 0."""
    block = b"".join(
        [
            _field(name, 100),
            _octal(mode, 8),
            _octal(0, 8),  # uid
            _octal(0, 8),  # gid
            _octal(size, 12),
            _octal(0, 12),  # mtime
            b" " * 8,  # checksum, computed below with this field as spaces
            kind,
            _field("", 100),  # linkname
            _USTAR_MAGIC,
            _field("", 32),  # uname
            _field("", 32),  # gname
            _field("", 8),  # devmajor: only set for devices
            _field("", 8),  # devminor
            _field("", 155),  # prefix: unused, long names go in a pax header
        ]
    ).ljust(BLOCK, b"\0")
    checksum = b"%06o\0" % sum(block)
    return block[:148] + checksum + block[155:]


def _pax_records(records: list[tuple[str, str]]) -> bytes:
    """pax ``"<len> <key>=<value>\\n"`` records; <len> counts the whole record, itself too."""
    out = b""
    for key, value in records:
        body = b" " + key.encode("utf-8") + b"=" + value.encode("utf-8") + b"\n"
        length = len(body)
        while len(str(length)) + len(body) != length:
            length = len(str(length)) + len(body)
        out += str(length).encode("ascii") + body
    return out


def padding(size: int) -> bytes:
    """The zero bytes that fill ``size`` bytes of member data up to a whole block."""
    return b"\0" * (-size % BLOCK)


def member_header(
    name: str, *, size: int = 0, mode: int = FILE_MODE, is_dir: bool = False
) -> bytes:
    """The header block(s) of one member: a pax header first when the ustar fields cannot
    hold the name (over 100 bytes, or not ASCII) or the size (8 GiB and more).

    Args:
        name: The archive path, without a trailing slash for a directory.
        size: The file's size in bytes (ignored for a directory).
        mode: The file's mode, :data:`FILE_MODE` or :data:`EXEC_MODE`.
        is_dir: A directory member (mode :data:`DIR_MODE`, size 0).
    """
    if is_dir:
        name, mode, size, kind = name + "/", DIR_MODE, 0, b"5"
    else:
        kind = b"0"
    records: list[tuple[str, str]] = []
    if len(name) > 100 or not name.isascii():
        records.append(("path", name))
    if size > _MAX_SIZE:
        records.append(("size", str(size)))
    ustar = _header(name, size=0 if size > _MAX_SIZE else size, mode=mode, kind=kind)
    if not records:
        return ustar
    payload = _pax_records(records)
    pax = _header(_PAX_NAME, size=len(payload), mode=0, kind=b"x")
    return pax + payload + padding(len(payload)) + ustar
