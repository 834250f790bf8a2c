"""neo.lock under concurrent writers and kill -9: no lost update, never a torn file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from neobuild.lockfile import LOCK_NAME, read_lock, update_lock

# A child process that writes lock entries through the public API. Entries are built with
# many files so that each write takes a while and a kill can land in the middle of one.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from neobuild.lockfile import FileRecord, LockEntry, update_lock

    def entry(name, n, files):
        h = "sha256:%064x" % n
        return LockEntry(
            fingerprint=h, framework="onnx", framework_version=None, exported_with={},
            files={f"f{i:04d}.bin": FileRecord(size=i + n, sha256=h) for i in range(files)},
            archive=FileRecord(size=n, sha256=h), archive_path=f"build/neo/{name}/model.tar.gz",
            outputs={}, requests={}, smoke=None, fingerprint_parts={}, jobs={},
            git_commit=None, git_dirty=None,
        )

    path, mode, tag, count, files = Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    print("ready", flush=True)
    if mode == "jobs":     # add one job per step to the shared model, derived from the current entry
        from dataclasses import replace
        from neobuild.lockfile import JobRecord, modify_lock
        for k in range(count):
            def change(lock, k=k):
                e = lock.models["shared"]
                job = JobRecord(name=f"{tag}-{k}", arn=None, status="COMPLETED", output=None,
                                inference_image=None, artifact_digest=None, failure_reason=None)
                return {"shared": replace(e, jobs={**e.jobs, f"{tag}-{k}": job})}
            modify_lock(path, change)
    elif mode == "add":    # add `count` models of its own, one update each
        for k in range(count):
            update_lock(path, {f"{tag}-{k}": entry(f"{tag}-{k}", k, files)})
    else:                  # loop forever rewriting models, until killed
        n = 0
        while True:
            n += 1
            update_lock(path, {f"{tag}-{n % 5}": entry(f"{tag}-{n % 5}", n, files),
                               f"{tag}-{(n + 2) % 5}": None})
    """
)


def start(
    repo_root: Path, path: Path, mode: str, tag: str, count: int, files: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(repo_root), str(path), mode, tag, str(count), str(files)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_four_processes_adding_their_own_models_lose_nothing(
    tmp_path: Path, repo_root: Path
) -> None:
    path = tmp_path / LOCK_NAME
    procs = [start(repo_root, path, "add", f"p{i}", 15, 20) for i in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    names = set(read_lock(path).models)
    assert names == {f"p{i}-{k}" for i in range(4) for k in range(15)}


def test_kill_9_at_random_moments_always_leaves_a_lock_that_parses(
    tmp_path: Path, repo_root: Path
) -> None:
    path = tmp_path / LOCK_NAME
    seed = int(os.environ.get("NEOBUILD_CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    completed = False
    for trial in range(24):
        proc = start(repo_root, path, "loop", "m", 0, 400)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        # The crash-safety property: whatever the moment, the lock parses and validates,
        # and is never truncated: once a write completed, some model is always there (each
        # write adds one model and removes another).
        lock = read_lock(path)
        assert all(name.startswith("m-") for name in lock.models), (seed, trial)
        assert all(len(e.files) == 400 for e in lock.models.values()), (seed, trial)
        if completed:
            assert lock.models, f"seed {seed}, trial {trial}: the lock lost its entries"
        completed = completed or bool(lock.models)
        # The dead writer's file lock does not block the next writer (the kernel released it).
        update_lock(path, {"survivor": None}, timeout=10)
    assert completed, f"seed {seed}: no write ever completed"
    # The next real write sweeps the temp files killed writers left behind.
    update_lock(path, {"m-0": None, "m-1": None, "m-2": None, "m-3": None, "m-4": None})
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_modify_lock_derives_each_change_from_the_latest_entry(
    tmp_path: Path, repo_root: Path
) -> None:
    path = tmp_path / LOCK_NAME
    seed = start(repo_root, path, "add", "shared", 1, 3)
    assert seed.wait(timeout=60) == 0
    entry = read_lock(path).models["shared-0"]
    update_lock(path, {"shared": entry, "shared-0": None})
    procs = [start(repo_root, path, "jobs", f"p{i}", 10, 0) for i in range(3)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    jobs = read_lock(path).models["shared"].jobs
    assert sorted(jobs) == sorted(f"p{i}-{k}" for i in range(3) for k in range(10))
