"""A seeded fuzz slice: mutated manifests never crash neobuild (exit 3) or stall it.

Hypothesis draws a base manifest and a seeded ``random.Random`` that drives the
mutations in ``mutate.py``; each case runs ``validate`` and ``plan`` in-process. The
run is derandomized (the same cases every time); ``benchmarks/fuzz_manifest.py``
runs 10,000 cases with fresh seeds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hostile import INCLUDED, VALID, internal_error, make_repo, run_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutate import mutate

CASES = 200
BASES = (
    VALID,
    VALID.replace('include: ["more/*.yaml"]\n', "")
    + INCLUDED.split("\n", 1)[1].replace("../models", "models"),
)
_counts = {"cases": 0, "errors": 0}


def test_the_bases_are_valid(repo: Path) -> None:
    for base in BASES:
        assert [o.code for o in run_case(repo, base.encode())] == [0, 0]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = make_repo(tmp_path_factory.mktemp("fuzz") / "repo")
    yield root
    print(f"fuzzed {_counts['cases']} manifests: {_counts['errors']} refused with exit 2")


@settings(
    max_examples=CASES,
    derandomize=True,
    deadline=timedelta(seconds=10),  # a stall, not a speed claim: cases take ~50 ms
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=st.sampled_from(BASES), rnd=st.randoms(use_true_random=False))
def test_mutated_manifest_never_crashes(repo: Path, base: str, rnd: random.Random) -> None:
    data = mutate(base, rnd)
    outcomes = run_case(repo, data)
    _counts["cases"] += 1
    _counts["errors"] += any(o.code == 2 for o in outcomes)
    for outcome in outcomes:
        assert not internal_error(outcome), f"{outcome.command} on {data!r}:\n{outcome.output}"
        assert outcome.code in (0, 2) or outcome.command != "validate", outcome.output
