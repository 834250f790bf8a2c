"""Crash safety and concurrency of ``neobuild package`` (issue 6, item 6).

A real git repository with four small XGBoost models is built by the real CLI in a
subprocess that is killed with SIGKILL (its whole process group) at a different
moment in each of more than twenty trials: at fractions of a measured full run, and
on events seen on disk (a staging directory appears, a model is swapped into place,
neo.lock is rewritten). After every kill:

* ``neo.lock`` is absent or parses and passes its schema (``read_lock``);
* ``neobuild verify --json`` exits 0 or 1 with JSON on stdout and tells the truth:
  the drifts it reports are exactly the ones found by re-hashing every file the lock
  lists and listing the build directory here, independently;
* a model the killed run did not have to rebuild keeps its lock entry unchanged.

Then ``package --all`` runs to completion: it succeeds, reports exactly the models
that were complete (lock entry for the current sources, outputs intact) as ``fresh``
and rebuilds the others, and ``verify`` passes.

Each export writes a real XGBoost model file prepared by this process (so an export
costs a Python start-up, not an XGBoost import) after a seeded delay, so kills land
in different phases. Trials run in one repository, one after the other: each edits
three of the four models (a new "generation" of each), so the killed run replaces
existing outputs; every eighth trial starts from scratch (no build dir, no lock).

Timed kills rarely land in the few milliseconds between a swap into place and the
lock update, so ``test_kill_at_an_exact_point`` also runs the real CLI with SIGKILL
sent to itself at each such point. The concurrency tests check the build lock: a
second run exits 1 naming the holder's pid, ``--wait`` queues, and the lock of a
killed run (an ``flock``) never blocks the next one.

``test_sigterm_stops_cleanly`` checks the graceful path (CI cancels with SIGTERM);
``test_killed_run_leaves_no_export_running`` that an export ends itself when a killed
neobuild can no longer stop it (exports run in sessions of their own).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import GIT_ENV, init_repo, write_tree

from neobuild.lockfile import Lock, read_lock

pytestmark = [pytest.mark.frameworks, pytest.mark.slow]

MODELS = ("m0", "m1", "m2", "m3")
TRIALS = 22
RESET_EVERY = 8
EVENTS = ("staging", "swap", "lock", "second-swap")
BUILD_REL = "build/neo"
#: Files of a model directory that neo.lock does not list: logs, neobuild's marker.
UNLISTED = ("export.log", "smoke.log", ".neobuild-output")

MANIFEST_HEAD = """\
version: 1
defaults:
  targets: [ml_c5]
  compile: {role_arn: "arn:aws:iam::123456789012:role/Neo", s3_prefix: "s3://neobuild-tests/neo"}
models:
"""

EXPORT = """\
import time
from pathlib import Path

GENERATION = {generation}
DELAY = {delay}
MODEL = {model!r}


def export(output_dir, inputs):
    time.sleep(DELAY)
    (Path(output_dir) / "model.json").write_text(MODEL)
