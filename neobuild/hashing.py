"""The one sha256 of neobuild: ``"sha256:<hex>"`` digests of bytes and files.

Every digest neobuild records (neo.lock, archives, the stat cache, S3 metadata) has this
form. Files are read in 1 MiB blocks, so memory stays flat whatever their size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["BLOCK_SIZE", "hash_bytes", "hash_file"]

#: Bytes read at a time.
BLOCK_SIZE = 1 << 20


def hash_bytes(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_file(path: Path) -> str:
    """The ``sha256:<hex>`` digest of a file's content, read in :data:`BLOCK_SIZE` blocks.

    Raises:
        OSError: the file cannot be read (callers wrap it in their own error).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(BLOCK_SIZE):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
