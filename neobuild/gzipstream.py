"""The gzip stream of an archive: deterministic framing, deflate and sha256 on threads.

:class:`GzipHashWriter` gzip-compresses what it gets and hands the compressed bytes to a
sink while hashing them. The gzip header is written here, not by ``gzip.GzipFile``, so
every header byte is fixed (no file name, mtime 0, OS 255 "unknown") whichever deflate
library runs. Deflate runs on one thread and hashing + writing on another, joined by small
bounded queues (see :mod:`neobuild.archive`); the deflate stream sees exactly the calls a
single-threaded writer would make, so the bytes do not depend on the threading.

Deflate comes from ISA-L (``isal``) at :data:`COMPRESS_LEVEL`, several times faster than
zlib; without ``isal`` the standard library's zlib is used, whose bytes differ.
:data:`COMPRESSOR` names the implementation in use.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import BinaryIO, Protocol

__all__ = [
    "COMPRESSOR",
    "COMPRESS_LEVEL",
    "ZLIB_LEVEL",
    "GzipHashWriter",
    "isal_zlib",
    "raw_deflate",
]

isal_zlib: ModuleType | None
try:  # pragma: no branch - which one depends on the installation
    from isal import isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    isal_zlib = None


COMPRESS_LEVEL = 1
"""Deflate level: ISA-L's fastest (weights hardly compress; speed matters more)."""

ZLIB_LEVEL = 6
"""Deflate level of the zlib fallback."""

COMPRESSOR = f"isal-{COMPRESS_LEVEL}" if isal_zlib is not None else f"zlib-{ZLIB_LEVEL}"
"""The deflate implementation and level in use (``isal-1`` or ``zlib-6``)."""

# gzip member header (RFC 1952): magic, CM=deflate, FLG=0 (no name, no comment, no extra),
# MTIME=0, XFL=0, OS=255 (unknown) -- identical on every platform.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


def raw_deflate(use_isal: bool) -> tuple[_Compressor, Callable[[bytes, int], int]]:
    """A raw-deflate compressor and the matching crc32 function."""
    if use_isal and isal_zlib is not None:
        return (
            isal_zlib.compressobj(COMPRESS_LEVEL, isal_zlib.DEFLATED, -15),
            isal_zlib.crc32,
        )
    return zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, -15), zlib.crc32


_PIPELINE_DEPTH = 4
"""Blocks (of up to :data:`BLOCK_SIZE`) waiting between two stages: bounds the memory."""


class _Stage(threading.Thread):
    """A pipeline stage: runs ``work`` on each item of its inbox, then ``end`` at ``None``.

    After a failure the stage keeps draining its inbox (so the stage before it never blocks
    on a full queue) and only records the first exception; ``end`` always runs, so the
    stage after it is always told to stop.
    """

    def __init__(self, name: str, work: Callable[[bytes], None], end: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPELINE_DEPTH)
        self.error: BaseException | None = None
        self._work = work
        self._end = end

    def run(self) -> None:
        while (item := self.inbox.get()) is not None:
            if self.error is None:
                try:
                    self._work(item)
                except BaseException as exc:  # re-raised by the caller's thread
                    self.error = exc
        try:
            self._end()
        except BaseException as exc:
            self.error = self.error or exc


class _Inline:
    """A stage run on the caller's thread, with :class:`_Stage`'s interface.

    For small archives: starting two threads and handing blocks between them costs more
    than the work (milliseconds each on a busy machine). The calls the deflate stream
    sees are the same, so the bytes are too.
    """

    def __init__(self, name: str, work: Callable[[bytes], None], end: Callable[[], None]) -> None:
        del name
        self.inbox = self  # ``stage.inbox.put(item)`` runs the work at once
        self.error: BaseException | None = None
        self._work = work
        self._end = end
        self._ended = False

    def put(self, item: bytes | None) -> None:
        if item is not None:
            if self.error is None:
                try:
                    self._work(item)
                except BaseException as exc:  # re-raised by the writer, as for a thread
                    self.error = exc
            return
        if not self._ended:
            self._ended = True
            try:
                self._end()
            except BaseException as exc:
                self.error = self.error or exc

    def start(self) -> None:
        """Nothing to start."""

    def join(self) -> None:
        """Nothing to wait for: the work is done."""

    def is_alive(self) -> bool:
        return not self._ended


#: Below this many input bytes an archive is packed on the caller's thread.
THREADED_MIN_BYTES = 4 << 20


class GzipHashWriter:
    """Gzip-compresses what it gets, then hashes and writes the compressed bytes.

    The gzip framing is written here rather than by ``gzip.GzipFile`` so that every header
    byte is fixed (no file name, mtime 0, OS unknown) whichever deflate library runs.
    Compression runs on one thread and hashing + writing on another (see the module
    docstring); :meth:`finish` or :meth:`close` waits for both. With ``threads=False``
    both run on the caller's thread (for small archives), giving the same bytes.
    """

    def __init__(self, sink: BinaryIO, *, use_isal: bool = True, threads: bool = True) -> None:
        self._sink = sink
        self._deflate, self._crc32 = raw_deflate(use_isal)
        self._crc = 0
        self._isize = 0
        self._deflated = 0
        self._finishing = False
        self.digest = hashlib.sha256()
        self.compressed_size = 0
        stage: type[_Stage] | type[_Inline] = _Stage if threads else _Inline
        self._writer = stage("neobuild-pack-write", self._emit, lambda: None)
        self._compressor = stage("neobuild-pack-deflate", self._compress, self._flush)
        self._writer.inbox.put(_GZIP_HEADER)
        self._writer.start()
        self._compressor.start()

    # -- stage work (on the stage threads)

    def _emit(self, data: bytes) -> None:
        self.digest.update(data)
        self._sink.write(data)
        self.compressed_size += len(data)

    def _compress(self, data: bytes) -> None:
        self._crc = self._crc32(data, self._crc)
        self._deflated += len(data)
        if out := self._deflate.compress(data):
            self._writer.inbox.put(out)

    def _flush(self) -> None:
        try:
            if self._finishing and self._compressor.error is None:
                self._writer.inbox.put(self._deflate.flush())
                trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._deflated & 0xFFFFFFFF)
                self._writer.inbox.put(trailer)
        finally:
            self._writer.inbox.put(None)

    # -- the caller's side

    def _raise_failure(self) -> None:
        for stage in (self._compressor, self._writer):
            if stage.error is not None:
                raise stage.error

    def tell(self) -> int:
        """Uncompressed bytes written so far."""
        return self._isize

    def write(self, data: bytes) -> None:
        """Compress and write ``data`` (queued; a stage's failure is raised here or later)."""
        self._raise_failure()
        self._isize += len(data)
        self._compressor.inbox.put(data)

    def finish(self) -> None:
        """Flush the deflate stream, write the gzip trailer (crc32, size mod 2**32), wait."""
        self._finishing = True
        self.close()
        self._raise_failure()

    def close(self) -> None:
        """Stop both stages and wait for them (without the trailer unless finishing)."""
        if self._compressor.is_alive():
            self._compressor.inbox.put(None)
        self._compressor.join()
        self._writer.join()
