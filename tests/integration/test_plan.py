"""plan: fresh/stale per model and model x target, with reasons naming the field or file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from factories import (
    commit_all,
    fake_build,
    init_repo,
    make_manifest,
    make_model,
    seed_models,
    write,
)

from neobuild.explanation import explain
from neobuild.lockfile import LOCK_NAME, Lock, read_lock, write_lock
from neobuild.plan import plan
from neobuild.staleness import Reason
from neobuild.statcache import StatCache

TEMPLATES = "sha256:tmpl"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    init_repo(root)
    seed_models(root, ["alpha", "beta", "gamma"])
    commit_all(root, "seed")
    return root


def _models(**overrides: object) -> list:
    base = {
        "alpha": make_model("alpha", sources=["models/alpha/**", "common/**"]),
        "beta": make_model(
            "beta", sources=["models/beta/**", "common/**"], targets=["ml_c5", "jetson_nano"]
        ),
        "gamma": make_model("gamma"),  # default sources: models/gamma/**
    }
    base.update(overrides)  # type: ignore[arg-type]
    return list(base.values())


def _plan(root: Path, lock: Lock, models: list | None = None, **kw: object):
    manifest = make_manifest(root, models or _models())
    return plan(manifest, list(manifest.models.values()), lock, templates_hash=TEMPLATES, **kw)  # type: ignore[arg-type]


def _built(root: Path) -> Lock:
    manifest = make_manifest(root, _models())
    lock = fake_build(manifest, Lock())
    write_lock(root / LOCK_NAME, lock)
    return read_lock(root / LOCK_NAME)  # through the real file format


def test_new_models_are_stale_with_reason(repo: Path) -> None:
    result = _plan(repo, Lock())
    assert [m.status for m in result.models] == ["stale"] * 3
    assert all(m.reasons == (Reason("new-model"),) for m in result.models)
    beta = result.get("beta")
    assert [(t.target, t.status) for t in beta.targets] == [
        ("ml_c5", "stale"),
        ("jetson_nano", "stale"),
    ]


def test_rebuild_is_noop_then_one_source_edit_names_the_file(repo: Path) -> None:
    lock = _built(repo)
    result = _plan(repo, lock)
    assert result.stale_count == 0, result.render()
    assert "0 stale, 3 up to date" in result.render()
    # Fresh models skip the per-field details until asked (e.g. package --force).
    assert "fields" not in result.get("alpha").fingerprint.parts
    assert result.fingerprint("alpha").parts == lock.models["alpha"].fingerprint_parts

    write(repo, "models/alpha/net.py", "x = 1\n")
    (repo / "models/alpha/export.py").write_text("def export(out, inputs):\n    return 2\n")
    result = _plan(repo, lock)
    assert [m.name for m in result.stale] == ["alpha"]
    assert set(result.get("alpha").reasons) == {
        Reason("source-added", "models/alpha/net.py"),
        Reason("source-changed", "models/alpha/export.py"),
    }
    assert "source file changed: models/alpha/export.py" in result.render()


def test_shared_file_makes_both_models_stale(repo: Path) -> None:
    lock = _built(repo)
    (repo / "common/util.py").write_text("SHARED = 2\n")
    result = _plan(repo, lock)
    assert [m.name for m in result.stale] == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        assert result.get(name).reasons == (Reason("source-changed", "common/util.py"),)
    (repo / "common/util.py").unlink()
    result = _plan(repo, lock)
    assert result.get("beta").reasons == (Reason("source-removed", "common/util.py"),)


def test_manifest_field_change_names_the_field(repo: Path) -> None:
    lock = _built(repo)
    changed = make_model("gamma", timeout=60)
    result = _plan(repo, lock, _models(gamma=changed))
    assert [m.name for m in result.stale] == ["gamma"]
    assert result.get("gamma").reasons == (Reason("manifest-changed", "timeout"),)
    # A new target: the model is stale (targets field) and the new item says why.
    beta = make_model(
        "beta", sources=["models/beta/**", "common/**"], targets=["ml_c5", "jetson_nano", "ml_m5"]
    )
    result = _plan(repo, lock, _models(beta=beta))
    item = result.get("beta")
    assert Reason("manifest-changed", "targets") in item.reasons
    m5 = next(t for t in item.targets if t.target == "ml_m5")
    assert Reason("new-target", "ml_m5") in m5.reasons


def test_requirements_templates_and_versions(repo: Path) -> None:
    write(repo, "models/gamma/requirements.txt", "onnx==1.17\n")
    gamma = make_model("gamma", requirements_file="models/gamma/requirements.txt")
    manifest = make_manifest(repo, _models(gamma=gamma))
    lock = fake_build(manifest, Lock())
    assert _plan(repo, lock, _models(gamma=gamma)).stale_count == 0
    # requirements.txt is inside models/gamma/**, so both its parts change.
    (repo / "models/gamma/requirements.txt").write_text("onnx==1.18\n")
    reasons = _plan(repo, lock, _models(gamma=gamma)).get("gamma").reasons
    assert Reason("requirements-changed") in reasons
    assert Reason("source-changed", "models/gamma/requirements.txt") in reasons

    result = plan(manifest, list(manifest.models.values()), lock, templates_hash="sha256:other")
    assert all(Reason("templates-changed") in m.reasons for m in result.models)
    # templates may be given per model
    result = plan(
        manifest,
        list(manifest.models.values()),
        lock,
        templates_hash=lambda m: "sha256:other" if m.name == "alpha" else TEMPLATES,
    )
    assert result.get("alpha").reasons == (Reason("templates-changed"),)
    assert not result.is_stale("beta")

    # neobuild upgraded / adapter changed: edit the lock's recorded versions
    entry = lock.models["alpha"]
    parts = dict(entry.fingerprint_parts, neobuild="0.0.1", adapter="onnx@-1")
    old = Lock(
        models={
            **lock.models,
            "alpha": dataclasses.replace(
                entry, fingerprint="sha256:" + "0" * 64, fingerprint_parts=parts
            ),
        }
    )
    reasons = _plan(repo, old, _models(gamma=gamma)).get("alpha").reasons
    kinds = {r.kind for r in reasons}
    assert kinds == {"neobuild-upgraded", "adapter-changed"}
    assert any("0.0.1 ->" in str(r) for r in reasons)


def test_outputs_missing_or_modified(repo: Path) -> None:
    lock = _built(repo)
    (repo / "build/neo/alpha/model.tar.gz").write_bytes(b"tampered")
    (repo / "build/neo/gamma/code/inference.py").unlink()
    (repo / "build/neo/beta/requests/ml_c5.json").write_text('{"x": 1}')
    result = _plan(repo, lock)
    assert result.get("alpha").reasons == (
        Reason("output-modified", "build/neo/alpha/model.tar.gz"),
    )
    assert result.get("gamma").reasons == (
        Reason("output-missing", "build/neo/gamma/code/inference.py"),
    )
    beta = result.get("beta")
    by_target = {t.target: t for t in beta.targets}
    # The first target's drift does not spill over to the second.
    assert by_target["jetson_nano"].status == "fresh"
    assert by_target["ml_c5"].status == "stale"
    assert by_target["ml_c5"].reasons == (
        Reason("output-modified", "build/neo/beta/requests/ml_c5.json"),
    )
    assert beta.status == "stale"


def test_json_is_versioned_and_round_trips(repo: Path) -> None:
    lock = _built(repo)
    (repo / "common/util.py").write_text("SHARED = 3\n")
    data = json.loads(json.dumps(_plan(repo, lock).to_json()))
    assert data["schema_version"] == 1
    assert data["summary"] == {
        "models": 3,
        "stale": 2,
        "fresh": 1,
        "targets": 4,
        "targets_stale": 3,
    }
    alpha = data["models"][0]
    assert alpha["name"] == "alpha" and alpha["status"] == "stale"
    assert alpha["reasons"] == [
        {
            "kind": "source-changed",
            "detail": "common/util.py",
            "message": "source file changed: common/util.py",
        }
    ]
    assert alpha["fingerprint"] != alpha["locked_fingerprint"]


def test_explain_shows_old_and_new(repo: Path) -> None:
    lock = _built(repo)
    (repo / "models/alpha/export.py").write_text("changed\n")
    manifest = make_manifest(
        repo,
        _models(alpha=make_model("alpha", sources=["models/alpha/**", "common/**"], timeout=5)),
    )
    ex = explain(manifest, manifest.models["alpha"], lock, templates_hash=TEMPLATES)
    changed = {row.part for row in ex.parts if row.changed}
    assert changed == {"manifest", "sources"}
    assert [row.part for row in ex.fields] == ["timeout"]
    assert [row.part for row in ex.sources if row.changed] == ["models/alpha/export.py"]
    text = ex.render()
    assert "manifest field timeout" in text and "changed  models/alpha/export.py" in text
    assert ex.to_json()["old"] == lock.models["alpha"].fingerprint


def test_pruned_and_ignored_paths_do_not_count(repo: Path) -> None:
    star = make_model("gamma", sources=["**"])
    manifest = make_manifest(repo, _models(gamma=star))
    lock = fake_build(manifest, Lock())
    write_lock(repo / LOCK_NAME, lock)  # neo.lock itself is never a source
    write(repo, "models/gamma/__pycache__/export.cpython-311.pyc", "bytecode")
    write(repo, ".venv/lib/site.py", "x")
    write(repo, "node_modules/a/index.js", "x")
    (repo / "build/neo/alpha/model.tar.gz").touch()  # the build dir is not walked
    assert not _plan(repo, lock, _models(gamma=star)).is_stale("gamma")
    write(repo, "docs/readme.md", "new")
    assert _plan(repo, lock, _models(gamma=star)).get("gamma").reasons == (
        Reason("source-added", "docs/readme.md"),
    )


def test_stat_cache_plan_reads_nothing_when_unchanged(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factories import backdate

    from neobuild import statcache

    # backdate() cannot move ctimes back: trust what changed before the cache was opened.
    monkeypatch.setattr(statcache, "RACY_WINDOW_NS", 0)
    lock = _built(repo)
    backdate(repo)
    cache = StatCache.load(repo)
    assert _plan(repo, lock, stat_cache=cache).stale_count == 0
    assert cache.reads > 0
    cache.save()
    warm = StatCache.load(repo)
    assert _plan(repo, lock, stat_cache=warm).stale_count == 0
    assert warm.reads == 0


def test_odd_file_names_round_trip_through_the_lock(repo: Path) -> None:
    odd = ["models/gamma/we ird+(x).py", "models/gamma/ünï: code #1.py", "models/gamma/[x].py"]
    for rel in odd:
        write(repo, rel, "x = 1\n")
    manifest = make_manifest(repo, _models())
    write_lock(repo / LOCK_NAME, fake_build(manifest, Lock()))
    lock = read_lock(repo / LOCK_NAME)
    for rel in odd:
        assert f"source:{rel}" in lock.models["gamma"].fingerprint_parts
    assert _plan(repo, lock).stale_count == 0
    (repo / odd[1]).write_text("x = 2\n")
    assert _plan(repo, lock).get("gamma").reasons == (Reason("source-changed", odd[1]),)


def test_table_rendering(repo: Path) -> None:
    lock = _built(repo)
    (repo / "common/util.py").write_text("SHARED = 9\n")
    (repo / "build/neo/alpha/model.tar.gz").unlink()
    text = _plan(repo, lock).render()
    lines = text.splitlines()
    assert lines[0].split() == ["MODEL", "STATUS", "TARGETS", "REASON"]
    assert lines[1].split()[:3] == ["alpha", "stale", "1/1"]
    assert lines[1].endswith("source file changed: common/util.py (+1 more)")
    assert lines[2].split()[:3] == ["beta", "stale", "2/2"]
    assert "gamma" not in text  # fresh rows only on request
    assert lines[-1] == "2 stale, 1 up to date"
    full = _plan(repo, lock).render(show_fresh=True)
    assert any(line.split()[:3] == ["gamma", "fresh", "0/1"] for line in full.splitlines())
