"""Hostile exports: each fails (or builds) on its own; the other models still build.

One repository, the real CLI in a subprocess (`package --all --keep-going -j 2
--json --junit`), one model per hostile behaviour and two good ones. Nothing the
hostile models do may stop the run, lose the good models' outputs or lock entries,
or keep the JSON and JUnit reports from being written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import init_repo, neobuild, write_tree
from everyday_project import write_project

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]

COPY = """
import shutil
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "shared" / "model.json"

def export(output_dir, inputs):
    {body}
"""

BODIES = {
    "good-a": "shutil.copy(MODEL, output_dir / 'model.json')",
    "good-b": "shutil.copy(MODEL, output_dir / 'model.json')",
    "newline": "shutil.copy(MODEL, output_dir / 'mo\\ndel.json')",
    "escape-code": "shutil.copy(MODEL, output_dir / 'model\\x1b[31m.json')",
    "not-utf8": "shutil.copy(MODEL, bytes(output_dir) + b'/mod\\xffel.json')",
    "newline-dir": "(output_dir / 'a\\nb').mkdir(); shutil.copy(MODEL, output_dir / 'a\\nb' / 'm.json')",
    "symlink": "import os; os.symlink('/etc/hostname', output_dir / 'model.json')",
    "hard-link": "import os; os.link(MODEL, output_dir / 'model.json')",
    "dot-dot": "shutil.copy(MODEL, output_dir / 'model.json'); "
    "(output_dir / '..' / 'escaped.txt').write_text('out')",
    "daemon": "import subprocess, sys; shutil.copy(MODEL, output_dir / 'model.json'); "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], "
    "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "(MODEL.parent / 'daemon.pid').write_text(str(p.pid))",
    "ignores-term": "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "time.sleep(120)",
    "huge-output": "import sys; shutil.copy(MODEL, output_dir / 'model.json'); "
    "[sys.stdout.write('x' * 1023 + '\\n') for _ in range(20 * 1024)]",
    "many-files": "[(output_dir / f'f{i}.json').write_text('{}') for i in range(5000)]",
    "links-out": "shutil.copy(MODEL, output_dir / 'model.json'); import os; "
    "os.symlink('/etc/hostname', Path(__file__).with_name('cache.txt'))",
}

FAILS = {  # model -> what its message must say
    "newline": "control characters, found U+000A",
    "escape-code": "found U+001B",
    "not-utf8": "not UTF-8",
    "newline-dir": "found U+000A",
    "symlink": "symlink",
    "hard-link": "hardlink",
    "ignores-term": "timed out after 3",
    "many-files": "and 4980 more",
}


def _manifest() -> str:
    lines = [
        "version: 1",
        "defaults:",
        "  targets: [ml_c5]",
        "  compile: {role_arn: 'arn:aws:iam::123456789012:role/Neo', s3_prefix: 's3://b/neo'}",
        "models:",
    ]
    for name in BODIES:
        lines += [
            f"  {name}:",
            "    framework: xgboost",
            f"    export: models/{name}/export.py:export",
        ]
        if name == "ignores-term":
            lines.append("    timeout: 3")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    import numpy as np
    import xgboost as xgb

    repo = tmp_path_factory.mktemp("hostile-exports") / "repo"
    files = {f"models/{n}/export.py": COPY.format(body=b) for n, b in BODIES.items()}
    write_tree(repo, {"neo.yaml": _manifest(), **files})
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    booster = xgb.train({"nthread": 1, "max_depth": 2}, xgb.DMatrix(x, label=x[:, 0] > 0), 2)
    (repo / "models/shared").mkdir()
    booster.save_model(str(repo / "models/shared/model.json"))
    init_repo(repo)
    junit = repo.parent / "junit.xml"
    result = neobuild(
        "package", "--all", "--keep-going", "-j", "2", "--json", "--junit", str(junit), cwd=repo
    )
    daemon = repo / "models/shared/daemon.pid"
    if daemon.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(daemon.read_text()), signal.SIGKILL)
    print(f"package --all --keep-going over {len(BODIES)} models: exit {result.returncode}")
    data = json.loads(result.stdout)
    return repo, result, {m["name"]: m for m in data["models"]}


def test_the_run_ends_with_both_reports(outcome: tuple[Path, Any, dict[str, Any]]) -> None:
    repo, result, models = outcome
    assert result.returncode == 1, result.stderr
    assert set(models) == set(BODIES)
    junit = (repo.parent / "junit.xml").read_text()
    for name in BODIES:
        assert f'name="{name}' in junit or f"{name}" in junit
    assert "internal error" not in result.stderr


def test_the_good_models_are_built_and_locked(outcome: tuple[Path, Any, dict[str, Any]]) -> None:
    repo, _, models = outcome
    lock = (repo / "neo.lock").read_text()
    for name in ("good-a", "good-b", "dot-dot", "daemon", "huge-output", "links-out"):
        print(f"{name}: {models[name]['status']}")
        assert models[name]["status"] == "built", models[name]
        assert (repo / f"build/neo/{name}/model.tar.gz").is_file()
        assert f"\n  {name}:" in lock
    for name in FAILS:
        assert f"\n  {name}:" not in lock
        assert not (repo / f"build/neo/{name}/model.tar.gz").exists()


@pytest.mark.parametrize("name", sorted(FAILS))
def test_each_hostile_model_fails_with_its_reason(
    outcome: tuple[Path, Any, dict[str, Any]], name: str
) -> None:
    _, _, models = outcome
    model = models[name]
    print(f"{name}: {model['status']}: {model['message'][:200]!r}")
    assert model["status"] == "failed"
    assert FAILS[name] in model["message"]
    assert len(model["message"]) < 5000


def test_a_link_out_of_the_repository_put_into_its_sources_is_a_warning(
    outcome: tuple[Path, Any, dict[str, Any]],
) -> None:
    """The export itself links a file from outside into its own sources: the build stands,
    with a warning that says what the next plan will refuse."""
    _, _, models = outcome
    (warning,) = models["links-out"]["warnings"]
    assert warning.startswith("the export changed its own sources:"), warning
    assert "models/links-out/cache.txt -> " in warning and "the next plan refuses" in warning


def test_nothing_outside_was_touched(outcome: tuple[Path, Any, dict[str, Any]]) -> None:
    repo, _, _ = outcome
    shared = repo / "models/shared/model.json"
    import xgboost as xgb

    xgb.Booster(model_file=str(shared))  # the hard-linked source still loads
    escaped = [p.relative_to(repo).as_posix() for p in repo.rglob("escaped.txt")]
    print("files the '..' export wrote outside its output:", escaped)
    assert all(p.startswith("build/neo/") for p in escaped)  # the build dir, no further


def test_a_failed_export_of_many_files_is_not_kept(
    outcome: tuple[Path, Any, dict[str, Any]],
) -> None:
    repo, _, _ = outcome
    kept = sorted(p.name for p in (repo / "build/neo/.failed").iterdir())
    print("failed exports kept for inspection:", kept)
    assert "many-files" not in kept
    assert "newline" in kept  # a small one is kept
    assert not list(repo.parent.glob("**/f4999.json"))


def test_huge_output_is_capped_in_the_log(outcome: tuple[Path, Any, dict[str, Any]]) -> None:
    repo, _, _ = outcome
    log = repo / "build/neo/huge-output/export.log"
    size = log.stat().st_size
    print(f"20 MiB of output -> a log of {size} bytes")
    assert size < 17 * 1024 * 1024
    with log.open("rb") as fh:
        fh.seek(8 * 1024 * 1024 - 100)
        middle = fh.read(1024)
    assert b"bytes of output cut here" in middle


#: Runs ``package --all --keep-going --json`` with neo.lock refusing one model's entry
#: (as it would an entry it cannot represent), to reach the backstop behind the artifact
#: checks: the model fails, its outputs go, the others are built and locked.
REFUSED_ENTRY = """
import sys

from neobuild import cli, lockfile
from neobuild.errors import InvalidLockError

original = lockfile.LockEntry.from_json.__func__


def from_json(cls, data):
    if "/bert/" in str(data.get("archive_path", "")):
        raise InvalidLockError("neo.lock cannot hold this entry (injected)", problems=[])
    return original(cls, data)


lockfile.LockEntry.from_json = classmethod(from_json)
sys.argv = ["neobuild", "package", "--all", "--keep-going", "--json", "-j", "1"]
cli.main()
"""


def test_an_entry_neo_lock_refuses_fails_only_its_model(tmp_path: Path) -> None:
    write_project(tmp_path, names=("resnet", "bert", "vgg"))
    init_repo(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", REFUSED_ENTRY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    statuses = {m["name"]: m["status"] for m in json.loads(result.stdout)["models"]}
    assert statuses == {"resnet": "built", "bert": "failed", "vgg": "built"}, result.stderr
    assert "injected" in result.stderr
    lock = (tmp_path / "neo.lock").read_text()
    assert "\n  resnet:" in lock and "\n  vgg:" in lock and "\n  bert:" not in lock
    assert not (tmp_path / "build/neo/bert/model.tar.gz").exists()