"""


# --------------------------------------------------------------------------- helpers


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_MODEL_JSON: dict[tuple[int, int], str] = {}


def model_json(index: int, generation: int) -> str:
    """A real XGBoost model (JSON), different for every model and generation."""
    key = (index, generation)
    if key not in _MODEL_JSON:
        import numpy as np
        import xgboost as xgb

        rng = np.random.default_rng(1000 * generation + index)
        x = rng.normal(size=(32, 3)).astype("float32")
        label = x[:, index % 3] > rng.normal()
        booster = xgb.train({"nthread": 1, "max_depth": 2}, xgb.DMatrix(x, label=label), 2)
        _MODEL_JSON[key] = bytes(booster.save_raw("json")).decode()
    return _MODEL_JSON[key]


def export_source(index: int, generation: int, *, delay: float | str | None = None) -> str:
    if delay is None:
        delay = round(0.1 + 0.4 * random.Random(f"m{index}-{generation}").random(), 3)
    return EXPORT.format(generation=generation, delay=delay, model=model_json(index, generation))


def manifest_text(names: tuple[str, ...], extra: str = "") -> str:
    lines = [MANIFEST_HEAD]
    for name in names:
        lines.append(
            f"  {name}:\n    framework: xgboost\n    export: models/{name}/export.py:export\n{extra}"
        )
    return "".join(lines)


def cli_env(tmp: Path) -> dict[str, str]:
    """The environment of every neobuild subprocess (own HOME and export-env cache)."""
    env = {**os.environ, **GIT_ENV}
    for var in ("NEOBUILD_DEBUG", "NEOBUILD_CACHE_URL", "GITHUB_STEP_SUMMARY"):
        env.pop(var, None)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(var, None)
    (tmp / "home").mkdir(exist_ok=True)
    env.update(
        HOME=str(tmp / "home"),
        GIT_CONFIG_GLOBAL=str(tmp / "home" / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        NEOBUILD_CACHE_DIR=str(tmp / "cache"),
    )
    return env


def run_cli(*args: str, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neobuild", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_cli(*args: str, repo: Path, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    """Start the CLI in its own session, so that the whole group can be killed."""
    with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "neobuild", *args],
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def processes_in(repo: Path) -> list[int]:
    """Live processes whose working directory is ``repo`` (exports run there)."""
    want = os.path.realpath(repo)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/cwd") == want:
                pids.append(int(entry))
    return pids


def _status(pid: int) -> str:
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return f"{fields['State'].strip()} ppid={fields['PPid'].strip()} {cmd}"
    return "gone"


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def kill_leftovers(repo: Path) -> int:
    """SIGKILL, by pid, the processes still running in ``repo``; how many there were.

    neobuild starts every export in a session of its own, so killing neobuild's
    process group does not reach them (see ``test_killed_run_leaves_no_export_running``).
    """
    pids = processes_in(repo)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes_in(repo) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(pids)


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{what}: stdout is not JSON:\n{text[:2000]}") from exc


def staging_entries(repo: Path) -> list[str]:
    try:  # a run may be sweeping it right now
        return sorted(os.listdir(repo / BUILD_REL / ".staging"))
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------- the truth


def locked_files(name: str, entry: Any) -> dict[str, tuple[str, int | None]]:
    """Every file a lock entry lists: repo-relative path -> (sha256, size or None)."""
    files: dict[str, tuple[str, int | None]] = {
        entry.archive_path: (entry.archive.sha256, entry.archive.size)
    }
    for rel, rec in entry.files.items():
        files[f"{BUILD_REL}/{name}/export/{rel}"] = (rec.sha256, rec.size)
    for rel, rec in entry.outputs.items():
        files[f"{BUILD_REL}/{name}/{rel}"] = (rec.sha256, rec.size)
    for req in entry.requests.values():
        files.setdefault(req.path, (req.sha256, None))
    return files


def expected_drifts(
    repo: Path, lock: Lock, models: tuple[str, ...] = MODELS
) -> set[tuple[str, str | None, str | None]]:
    """The drifts ``verify`` must report, found here by re-hashing and listing files."""
    drifts: set[tuple[str, str | None, str | None]] = set()
    listed: dict[str, set[str]] = {}
    for name, entry in lock.models.items():
        files = locked_files(name, entry)
        listed[name] = set(files)
        for rel, (digest, size) in files.items():
            path = repo / rel
            if not path.is_file():
                drifts.add(("missing", name, rel))
                continue
            data = path.read_bytes()
            if (size is not None and len(data) != size) or sha256(data) != digest:
                drifts.add(("modified", name, rel))
    for name in models:
        if name not in lock.models:
            drifts.add(("pending", name, None))
    build = repo / BUILD_REL
    if build.is_dir():
        for child in sorted(build.iterdir()):
            if child.name.startswith("."):
                continue
            assert child.name in models and child.is_dir(), f"unexpected {child}"
            for path in sorted(child.rglob("*")):
                if path.is_dir():
                    continue
                rel = path.relative_to(repo).as_posix()
                if rel in listed.get(child.name, set()):
                    continue
                if path.parent == child and path.name in UNLISTED:
                    continue
                drifts.add(("orphaned", child.name, rel))
    return drifts


def complete_models(
    repo: Path, lock: Lock, generations: dict[str, int], models: tuple[str, ...] = MODELS
) -> set[str]:
    """Models whose lock entry is for their current sources and whose outputs are intact."""
    drifts = expected_drifts(repo, lock, models)
    bad = {model for _, model, _ in drifts}
    done = set()
    for index, name in enumerate(models):
        entry = lock.models.get(name)
        if entry is None or name in bad:
            continue
        record = entry.files.get("model.json")
        current = sha256(model_json(index, generations[name]).encode())
        if record is not None and record.sha256 == current:
            done.add(name)
    return done


# --------------------------------------------------------------------------- the trials


@dataclass
class Trial:
    number: int
    how: str  # "at 1.23s" or "on <event>"
    from_scratch: bool
    killed_at: float = 0.0
    exited_before_kill: bool = False
    leftover_processes: int = 0
    lock_exists: bool = False
    lock_error: str | None = None
    verify_rc: int | None = None
    verify_problems: list[str] = field(default_factory=list)
    untouched_problems: list[str] = field(default_factory=list)
    complete: set[str] = field(default_factory=set)
    drift_kinds: set[str] = field(default_factory=set)
    staging_after_kill: list[str] = field(default_factory=list)
    rerun_problems: list[str] = field(default_factory=list)
    staging_after_rerun: list[str] = field(default_factory=list)

    def label(self) -> str:
        scratch = ", from scratch" if self.from_scratch else ""
        return f"trial {self.number} (killed {self.how}{scratch})"


def check_verify(
    repo: Path, env: dict[str, str], lock: Lock | None, models: tuple[str, ...] = MODELS
) -> tuple[int, list[str], Any]:
    """Run ``verify --json``; problems where it does not match the files on disk."""
    result = run_cli("verify", "--json", repo=repo, env=env)
    problems: list[str] = []
    if result.returncode not in (0, 1):
        return result.returncode, [f"verify exit {result.returncode}: {result.stderr[-1500:]}"], {}
    data = parse_json(result.stdout, "verify --json")
    reported = {(d["kind"], d["model"], d["path"]) for d in data["drifts"]}
    if lock is not None:
        expected = expected_drifts(repo, lock, models)
        for drift in sorted(expected - reported, key=str):
            problems.append(f"verify missed a real drift {drift}")
        for drift in sorted(reported - expected, key=str):
            problems.append(f"verify reported a drift that is not real {drift}")
    if (result.returncode == 0) != (not data["drifts"]) or data["ok"] != (not data["drifts"]):
        problems.append(f"verify exit {result.returncode}, ok={data['ok']}, drifts={reported}")
    return result.returncode, problems, data


def event_reached(repo: Path, event: str, before: dict[str, Any]) -> bool:
    build = repo / BUILD_REL
    if event == "staging":  # a new one: killed runs leave theirs behind
        return bool(set(staging_entries(repo)) - before["staging"])
    if event in ("swap", "second-swap"):
        swapped = 0
        for name in MODELS:
            with contextlib.suppress(OSError):
                if os.stat(build / name / "model.tar.gz").st_ino != before.get(name):
                    swapped += 1
        return swapped >= (1 if event == "swap" else 2)
    if event == "lock":
        try:
            st = os.stat(repo / "neo.lock")
        except OSError:
            return False
        return (st.st_ino, st.st_mtime_ns) != before.get("neo.lock")
    raise AssertionError(event)


def disk_marks(repo: Path) -> dict[str, Any]:
    marks: dict[str, Any] = {"staging": set(staging_entries(repo))}
    for name in MODELS:
        with contextlib.suppress(OSError):
            marks[name] = os.stat(repo / BUILD_REL / name / "model.tar.gz").st_ino
    with contextlib.suppress(OSError):
        st = os.stat(repo / "neo.lock")
        marks["neo.lock"] = (st.st_ino, st.st_mtime_ns)
    return marks


def kill_when(proc: subprocess.Popen[bytes], reached: Callable[[], bool], deadline: float) -> bool:
    """Poll until ``reached()`` (or the deadline), then SIGKILL the group; False if it had exited."""
    while time.monotonic() < deadline and proc.poll() is None and not reached():
        time.sleep(0.001)
    exited = proc.poll() is not None
    kill_group(proc)
    return not exited


@dataclass
class CrashRun:
    repo: Path
    full_run: float
    trials: list[Trial]


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashRun]:
    tmp = tmp_path_factory.mktemp("crash")
    repo = tmp / "repo"
    env = cli_env(tmp)
    generations = dict.fromkeys(MODELS, 0)
    write_tree(
        repo,
        {
            "neo.yaml": manifest_text(MODELS),
            **{f"models/{n}/export.py": export_source(i, 0) for i, n in enumerate(MODELS)},
        },
    )
    init_repo(repo)
    try:
        # One complete run measures how long a build of every model takes.
        t0 = time.monotonic()
        first = run_cli("package", "--all", "-j", "2", "--json", repo=repo, env=env)
        full_run = time.monotonic() - t0
        assert first.returncode == 0, first.stderr
        lock = read_lock(repo / "neo.lock")
        for index, name in enumerate(MODELS):  # the premise of complete_models()
            assert lock.models[name].files["model.json"].sha256 == sha256(
                model_json(index, 0).encode()
            )

        time_trials = [i for i in range(TRIALS) if i % 3 != 1]
        trials = []
        for number in range(TRIALS):
            from_scratch = number % RESET_EVERY == 0
            if from_scratch:
                shutil.rmtree(repo / "build", ignore_errors=True)
                (repo / "neo.lock").unlink(missing_ok=True)
            # Three models change; the fourth must be left alone by the killed run.
            kept = MODELS[number % len(MODELS)]
            for index, name in enumerate(MODELS):
                if name != kept:
                    generations[name] += 1
                    (repo / "models" / name / "export.py").write_text(
                        export_source(index, generations[name])
                    )
            before = read_lock(repo / "neo.lock")
            marks = disk_marks(repo)
            if number % 3 == 1:
                event = EVENTS[(number // 3) % len(EVENTS)]
                how = f"on {event}"
            else:
                k = time_trials.index(number)
                # Golden-ratio steps: distinct moments spread over the run, in no order.
                fraction = 0.04 + 0.86 * ((k * 0.6180339887) % 1.0)
                how = f"at {fraction * full_run:.2f}s"
            trial = Trial(number=number, how=how, from_scratch=from_scratch)
            out = tmp / f"trial-{number}.json"
            started = time.monotonic()
            proc = start_cli("package", "--all", "-j", "2", "--json", repo=repo, env=env, out=out)
            if how.startswith("on "):
                killed = kill_when(
                    proc,
                    functools.partial(event_reached, repo, event, marks),
                    started + 3 * full_run + 5,
                )
            else:
                killed = kill_when(proc, lambda: False, started + fraction * full_run)
            trial.killed_at = time.monotonic() - started
            trial.exited_before_kill = not killed
            trial.leftover_processes = kill_leftovers(repo)
            trial.staging_after_kill = staging_entries(repo)

            # The lock parses (read_lock validates it against LOCK_SCHEMA).
            trial.lock_exists = (repo / "neo.lock").exists()
            after: Lock | None = None
            try:
                after = read_lock(repo / "neo.lock")
            except Exception as exc:  # the failure this test looks for
                trial.lock_error = f"{type(exc).__name__}: {exc}"
            trial.verify_rc, trial.verify_problems, data = check_verify(repo, env, after)
            trial.drift_kinds = {d["kind"] for d in data.get("drifts", [])}
            if after is not None:
                trial.complete = complete_models(repo, after, generations)
                if not from_scratch and after.models.get(kept) != before.models.get(kept):
                    trial.untouched_problems.append(
                        f"{kept} was fresh, yet its lock entry changed in the killed run"
                    )

            # The next run finishes, rebuilds exactly what was not complete.
            rerun = run_cli("package", "--all", "-j", "2", "--json", repo=repo, env=env)
            problems = trial.rerun_problems
            if rerun.returncode != 0:
                problems.append(f"rerun exit {rerun.returncode}: {rerun.stderr[-2000:]}")
            else:
                report = parse_json(rerun.stdout, "package --json")
                status = {m["name"]: m["status"] for m in report["models"]}
                want = {n: "fresh" if n in trial.complete else "built" for n in MODELS}
                if status != want:
                    problems.append(f"rerun statuses {status}, expected {want}")
                final = read_lock(repo / "neo.lock")
                if complete_models(repo, final, generations) != set(MODELS):
                    problems.append("after the rerun not every model is complete")
                rc, verify_problems, _ = check_verify(repo, env, final)
                problems.extend(verify_problems)
                if rc != 0:
                    problems.append(f"verify after the rerun exits {rc}")
            trial.staging_after_rerun = staging_entries(repo)
            trials.append(trial)
        yield CrashRun(repo=repo, full_run=full_run, trials=trials)
    finally:
        kill_leftovers(repo)


def _summary(run: CrashRun) -> str:
    lines = [f"full run {run.full_run:.2f}s"]
    for t in run.trials:
        lines.append(
            f"{t.label()}: after {t.killed_at:.2f}s, exited first={t.exited_before_kill}, "
            f"complete={sorted(t.complete)}, drifts={sorted(t.drift_kinds)}, "
            f"leftover exports={t.leftover_processes}, staging={len(t.staging_after_kill)}"
        )
    return "\n".join(lines)


def test_kills_land_in_different_phases(crash_run: CrashRun) -> None:
    trials = crash_run.trials
    assert len(trials) >= 20
    print(_summary(crash_run))
    moments = [t.how for t in trials if t.how.startswith("at ")]
    assert len(set(moments)) == len(moments), moments
    killed = [t for t in trials if not t.exited_before_kill]
    assert len(killed) >= 18, _summary(crash_run)
    # Before any lock was written, part-way through, and between a swap into place and
    # the lock update (outputs newer than the lock: "modified").
    assert any(not t.lock_exists for t in killed), _summary(crash_run)
    assert any(0 < len(t.complete) < len(MODELS) for t in killed), _summary(crash_run)
    assert any("modified" in t.drift_kinds for t in killed), _summary(crash_run)
    assert any(t.staging_after_kill for t in killed), _summary(crash_run)
    phases = {(len(t.complete), frozenset(t.drift_kinds)) for t in killed}
    assert len(phases) >= 4, _summary(crash_run)


def test_lock_always_parses(crash_run: CrashRun) -> None:
    failures = [f"{t.label()}: {t.lock_error}" for t in crash_run.trials if t.lock_error]
    assert not failures, "\n".join(failures)


def test_verify_tells_the_truth_after_a_kill(crash_run: CrashRun) -> None:
    failures = [
        f"{t.label()}: {p}"
        for t in crash_run.trials
        for p in ([f"verify exit {t.verify_rc}"] if t.verify_rc not in (0, 1) else [])
        + t.verify_problems
    ]
    assert not failures, "\n".join(failures)
    assert any(t.verify_rc == 1 for t in crash_run.trials)


def test_killed_run_leaves_fresh_models_alone(crash_run: CrashRun) -> None:
    failures = [f"{t.label()}: {p}" for t in crash_run.trials for p in t.untouched_problems]
    assert not failures, "\n".join(failures)


def test_next_run_rebuilds_only_what_was_not_complete(crash_run: CrashRun) -> None:
    failures = [f"{t.label()}: {p}" for t in crash_run.trials for p in t.rerun_problems]
    assert not failures, "\n".join(failures)


def test_next_run_cleans_the_staging_area(crash_run: CrashRun) -> None:
    left = [
        f"{t.label()}: {t.staging_after_rerun}" for t in crash_run.trials if t.staging_after_rerun
    ]
    assert not left, "left in build/neo/.staging after a complete run:\n" + "\n".join(left)


# --------------------------------------------------------------------------- concurrency


def slow_repo(tmp: Path, *, delay: float | str, extra: str = "") -> Path:
    repo = tmp / "repo"
    names = ("a", "b")
    write_tree(
        repo,
        {
            "neo.yaml": manifest_text(names, extra),
            **{
                f"models/{n}/export.py": export_source(i, 0, delay=delay)
                for i, n in enumerate(names)
            },
        },
    )
    init_repo(repo)
    return repo


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def holder_pid(repo: Path) -> int | None:
    try:
        return int(json.loads((repo / ".neobuild" / "build.lock.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_second_run_names_the_holder_or_waits(tmp_path: Path) -> None:
    repo = slow_repo(tmp_path, delay=3.5)
    env = cli_env(tmp_path)
    first = start_cli(
        "package", "--all", "-j", "2", "--json", repo=repo, env=env, out=tmp_path / "first.json"
    )
    queued: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: holder_pid(repo) == first.pid, "the first run to take the lock")
        second = run_cli("package", "--all", repo=repo, env=env)
        assert first.poll() is None, "the first run ended too early for this test"
        assert second.returncode == 1, second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "--wait" in second.stderr

        queued = start_cli(
            "package", "--all", "--wait", "--json", repo=repo, env=env, out=tmp_path / "queued.json"
        )
        time.sleep(0.5)
        assert queued.poll() is None, "--wait did not wait for the running build"
        assert first.wait(timeout=120) == 0, (tmp_path / "first.err").read_text()
        first_done = time.monotonic()
        assert queued.wait(timeout=120) == 0, (tmp_path / "queued.err").read_text()
        assert time.monotonic() >= first_done
    finally:
        for proc in (first, queued):
            if proc is not None and proc.poll() is None:
                kill_group(proc)
        kill_leftovers(repo)
    built = parse_json((tmp_path / "first.json").read_text(), "first")
    assert built["summary"]["built"] == 2
    report = parse_json((tmp_path / "queued.json").read_text(), "queued")
    assert {m["name"]: m["status"] for m in report["models"]} == {"a": "fresh", "b": "fresh"}
    assert run_cli("verify", repo=repo, env=env).returncode == 0


def test_killed_run_does_not_block_the_next(tmp_path: Path) -> None:
    delay = tmp_path / "delay"  # read by the exports: outside their sources
    delay.write_text("30")
    repo = slow_repo(tmp_path, delay=f"float(open({str(delay)!r}).read())")
    env = cli_env(tmp_path)
    proc = start_cli("package", "--all", "-j", "2", repo=repo, env=env, out=tmp_path / "k.out")
    waiter: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: holder_pid(repo) == proc.pid, "the run to take the lock")
        wait_for(lambda: len(staging_entries(repo)) == 2, "both exports to start")
        waiter = start_cli(
            "package",
            "--all",
            "-j",
            "2",
            "--wait",
            "--json",
            repo=repo,
            env=env,
            out=tmp_path / "waiter.json",
        )
        time.sleep(1.0)
        assert waiter.poll() is None, "--wait did not queue behind the running build"
        delay.write_text("0")
        kill_group(proc)
        killed = time.monotonic()
        # The dead run's exports are still running (30 s): they must not hold the lock.
        assert waiter.wait(timeout=120) == 0, (tmp_path / "waiter.err").read_text()
        assert time.monotonic() - killed < 25, "the next run waited for the dead run's exports"
    finally:
        for running in (proc, waiter):
            if running is not None and running.poll() is None:
                kill_group(running)
        kill_leftovers(repo)
    report = parse_json((tmp_path / "waiter.json").read_text(), "package --json")
    assert {m["name"]: m["status"] for m in report["models"]} == {"a": "built", "b": "built"}
    assert run_cli("verify", repo=repo, env=env).returncode == 0
    # (A run without --wait right after a kill: every rerun of the crash trials.)


def test_killed_run_leaves_no_export_running(tmp_path: Path) -> None:
    repo = slow_repo(tmp_path, delay=600.0, extra="    timeout: 2\n")
    env = cli_env(tmp_path)
    proc = start_cli("package", "--all", "-j", "2", repo=repo, env=env, out=tmp_path / "k.out")
    try:
        wait_for(lambda: len(staging_entries(repo)) == 2, "both exports to start")
        wait_for(lambda: len(processes_in(repo)) >= 3, "the export processes")
        kill_group(proc)
        time.sleep(4)  # longer than the models' timeout
        left = processes_in(repo)
        details = {pid: _status(pid) for pid in left}
        assert left == [], details
    finally:
        kill_group(proc)
        kill_leftovers(repo)


# --------------------------------------------------------------------------- exact crash points

#: Runs the real CLI with SIGKILL delivered to itself at one exact point of the swap into
#: place or of the neo.lock update (the windows a timed kill rarely hits).
INJECT = """
import os, signal, sys

