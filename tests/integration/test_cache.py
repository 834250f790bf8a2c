"""The shared build cache: push from one clone, pull into another, never trust a bad entry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import factories
import pytest

from neobuild import buildcache as cache
from neobuild import lockfile, outputs, request
from neobuild.archive import hash_bytes, hash_file, pack
from neobuild.errors import CacheError
from neobuild.model import (
    CacheSettings,
    CompileSettings,
    Manifest,
    Model,
)

pytest_plugins = ["moto_server"]

FINGERPRINT = "sha256:" + hashlib.sha256(b"inputs of cnn").hexdigest()


def make_clone(root: Path, cache_settings: CacheSettings | None = None) -> tuple[Manifest, Model]:
    model = factories.make_model(
        "cnn",
        framework="pytorch",
        framework_version="2.0",
        inputs={"input0": (1, 3, 8, 8)},
        targets=("ml_c5", "ml_m5"),
        compile=CompileSettings(
            role_arn="arn:aws:iam::123456789012:role/NeoRole",
            s3_prefix="s3://neo-bucket/neo",
            region="us-east-1",
        ),
    )
    root.mkdir(parents=True, exist_ok=True)
    manifest = factories.make_manifest(root, [model], cache=cache_settings)
    return manifest, model


def build_in(manifest: Manifest, model: Model) -> lockfile.LockEntry:
    """Lay out <build_dir>/cnn/ like `neobuild package` does, and lock it."""
    out = manifest.build_dir / model.name
    export = out / "export"
    (export / "variables").mkdir(parents=True)
    (export / "model.pth").write_bytes(b"weights" * 100)
    (export / "variables" / "v.index").write_bytes(b"index")
    rendered = {
        "code/inference.py": b"def model_fn(d):\n    return d\n",
        "edge/run_dlr.py": b"#dlr\n",
    }
    for rel, data in rendered.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / "export.log").write_text("exported\n", encoding="utf-8")
    files = ["model.pth", "variables/v.index"]
    archive = pack(
        export,
        files,
        out / "model.tar.gz",
        extra={"code/inference.py": rendered["code/inference.py"]},
    )
    paths = request.write_requests(manifest, model, archive.sha256, out / "requests")
    outputs = {rel: lockfile.FileRecord(len(d), hash_bytes(d)) for rel, d in rendered.items()}
    requests = {}
    for key, p in paths.items():
        data = p.read_bytes()
        outputs[f"requests/{key}.json"] = lockfile.FileRecord(len(data), hash_bytes(data))
        requests[key] = lockfile.RequestRecord(
            path=p.relative_to(manifest.root).as_posix(),
            sha256=hash_bytes(data),
            job_name=json.loads(data)["CompilationJobName"],
        )
    entry = lockfile.LockEntry(
        fingerprint=FINGERPRINT,
        framework="pytorch",
        framework_version="2.0",
        exported_with={"torch": "2.0.1"},
        files={
            rel: lockfile.FileRecord((export / rel).stat().st_size, hash_file(export / rel))
            for rel in files
        },
        archive=lockfile.FileRecord(archive.size, archive.sha256),
        archive_path=archive.path.relative_to(manifest.root).as_posix(),
        outputs=outputs,
        requests=requests,
        smoke=None,
        fingerprint_parts={"manifest": "sha256:00"},
        jobs={
            "ml_c5": lockfile.JobRecord(
                name=requests["ml_c5"].job_name,
                arn="arn:x",
                status="COMPLETED",
                output="s3://o/",
                inference_image=None,
                artifact_digest=None,
                failure_reason=None,
            )
        },
        git_commit="0" * 40,
        git_dirty=False,
    )
    lockfile.update_lock(manifest.root / lockfile.LOCK_NAME, {model.name: entry})
    return entry


def tree(directory: Path) -> dict[str, bytes]:
    """The files of a model's output directory (neobuild's ownership marker aside)."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != outputs.MARKER
    }


