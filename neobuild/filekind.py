"""What kind of file a stat mode is, in the words neobuild's messages use."""

from __future__ import annotations

import stat

__all__ = ["file_kind"]


def file_kind(mode: int) -> str:
    """``"a symlink"``, ``"a FIFO"``, ``"a socket"``, ``"a device"``, ``"a directory"``,
    ``"a regular file"`` or ``"a special file"`` for an ``st_mode`` (from ``lstat``)."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"