import neobuild.atomic
import neobuild.outputs as swapper

point = sys.argv[1]
sys.argv = ["neobuild", *sys.argv[2:]]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class _Os:
    def __init__(self, replace):
        self.replace = replace

    def __getattr__(self, name):
        return getattr(os, name)


def build_replace(src, dst):
    aside = "-old-" in os.path.basename(dst)
    staged = os.path.basename(os.path.dirname(src)) == ".staging"
    os.replace(src, dst)
    if (point == "moved-aside" and aside) or (point == "swapped" and staged and not aside):
        die()


def atomic_replace(src, dst):
    is_lock = os.path.basename(dst) == "neo.lock"
    if is_lock and point == "lock-temp-written":
        die()
    os.replace(src, dst)
    if is_lock and point == "lock-replaced":
        die()


swapper.os = _Os(build_replace)
neobuild.atomic.os = _Os(atomic_replace)

from neobuild.cli import main

main()
"""

PAIR = ("m0", "m1")

#: point -> (models complete after the kill, kinds of drift verify must find); m0 is
#: being rebuilt, m1 is fresh.
POINTS = {
    "moved-aside": ({"m1"}, {"missing"}),
    "swapped": ({"m1"}, {"modified"}),
    "lock-temp-written": ({"m1"}, {"modified"}),
    "lock-replaced": ({"m0", "m1"}, set()),
}


@pytest.fixture(scope="module")
def built_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models, built once; each test works on a copy."""
    tmp = tmp_path_factory.mktemp("pair")
    repo = tmp / "repo"
    write_tree(
        repo,
        {
            "neo.yaml": manifest_text(PAIR),
            **{f"models/m{i}/export.py": export_source(i, 0, delay=0) for i in range(2)},
        },
    )
    init_repo(repo)
    result = run_cli("package", "--all", repo=repo, env=cli_env(tmp))
    assert result.returncode == 0, result.stderr
    return repo


