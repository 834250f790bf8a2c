"""The shared build cache: built models, content-addressed by their input fingerprint.

A cache lives at ``s3://bucket/prefix`` or ``file:///path`` (the stores are in
:mod:`neobuild.cachestore`; ``cache.url`` in neo.yaml, overridden by ``NEOBUILD_CACHE_URL``;
``cache.read_only`` or ``NEOBUILD_CACHE_READ_ONLY=1`` for pull-request CI). One entry per
fingerprint::

    <prefix>/<fingerprint hex>/model-<sha256[:16]>.tar.gz     the Neo input archive
    <prefix>/<fingerprint hex>/outputs-<sha256[:16]>.tar.gz   code/, edge/, requests/, export.log
    <prefix>/<fingerprint hex>/entry.json                     written LAST

``entry.json`` holds the model's lock entry (without compilation jobs, which belong to an AWS
account, not to the inputs), and the size and sha256 of every blob and every file. Blobs are
named by their own hash, so two writers never overwrite each other's bytes, and a reader that
finds ``entry.json`` finds every blob it names: an entry appears all at once.

The exported files are not stored twice: they are the archive's root members, and a restore
extracts them into ``export/`` from ``model.tar.gz``. A restore builds the model directory in
a staging directory, verifies every hash against ``entry.json`` and the lock entry, and only
then swaps it into place; an entry that fails any check is discarded with a warning (and
deleted, unless the cache is read-only) and the model is built instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild import __version__, cachestore, outputs
from neobuild.errors import CacheError, NeobuildError
from neobuild.model import CacheSettings, Manifest, Model, repo_relative

if TYPE_CHECKING:
    from neobuild.lockfile import LockEntry

log = logging.getLogger(__name__)

ENTRY_NAME = "entry.json"
ENTRY_FORMAT = 1
#: Work directories go under ``<build_dir>/.staging/``, like the build's own.
STAGING = ".staging"
_ARCHIVE = "model.tar.gz"
_EXPORT = "export"
_HEX = re.compile(r"[0-9a-f]{16,128}")
_TRUE = {"1", "true", "yes", "on"}

Warn = Callable[[str], None]


# --------------------------------------------------------------------------- settings


def cache_settings(
    manifest: Manifest, *, env: Mapping[str, str] | None = None
) -> CacheSettings | None:
    """The cache to use: ``NEOBUILD_CACHE_URL`` (and ``NEOBUILD_CACHE_READ_ONLY``) over neo.yaml.

    ``NEOBUILD_CACHE_URL=""`` (set but empty) is the manifest's setting; ``off`` disables it.
    """
    env = os.environ if env is None else env
    url = env.get("NEOBUILD_CACHE_URL", "").strip()
    read_only_env = env.get("NEOBUILD_CACHE_READ_ONLY")
    if url.lower() in {"off", "none", "0"}:
        return None
    settings = CacheSettings(url=url) if url else manifest.cache
    if settings is not None and read_only_env is not None:
        settings = replace(settings, read_only=read_only_env.strip().lower() in _TRUE)
    return settings


# --------------------------------------------------------------------------- hashing


def _hash_file(path: Path) -> str:
    from neobuild.archive import hash_file

    return hash_file(path)


def _record(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": _hash_file(path)}


def _fingerprint_key(fingerprint: str) -> str:
    key = fingerprint.rsplit(":", 1)[-1].lower()
    if not _HEX.fullmatch(key):
        raise CacheError(f"fingerprint {fingerprint!r} is not a hex digest")
    return key


class _Corrupt(Exception):
    """An entry failed a check; the message says which."""


# --------------------------------------------------------------------------- the cache


@dataclass(frozen=True)
class CacheHit:
    """A restored entry: the lock entry as stored (jobs empty) and where it came from."""

    entry: LockEntry
    url: str


class BuildCache:
    """A shared build cache (see the module docstring for the layout)."""

    def __init__(
        self,
        settings: CacheSettings,
        *,
        root: Path | None = None,
        warn: Warn | None = None,
    ) -> None:
        self.settings = settings
        self.url = settings.url
        self.read_only = settings.read_only
        self._backend = cachestore.backend(settings.url, root)
        self._warn = warn or log.warning

    # ----------------------------------------------------------------------- fetch

    def fetch(self, fingerprint: str, model: str, dest_dir: Path) -> CacheHit | None:
        """Restore the entry for ``fingerprint`` into ``dest_dir`` (the model's build dir).

        The directory is assembled in a staging directory next to ``dest_dir`` and swapped
        into place only when every hash checks out; on a miss, a corrupt entry or an
        unreachable cache, ``dest_dir`` is left as it was and None is returned (the last two
        with a warning).
        """
        try:
            key = _fingerprint_key(fingerprint)
            raw = self._backend.read(f"{key}/{ENTRY_NAME}")
        except NeobuildError as exc:
            self._warn(f"cache {self.url}: lookup of {model} failed, building it instead: {exc}")
            return None
        if raw is None:
            return None
        try:
            outputs.check_replaceable(dest_dir)
        except NeobuildError as exc:
            self._warn(f"cache {self.url}: not restoring {model}: {exc}")
            return None
        staging = dest_dir.parent / STAGING / f"{dest_dir.name}-cache-{uuid.uuid4().hex[:12]}"
        try:
            entry = self._restore(key, raw, fingerprint, model, staging)
        except _Corrupt as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self._discard(key, model, str(exc))
            return None
        except (NeobuildError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self._warn(f"cache {self.url}: restoring {model} failed, building it instead: {exc}")
            return None
        outputs.mark(staging)
        outputs.swap_into_place(staging, dest_dir)
        return CacheHit(entry=entry, url=self._backend.where(key))

    def _discard(self, key: str, model: str, why: str) -> None:
        action = "ignored" if self.read_only else "discarded"
        self._warn(
            f"cache entry {self._backend.where(key)} for {model} is corrupt ({why}); {action}"
        )
        if not self.read_only:
            try:
                self._backend.delete(f"{key}/{ENTRY_NAME}")
            except NeobuildError as exc:
                self._warn(f"cache {self.url}: could not delete the corrupt entry: {exc}")

    def _restore(
        self, key: str, raw: bytes, fingerprint: str, model: str, staging: Path
    ) -> LockEntry:
        from neobuild.lockfile import LockEntry

        try:
            meta = json.loads(raw)
            if meta.get("format") != ENTRY_FORMAT:
                raise _Corrupt(f"unknown entry format {meta.get('format')!r}")
            entry = LockEntry.from_json(meta["entry"])
            blobs: dict[str, Any] = meta["blobs"]
            files: dict[str, Any] = meta["files"]
        except _Corrupt:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, NeobuildError) as exc:
            raise _Corrupt(f"unreadable {ENTRY_NAME}: {exc}") from exc
        if meta.get("model") != model or entry.fingerprint != fingerprint:
            raise _Corrupt(
                f"it is for model {meta.get('model')!r}, fingerprint {entry.fingerprint}"
            )
        staging.mkdir(parents=True)
        blob_dir = staging / ".blobs"
        blob_dir.mkdir()
        local: dict[str, Path] = {}
        for role in ("archive", "outputs"):
            try:
                blob = blobs[role]
                name, size, sha256 = str(blob["key"]), int(blob["size"]), str(blob["sha256"])
            except (KeyError, TypeError, ValueError) as exc:
                raise _Corrupt(f"blob {role} is not described: {exc}") from exc
            if "/" in name or name.startswith("."):
                raise _Corrupt(f"blob name {name!r}")
            path = blob_dir / name
            if not self._backend.download(f"{key}/{name}", path):
                raise _Corrupt(f"blob {name} is missing")
            got = _record(path)
            if got != {"size": size, "sha256": sha256}:
                raise _Corrupt(f"blob {name} has sha256 {got['sha256']}, expected {sha256}")
            local[role] = path
        if blobs["archive"]["sha256"] != entry.archive.sha256:
            raise _Corrupt("the archive is not the one the lock entry names")
        _extract(local["outputs"], staging, set(files))
        _extract(local["archive"], staging / _EXPORT, set(entry.files))
        os.replace(local["archive"], staging / _ARCHIVE)
        shutil.rmtree(blob_dir)
        expected: dict[str, Mapping[str, Any]] = dict(files)
        expected.update(
            {rel: {"size": r.size, "sha256": r.sha256} for rel, r in entry.outputs.items()}
        )
        expected.update(
            {
                f"{_EXPORT}/{rel}": {"size": r.size, "sha256": r.sha256}
                for rel, r in entry.files.items()
            }
        )
        for rel, want in sorted(expected.items()):
            path = staging / rel
            if not path.is_file():
                raise _Corrupt(f"{rel} is missing")
            got = _record(path)
            if got["sha256"] != want["sha256"] or got["size"] != want["size"]:
                raise _Corrupt(f"{rel} has sha256 {got['sha256']}, expected {want['sha256']}")
        return entry

    # ----------------------------------------------------------------------- store

    def store(self, fingerprint: str, model: str, entry: LockEntry, model_dir: Path) -> bool:
        """Upload a freshly built model directory under ``fingerprint``.

        Data goes first, ``entry.json`` last. Nothing is written when the cache is read-only
        or already holds the entry. A failure is a warning, never a build failure.

        Args:
            fingerprint: the model's input fingerprint (``sha256:<hex>``).
            model: the model's name.
            entry: its lock entry, as just written to neo.lock.
            model_dir: ``<build_dir>/<model>/`` holding model.tar.gz, export/, code/, …

        Returns:
            True when a new entry was written.
        """
        if self.read_only:
            return False
        try:
            key = _fingerprint_key(fingerprint)
            if self._backend.read(f"{key}/{ENTRY_NAME}") is not None:
                return False
            self._store(key, fingerprint, model, entry, model_dir)
        except (NeobuildError, OSError) as exc:
            self._warn(f"cache {self.url}: could not store {model}: {exc}")
            return False
        return True

    def _store(
        self, key: str, fingerprint: str, model: str, entry: LockEntry, model_dir: Path
    ) -> None:
        from neobuild.archive import pack

        if entry.fingerprint != fingerprint:
            raise CacheError(f"lock entry of {model} is for another fingerprint")
        archive = model_dir / _ARCHIVE
        archive_record = _record(archive)
        if archive_record["sha256"] != entry.archive.sha256:
            raise CacheError(f"{archive} changed since it was packaged")
        export_dir = model_dir / _EXPORT
        local = [(export_dir / rel, rec) for rel, rec in entry.files.items()]
        local += [(model_dir / rel, rec) for rel, rec in entry.outputs.items()]
        for path, rec in local:
            if not path.is_file() or _hash_file(path) != rec.sha256:
                raise CacheError(f"{path} differs from its record in neo.lock; not caching it")
        rels = sorted(
            p.relative_to(model_dir).as_posix()
            for p in model_dir.rglob("*")
            if p.is_file()
            and not p.is_symlink()
            and p != archive
            and p.relative_to(model_dir).parts[0] != _EXPORT
        )
        staging = model_dir.parent / STAGING / f"{model_dir.name}-cache-out-{uuid.uuid4().hex[:12]}"
        staging.mkdir(parents=True)
        try:
            info = pack(model_dir, rels, staging / "outputs.tar.gz")
            outputs_record = {"size": info.size, "sha256": info.sha256}
            names = {
                "archive": f"model-{_short(archive_record['sha256'])}.tar.gz",
                "outputs": f"outputs-{_short(info.sha256)}.tar.gz",
            }
            files = {rel: _record(model_dir / rel) for rel in rels}
            self._backend.upload(f"{key}/{names['archive']}", archive, entry.archive.sha256)
            self._backend.upload(f"{key}/{names['outputs']}", info.path, info.sha256)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        meta = {
            "format": ENTRY_FORMAT,
            "model": model,
            "fingerprint": fingerprint,
            "neobuild": __version__,
            "entry": replace(entry, jobs={}).to_json(),
            "blobs": {
                "archive": {"key": names["archive"], **archive_record},
                "outputs": {"key": names["outputs"], **outputs_record},
            },
            "files": files,
        }
        data = (json.dumps(meta, sort_keys=True, indent=2) + "\n").encode()
        self._backend.write(f"{key}/{ENTRY_NAME}", data)


def _short(sha256: str) -> str:
    return sha256.rsplit(":", 1)[-1][:16]


def _extract(archive: Path, dest: Path, wanted: set[str]) -> None:
    """Extract exactly the regular files ``wanted`` from ``archive`` into ``dest``."""
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name
                if name not in wanted:
                    continue
                if not member.isfile():
                    raise _Corrupt(f"{name} is not a regular file in {archive.name}")
                tar.extract(member, dest, filter="data")
                found.add(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _Corrupt(f"{archive.name} is not a readable tar.gz: {exc}") from exc
    missing = sorted(wanted - found)
    if missing:
        raise _Corrupt(f"{archive.name} lacks {', '.join(missing[:5])}")


def open_cache(
    settings: CacheSettings | None, *, root: Path | None = None, warn: Warn | None = None
) -> BuildCache | None:
    """The cache for ``settings`` (None when there is none).

    Args:
        settings: from :func:`cache_settings`.
        root: the repository root, for relative ``file:`` paths.
        warn: where warnings go (default: the ``neobuild.buildcache`` logger).

    Raises:
        CacheError: the URL is not ``s3://…`` or ``file://…``.
    """
    if settings is None or not settings.url:
        return None
    return BuildCache(settings, root=root, warn=warn)


# --------------------------------------------------------------------------- build hooks


def _warn_to(out: Any) -> Warn:
    if out is not None and hasattr(out, "warn"):
        return out.warn  # type: ignore[no-any-return]
    return log.warning


def localize(manifest: Manifest, model: Model, entry: LockEntry) -> LockEntry:
    """A cached lock entry with its paths re-derived for this checkout and no jobs."""
    final = manifest.build_dir / model.name
    requests = {
        k: replace(r, path=repo_relative(manifest.root, final / "requests" / f"{k}.json"))
        for k, r in entry.requests.items()
    }
    return replace(
        entry,
        archive_path=repo_relative(manifest.root, final / _ARCHIVE),
        requests=requests,
        jobs={},
    )


def restore(
    manifest: Manifest,
    model: Model,
    fingerprint: str,
    lock_path: Path,
    *,
    settings: CacheSettings | None,
    out: Any = None,
) -> bool:
    """Restore ``model`` from the cache into its build directory and record it in neo.lock.

    The lock entry's paths are re-derived for this checkout, and compilation jobs already in
    the lock for an unchanged request are kept.

    Returns:
        True on a hit (the caller then skips the export and says "restored from cache").
    """
    from neobuild import lockfile

    cache = open_cache(settings, root=manifest.root, warn=_warn_to(out))
    if cache is None:
        return False
    hit = cache.fetch(fingerprint, model.name, manifest.build_dir / model.name)
    if hit is None:
        return False
    entry = localize(manifest, model, hit.entry)
    lockfile.modify_lock(
        lock_path,
        lambda current: {model.name: lockfile.carry_jobs(current.models.get(model.name), entry)},
    )
    return True


def save(
    manifest: Manifest,
    model: Model,
    entry: LockEntry,
    *,
    settings: CacheSettings | None,
    out: Any = None,
) -> bool:
    """Store a freshly built model in the cache (no-op when read-only). True when written."""
    cache = open_cache(settings, root=manifest.root, warn=_warn_to(out))
    if cache is None:
        return False
    return cache.store(entry.fingerprint, model.name, entry, manifest.build_dir / model.name)
