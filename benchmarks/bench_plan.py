"""Benchmark: ``plan`` (and a no-op ``package --all``) on a generated 1,000-model repository.

Usage::

    .venv/bin/python benchmarks/bench_plan.py [--models 1000] [--repeat 3] [--keep DIR]
        [--compare REV]

It generates a git repository with a ``neo.yaml`` of N models (each with an export
file and a config file under ``models/<name>/``, all sharing ``common/**``), writes
outputs and a ``neo.lock`` that make every model fresh (as a finished ``package
--all`` would, without running N exports), then times:

- the library path: ``manifest.load`` + ``plan.plan`` in-process, cold (no
  ``.neobuild/`` caches) and warm (manifest cache and stat cache filled);
- ``neobuild plan --json`` and ``neobuild package --all`` as subprocesses, cold and warm;
- with ``--compare REV``, the same commands run by neobuild as of git revision ``REV``
  (exported with ``git archive``, on its own copy of the repository so the two never
  share caches), interleaved with the current code's runs so both see the same load.

neobuild's modules are byte-compiled first (as ``pip install`` does): this environment
sets ``PYTHONDONTWRITEBYTECODE``, and compiling from source would add ~0.1 s to every run.

Figures are printed and written to ``benchmarks/RESULTS.md`` under
``## plan on 1,000 models`` (other sections of that file are left alone).
No timing is asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## plan on 1,000 models"
NEOBUILD = Path(sys.executable).with_name("neobuild")


def generate(root: Path, n: int) -> None:
    """Write a neo.yaml of ``n`` models and their sources, and commit them."""
    (root / "common").mkdir(parents=True)
    (root / "common" / "util.py").write_text("SHARED = 1\n")
    lines = [
        "version: 1",
        "build_dir: build/neo",
        "defaults:",
        "  targets: [ml_c5]",
        "  framework: onnx",
        '  framework_version: "1.7.0"',
        "models:",
    ]
    for i in range(n):
        name = f"m{i:04d}"
        d = root / "models" / name
        d.mkdir(parents=True)
        (d / "export.py").write_text(f"def export(out, inputs):\n    pass  # {name}\n")
        (d / "config.json").write_text(json.dumps({"name": name, "seed": i}) + "\n")
        lines += [
            f"  {name}:",
            f"    export: models/{name}/export.py:export",
            "    inputs: {input: [1, 3, 8, 8]}",
            f"    sources: [models/{name}/**, common/**]",
        ]
    (root / "neo.yaml").write_text("\n".join(lines) + "\n")
    (root / ".gitignore").write_text("build/\n.neobuild/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "seed"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _templates_hash(manifest: object) -> Callable[[Any], str] | str:
    """The templates hash the CLI uses (``pipeline.templates_hash``), so the lock matches it."""
    try:
        from neobuild import pipeline

        value = pipeline.templates_hash(manifest)  # type: ignore[arg-type]
        return value if callable(value) else str(value)
    except (ImportError, AttributeError):
        pass
    from neobuild import render

    return lambda model: str(render.templates_hash_for(manifest, model))  # type: ignore[arg-type]


def fake_build(root: Path) -> None:
    """Write outputs and a lock that make every model fresh (no exports run)."""
    from neobuild import lockfile, manifest, plan
    from neobuild.lockfile import FileRecord, Lock, LockEntry, RequestRecord

    m = manifest.load(root / "neo.yaml", use_cache=False)
    the_plan = plan.plan(m, list(m.models.values()), Lock(), templates_hash=_templates_hash(m))
    entries = {}
    for model in m.models.values():
        fp = the_plan.fingerprint(model.name)
        mdir = m.build_dir / model.name
        (mdir / "export").mkdir(parents=True)
        (mdir / "requests").mkdir()
        exported = f"onnx {model.name}".encode()
        archive = b"archive of " + exported
        (mdir / "export" / "model.onnx").write_bytes(exported)
        (mdir / "model.tar.gz").write_bytes(archive)
        requests, outputs = {}, {}
        for target in model.targets:
            body = json.dumps({"CompilationJobName": f"{model.name}-{target.key}"}).encode()
            rel = f"requests/{target.key}.json"
            (mdir / rel).write_bytes(body)
            outputs[rel] = FileRecord(len(body), _digest(body))
            requests[target.key] = RequestRecord(
                f"build/neo/{model.name}/{rel}", _digest(body), f"{model.name}-{target.key}"
            )
        entries[model.name] = LockEntry(
            fingerprint=fp.digest,
            framework=model.framework,
            framework_version=model.framework_version,
            exported_with={},
            files={"model.onnx": FileRecord(len(exported), _digest(exported))},
            archive=FileRecord(len(archive), _digest(archive)),
            archive_path=f"build/neo/{model.name}/model.tar.gz",
            outputs=outputs,
            requests=requests,
            smoke=None,
            fingerprint_parts=dict(fp.parts),
            jobs={},
            git_commit=None,
            git_dirty=None,
        )
    lockfile.write_lock(root / lockfile.LOCK_NAME, Lock(models=entries))
    # Out of the stat cache's racy window, as files are in a real checkout.
    past = time.time_ns() - 10_000_000_000
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for f in filenames:
            os.utime(os.path.join(dirpath, f), ns=(past, past))
    # The stat cache also treats a just-changed ctime as racy, and utime cannot set it
    # back: let it age past the 2 s window so the warm runs read nothing, as in a checkout.
    time.sleep(2.1)


STAGES = (
    "manifest.load",
    "read_lock",
    "templates hash",
    "fingerprints + plan",
    "stat cache save",
    "plan.to_json",
)


def library_plan(
    root: Path, stages: dict[str, list[float]] | None = None
) -> tuple[float, int, int]:
    """One in-process load + plan; returns (seconds, stale count, files read).

    With ``stages``, appends each stage's seconds to ``stages[name]``.
    """
    from neobuild import lockfile, manifest, plan
    from neobuild.statcache import StatCache

    marks = [time.perf_counter()]
    m = manifest.load(root / "neo.yaml")
    marks.append(time.perf_counter())
    lock = lockfile.read_lock(root / lockfile.LOCK_NAME)
    marks.append(time.perf_counter())
    templates = _templates_hash(m)
    if callable(templates):
        hashes = {name: templates(model) for name, model in m.models.items()}
        templates = lambda model: hashes[model.name]  # noqa: E731
    marks.append(time.perf_counter())
    cache = StatCache.load(root)
    result = plan.plan(m, list(m.models.values()), lock, templates_hash=templates, stat_cache=cache)
    marks.append(time.perf_counter())
    cache.save()
    marks.append(time.perf_counter())
    json.dumps(result.to_json())
    marks.append(time.perf_counter())
    if stages is not None:
        for name, a, b in zip(STAGES, marks[:-1], marks[1:], strict=True):
            stages.setdefault(name, []).append(b - a)
    return marks[-2] - marks[0], result.stale_count, cache.reads


def clear_caches(root: Path) -> None:
    shutil.rmtree(root / ".neobuild", ignore_errors=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(root: Path, *args: str, code: Path | None = None) -> tuple[float, float, int, str]:
    """Run the CLI in ``root``; with ``code``, the neobuild package found in that directory.

    Returns wall seconds, CPU seconds (user + system: less sensitive to the machine's
    load than wall time), the exit code and the output.
    """
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([str(NEOBUILD), *args], cwd=root, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    return wall, _children_cpu() - cpu0, proc.returncode, proc.stdout + proc.stderr


def precompile(package_dir: Path) -> None:
    """Write the package's bytecode, as an installed wheel has it."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package_dir)],
        check=True,
        capture_output=True,
    )


