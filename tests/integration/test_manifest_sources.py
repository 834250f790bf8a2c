"""Review 2 of the manifest: empty `sources` globs, -C to a missing directory, non-UTF-8."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import init_repo, neobuild, write_tree

from neobuild import manifest
from neobuild.errors import UsageError

EXPORT = "def export(output_dir, inputs):\n    pass\n"

TWO = """\
version: 1
defaults:
  targets: [ml_c5]
models:
  a:
    framework: onnx
    export: models/a/export.py:export
    inputs: {x: [1, 4]}
  b:
    framework: onnx
    export: models/b/export.py:export
    inputs: {x: [1, 4]}
    sources:
      - models/b/**
      - comon/**
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_tree(
        root,
        {
            "models/a/export.py": EXPORT,
            "models/b/export.py": EXPORT,
            "common/util.py": "X = 1\n",
            "neo.yaml": TWO,
        },
    )
    return root


# ---- sources globs that match nothing ------------------------------------------------


def test_sources_glob_matching_nothing_is_a_positioned_warning(repo: Path) -> None:
    m, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert m is not None  # a warning, not an error
    [p] = problems
    assert p.severity == "warning"
    assert (p.file, p.line, p.col, p.path) == (repo / "neo.yaml", 15, 9, "models.b.sources[1]")
    assert p.message == "'comon/**' matches no file"
    assert "did you mean 'common/**'?" in (p.hint or "")
    assert p.render().startswith(f"{repo / 'neo.yaml'}:15:9: models.b.sources[1]: ")
    assert m.warnings == (p,)
    # load() succeeds and carries it too.
    assert manifest.load(repo / "neo.yaml", use_cache=False).warnings == (p,)


def test_sources_glob_warning_follows_the_cache(repo: Path) -> None:
    first = manifest.load(repo / "neo.yaml")
    assert [w.message for w in first.warnings] == ["'comon/**' matches no file"]
    assert [w.message for w in manifest.load(repo / "neo.yaml").warnings] == [
        "'comon/**' matches no file"
    ]  # served from the cache, warning included
    # The glob starts matching: the cached warning must not outlive it.
    write_tree(repo, {"comon/x.py": ""})
    assert manifest.load(repo / "neo.yaml").warnings == ()
    # A literal directory prefix that disappears is seen without a manifest change.
    (repo / "comon/x.py").unlink()
    (repo / "comon").rmdir()
    assert [w.message for w in manifest.load(repo / "neo.yaml").warnings] == [
        "'comon/**' matches no file"
    ]


def test_sources_patterns_in_defaults_and_wildcards(repo: Path) -> None:
    write_tree(
        repo,
        {
            "neo.yaml": TWO.replace("      - comon/**\n", "      - models/b/*.onnx\n")
            + "  c:\n    framework: onnx\n    export: models/a/export.py:export\n"
            "    inputs: {x: [1, 4]}\n    sources: [models/a, models/a/export.py, '**/util.py']\n",
        },
    )
    m, problems = manifest.check(repo / "neo.yaml", use_cache=False)
    assert m is not None
    assert [(p.path, p.message) for p in problems] == [
        ("models.b.sources[1]", "'models/b/*.onnx' matches no file")
    ]
    assert problems[0].hint is not None and "did you mean" not in problems[0].hint


def test_a_cached_load_does_not_glob_matched_sources_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speed is a benchmark's business (benchmarks/bench_plan.py); this checks the mechanism:
    on a cache hit, sources globs that matched are not expanded again."""
    import neobuild.sources

    root = tmp_path / "big"
    files = {f"models/m{i}/export.py": EXPORT for i in range(50)}
    body = "".join(
        f"  m{i}:\n    framework: onnx\n    export: models/m{i}/export.py:export\n"
        f"    inputs: {{x: [1, 4]}}\n    sources: [models/m{i}/**, common/**]\n"
        for i in range(50)
    )
    files["common/util.py"] = ""
    files["neo.yaml"] = "version: 1\ndefaults:\n  targets: [ml_c5]\nmodels:\n" + body
    write_tree(root, files)
    assert manifest.load(root / "neo.yaml").warnings == ()  # cold: validates and globs

    class NoGlobbing:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a cached load expanded sources globs again")

    monkeypatch.setattr(neobuild.sources, "SourceIndex", NoGlobbing)
    m = manifest.load(root / "neo.yaml")
    assert len(m.models) == 50


# ---- finding the manifest --------------------------------------------------------------


def test_find_manifest_refuses_a_missing_start_directory(repo: Path) -> None:
    (repo / ".git").mkdir()
    with pytest.raises(UsageError) as info:
        manifest.find_manifest(repo / "no-such-dir")
    assert info.value.message == f"directory {repo / 'no-such-dir'} does not exist"
    assert "-C" in (info.value.hint or "")
    with pytest.raises(UsageError, match="is not a directory"):
        manifest.find_manifest(repo / "neo.yaml")


def test_find_manifest_says_when_neo_yaml_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "neo.yaml").write_text("version: 1\n")
    sub = tmp_path / "sub"
    (sub / "neo.yaml").mkdir(parents=True)
    with pytest.raises(UsageError) as info:
        manifest.find_manifest(sub)
    assert info.value.message == f"{sub / 'neo.yaml'} is not a file (a directory)"
    # and not the parent's manifest
    with pytest.raises(UsageError, match=r"is not a file \(a directory\)"):
        manifest.find_manifest(tmp_path, sub / "neo.yaml")


def test_cli_dash_c_to_a_missing_directory_is_a_usage_error(repo: Path) -> None:
    init_repo(repo)
    result = neobuild("-C", str(repo / "no-such-dir"), "plan", "--json", cwd=repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"directory {repo / 'no-such-dir'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


# ---- non-UTF-8 manifests -----------------------------------------------------------------


def test_non_utf8_manifest_is_positioned_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "neo.yaml"
    path.write_bytes("version: 1\nmodels:\n  caf\u00e9x: {}\n".encode().replace(b"x", b"\xff"))
    _, [p] = manifest.check(path, use_cache=False)
    assert p.severity == "error"
    assert (p.line, p.col) == (3, 7)  # after "  café" (5 characters, 6 bytes)
    assert p.message.startswith("not UTF-8 text")
    assert p.hint == "save it as UTF-8 (a UTF-16 BOM is the usual cause)"


def test_utf16_manifest_names_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "neo.yaml"
    path.write_bytes("version: 1\nmodels: {}\n".encode("utf-16"))
    _, [p] = manifest.check(path, use_cache=False)
    assert (p.line, p.col) == (1, 1)
    assert "UTF-16 byte order mark" in p.message
    assert "UTF-8" in (p.hint or "")
