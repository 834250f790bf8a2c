"""`make bench`: every scenario of issue 14, each beside its anchor, into RESULTS.md.

Usage::

    .venv/bin/python benchmarks/run_all.py [--models 1000] [--first-models 50]
        [--torch-models 6] [--pack-mib 1024] [--repeat 3] [--no-write]

It builds its own data in a temporary directory (a git repository of N generated ONNX
models, the same repository as a DVC project, N PyTorch models, a weights file),
installs DVC into ``benchmarks/.venv-dvc`` (gitignored) when it is not there, and runs
each scenario as A (neobuild) and B (the anchor) in turn, ``--repeat`` times, reporting
medians: on a shared machine only figures measured side by side compare.

Scenarios: ``neobuild --help`` vs ``python -c pass``; ``plan`` with nothing changed vs
``dvc status``; ``plan`` with one model changed out of N vs ``dvc status``; a no-op
``package --all`` vs a no-op ``dvc repro``; the first ``package --all`` of tiny exports
vs the first ``dvc repro``; N PyTorch models in one export environment, first build,
fork server on vs off; packing a weights file vs GNU ``tar czf``.

Figures are printed and written to ``benchmarks/RESULTS.md`` between the
``<!-- run_all:begin -->`` and ``<!-- run_all:end -->`` markers; the rest of the file
(sections other tools append) is kept. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"
DVC_VENV = HERE / ".venv-dvc"
DVC_VERSION = "3.67.1"
PY = Path(sys.executable)
NEOBUILD = PY.with_name("neobuild")

EXPORT_ONNX = '''"""Export of {name}: copies a prebuilt ONNX file (a tiny export)."""
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def export(out, inputs):
    shutil.copyfile(ROOT / "common" / "tiny.onnx", Path(out) / "model.onnx")


if __name__ == "__main__":
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    export(sys.argv[1], None)
'''

EXPORT_TORCH = '''"""Export of {name}: a tiny TorchScript CNN."""
import torch


def export(out, inputs):
    torch.manual_seed({seed})
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    traced = torch.jit.trace(model, torch.zeros(1, 3, 8, 8))
    torch.jit.save(traced, str(out / "model.pth"))
'''


# --------------------------------------------------------------------------- data


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def tiny_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.save(model, str(path))


def generate_onnx(root: Path, n: int) -> None:
    """A git repository with a neo.yaml of ``n`` tiny ONNX models, also a DVC project."""
    (root / "common").mkdir(parents=True)
    tiny_onnx(root / "common" / "tiny.onnx")
    (root / "common" / "util.py").write_text("SHARED = 1\n")
    lines = [
        "version: 1",
        "build_dir: build/neo",
        "defaults:",
        "  targets: [ml_c5]",
        "  framework: onnx",
        '  framework_version: "1.7.0"',
        "  smoke: false",
        "models:",
    ]
    stages = ["stages:"]
    for i in range(n):
        name = f"m{i:04d}"
        d = root / "models" / name
        d.mkdir(parents=True)
        (d / "export.py").write_text(EXPORT_ONNX.format(name=name))
        (d / "config.json").write_text(json.dumps({"name": name, "seed": i}) + "\n")
        lines += [
            f"  {name}:",
            f"    export: models/{name}/export.py:export",
            "    inputs: {input: [1, 3, 8, 8]}",
            f"    sources: [models/{name}/**, common/**]",
        ]
        stages += [
            f"  {name}:",
            f"    cmd: python models/{name}/export.py build/dvc/{name}/export"
            f" && tar czf build/dvc/{name}/model.tar.gz -C build/dvc/{name}/export .",
            f"    deps: [models/{name}, common]",
            f"    outs: [build/dvc/{name}]",
        ]
    (root / "neo.yaml").write_text("\n".join(lines) + "\n")
    (root / "dvc.yaml").write_text("\n".join(stages) + "\n")
    (root / ".gitignore").write_text("build/\n.neobuild/\nneo.lock\n")
    git_commit(root)
    run([str(dvc()), "init", "-q"], root)
    run([str(dvc()), "config", "core.analytics", "false"], root)
    run([str(dvc()), "config", "core.autostage", "false"], root)
    git_commit(root)


def generate_torch(root: Path, n: int) -> None:
    (root / "models").mkdir(parents=True)
    lines = ["version: 1", "build_dir: build/neo", "models:"]
    for i in range(n):
        name = f"t{i:02d}"
        (root / "models" / name).mkdir()
        (root / "models" / name / "export.py").write_text(EXPORT_TORCH.format(name=name, seed=i))
        lines += [
            f"  {name}:",
            "    framework: pytorch",
            '    framework_version: "2.0"',
            f"    export: models/{name}/export.py:export",
            "    inputs: {input0: [1, 3, 8, 8]}",
            "    targets: [ml_c5]",
            "    smoke: false",
        ]
    (root / "neo.yaml").write_text("\n".join(lines) + "\n")
    (root / ".gitignore").write_text("build/\n.neobuild/\n")
    git_commit(root)


def git_commit(root: Path) -> None:
    if not (root / ".git").exists():
        run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "x"], root)


def dvc() -> Path:
    """DVC's executable in its own venv, installed there on first use."""
    exe = DVC_VENV / "bin" / "dvc"
    if not exe.exists():
        print(f"installing dvc {DVC_VERSION} into {DVC_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        subprocess.run(
            [str(DVC_VENV / "bin" / "pip"), "install", "-q", f"dvc=={DVC_VERSION}"], check=True
        )
    return exe


