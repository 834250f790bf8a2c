"""Fingerprints and the stat cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from factories import backdate, make_manifest, make_model, seed_models, write

from neobuild import statcache
from neobuild.fingerprint import PARTS, SourceIndex, fingerprint
from neobuild.statcache import StatCache


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # backdate() moves mtimes out of the racy window, but nothing can move a ctime
    # back: trust every file changed before the cache was opened.
    monkeypatch.setattr(statcache, "RACY_WINDOW_NS", 0)
    root = tmp_path / "repo"
    seed_models(root, ["alpha"])
    for i in range(30):
        write(root, f"models/alpha/data/f{i}.txt", f"file {i}\n")
    backdate(root)
    return root


def _fp(root: Path, cache: StatCache | None = None, *, details: bool = True, **kw: object):
    model = make_model("alpha", sources=["models/alpha/**", "common/*.py"], **kw)  # type: ignore[arg-type]
    manifest = make_manifest(root, [model])
    return fingerprint(manifest, model, stat_cache=cache, templates_hash="t", details=details)


def test_parts_and_digest(root: Path) -> None:
    fp = _fp(root)
    assert set(PARTS) <= set(fp.parts)
    assert fp.summary().keys() == set(PARTS)
    assert fp.digest.startswith("sha256:") and len(fp.digest) == 71
    assert "source:common/util.py" in fp.parts
    assert "source:models/alpha/data/f7.txt" in fp.parts
    assert "timeout=" in fp.parts["fields"]
    assert fp.parts["neobuild"] == __import__("neobuild").__version__
    assert fp.parts["adapter"].startswith("onnx@")
    assert _fp(root) == fp  # deterministic
    lean = _fp(root, details=False)
    assert lean.digest == fp.digest and "fields" not in lean.parts
    assert lean.complete().parts == fp.parts
    assert _fp(root, timeout=1).digest != fp.digest
    write(root, "common/notes.md", "not matched by common/*.py")
    assert _fp(root).digest == fp.digest


def test_same_inputs_same_digest_in_another_checkout(root: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "elsewhere"
    shutil.copytree(root, other)
    assert _fp(other).digest == _fp(root).digest


def test_glob_forms(root: Path) -> None:
    index = SourceIndex(root)
    assert sorted(index.match(["models/alpha/data/f1?.txt"])) == [
        f"models/alpha/data/f{i}.txt" for i in range(10, 20)
    ]
    assert list(index.match(["common"])) == ["common/util.py"]  # a plain directory
    assert list(index.match(["models/alpha/export.py"])) == ["models/alpha/export.py"]
    assert list(index.match(["**/util.py"])) == ["common/util.py"]
    assert index.match(["missing/**", "nope.py"]) == {}


def test_warm_cache_reads_no_content(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = StatCache.load(root)
    first = _fp(root, cold)
    assert cold.reads == 32  # 30 data files, export.py, common/util.py
    cold.save()

    calls: list[Path] = []
    real = statcache.hash_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(statcache, "hash_file", counting)
    warm = StatCache.load(root)
    assert _fp(root, warm) == first
    assert calls == [] and warm.reads == 0

    # An edit is seen: only that file is read.
    (root / "models/alpha/data/f4.txt").write_text("edited\n")
    after = StatCache.load(root)
    assert _fp(root, after).digest != first.digest
    assert calls == [root / "models/alpha/data/f4.txt"]


def test_racy_entries_are_not_trusted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "RACY_WINDOW_NS", 2_000_000_000)
    target = root / "models/alpha/data/f5.txt"
    target.write_text("AAAA\n")  # mtime = now: inside the racy window
    cache = StatCache.load(root)
    before = _fp(root, cache)
    cache.save()
    # Same size, same mtime: a stat-only check would miss this edit.
    st = target.stat()
    target.write_text("BBBB\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = StatCache.load(root)
    assert _fp(root, again).digest != before.digest
    # (every file is re-read: their ctimes, set by backdate(), are inside the window too)
    assert again.reads == 32


def test_corrupt_truncated_or_foreign_cache_is_ignored(root: Path, tmp_path: Path) -> None:
    cache = StatCache.load(root)
    good = _fp(root, cache)
    cache.save()
    path = root / ".neobuild" / "statcache"
    data = path.read_bytes()

    # A cache whose hashes lie (payload edited) fails its checksum.
    path.write_bytes(data[:-40] + bytes(40))
    bad = StatCache.load(root)
    assert bad.ignored == "checksum mismatch"
    assert _fp(root, bad) == good and bad.reads == 32
    bad.save()  # and is replaced by a good one
    assert StatCache.load(root).ignored is None

    for junk, why in [(b"", "truncated"), (b"garbage" * 20, "not a neobuild stat cache")]:
        path.write_bytes(junk)
        assert StatCache.load(root).ignored == why

    # Another format version.
    path.write_bytes(data[:8] + (99).to_bytes(4, "little") + data[12:])
    assert (StatCache.load(root).ignored or "").startswith("format 99")

    # Another root: a copied .neobuild/ is not trusted.
    import shutil

    other = tmp_path / "copy"
    shutil.copytree(root, other)
    (other / ".neobuild").mkdir(exist_ok=True)
    (other / ".neobuild" / "statcache").write_bytes(data)
    copied = StatCache.load(other)
    assert (copied.ignored or "").startswith("belongs to ")
    assert _fp(other, copied).digest == good.digest


def test_save_is_skipped_when_nothing_changed_and_prunes_deleted(root: Path) -> None:
    cache = StatCache.load(root)
    _fp(root, cache)
    cache.save()
    path = root / ".neobuild" / "statcache"
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    warm = StatCache.load(root)
    _fp(root, warm)
    warm.save()
    assert path.stat().st_mtime_ns == stamp  # no rewrite for a no-op
    assert len(warm) == 32
    (root / "models/alpha/data/f0.txt").unlink()
    other = StatCache.load(root)
    other.save()  # nothing looked up: entries of deleted files are dropped
    assert len(StatCache.load(root)) == 31


def test_model_json_matches_model_to_json() -> None:
    from neobuild.fingerprint import field_hashes, manifest_hash, model_json, parse_field_hashes
    from neobuild.model import (
        CompileSettings,
        ExportRef,
        Inputs,
        InputSpec,
        Model,
        Platform,
        Position,
        Target,
        VpcConfig,
    )

    model = Model(
        name="full",
        framework="pytorch",
        export=ExportRef(function="make", module="pkg.mod"),
        inputs=Inputs(form="list", items=(InputSpec(None, (1, 3, 224, 224)),)),
        targets=(
            Target(
                device="ml_c5",
                compiler_options={"dtype": "float32"},
                position=Position(Path("a"), 3, 4),
            ),
            Target(
                platform=Platform("LINUX", "ARM64", "NVIDIA"),
                compiler_options={"gpu-code": "sm_72", "nested": [1, {"a": None}]},
            ),
        ),
        framework_version="2.0",
        sources=("models/full/**",),
        requirements=("torch==2.0",),
        env=(("A", "1"),),
        tags=("vision",),
        compiler_options={"dtype": "float32"},
        compile=CompileSettings(
            role_arn="arn:aws:iam::123456789012:role/x",
            vpc=VpcConfig(("sg-1",), ("subnet-1",)),
            tags=(("team", "ml"),),
        ),
        templates_dir="tpl",
        smoke=True,
        position=Position(Path("neo.yaml"), 10, 3),
    )
    assert model_json(model) == model.to_json()
    assert (
        manifest_hash(model)
        == "sha256:" + __import__("hashlib").sha256(model.canonical_json().encode()).hexdigest()
    )
    from neobuild.fingerprint import _manifest_parts

    assert _manifest_parts(model.to_json()) == (manifest_hash(model), field_hashes(model.to_json()))
    fields = parse_field_hashes(field_hashes(model.to_json()))
    assert set(fields) == set(model.to_json()) and all(len(v) == 8 for v in fields.values())


def test_many_source_files_are_detailed_per_directory(tmp_path: Path) -> None:
    from neobuild.explanation import explain
    from neobuild.fingerprint import MAX_SOURCE_DETAILS
    from neobuild.lockfile import Lock
    from neobuild.plan import plan
    from neobuild.staleness import Reason

    root = tmp_path / "repo"
    seed_models(root, ["big"])
    for d in range(30):
        for f in range(10):  # 300 files > MAX_SOURCE_DETAILS
            write(root, f"models/big/data/d{d:02d}/f{f}.bin", f"{d}-{f}")
    model = make_model("big")
    manifest = make_manifest(root, [model])
    fp = fingerprint(manifest, model, templates_hash="t")
    details = [k for k in fp.parts if k.startswith("source:")]
    assert len(details) <= MAX_SOURCE_DETAILS
    assert "source:models/big/data/d07/" in fp.parts
    assert "source:models/big/export.py" in fp.parts  # shallow files stay files

    from factories import fake_build

    lock = fake_build(manifest, Lock())
    (root / "models/big/data/d07/f3.bin").write_text("changed")
    result = plan(manifest, [model], lock, templates_hash="sha256:tmpl")
    assert result.get("big").reasons == (Reason("source-changed", "models/big/data/d07/"),)
    assert str(result.get("big").reasons[0]) == "source files changed under models/big/data/d07/"

    # Crossing the threshold: old per-file details are folded to compare.
    small = tmp_path / "small"
    seed_models(small, ["big"])
    for f in range(3):
        write(small, f"models/big/data/d07/f{f}.bin", f"7-{f}")
    small_manifest = make_manifest(small, [model])
    small_lock = fake_build(small_manifest, Lock())
    assert "source:models/big/data/d07/f1.bin" in small_lock.models["big"].fingerprint_parts
    for d in range(30):
        for f in range(10):
            if d != 7 or f >= 3:
                write(small, f"models/big/data/d{d:02d}/f{f}.bin", f"{d}-{f}")
    reasons = (
        plan(small_manifest, [model], small_lock, templates_hash="sha256:tmpl").get("big").reasons
    )
    assert Reason("source-added", "models/big/data/d08/") in reasons
    assert Reason("source-changed", "models/big/data/d07/") in reasons  # f3..f9 were added
    ex = explain(small_manifest, model, small_lock, templates_hash="sha256:tmpl")
    assert {row.part for row in ex.sources if row.changed} >= {"models/big/data/d08/"}


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("a/**", "a/b/c.py", True),
        ("a/**", "a", False),
        ("a/**/*.py", "a/x.py", True),
        ("a/**/*.py", "a/b/c/x.py", True),
        ("a/*.py", "a/b/x.py", False),
        ("**/*.py", "x.py", True),
        ("**/*.py", "x.pyc", False),
        ("a/[bc].py", "a/c.py", True),
        ("a/[!bc].py", "a/c.py", False),
        ("a/?.py", "a/x.py", True),
        ("a/?.py", "a/xy.py", False),
        ("a+b/(c).py", "a+b/(c).py", True),  # regex metacharacters are literal
        ("a/*", "a/.hidden", True),
    ],
)
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    from neobuild.sources import glob_regex

    assert bool(glob_regex(pattern).match(path)) is matches