def leftovers(build_dir: Path) -> list[str]:
    """Work files left behind (hidden entries, or anything in .staging/)."""
    hidden = [
        p.name for p in build_dir.iterdir() if p.name.startswith(".") and p.name != ".staging"
    ]
    staging = build_dir / ".staging"
    return hidden + ([p.name for p in staging.iterdir()] if staging.exists() else [])


def push_pull(tmp_path: Path, settings: CacheSettings) -> tuple[Manifest, Manifest, list[str]]:
    a, model = make_clone(tmp_path / "clone-a", settings)
    b, _ = make_clone(tmp_path / "clone-b", settings)
    entry = build_in(a, model)
    warnings: list[str] = []

    class Out:
        def warn(self, message: str) -> None:
            warnings.append(message)

    assert cache.save(a, model, entry, settings=settings, out=Out())
    assert not cache.save(a, model, entry, settings=settings, out=Out())  # already there
    assert cache.restore(b, model, FINGERPRINT, b.root / "neo.lock", settings=settings, out=Out())
    return a, b, warnings


def check_same(a: Manifest, b: Manifest) -> None:
    assert tree(a.build_dir / "cnn") == tree(b.build_dir / "cnn")
    entry_a = lockfile.read_lock(a.root / "neo.lock").models["cnn"]
    entry_b = lockfile.read_lock(b.root / "neo.lock").models["cnn"]
    # compilation jobs belong to an AWS account, not to the inputs: not shared
    assert entry_b.jobs == {}
    assert entry_b == entry_a.__class__(**{**entry_a.__dict__, "jobs": {}})


# ------------------------------------------------------------------ file://


def test_file_cache_push_and_pull(tmp_path: Path) -> None:
    settings = CacheSettings(url=(tmp_path / "shared").as_uri())
    a, b, warnings = push_pull(tmp_path, settings)
    assert warnings == []
    check_same(a, b)
    entries = list((tmp_path / "shared").iterdir())
    assert [e.name for e in entries] == [FINGERPRINT.removeprefix("sha256:")]
    names = sorted(p.name for p in entries[0].iterdir())
    assert (
        names[0] == "entry.json"
        and names[1].startswith("model-")
        and names[2].startswith("outputs-")
    )
    assert leftovers(b.build_dir) == []


def test_miss_and_wrong_model(tmp_path: Path) -> None:
    settings = CacheSettings(url=(tmp_path / "shared").as_uri())
    b, model = make_clone(tmp_path / "b", settings)
    assert not cache.restore(b, model, FINGERPRINT, b.root / "neo.lock", settings=settings)
    assert not (b.build_dir / "cnn").exists()
    a, _ = make_clone(tmp_path / "a", settings)
    entry = build_in(a, model)
    build_cache = cache.open_cache(settings)
    assert build_cache is not None
    assert build_cache.store(FINGERPRINT, "cnn", entry, a.build_dir / "cnn")
    warnings: list[str] = []
    other = cache.BuildCache(settings, warn=warnings.append)
    assert other.fetch(FINGERPRINT, "resnet", tmp_path / "resnet") is None
    assert "corrupt" in warnings[0] and "for model 'cnn'" in warnings[0]


@pytest.mark.parametrize("victim", ["model-", "outputs-", "entry.json"])
def test_corrupt_entry_is_discarded(tmp_path: Path, victim: str) -> None:
    settings = CacheSettings(url=(tmp_path / "shared").as_uri())
    a, model = make_clone(tmp_path / "a", settings)
    b, _ = make_clone(tmp_path / "b", settings)
    entry = build_in(a, model)
    assert cache.save(a, model, entry, settings=settings)
    folder = tmp_path / "shared" / FINGERPRINT.removeprefix("sha256:")
    blob = next(p for p in folder.iterdir() if p.name.startswith(victim))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    # the clone already has older outputs: they must survive a failed restore
    (b.build_dir / "cnn").mkdir(parents=True)
    outputs.mark(b.build_dir / "cnn")  # written by an earlier build
    (b.build_dir / "cnn" / "keep.txt").write_text("old", encoding="utf-8")
    warnings: list[str] = []
    hit = cache.open_cache(settings, warn=warnings.append).fetch(  # type: ignore[union-attr]
        FINGERPRINT, "cnn", b.build_dir / "cnn"
    )
    assert hit is None
    assert len(warnings) == 1 and "corrupt" in warnings[0] and "discarded" in warnings[0]
    assert tree(b.build_dir / "cnn") == {"keep.txt": b"old"}
    assert not (folder / "entry.json").exists()  # the next build stores a good one
    assert leftovers(b.build_dir) == []
    assert cache.save(a, model, entry, settings=settings)
    assert cache.restore(b, model, FINGERPRINT, b.root / "neo.lock", settings=settings)
    check_same(a, b)