def dvc_version() -> str:
    return run([str(dvc()), "--version"], HERE).strip()


def clean_build(root: Path) -> None:
    for name in ("build", ".neobuild", "neo.lock", "dvc.lock"):
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(root / ".dvc" / "tmp", ignore_errors=True)


# --------------------------------------------------------------------------- timing


#: CPU seconds (user + system) of each timed run, by the wall time it returned: on a
#: loaded machine CPU time is the steadier measure, so rows show both.
CPU: dict[float, float] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cwd: Path, *, check: bool = True) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    CPU[seconds] = _children_cpu() - cpu
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def ab(
    repeat: int,
    a: Callable[[], float],
    b: Callable[[], float],
    before: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """A and B in turn, ``repeat`` times each; their medians."""
    a_times: list[float] = []
    b_times: list[float] = []
    a_cpu: list[float] = []
    b_cpu: list[float] = []
    for _ in range(repeat):
        for fn, out, cpu in ((a, a_times, a_cpu), (b, b_times, b_cpu)):
            if before is not None:
                before()
            seconds = fn()
            out.append(seconds)
            cpu.append(CPU.get(seconds, float("nan")))
    LAST_CPU[:] = [statistics.median(a_cpu), statistics.median(b_cpu)]
    return statistics.median(a_times), statistics.median(b_times)


#: The median CPU seconds of the last :func:`ab` call's A and B.
LAST_CPU: list[float] = [0.0, 0.0]


def cpu_note() -> str:
    a, b = LAST_CPU
    return f"CPU {fmt(a)} vs {fmt(b)}"


def neobuild(*args: str) -> list[str]:
    return [str(NEOBUILD), *args]


# --------------------------------------------------------------------------- scenarios

Row = tuple[str, str, str, str, str, str]  # what, neobuild, anchor, ratio, target, CPU


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def startup(repeat: int, work: Path) -> Row:
    a, b = ab(
        repeat,
        lambda: timed(neobuild("--help"), work),
        lambda: timed([str(PY), "-c", "pass"], work),
    )
    return (
        "`neobuild --help`",
        fmt(a),
        f"`python -c pass` {fmt(b)}",
        f"+{fmt(a - b)}",
        "≤ 100 ms",
        cpu_note(),
    )


def plan_scenarios(repeat: int, root: Path, n: int) -> list[Row]:
    rows: list[Row] = []
    # Fresh state: a first build of everything on both sides (outputs, locks, caches).
    timed(neobuild("package", "--all", "--allow-incomplete", "-j", "2"), root)
    timed([str(dvc()), "repro", "-q"], root)
    timed(neobuild("plan", "--json"), root)  # warm the caches
    dvc_status = [str(dvc()), "status", "-q"]
    a, b = ab(
        repeat,
        lambda: timed(neobuild("plan", "--json"), root),
        lambda: timed(dvc_status, root, check=False),
    )
    rows.append(
        (
            f"`plan`, nothing changed ({n} models)",
            fmt(a),
            f"`dvc status` {fmt(b)}",
            f"{b / a:.0f}x faster",
            "≥ 50x, ≤ 0.2 s",
            cpu_note(),
        )
    )
    memo = root / ".neobuild" / "planmemo"

    def plan_without_memo() -> float:
        memo.unlink(missing_ok=True)  # the stat and lock caches stay warm
        return timed(neobuild("plan", "--json"), root)

    a, b = ab(repeat, plan_without_memo, lambda: timed(dvc_status, root, check=False))
    rows.append(
        (
            f"`plan`, nothing changed, plan memo deleted ({n} models)",
            fmt(a),
            f"`dvc status` {fmt(b)}",
            f"{b / a:.0f}x faster",
            "-",
            cpu_note(),
        )
    )
    timed(neobuild("plan", "--json"), root)  # remember the plan again
    a, b = ab(
        repeat,
        lambda: timed(neobuild("package", "--all", "--allow-incomplete"), root),
        lambda: timed([str(dvc()), "repro", "-q"], root),
    )
    rows.append(
        (
            f"no-op `package --all` ({n} models)",
            fmt(a),
            f"no-op `dvc repro` {fmt(b)}",
            f"{b / a:.0f}x faster",
            "≥ 100x, ≤ 0.3 s",
            cpu_note(),
        )
    )
    config = root / "models" / "m0000" / "config.json"
    counter = iter(range(10**6))

    def change_one() -> None:
        config.write_text(json.dumps({"name": "m0000", "edit": next(counter)}) + "\n")

    a, b = ab(
        repeat,
        lambda: timed(neobuild("plan", "--json"), root, check=False),
        lambda: timed(dvc_status, root, check=False),
        before=change_one,
    )
    rows.append(
        (
            f"`plan`, 1 model changed of {n}",
            fmt(a),
            f"`dvc status` {fmt(b)}",
            f"{b / a:.0f}x faster",
            "-",
            cpu_note(),
        )
    )
    return rows


def first_build(repeat: int, root: Path, n: int) -> Row:
    def neo() -> float:
        clean_build(root)
        return timed(neobuild("package", "--all", "--allow-incomplete", "-j", "2"), root)

    def anchor() -> float:
        clean_build(root)
        return timed([str(dvc()), "repro", "-q"], root)

    a, b = ab(repeat, neo, anchor)
    return (
        f"first `package --all`, {n} tiny exports",
        f"{fmt(a)} ({a / n * 1000:.0f} ms a model)",
        f"first `dvc repro` {fmt(b)} ({b / n * 1000:.0f} ms a stage)",
        f"{b / a:.1f}x faster",
        "≥ 30x",
        cpu_note(),
    )


def torch_first_build(repeat: int, root: Path, n: int) -> Row:
    def build(*flags: str) -> Callable[[], float]:
        def go() -> float:
            clean_build(root)
            return timed(
                neobuild("package", "--all", "--allow-incomplete", "-j", "2", *flags), root
            )

        return go

    a, b = ab(repeat, build(), build("--no-fork-server"))
    return (
        f"first `package --all`, {n} PyTorch models, one environment",
        f"fork server {fmt(a)} ({a / n:.2f} s a model)",
        f"`--no-fork-server` {fmt(b)} ({b / n:.2f} s a model)",
        f"{b / a:.1f}x faster",
        "-",
        cpu_note() + " (exports included: the server reaps them, neobuild reaps the server)",
    )


PACK_CHILD = """
import sys, time
from pathlib import Path
from neobuild.archive import pack
work = Path(sys.argv[1])
started = time.perf_counter()
cpu = time.process_time()
info = pack(work / "export", ["weights.bin"], work / "neo.tar.gz")
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def packing(repeat: int, work: Path, mib: int) -> Row:
    sys.path.insert(0, str(HERE))
    from bench_pack import generate

    (work / "export").mkdir(parents=True)
    generate(work / "export" / "weights.bin", mib << 20)
    timed(["sha256sum", str(work / "export" / "weights.bin")], work)  # page cache

    def neo() -> float:
        out = run([str(PY), "-c", PACK_CHILD, str(work)], work)
        wall, cpu = (float(x) for x in out.strip().splitlines()[-1].split())
        CPU[wall] = cpu
        return wall

    def tar() -> float:
        return timed(
            ["tar", "czf", str(work / "gnu.tar.gz"), "-C", str(work / "export"), "."], work
        )

    a, b = ab(repeat, neo, tar)
    size = mib << 20
    return (
        f"packing {mib} MiB (tar + gzip + both sha256)",
        f"{fmt(a)} ({size / a / 2**20:.0f} MiB/s)",
        f"GNU `tar czf` {fmt(b)} ({size / b / 2**20:.0f} MiB/s)",
        f"{b / a:.1f}x faster",
        "≥ 500 MiB/s, ≥ 15x",
        cpu_note() + f"; neobuild used {LAST_CPU[0] / a:.2f} cores",
    )


# --------------------------------------------------------------------------- report


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs, load average {load} at the end"


def versions() -> str:
    from importlib.metadata import version

    from neobuild import __version__
    from neobuild.archive import COMPRESSOR

    commit = run(["git", "rev-parse", "--short", "HEAD"], REPO).strip()
    return (
        f"neobuild {__version__} at `{commit}`, Python {platform.python_version()}, "
        f"typer {version('typer')}, isal {version('isal')} (`{COMPRESSOR}`), "
        f"torch {version('torch')}, dvc {dvc_version() if (DVC_VENV / 'bin' / 'dvc').exists() else 'dvc n/a'}, "
        f"{run(['tar', '--version'], HERE).splitlines()[0]}"
    )


def write(rows: list[Row], command: str) -> None:
    from neobuild.atomic import atomic_write_text

    table = [
        "| what | neobuild | anchor (same run) | ratio | target | CPU (user + system) |",
        "|---|---:|---:|---:|---|---|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
    body = "\n".join(
        [
            BEGIN,
            "## All scenarios (`make bench`)",
            "",
            f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            f"Machine: {machine()}.",
            f"Versions: {versions()}.",
            "",
            "Each row runs neobuild (A) and its anchor (B) in turn and reports the medians;",
            "wall time of a subprocess, interpreter start included. The machine is shared:",
            "compare the ratios, not the absolute figures, with another run.",
            "",
            *table,
            END,
        ]
    )
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END) :]
    else:
        # The sections the older single-purpose scripts wrote are replaced by this one.
        for old in ("## Packing", "## plan on 1,000 models"):
            text = re.sub(rf"^{re.escape(old)}\n.*?(?=^## |\Z)", "", text, flags=re.S | re.M)
        text = text.rstrip("\n").replace("# Benchmark results", "# Benchmark results\n\n" + body, 1)
    atomic_write_text(RESULTS, text.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="models of the plan scenarios")
    parser.add_argument("--first-models", type=int, default=50, help="tiny exports, first build")
    parser.add_argument("--torch-models", type=int, default=6)
    parser.add_argument("--pack-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", help="startup, plan, first, torch, pack")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    command = "python benchmarks/run_all.py " + " ".join(sys.argv[1:])
    wanted = set(args.only or ["startup", "plan", "first", "torch", "pack"])
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "neobuild")], check=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="neobuild-bench-") as tmp:
        work = Path(tmp)

        def done(row: Row) -> None:
            print(" | ".join(row), flush=True)
            rows.append(row)

        if "startup" in wanted:
            done(startup(max(args.repeat, 5), work))
        if "pack" in wanted:
            done(packing(args.repeat, work / "pack", args.pack_mib))
            shutil.rmtree(work / "pack")
        if "torch" in wanted:
            generate_torch(work / "torch", args.torch_models)
            done(torch_first_build(args.repeat, work / "torch", args.torch_models))
        if "first" in wanted:
            generate_onnx(work / "first", args.first_models)
            done(first_build(args.repeat, work / "first", args.first_models))
        if "plan" in wanted:
            generate_onnx(work / "plan", args.models)
            for row in plan_scenarios(args.repeat, work / "plan", args.models):
                done(row)
    if not args.no_write:
        write(rows, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
