"""shard: every model in exactly one shard, stable, balanced; the GitHub matrix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from neobuild.errors import UsageError
from neobuild.fingerprint import Fingerprint
from neobuild.plan import ModelPlan, Plan
from neobuild.shard import (
    assign,
    load_weights,
    matrix,
    parse_shard,
    record_weights,
    shard,
    weights_from_junit,
)
from neobuild.staleness import Reason

NAMES = [f"model-{i:03d}" for i in range(50)] + ["bert", "resnet18", "yolo"]


@pytest.mark.parametrize("n", range(1, 8))
def test_every_model_in_exactly_one_shard(n: int) -> None:
    shards = [shard(NAMES, k, n) for k in range(1, n + 1)]
    flat = [name for s in shards for name in s]
    assert sorted(flat) == sorted(NAMES)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1, sizes  # balanced by count


@pytest.mark.parametrize("n", range(1, 8))
def test_stable_across_runs_and_input_order(n: int) -> None:
    reference = assign(NAMES, n)
    shuffled = NAMES[:]
    random.Random(n).shuffle(shuffled)
    assert assign(shuffled, n) == reference
    assert assign(NAMES + NAMES[:5], n) == reference  # duplicates ignored
    for k in range(1, n + 1):
        assert set(shard(shuffled, k, n)) == set(shard(NAMES, k, n))
    # Pinned values: a change in the algorithm breaks running CI fleets; make it loud.
    if n == 3:
        assert [assign(NAMES, 3)[x] for x in ("bert", "resnet18", "yolo")] == PINNED


PINNED = [3, 1, 2]


@pytest.mark.parametrize("n", range(2, 8))
def test_adding_a_model_moves_few_others(n: int) -> None:
    before = assign(NAMES, n)
    after = assign([*NAMES, "newcomer"], n)
    moved = [x for x in NAMES if before[x] != after[x]]
    assert len(moved) <= 3, moved


def test_weights_balance_the_load() -> None:
    weights = {name: float(1 + (i % 7) * 10) for i, name in enumerate(NAMES)}
    n = 4
    table = assign(NAMES, n, weights)
    loads = [sum(weights[x] for x in NAMES if table[x] == k) for k in range(1, n + 1)]
    total = sum(weights.values())
    assert max(loads) <= total / n * 1.05 + max(weights.values())
    assert max(loads) <= total / n * 1.15, loads
    # unknown models get the mean weight and still land somewhere
    table = assign([*NAMES, "unknown"], n, weights)
    assert 1 <= table["unknown"] <= n


def test_parse_shard() -> None:
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def _plan(stale: list[str], fresh: list[str]) -> Plan:
    fp = Fingerprint("sha256:x", {})
    items = [ModelPlan(n, "stale", (Reason("new-model"),), (), fp, None) for n in stale]
    items += [ModelPlan(n, "fresh", (), (), fp, "sha256:x") for n in fresh]
    return Plan(models=tuple(items))


def test_matrix() -> None:
    the_plan = _plan(["a", "b", "c", "d", "e"], ["f", "g"])
    m = matrix(the_plan, 2)
    assert [e["shard"] for e in m["include"]] == ["1/2", "2/2"]
    names = sorted(x for e in m["include"] for x in e["models"].split())
    assert names == ["a", "b", "c", "d", "e"]
    assert sum(e["count"] for e in m["include"]) == 5
    every = matrix(the_plan, 3, include_fresh=True)
    assert sorted(x for e in every["include"] for x in e["models"].split()) == list("abcdefg")
    # never more shards than models; nothing stale: an empty include list
    assert [e["shard"] for e in matrix(_plan(["a"], []), 4)["include"]] == ["1/1"]
    assert matrix(_plan([], ["f"]), 4) == {"include": []}
    # A shard job recomputing its slice agrees with the matrix.
    for entry in m["include"]:
        assert (
            shard(["a", "b", "c", "d", "e"], entry["index"], entry["total"])
            == entry["models"].split()
        )


def test_weights_file(tmp_path: Path) -> None:
    assert load_weights(tmp_path) == {}
    record_weights(tmp_path, {"a": 1.5})
    record_weights(tmp_path, {"b": 2})
    assert load_weights(tmp_path) == {"a": 1.5, "b": 2.0}
    (tmp_path / ".neobuild/durations.json").write_text("{broken")
    assert load_weights(tmp_path) == {}


def test_weights_from_junit(tmp_path: Path) -> None:
    report = tmp_path / "shard1.xml"
    report.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="neobuild package">'
        '<testcase classname="neobuild.package" name="bert" time="12.5"/>'
        '<testcase classname="neobuild.package.bert" name="bert [ml_c5]" time="0.1"/>'
        '<testcase classname="neobuild.package" name="resnet" time="3"/>'
        '<testcase classname="neobuild.package" name="broken" time="soon"/>'
        "</testsuite></testsuites>"
    )
    (tmp_path / "bad.xml").write_text("<not xml")
    weights = weights_from_junit([report, tmp_path / "bad.xml", tmp_path / "missing.xml"])
    assert weights == {"bert": 12.5, "resnet": 3.0}


# ---- parse_shard: N=0 and K out of range -------------------------------------------------


@pytest.mark.parametrize("text", ["1/0", "0/0"])
def test_shard_with_zero_shards_says_n_must_be_at_least_1(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_shard(text)
    assert "N (the number of shards) must be at least 1" in info.value.message
    hint = info.value.hint or ""
    assert "0/0" not in hint and "1/0" not in hint
    assert "1/1" in hint


def test_shard_k_out_of_range_still_names_the_valid_range() -> None:
    with pytest.raises(UsageError) as info:
        parse_shard("5/4")
    assert "K must be between 1 and N" in info.value.message
    assert info.value.hint == "use 1/4 … 4/4"
