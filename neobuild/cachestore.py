"""Where the shared build cache keeps its bytes: a local directory or an S3 prefix.

A backend stores opaque blobs under ``<fingerprint hex>/<name>`` keys and knows nothing of
entries, lock entries or models (that is :mod:`neobuild.buildcache`). ``file:///path``
writes go through a temp file and a rename; ``s3://bucket/prefix`` goes through
:mod:`neobuild.aws`, which is imported only when an S3 cache is opened. :func:`backend`
shares one backend per URL, root and AWS environment across every model of a run.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from neobuild.atomic import atomic_write_bytes
from neobuild.errors import CacheError


class Backend(Protocol):
    """A key-value blob store: what :class:`neobuild.buildcache.BuildCache` reads and writes."""

    def read(self, key: str) -> bytes | None: ...
    def download(self, key: str, dest: Path) -> bool: ...
    def upload(self, key: str, src: Path, sha256: str) -> None: ...
    def write(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def where(self, key: str) -> str: ...


class _FileBackend:
    """A directory; every write is a temp file in the same directory, then a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def where(self, key: str) -> str:
        return str(self.root / key)

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(f"cannot read {self.where(key)}: {exc}") from exc

    def download(self, key: str, dest: Path) -> bool:
        try:
            shutil.copyfile(self.root / key, dest)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CacheError(f"cannot read {self.where(key)}: {exc}") from exc
        return True

    def upload(self, key: str, src: Path, sha256: str) -> None:
        from neobuild.archive import hash_file

        path = self.root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file() and hash_file(path) == sha256:
                return
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot write {path}: {exc}") from exc

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise CacheError(f"cannot write {path}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            (self.root / key).unlink(missing_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot delete {self.where(key)}: {exc}") from exc


class _S3Backend:
    """``s3://bucket/prefix`` through neobuild.aws (boto3's credential chain)."""

    def __init__(self, bucket: str, prefix: str) -> None:
        from neobuild import aws

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._aws = aws.connect(None)

    def where(self, key: str) -> str:
        path = f"{self.prefix}/{key}" if self.prefix else key
        return f"s3://{self.bucket}/{path}"

    def read(self, key: str) -> bytes | None:
        return self._aws.get_bytes(self.where(key))

    def download(self, key: str, dest: Path) -> bool:
        return self._aws.download_file(self.where(key), dest)

    def upload(self, key: str, src: Path, sha256: str) -> None:
        self._aws.upload_file(src, self.where(key), sha256=sha256)

    def write(self, key: str, data: bytes) -> None:
        self._aws.put_bytes(self.where(key), data)

    def delete(self, key: str) -> None:
        self._aws.delete_object(self.where(key))


_BACKENDS: dict[tuple[str, str, tuple[tuple[str, str], ...]], Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def backend(url: str, root: Path | None) -> Backend:
    """The backend for ``url``, shared by every model of a run (one S3 client, not one each).

    The key includes the AWS environment, so a changed profile or endpoint gets new clients.

    Raises:
        CacheError: the URL is not ``s3://…`` or ``file://…``.
    """
    aws_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (url, str(root), aws_env)
    with _BACKENDS_LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = _make_backend(url, root)
        return _BACKENDS[key]


def _make_backend(url: str, root: Path | None) -> Backend:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise CacheError(f"cache URL {url!r} names no bucket", hint="use s3://bucket/prefix")
        return _S3Backend(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise CacheError(
                f"cache URL {url!r}: file URLs name a local path",
                hint="use file:///absolute/path (three slashes)",
            )
        path = Path(unquote(parsed.path))
        if not path.is_absolute():
            path = (root or Path.cwd()) / path
        return _FileBackend(path)
    raise CacheError(
        f"unsupported cache URL {url!r}",
        hint="use s3://bucket/prefix or file:///absolute/path",
    )
