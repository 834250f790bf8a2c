"""Hostile manifests: every one gives exit 0 or a positioned error (exit 2), quickly.

Each case is one input the issue found crashing (exit 3), stalling, or leading out of
the repository; each runs `validate` and, where the manifest once passed, `plan` and
`verify` too, through the real CLI in-process.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hostile import VALID, make_repo, run

from neobuild import depends

POSITIONED = re.compile(r"(?:^|/)(?:neo\.yaml|c\.yaml):\d+:\d+: ", re.MULTILINE)

LONG = "x" * 300
CASES = {
    "control character": "version: 1\x01\nmodels: {}\n",
    "escape and bell": VALID.replace("small", "sm\x1b[31mall\x07"),
    "long export path": VALID.replace("models/a/export.py", f"models/{LONG}/export.py"),
    "long export module": VALID.replace("models/a/export.py:export", f"{'m' * 5000}:export"),
    "long include": VALID.replace('"more/*.yaml"', f'"{LONG}/*.yaml"'),
    "path longer than PATH_MAX": VALID.replace("build/neo", "/".join(["d" * 200] * 30)),
    "NUL in build_dir": VALID.replace("build/neo", '"build\\0neo"'),
    "NUL in include": VALID.replace('"more/*.yaml"', '"more\\0/*.yaml"'),
    "newline in sources": VALID.replace('"models/a/**"', '"models/a\\n/**"'),
    "glob with 300 **": VALID.replace('"more/*.yaml"', '"' + "**/" * 300 + '*.yaml"'),
    "glob with 6 **": VALID.replace('"more/*.yaml"', '"' + "**/" * 6 + '*.yaml"'),
    "bad date": VALID.replace("version: 1", "version: 2024-13-45"),
    "huge hex int": VALID.replace("version: 1", "version: 0x" + "f" * 5000),
    "python tag": VALID.replace("version: 1", "version: !!python/object:os.system x"),
    "recursive alias": VALID.replace("tags: [small, fast]", "tags: &t [small, *t]"),
    "deep nesting": VALID.replace("tags: [small, fast]", "tags: " + "[" * 3000 + "]" * 3000),
    "a long list where a mapping goes": VALID.replace(
        "compile: {tags: {team: vision}}",
        "compile: [" + ", ".join(f"{{b{i}: 1}}" for i in range(200)) + "]",
    ),
    "build_dir in .git": VALID.replace("build/neo", ".git/neo"),
    "build_dir is .git": VALID.replace("build/neo", ".git"),
    "build_dir holds an export": VALID.replace("build/neo", "models"),
    "build_dir through a symlink": VALID.replace("build/neo", "out/build"),
    "include through a symlink": VALID.replace('"more/*.yaml"', '"out/*.yaml"'),
    "sources through a symlink": VALID.replace('"models/a/**"', '"out/**"'),
    "templates_dir through a symlink": VALID.replace("build_dir: build/neo", "templates_dir: out"),
    "model templates_dir through a symlink": VALID.replace(
        "tags: [small, fast]", "tags: [small]\n    templates_dir: out"
    ),
    "requirements through a symlink": VALID.replace(
        "tags: [small, fast]", "tags: [small]\n    requirements: out/export.py"
    ),
    "export through a symlink": VALID.replace("models/a/export.py", "out/export.py"),
}

# what each refused case must say (part of the message)
SAYS = {
    "control character": "control characters are not allowed",
    "long export path": "longer than 255 bytes",
    "long include": "longer than 255 bytes",
    "path longer than PATH_MAX": "longer than 4096 bytes",
    "NUL in build_dir": "NUL byte",
    "NUL in include": "NUL byte",
    "newline in sources": "control character U+000A",
    "glob with 300 **": "path components",
    "glob with 6 **": "'**' 6 times",
    "recursive alias": "contains it",
    "huge hex int": "an integer of 5002 characters",
    "deep nesting": "nest more than",
    "a long list where a mapping goes": "expected a mapping, got a list",
    "build_dir in .git": "inside .git",
    "build_dir is .git": "inside .git",
    "build_dir holds an export": "models/a/export.py is inside build_dir",
    "build_dir through a symlink": "a symlink leads outside",
    "include through a symlink": "outside the repository",
    "sources through a symlink": "out is a symlink to outside it",
    "templates_dir through a symlink": "outside the repository",
    "model templates_dir through a symlink": "outside the repository",
    "requirements through a symlink": "outside the repository",
    "export through a symlink": "outside the repository",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("hostile") / "repo")


def test_the_valid_manifest_validates(repo: Path) -> None:
    (repo / "neo.yaml").write_text(VALID)
    outcome = run(repo, "validate")
    print("validate on the base manifest:", outcome.code)
    assert outcome.code == 0, outcome.output


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_manifest_is_a_positioned_error(repo: Path, case: str) -> None:
    (repo / "neo.yaml").write_bytes(CASES[case].encode("utf-8", "surrogatepass"))
    for command in ("validate", "plan", "verify"):
        outcome = run(repo, command)
        print(f"{case}: {command} -> exit {outcome.code}")
        # verify exits 1 for models not built yet: a manifest that passed
        assert outcome.code in ((0, 1, 2) if command == "verify" else (0, 2)), outcome.output
        assert "internal error" not in outcome.output
        if case in SAYS:
            assert outcome.code == 2, outcome.output
            assert POSITIONED.search(outcome.output), outcome.output
            assert SAYS[case] in outcome.output
    assert not (repo.parent / "repo-outside" / "build").exists()


def test_alias_bomb_is_refused_at_the_anchor(repo: Path) -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "version: 1\n" + "\n".join(levels) + "\nmodels: {}\n"
    (repo / "neo.yaml").write_text(text)
    outcome = run(repo, "validate")
    print(f"alias bomb of {len(text)} bytes: exit {outcome.code}")
    assert outcome.code == 2
    assert re.search(
        r"neo\.yaml:9:\d+: YAML aliases expand this file to 4\d\d,\d{3},\d{3} values",
        outcome.output,
    )


def test_an_anchor_reused_by_every_model_is_fine(repo: Path) -> None:
    models = "".join(
        f"  m{i}:\n    framework: xgboost\n    export: models/a/export.py:export\n"
        "    targets: *targets\n    compile: *compile\n"
        for i in range(300)
    )
    text = (
        "version: 1\nx-shared:\n  targets: &targets [ml_c5, ml_m5, ml_c4]\n"
        '  compile: &compile {role_arn: "arn:aws:iam::123456789012:role/Neo", '
        's3_prefix: "s3://b/neo", tags: {a: b, c: d}}\n'
        f"models:\n{models}"
    )
    (repo / "neo.yaml").write_text(text.replace("x-shared:", "defaults:\n  smoke: false\nx:", 1))
    outcome = run(repo, "validate")
    print("300 models sharing two anchors:", outcome.code, outcome.output.splitlines()[-1:])
    assert "YAML aliases" not in outcome.output
    assert "internal error" not in outcome.output


@pytest.mark.parametrize("where", ["tags", "compile.tags", "models", "shape"])
def test_thousands_of_bad_values_are_counted_not_listed(repo: Path, where: str) -> None:
    head = "version: 1\nmodels:\n  a:\n    framework: onnx\n    export: models/a/export.py:export\n    targets: [ml_c5]\n"
    n = 4000
    if where == "tags":
        text = (
            head
            + "    inputs: {x: [1]}\n    tags:\n"
            + "".join(f"      - {{b{i}: 1}}\n" for i in range(n))
        )
    elif where == "compile.tags":
        text = (
            head
            + "    inputs: {x: [1]}\n    compile:\n      tags:\n"
            + "".join(f"        'k{i}': [1]\n" for i in range(n))
        )
    elif where == "models":
        text = head + "    inputs: {x: [1]}\n" + "".join(f"  m{i}: 1\n" for i in range(n))
    else:
        text = head + "    inputs: {x: [" + ", ".join(["-1"] * n) + "]}\n"
    (repo / "neo.yaml").write_text(text)
    outcome = run(repo, "validate")
    listed = len(POSITIONED.findall(outcome.output))
    print(f"{n} bad values in {where}: exit {outcome.code}, {listed} problems listed")
    assert outcome.code == 2
    assert listed <= 25
    more = re.search(r"and (\d+) more problem\(s\) like the ones above", outcome.output)
    assert more is not None, outcome.output
    assert int(more.group(1)) + listed - 1 >= n - 1


def test_a_file_symlink_deep_in_sources_that_leads_out_is_refused(tmp_path: Path) -> None:
    """Not only the sources' directory: a file link found by the walk may not lead out."""
    root = make_repo(tmp_path / "repo")
    (root / "models" / "a" / "data").mkdir()
    (root / "models" / "a" / "data" / "inside.py").symlink_to(root / "models" / "b" / "export.py")
    assert run(root, "plan").code == 0  # a link that stays inside is a source like any file
    (root / "models" / "a" / "data" / "secret").symlink_to(root.parent / "repo-outside" / "x.yaml")
    outcome = run(root, "plan")
    assert outcome.code == 2, outcome.output
    assert "'a'" in outcome.output and "lead outside the repository" in outcome.output
    assert "models/a/data/secret ->" in outcome.output
    # The other models' sources do not include the link: only the model that does fails.
    (root / "neo.yaml").write_text(VALID.replace('"models/a/**"', '"models/a/export.py"'))
    assert run(root, "plan").code == 0


def test_a_dangling_link_that_comes_to_lead_out_is_refused_despite_the_plan_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link whose target does not exist yet is no source; once the target appears, the
    remembered plan must not answer for it."""
    monkeypatch.setattr(depends, "RACY_WINDOW_NS", 0)  # every file here was just written
    root = make_repo(tmp_path / "repo")
    late = root.parent / "repo-outside" / "late.yaml"
    (root / "models" / "a" / "secret").symlink_to(late)
    assert run(root, "plan").code == 0
    assert (root / ".neobuild" / "planmemo").exists()
    assert run(root, "plan").code == 0  # answered from the memo
    late.write_text("models: {}\n")
    outcome = run(root, "plan")
    assert outcome.code == 2, outcome.output
    assert "models/a/secret ->" in outcome.output
