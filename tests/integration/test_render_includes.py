"""Templates pulled in with include / extends / import are part of the templates hash.

Otherwise editing an included template leaves every model "fresh" although its rendered
scripts would change.
"""

from __future__ import annotations

from pathlib import Path

import factories
import pytest
from e2e_helpers import ROOT, git, init_repo, neobuild, report, write_tree

from neobuild import render, templatehash
from neobuild.model import Inputs, Manifest, Model

DLR = (ROOT / "templates" / "inference" / "dlr.py.j2").read_text()

GOOD_XGB = """
import numpy as np
import xgboost as xgb

def export(output_dir, inputs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    booster = xgb.train({"nthread": 1, "max_depth": 2}, xgb.DMatrix(x, label=x[:, 0] > 0), 2)
    booster.save_model(str(output_dir / "model.json"))
"""

MANIFEST = """\
version: 1
templates_dir: tpl
defaults:
  targets: [ml_c5]
  compile: {role_arn: "arn:aws:iam::123456789012:role/Neo", s3_prefix: "s3://neobuild-tests/neo"}
models:
  x:
    framework: xgboost
    export: src/export.py:export
"""


def _stale(repo: Path) -> list[str]:
    result = neobuild("plan", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    data = report(result)
    stale = sorted(m["name"] for m in data["models"] if m["status"] == "stale")
    assert data["summary"]["stale"] == len(stale)
    return stale


@pytest.mark.frameworks
@pytest.mark.slow
def test_editing_an_included_template_makes_the_model_stale(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_tree(
        repo,
        {
            "neo.yaml": MANIFEST,
            "src/export.py": GOOD_XGB,
            "tpl/inference/dlr.py.j2": DLR + '{% include "extra.j2" %}\n',
            "tpl/extra.j2": "EXTRA = 1\n",
        },
    )
    init_repo(repo)
    built = neobuild("package", "--all", cwd=repo)
    assert built.returncode == 0, built.stderr
    inference = repo / "build/neo/x/code/inference.py"
    assert inference.read_text().endswith("EXTRA = 1\n")
    assert _stale(repo) == []

    (repo / "tpl/extra.j2").write_text("EXTRA = 2\n")
    git("commit", "-q", "-am", "edit the included template", cwd=repo)
    assert _stale(repo) == ["x"]
    rebuilt = neobuild("package", "--all", cwd=repo)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert inference.read_text().endswith("EXTRA = 2\n")
    assert _stale(repo) == []


# --- the hash itself, without the CLI ------------------------------------------------


def _model(templates_dir: str | None = None) -> Model:
    return factories.make_model(
        export="src/export.py", inputs=Inputs("dict", ()), templates_dir=templates_dir
    )


def _manifest(root: Path, model: Model, templates_dir: str | None = "top") -> Manifest:
    return factories.make_manifest(
        root,
        [model],
        build_dir=root / "build",
        templates_dir=Path(templates_dir) if templates_dir else None,
    )


def _hash(root: Path, model: Model) -> str:
    return render.templates_hash_for(_manifest(root, model), model)


@pytest.mark.parametrize(
    "tag",
    [
        '{% include "parts/extra.j2" %}',
        "{%- include 'parts/extra.j2' ignore missing with context -%}",
        '{% include ["parts/nope.j2", "parts/extra.j2"] %}',
        '{% import "parts/extra.j2" as extra %}',
        '{% from "parts/extra.j2" import thing %}',
        '{% extends "parts/extra.j2" %}',
    ],
)
def test_a_referenced_template_is_hashed(tmp_path: Path, tag: str) -> None:
    write_tree(
        tmp_path,
        {"top/inference/dlr.py.j2": f"A = 1\n{tag}\n", "top/parts/extra.j2": "B = 1\n"},
    )
    model = _model()
    first = _hash(tmp_path, model)
    (tmp_path / "top/parts/extra.j2").write_text("B = 2\n")
    second = _hash(tmp_path, model)
    assert second != first
    assert _hash(tmp_path, model) == second  # memoised, still the same


def test_references_are_followed_transitively_and_through_the_search_path(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "mine/inference/dlr.py.j2": 'A = 1\n{% include "a.j2" %}\n',
            "top/a.j2": '{% include "b.j2" %}\n',
            "top/b.j2": "B = 1\n",
        },
    )
    model = _model("mine")
    first = _hash(tmp_path, model)
    (tmp_path / "top/b.j2").write_text("B = 2\n")
    second = _hash(tmp_path, model)
    assert second != first
    # A file of the same name earlier in the search path wins, and so changes the hash.
    (tmp_path / "mine/b.j2").write_text("B = 3\n")
    assert _hash(tmp_path, model) not in (first, second)


def test_a_missing_reference_that_appears_changes_the_hash(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"top/inference/dlr.py.j2": 'A = 1\n{% include "later.j2" ignore missing %}\n'}
    )
    model = _model()
    first = _hash(tmp_path, model)
    (tmp_path / "top/later.j2").write_text("C = 1\n")
    assert _hash(tmp_path, model) != first


def test_a_computed_reference_hashes_every_template(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "top/inference/dlr.py.j2": 'A = 1\n{% include "parts/" ~ model.framework ~ ".j2" %}\n',
            "top/parts/onnx.j2": "B = 1\n",
        },
    )
    model = _model()
    first = _hash(tmp_path, model)
    (tmp_path / "top/parts/onnx.j2").write_text("B = 2\n")
    second = _hash(tmp_path, model)
    assert second != first
    (tmp_path / "top/parts/new.j2").write_text("N = 1\n")
    assert _hash(tmp_path, model) not in (first, second)


def test_unreferenced_templates_still_change_nothing(tmp_path: Path) -> None:
    write_tree(tmp_path, {"top/inference/dlr.py.j2": 'A = 1\n{% include "a.j2" %}\n'})
    (tmp_path / "top/a.j2").write_text("B = 1\n")
    model = _model()
    first = _hash(tmp_path, model)
    (tmp_path / "top/unused.j2").write_text("U = 1\n")
    (tmp_path / "top/inference/mxnet.py.j2").write_text("M = 1\n")
    assert _hash(tmp_path, model) == first


def test_a_template_without_references_keeps_its_hash(tmp_path: Path) -> None:
    """No reference, no change: locks written before this fix stay fresh."""
    import hashlib

    name = "inference/dlr.py.j2"
    source = "def neo_preprocess(payload, content_type):\n    return payload\n"
    write_tree(tmp_path, {name: source})
    expected = hashlib.sha256(name.encode() + b"\0" + source.encode() + b"\0").hexdigest()
    assert templatehash.templates_hash([name], tmp_path) == "sha256:" + expected