def export_revision(rev: str, dest: Path) -> str:
    """Write neobuild (and its templates) as of git revision ``rev`` into ``dest``."""
    repo = HERE.parent
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha, "neobuild", "templates"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    precompile(dest / "neobuild")
    return sha


def _fmt(values: list[float], cpu: list[float] | None = None) -> str:
    if not values:
        return "n/a"
    text = f"{statistics.median(values) * 1000:.0f} ms"
    if cpu:
        text += f" ({statistics.median(cpu) * 1000:.0f} CPU)"
    return text


def library_runs(root: Path, repeat: int) -> dict[str, Any]:
    """Cold and warm in-process runs of the library path (with the stage breakdown)."""
    cold, warm = [], []
    reads_cold = reads_warm = stale = 0
    stages: dict[str, list[float]] = {}
    for _ in range(repeat):
        clear_caches(root)
        seconds, stale, reads_cold = library_plan(root)
        cold.append(seconds)
        seconds, stale, reads_warm = library_plan(root, stages)
        warm.append(seconds)
    return {
        "cold": cold,
        "warm": warm,
        "stages": stages,
        "reads_cold": reads_cold,
        "reads_warm": reads_warm,
        "stale": stale,
    }


def library_runs_of(code: Path, root: Path, repeat: int) -> dict[str, Any]:
    """:func:`library_runs` in a subprocess that imports neobuild from ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, __file__, "--library-only", str(root), "--repeat", str(repeat)]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


Row = tuple[str, str, str, str]  # what, before (REV), now, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate here and keep it")
    parser.add_argument("--compare", metavar="REV", help="also time neobuild as of git REV")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--library-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.library_only:  # the --compare side of the library figures
        print(json.dumps(library_runs(args.library_only, args.repeat)))
        return 0

    tmp = tempfile.TemporaryDirectory(prefix="neobuild-bench-")
    if args.keep:
        root = args.keep.resolve()
        if root.exists():
            shutil.rmtree(root)
    else:
        root = Path(tmp.name) / "repo"
    root.mkdir(parents=True)
    rows: list[Row] = []
    notes: list[str] = []
    before = ""
    try:
        precompile(HERE.parent / "neobuild")
        t0 = time.perf_counter()
        generate(root, args.models)
        fake_build(root)
        setup = time.perf_counter() - t0
        print(f"generated {args.models} models in {setup:.1f} s at {root}")
        old_code: Path | None = None
        old_root = Path(tmp.name) / "repo-before"
        if args.compare:
            old_code = Path(tmp.name) / "code-before"
            before = export_revision(args.compare, old_code)
            shutil.copytree(root, old_root, symlinks=True)
            clear_caches(old_root)
            print(f"comparing with {before} ({args.compare})")

        lib = library_runs(root, args.repeat)
        old_lib: dict[str, Any] = {}
        if old_code is not None:
            old_lib = library_runs_of(old_code, old_root, args.repeat)
            clear_caches(old_root)

        def lib_row(what: str, key: str, note: str) -> Row:
            return (what, _fmt(old_lib.get(key, [])) if old_lib else "", _fmt(lib[key]), note)

        rows.append(
            lib_row(
                "library: load + plan, cold",
                "cold",
                f"{lib['reads_cold']} files read, {lib['stale']} stale",
            )
        )
        rows.append(
            lib_row(
                "library: load + plan, warm",
                "warm",
                f"{lib['reads_warm']} files read, {lib['stale']} stale",
            )
        )
        for name in STAGES:
            rows.append(
                (
                    f"- warm stage: {name}",
                    _fmt(old_lib["stages"].get(name, [])) if old_lib else "",
                    _fmt(lib["stages"][name]),
                    "in-process",
                )
            )

        for label, command in (
            ("`neobuild plan --json`", ["plan", "--json"]),
            ("`neobuild package --all` (no-op)", ["package", "--all"]),
        ):
            runs: dict[tuple[str, str], list[float]] = {}
            cpus: dict[tuple[str, str], list[float]] = {}
            failure = ""
            for _ in range(args.repeat):
                sides: list[tuple[str, Path, Path | None]] = [("now", root, None)]
                if old_code is not None:
                    sides.insert(0, ("before", old_root, old_code))
                for side, where, code in sides:
                    clear_caches(where)
                    for phase in ("cold", "warm"):
                        seconds, cpu, rc, output = cli(where, *command, code=code)
                        if rc != 0 and not failure:
                            errors = [x for x in output.splitlines() if x.startswith("error:")]
                            first = (errors or output.strip().splitlines() or [f"exit {rc}"])[0]
                            failure = f"{side}: {first}"
                            notes.append(f"{label} ({side}) failed (exit {rc}): {first}")
                        runs.setdefault((side, phase), []).append(seconds)
                        cpus.setdefault((side, phase), []).append(cpu)
            for phase in ("cold", "warm"):
                rows.append(
                    (
                        f"{label}, {phase}",
                        _fmt(runs.get(("before", phase), []), cpus.get(("before", phase)))
                        if old_code
                        else "",
                        _fmt(runs[("now", phase)], cpus[("now", phase)]),
                        "subprocess, incl. interpreter start"
                        + (f"; failed: {failure[:100]}" if failure else ""),
                    )
                )
        floor: dict[str, list[float]] = {}
        floor_cpu: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for side, code in (("before", old_code), ("now", None)):
                if side == "before" and code is None:
                    continue
                seconds, cpu, _, _ = cli(root, "--version", code=code)
                floor.setdefault(side, []).append(seconds)
                floor_cpu.setdefault(side, []).append(cpu)
        rows.append(
            (
                "`neobuild --version` (startup floor)",
                _fmt(floor.get("before", []), floor_cpu.get("before")) if old_code else "",
                _fmt(floor["now"], floor_cpu["now"]),
                "interpreter + `import neobuild.cli` (typer)",
            )
        )
    finally:
        tmp.cleanup()

    show_before = bool(before)
    width = max(len(r[0]) for r in rows)
    if show_before:
        print(f"{'':<{width}}  {'before':>8}  {'now':>8}")
    for name, old, new, note in rows:
        old_text = f"{old or '':>8}  " if show_before else ""
        print(f"{name:<{width}}  {old_text}{new:>8}  {note}")
    if not args.no_write:
        write_results(rows, notes, args.models, args.repeat, before, args.compare)
    return 0


def write_results(
    rows: list[Row],
    notes: list[str],
    n: int,
    repeat: int,
    before: str = "",
    rev: str | None = None,
) -> None:
    """Replace (or append) the plan section of RESULTS.md, leaving other sections alone."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {load} at the end"
    )
    compare = f" --compare {rev}" if rev else ""
    body = [
        SECTION,
        "",
        f"Generated by `benchmarks/bench_plan.py --models {n}{compare}` on "
        f"{time.strftime('%Y-%m-%d')} ({machine}); median of {repeat} runs. Cold: no "
        "`.neobuild/` (manifest, lock and stat caches empty); warm: the second run. Every "
        "model is fresh (outputs and neo.lock written as a finished `package --all` leaves "
        "them). Bytecode compiled beforehand, as an installed wheel has it. Subprocess "
        "figures are wall time, with the process's CPU time (user + system) in parentheses: "
        "on a loaded machine CPU time is the steadier measure.",
        "",
    ]
    if before:
        body += [
            f"*before*: neobuild at `{before}`, run on its own copy of the repository, "
            "its CLI runs interleaved with *now*'s (same load); library rows run one after the other.",
            "",
            f"| what | before ({before}) | now | notes |",
            "|---|---:|---:|---|",
            *(f"| {a} | {b or '-'} | {c} | {d} |" for a, b, c, d in rows),
        ]
    else:
        body += [
            "| what | time | notes |",
            "|---|---:|---|",
            *(f"| {a} | {c} | {d} |" for a, _, c, d in rows),
        ]
    body.append("")
    body += [f"- {note}" for note in notes]
    if notes:
        body.append("")
    section = "\n".join(body)
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
