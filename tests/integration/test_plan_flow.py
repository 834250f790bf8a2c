"""The incremental-build story through the real CLI, in a real git repo, with real ONNX exports.

build -> rebuild is a no-op -> edit one model's source -> only it is stale, file named
-> edit a shared file -> both stale -> change a manifest field -> field named ->
``plan --check`` exit codes -> ``verify`` catches an edited and a deleted archive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from everyday_project import EXPORT
from factories import commit_all, init_repo, write

NEOBUILD = str(Path(sys.executable).with_name("neobuild"))


MANIFEST = """\
version: 1
build_dir: build/neo
defaults:
  targets: [ml_c5]
  framework: onnx
  framework_version: "1.7.0"
  inputs: {{input: [1, 3, 8, 8]}}
  compile:
    role_arn: arn:aws:iam::123456789012:role/NeoCompile
    s3_prefix: s3://my-bucket/neo
    region: us-east-1
models:
  alpha:
    export: models/alpha/export.py:export
    sources: [models/alpha/**, common/**]
  beta:
    export: models/beta/export.py:export
    sources: [models/beta/**, common/**]
  gamma:
    export: models/gamma/export.py:export
    timeout: {gamma_timeout}
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEOBUILD, *args], cwd=root, capture_output=True, text=True, timeout=300)


def plan_json(root: Path) -> dict[str, dict]:
    proc = run(root, "plan", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # pure JSON on stdout
    assert data["schema_version"] == 1
    return {m["name"]: m for m in data["models"]}


def stale(root: Path) -> dict[str, list[tuple[str, str]]]:
    return {
        name: [(r["kind"], r["detail"]) for r in m["reasons"]]
        for name, m in plan_json(root).items()
        if m["status"] == "stale"
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flow") / "repo"
    init_repo(root)
    write(root, "neo.yaml", MANIFEST.format(gamma_timeout=900))
    write(root, "common/util.py", "SHARED = 1\n")
    for name in ("alpha", "beta", "gamma"):
        write(root, f"models/{name}/export.py", EXPORT)
    commit_all(root, "seed")
    return root


def test_incremental_story(repo: Path) -> None:
    assert set(stale(repo)) == {"alpha", "beta", "gamma"}
    assert run(repo, "plan", "--check").returncode == 1

    built = run(repo, "package", "--all")
    assert built.returncode == 0, built.stderr
    assert run(repo, "plan", "--check").returncode == 0
    assert stale(repo) == {}
    again = run(repo, "package", "--all", "--json")
    assert again.returncode == 0, again.stderr
    assert "3 up to date" in again.stderr
    verify = run(repo, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # One model's own source.
    write(repo, "models/alpha/extra.py", "X = 1\n")
    assert stale(repo) == {"alpha": [("source-added", "models/alpha/extra.py")]}
    check = run(repo, "plan", "--check")
    assert check.returncode == 1
    assert "models/alpha/extra.py" in check.stdout + check.stderr

    # A file shared by two models' sources.
    write(repo, "common/util.py", "SHARED = 2\n")
    got = stale(repo)
    assert set(got) == {"alpha", "beta"}
    assert got["beta"] == [("source-changed", "common/util.py")]

    rebuilt = run(repo, "package", "--all")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "2 built" in rebuilt.stderr and "1 up to date" in rebuilt.stderr
    assert stale(repo) == {}

    # A manifest field.
    write(repo, "neo.yaml", MANIFEST.format(gamma_timeout=60))
    assert stale(repo) == {"gamma": [("manifest-changed", "timeout")]}
    explain = run(repo, "plan", "--explain", "gamma", "--json")
    assert explain.returncode == 0, explain.stderr
    data = json.loads(explain.stdout)
    assert [f["part"] for f in data["fields_changed"]] == ["timeout"]
    assert {p["part"]: p["changed"] for p in data["parts"]}["manifest"] is True
    text = run(repo, "plan", "--explain", "gamma")
    assert "manifest field timeout" in text.stdout + text.stderr
    matrix = json.loads(run(repo, "plan", "--matrix", "2").stdout)
    assert [(e["shard"], e["models"]) for e in matrix["include"]] == [("1/1", "gamma")]
    everything = json.loads(run(repo, "plan", "--matrix", "2", "--all").stdout)
    assert sorted(m for e in everything["include"] for m in e["models"].split()) == [
        "alpha",
        "beta",
        "gamma",
    ]
    assert run(repo, "package", "gamma").returncode == 0
    assert run(repo, "plan", "--check").returncode == 0

    # verify: an edited archive, a deleted one.
    (repo / "build/neo/alpha/model.tar.gz").write_bytes(b"not the archive")
    (repo / "build/neo/beta/model.tar.gz").unlink()
    proc = run(repo, "verify", "--json")
    assert proc.returncode == 1
    drifts = {(d["kind"], d["path"]) for d in json.loads(proc.stdout)["drifts"]}
    assert drifts == {
        ("modified", "build/neo/alpha/model.tar.gz"),
        ("missing", "build/neo/beta/model.tar.gz"),
    }
    assert stale(repo) == {
        "alpha": [("output-modified", "build/neo/alpha/model.tar.gz")],
        "beta": [("output-missing", "build/neo/beta/model.tar.gz")],
    }
    assert run(repo, "package", "--all").returncode == 0
    assert run(repo, "verify").returncode == 0


def test_since(repo: Path) -> None:
    assert run(repo, "package", "--all").returncode == 0
    base = commit_all(repo, "built")
    write(repo, "models/beta/new.py", "untracked\n")
    data = json.loads(run(repo, "plan", "--json", "--since", base).stdout)
    assert [m["name"] for m in data["models"]] == ["beta"]
    assert data["models"][0]["changed_since"] == ["models/beta/new.py"]
    assert sorted(data["unaffected"]) == ["alpha", "gamma"]
    bad = run(repo, "plan", "--since", "no-such-ref")
    assert bad.returncode == 2
    assert "unknown revision" in bad.stderr


def test_shards_through_the_cli(repo: Path) -> None:
    for n in (1, 2, 3, 4):
        seen: list[str] = []
        for k in range(1, n + 1):
            proc = run(repo, "plan", "--json", "--shard", f"{k}/{n}")
            assert proc.returncode == 0, proc.stderr
            seen += [m["name"] for m in json.loads(proc.stdout)["models"]]
        assert sorted(seen) == ["alpha", "beta", "gamma"], n
    bad = run(repo, "plan", "--shard", "3/2")
    assert bad.returncode == 2
    assert "K must be between 1 and N" in bad.stderr
