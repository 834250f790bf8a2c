"""verify: every drift kind, against outputs written as package writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import fake_build, init_repo, make_manifest, make_model, seed_models, write

from neobuild.lockfile import LOCK_NAME, Lock, read_lock, write_lock
from neobuild.verify import verify


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Lock]:
    root = tmp_path / "repo"
    init_repo(root)
    seed_models(root, ["alpha", "beta"])
    manifest = make_manifest(
        root, [make_model("alpha"), make_model("beta", targets=["ml_c5", "jetson_nano"])]
    )
    write_lock(root / LOCK_NAME, fake_build(manifest, Lock()))
    return root, read_lock(root / LOCK_NAME)


def _manifest(root: Path, *extra: str, beta_timeout: int = 900):
    models = [
        make_model("alpha"),
        make_model("beta", targets=["ml_c5", "jetson_nano"], timeout=beta_timeout),
    ]
    models += [make_model(name) for name in extra]
    return make_manifest(root, models)


def test_clean_build_has_no_drift(built: tuple[Path, Lock]) -> None:
    root, lock = built
    report = verify(_manifest(root), lock)
    assert report.ok, report.render()
    assert report.checked_files == 9  # archive, exported file, script, one per request
    assert "match neo.lock" in report.render()


def test_edited_and_deleted_archives(built: tuple[Path, Lock]) -> None:
    root, lock = built
    (root / "build/neo/alpha/model.tar.gz").write_bytes(b"edited!")
    archive = root / "build/neo/beta/model.tar.gz"
    size = archive.stat().st_size
    archive.write_bytes(b"x" * size)  # same size, other content
    (root / "build/neo/beta/requests/jetson_nano.json").unlink()
    report = verify(_manifest(root), lock)
    assert [(d.kind, d.model, d.path) for d in report] == [
        ("modified", "alpha", "build/neo/alpha/model.tar.gz"),
        ("modified", "beta", "build/neo/beta/model.tar.gz"),
        ("missing", "beta", "build/neo/beta/requests/jetson_nano.json"),
    ]
    assert not report.ok
    (root / "build/neo/alpha/model.tar.gz").unlink()
    kinds = {(d.kind, d.path) for d in verify(_manifest(root), lock)}
    assert ("missing", "build/neo/alpha/model.tar.gz") in kinds


def test_exported_file_and_rendered_script_drift(built: tuple[Path, Lock]) -> None:
    root, lock = built
    (root / "build/neo/alpha/export/model.onnx").write_bytes(b"retrained")
    (root / "build/neo/beta/code/inference.py").write_text("# hand edit\n")
    paths = [(d.kind, d.path) for d in verify(_manifest(root), lock)]
    assert paths == [
        ("modified", "build/neo/alpha/export/model.onnx"),
        ("modified", "build/neo/beta/code/inference.py"),
    ]


def test_orphans_pending_and_config_changed(built: tuple[Path, Lock]) -> None:
    root, lock = built
    write(root, "build/neo/old-model/model.tar.gz", "left over")
    write(root, "build/neo/alpha/requests/ml_m5.json", "{}")
    write(root, "build/neo/.staging/x", "neobuild's own")
    write(root, "build/neo/delta/export.log", "a failed first build of a declared model")
    write(root, "build/neo/delta/model.tar.gz", "but no lock entry")
    report = verify(_manifest(root, "delta", beta_timeout=5), lock)
    got = [(d.kind, d.model, d.path) for d in report]
    assert got == [
        ("orphaned", "alpha", "build/neo/alpha/requests/ml_m5.json"),
        ("config-changed", "beta", "neo.yaml"),
        ("pending", "delta", None),
        ("orphaned", "delta", "build/neo/delta/model.tar.gz"),
        ("orphaned", "old-model", "build/neo/old-model"),
    ]
    # A lock entry for a model the manifest dropped.
    report = verify(
        make_manifest(root, [make_model("beta", targets=["ml_c5", "jetson_nano"])]), lock
    )
    assert ("orphaned", "alpha", None) in [(d.kind, d.model, d.path) for d in report]
    data = json.loads(json.dumps(report.to_json()))
    assert data["schema_version"] == 1 and data["ok"] is False
    assert {"kind", "model", "path", "detail"} == set(data["drifts"][0])


# ---- verify: files directly in the build dir belong to no model ------------------------------


def test_stray_file_in_build_dir_has_no_model(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    init_repo(root)
    seed_models(root, ["alpha"])
    manifest = make_manifest(root, [make_model("alpha")])
    write_lock(root / LOCK_NAME, fake_build(manifest, Lock()))
    lock = read_lock(root / LOCK_NAME)
    write(root, "build/neo/stray.txt", "left here by hand")
    write(root, "build/neo/alpha.bak", "named like a model")
    write(root, "build/neo/old-model/model.tar.gz", "a removed model's directory")
    report = verify(manifest, lock)
    got = [(d.kind, d.model, d.path) for d in report]
    assert got == [
        ("orphaned", None, "build/neo/alpha.bak"),
        ("orphaned", None, "build/neo/stray.txt"),
        ("orphaned", "old-model", "build/neo/old-model"),
    ]
    data = json.loads(json.dumps(report.to_json()))
    stray = [d for d in data["drifts"] if d["path"] == "build/neo/stray.txt"]
    assert stray == [
        {
            "kind": "orphaned",
            "model": None,
            "path": "build/neo/stray.txt",
            "detail": "in the build directory, not in neo.lock",
        }
    ]
    assert "orphaned: build/neo/stray.txt: " in report.render()
