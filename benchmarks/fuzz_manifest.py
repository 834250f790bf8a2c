"""Fuzz the manifest loader: N mutated manifests through `validate` and `plan`.

    python benchmarks/fuzz_manifest.py --cases 10000 --seed 1

Prints the cases run, how many ended in an internal error (exit 3: a bug), how many
were refused (exit 2) and the slowest case, and writes each crashing or slow input
(over --slow seconds) to --out for a bug report. Uses the mutations of
tests/reliability/mutate.py on the repository of tests/reliability/hostile.py.
The test suite runs a seeded slice of the same (tests/reliability/test_rel_fuzz.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "reliability"), str(HERE.parent)]

from hostile import INCLUDED, VALID, internal_error, make_repo, run_case  # noqa: E402
from mutate import mutate  # noqa: E402

BASES = (
    VALID,
    VALID.replace('include: ["more/*.yaml"]\n', "")
    + INCLUDED.split("\n", 1)[1].replace("../models", "models"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slow", type=float, default=10.0, help="seconds that make a case slow")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    crashes = refused = slow = 0
    slowest = (0.0, -1)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")
        for case in range(args.cases):
            data = mutate(rnd.choice(BASES), rnd)
            t0 = time.monotonic()
            outcomes = run_case(repo, data)
            took = time.monotonic() - t0
            slowest = max(slowest, (took, case))
            refused += any(o.code == 2 for o in outcomes)
            crashed = any(internal_error(o) for o in outcomes)
            crashes += crashed
            slow += took > args.slow
            if crashed or took > args.slow:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"case-{args.seed}-{case}.yaml").write_bytes(data)
                what = "internal error" if crashed else f"slow ({took:.1f} s)"
                print(f"case {case}: {what}", file=sys.stderr)
            if (case + 1) % 1000 == 0:
                print(f"... {case + 1} cases, {crashes} internal errors", file=sys.stderr)
    print(f"cases run:        {args.cases} (seed {args.seed})")
    print(f"internal errors:  {crashes}")
    print(f"refused (exit 2): {refused}")
    print(f"over {args.slow:g} s:       {slow}")
    print(f"slowest case:     {slowest[0]:.2f} s (case {slowest[1]})")
    print(f"total:            {time.monotonic() - started:.0f} s")
    return 1 if crashes or slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