def test_outputs_that_differ_from_the_lock_are_not_stored(tmp_path: Path) -> None:
    settings = CacheSettings(url=(tmp_path / "shared").as_uri())
    a, model = make_clone(tmp_path / "a", settings)
    entry = build_in(a, model)
    (a.build_dir / "cnn" / "code" / "inference.py").write_bytes(b"edited by hand\n")
    warnings: list[str] = []
    assert not cache.open_cache(settings, warn=warnings.append).store(  # type: ignore[union-attr]
        FINGERPRINT, "cnn", entry, a.build_dir / "cnn"
    )
    assert "inference.py differs from its record in neo.lock" in warnings[0]
    assert not (tmp_path / "shared").exists()


def test_consistent_entry_with_wrong_content_is_caught(tmp_path: Path) -> None:
    # a writer that re-packed outputs and fixed entry.json's blob hashes still cannot slip
    # a file past the lock entry's own hashes
    settings = CacheSettings(url=(tmp_path / "shared").as_uri())
    a, model = make_clone(tmp_path / "a", settings)
    b, _ = make_clone(tmp_path / "b", settings)
    entry = build_in(a, model)
    assert cache.save(a, model, entry, settings=settings)
    folder = tmp_path / "shared" / FINGERPRINT.removeprefix("sha256:")
    meta = json.loads((folder / "entry.json").read_text())
    evil = tmp_path / "evil"
    for rel in meta["files"]:
        (evil / rel).parent.mkdir(parents=True, exist_ok=True)
        (evil / rel).write_bytes((a.build_dir / "cnn" / rel).read_bytes())
    (evil / "code" / "inference.py").write_bytes(b"import os\n")
    info = pack(evil, sorted(meta["files"]), folder / meta["blobs"]["outputs"]["key"])
    meta["blobs"]["outputs"].update(size=info.size, sha256=info.sha256)
    meta["files"]["code/inference.py"] = {
        "size": 10,
        "sha256": hash_bytes(b"import os\n"),
    }
    (folder / "entry.json").write_text(json.dumps(meta))
    warnings: list[str] = []
    assert (
        cache.open_cache(settings, warn=warnings.append).fetch(  # type: ignore[union-attr]
            FINGERPRINT, "cnn", b.build_dir / "cnn"
        )
        is None
    )
    assert "code/inference.py has sha256" in warnings[0]
    assert not (b.build_dir / "cnn").exists()