@pytest.mark.parametrize("point", sorted(POINTS))
def test_kill_at_an_exact_point(built_pair: Path, tmp_path: Path, point: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(built_pair, repo, symlinks=True)
    env = cli_env(tmp_path)
    generations = {"m0": 1, "m1": 0}
    (repo / "models/m0/export.py").write_text(export_source(0, 1, delay=0))
    before = read_lock(repo / "neo.lock")
    killed = subprocess.run(
        [sys.executable, "-c", INJECT, point, "package", "--all", "-j", "1"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    kill_leftovers(repo)

    lock = read_lock(repo / "neo.lock")  # parses, passes LOCK_SCHEMA
    assert set(lock.models) == {"m0", "m1"}
    assert lock.models["m1"] == before.models["m1"]  # fresh: untouched
    want_complete, want_kinds = POINTS[point]
    complete = complete_models(repo, lock, generations, PAIR)
    assert complete == want_complete
    rc, problems, data = check_verify(repo, env, lock, PAIR)
    assert not problems, problems
    assert {d["kind"] for d in data["drifts"]} == want_kinds
    assert rc == (1 if want_kinds else 0)
    for drift in data["drifts"]:  # outputs newer than their lock entry: say why
        if drift["kind"] == "modified":
            assert drift["detail"].startswith("interrupted build"), drift
    if point == "lock-temp-written":
        assert list(repo.glob(".neo.lock.*")), "the kill left no temp file: wrong point?"

    rerun = run_cli("package", "--all", "-j", "1", "--json", repo=repo, env=env)
    assert rerun.returncode == 0, rerun.stderr
    status = {m["name"]: m["status"] for m in parse_json(rerun.stdout, "package")["models"]}
    assert status == {n: "fresh" if n in complete else "built" for n in PAIR}
    final = read_lock(repo / "neo.lock")
    assert complete_models(repo, final, generations, PAIR) == set(PAIR)
    rc, problems, _ = check_verify(repo, env, final, PAIR)
    assert (rc, problems) == (0, [])
    assert not list(repo.glob(".neo.lock.*.tmp")), "a dead writer's temp file survived"


# --------------------------------------------------------------------------- SIGTERM

TERM_TRIALS = 6


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    """CI cancels with SIGTERM: exports stop, nothing half-built stays, what finished is locked.

    Unlike SIGKILL, neobuild sees it: every output it swapped into place must be in
    neo.lock (no drift but ``pending``), the staging area is empty and no export runs on.
    """
    repo = tmp_path / "repo"
    env = cli_env(tmp_path)
    generations = dict.fromkeys(MODELS, 0)
    write_tree(
        repo,
        {
            "neo.yaml": manifest_text(MODELS),
            **{f"models/{n}/export.py": export_source(i, 0) for i, n in enumerate(MODELS)},
        },
    )
    init_repo(repo)
    t0 = time.monotonic()
    assert run_cli("package", "--all", "-j", "2", repo=repo, env=env).returncode == 0
    full_run = time.monotonic() - t0
    failures: list[str] = []
    interrupted = 0
    try:
        for number in range(TERM_TRIALS):
            fraction = 0.3 + 0.6 * ((number * 0.6180339887) % 1.0)
            label = f"SIGTERM trial {number} at {fraction * full_run:.2f}s"
            kept = MODELS[number % len(MODELS)]
            for index, name in enumerate(MODELS):
                if name != kept:
                    generations[name] += 1
                    (repo / "models" / name / "export.py").write_text(
                        export_source(index, generations[name])
                    )
            out = tmp_path / f"term-{number}.json"
            proc = start_cli("package", "--all", "-j", "2", repo=repo, env=env, out=out)
            time.sleep(fraction * full_run)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)  # the main process only, as CI does
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                failures.append(f"{label}: still running 30 s after SIGTERM")
                continue
            interrupted += rc == 130
            stderr = out.with_suffix(".err").read_text()
            # A SIGTERM after the summary meets Python's shutdown (default action): harmless.
            finished = re.search(r"^\d+ built\b.* in [\d.]+s$", stderr, re.MULTILINE)
            if rc not in (0, 130) and not (rc == -signal.SIGTERM and finished):
                failures.append(f"{label}: exit {rc}: {out.with_suffix('.err').read_text()}")
            time.sleep(0.2)
            if kill_leftovers(repo):
                failures.append(f"{label}: exports still running after neobuild exited")
            if staging_entries(repo):
                failures.append(f"{label}: left in .staging: {staging_entries(repo)}")
            lock = read_lock(repo / "neo.lock")
            rc, problems, data = check_verify(repo, env, lock)
            failures.extend(f"{label}: {p}" for p in problems)
            unrecorded = [d for d in data.get("drifts", []) if d["kind"] != "pending"]
            if unrecorded:
                failures.append(f"{label}: outputs not matching neo.lock: {unrecorded}")
            complete = complete_models(repo, lock, generations)
            rerun = run_cli("package", "--all", "-j", "2", "--json", repo=repo, env=env)
            if rerun.returncode != 0:
                failures.append(f"{label}: rerun exit {rerun.returncode}: {rerun.stderr}")
                continue
            status = {m["name"]: m["status"] for m in parse_json(rerun.stdout, "rerun")["models"]}
            want = {n: "fresh" if n in complete else "built" for n in MODELS}
            if status != want:
                failures.append(f"{label}: rerun statuses {status}, expected {want}")
    finally:
        kill_leftovers(repo)
    assert not failures, "\n".join(failures)
    assert interrupted >= TERM_TRIALS // 2, "most SIGTERMs should land mid-run"


#: Raises KeyboardInterrupt (what the CLI's SIGTERM handler raises, as Signalled) in the main thread
#: at one point of recording a finished model in neo.lock.
INTERRUPT = """
import sys

import neobuild.lockfile
import neobuild.scheduler

point = sys.argv[1]
sys.argv = ["neobuild", *sys.argv[2:]]
add, modify = neobuild.scheduler.LockWriter.add, neobuild.lockfile.modify_lock
fired = []


def fire():
    if not fired:
        fired.append(True)
        raise KeyboardInterrupt


def add_hook(self, name, entry):
    if point == "before-add":
        fire()
    return add(self, name, entry)


def modify_hook(*args, **kwargs):
    if point == "during-flush":
        fire()
    return modify(*args, **kwargs)


neobuild.scheduler.LockWriter.add = add_hook
neobuild.lockfile.modify_lock = modify_hook

from neobuild.cli import main

main()
"""


@pytest.mark.parametrize("point", ["before-add", "during-flush"])
def test_interrupt_while_recording_keeps_what_finished(
    built_pair: Path, tmp_path: Path, point: str
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(built_pair, repo, symlinks=True)
    env = cli_env(tmp_path)
    # The export outlasts LockWriter's one-second batching: add() flushes at once.
    (repo / "models/m0/export.py").write_text(export_source(0, 1, delay=1.2))
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPT, point, "package", "--all", "-j", "1"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 130, result.stderr
    lock = read_lock(repo / "neo.lock")
    _, problems, data = check_verify(repo, env, lock, PAIR)
    assert not problems, problems
    assert data["drifts"] == [], "m0 was swapped into place but neo.lock does not list it"