def test_read_only_never_writes(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    settings = CacheSettings(url=shared.as_uri(), read_only=True)
    a, model = make_clone(tmp_path / "a", settings)
    entry = build_in(a, model)
    assert not cache.save(a, model, entry, settings=settings)
    assert not shared.exists()
    # a corrupt entry is ignored, not deleted, in read-only mode
    writable = CacheSettings(url=shared.as_uri())
    assert cache.save(a, model, entry, settings=writable)
    folder = shared / FINGERPRINT.removeprefix("sha256:")
    (folder / "entry.json").write_text("{not json", encoding="utf-8")
    before = tree(shared)
    warnings: list[str] = []
    b, _ = make_clone(tmp_path / "b", settings)
    assert (
        cache.open_cache(settings, warn=warnings.append).fetch(  # type: ignore[union-attr]
            FINGERPRINT, "cnn", b.build_dir / "cnn"
        )
        is None
    )
    assert "ignored" in warnings[0]
    assert tree(shared) == before


def test_unreachable_cache_is_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    settings = CacheSettings(url=(blocker / "cache").as_uri())
    a, model = make_clone(tmp_path / "a", settings)
    entry = build_in(a, model)
    warnings: list[str] = []

    class Out:
        def warn(self, message: str) -> None:
            warnings.append(message)

    assert not cache.save(a, model, entry, settings=settings, out=Out())
    assert "could not store cnn" in warnings[0]


def test_settings_and_urls(tmp_path: Path) -> None:
    manifest, _ = make_clone(tmp_path, CacheSettings(url="s3://bucket/prefix"))
    assert cache.cache_settings(manifest, env={}) == CacheSettings(url="s3://bucket/prefix")
    env = {"NEOBUILD_CACHE_URL": "file:///tmp/c", "NEOBUILD_CACHE_READ_ONLY": "1"}
    assert cache.cache_settings(manifest, env=env) == CacheSettings(
        url="file:///tmp/c", read_only=True
    )
    assert cache.cache_settings(manifest, env={"NEOBUILD_CACHE_URL": "off"}) is None
    assert cache.open_cache(None) is None
    for bad in ("http://x/y", "file://host/path", "s3:///prefix"):
        with pytest.raises(CacheError):
            cache.open_cache(CacheSettings(url=bad))
    relative = cache.open_cache(CacheSettings(url="file:cache-dir"), root=tmp_path)
    assert relative is not None


# ------------------------------------------------------------------ s3://


def test_s3_cache_push_and_pull(moto_env: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="neo-cache")
    settings = CacheSettings(url="s3://neo-cache/builds")
    a, b, warnings = push_pull(tmp_path, settings)
    assert warnings == []
    check_same(a, b)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="neo-cache")["Contents"])
    fp = FINGERPRINT.removeprefix("sha256:")
    assert keys[0] == f"builds/{fp}/entry.json" and len(keys) == 3
    assert all(k.startswith(f"builds/{fp}/") for k in keys)


def test_s3_read_only_and_corrupt(moto_env: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="neo-cache")
    read_only = CacheSettings(url="s3://neo-cache/builds", read_only=True)
    a, model = make_clone(tmp_path / "a", read_only)
    entry = build_in(a, model)
    assert not cache.save(a, model, entry, settings=read_only)
    assert s3.list_objects_v2(Bucket="neo-cache").get("KeyCount") == 0
    writable = CacheSettings(url="s3://neo-cache/builds")
    assert cache.save(a, model, entry, settings=writable)
    fp = FINGERPRINT.removeprefix("sha256:")
    key = next(
        o["Key"]
        for o in s3.list_objects_v2(Bucket="neo-cache")["Contents"]
        if "/model-" in o["Key"]
    )
    s3.put_object(Bucket="neo-cache", Key=key, Body=b"garbage")
    b, _ = make_clone(tmp_path / "b", read_only)
    warnings: list[str] = []

    class Out:
        def warn(self, message: str) -> None:
            warnings.append(message)

    assert not cache.restore(
        b, model, FINGERPRINT, b.root / "neo.lock", settings=read_only, out=Out()
    )
    assert "corrupt" in warnings[0] and "ignored" in warnings[0]
    assert s3.head_object(Bucket="neo-cache", Key=f"builds/{fp}/entry.json")
    assert "cnn" not in lockfile.read_lock(b.root / "neo.lock").models


def test_s3_cache_without_credentials_is_a_miss(no_aws_credentials: None, tmp_path: Path) -> None:
    settings = CacheSettings(url="s3://neo-cache/builds")
    b, _model = make_clone(tmp_path / "b", settings)
    warnings: list[str] = []
    build_cache = cache.open_cache(settings, warn=warnings.append)
    assert build_cache is not None
    assert build_cache.fetch(FINGERPRINT, "cnn", b.build_dir / "cnn") is None
    assert "no AWS credentials found" in warnings[0]


def test_one_s3_client_per_run(moto_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CacheSettings(url="s3://neo-cache/builds")
    first, second = cache.open_cache(settings), cache.open_cache(settings)
    assert first is not None and second is not None
    assert first._backend is second._backend
    monkeypatch.setenv("AWS_PROFILE_X", "other")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "other-key")
    third = cache.open_cache(settings)
    assert third is not None and third._backend is not first._backend
